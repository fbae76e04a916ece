package adapters

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

var (
	_ query.SeriesReader = (*ClickHouseWindowRepository)(nil)
	_ query.TopKReader   = (*ClickHouseWindowRepository)(nil)
)

const windowColumns = "metric, labels_key, label_names, label_values, window_start, window_start_ms, window_end_ms, " +
	"shard, complete, kind, revision, count, sum, min, max, value, watermark_ms"

// ClickHouseWindowRepository writes window results to
// <database>.metric_windows (see migrations/sql/0002_metric_windows.up.sql)
// and reads series from it. Safe for concurrent use.
type ClickHouseWindowRepository struct {
	conn   driver.Conn
	table  string // database.table
	insert string
	http   *ClickHouseHTTP             // nil: inserts go through conn
	blocks freeList[windowNativeBlock] // Native blocks reused across inserts
}

// NewClickHouseWindowRepository returns a repository on conn for
// database.metric_windows. database must be a validated identifier (config
// Validate does that); it is part of the SQL text. When conn carries an
// HTTP interface client (WithClickHouseHTTP), inserts go through it in
// Native format, as the events repository's.
func NewClickHouseWindowRepository(conn driver.Conn, database string) *ClickHouseWindowRepository {
	return NewClickHouseWindowRepositoryOn(conn, database, DefaultTables.Windows)
}

// NewClickHouseWindowRepositoryOn is NewClickHouseWindowRepository on
// database.table (both validated identifiers).
func NewClickHouseWindowRepositoryOn(conn driver.Conn, database, table string) *ClickHouseWindowRepository {
	qualified := database + "." + table
	return &ClickHouseWindowRepository{conn: conn, table: qualified, insert: "INSERT INTO " + qualified + " (" + windowColumns + ")",
		http: clickHouseHTTPOf(conn), blocks: make(freeList[windowNativeBlock], 2)}
}

// InsertWindows writes rs as one ClickHouse insert: all or none. Rows of
// one window (metric, start, labels, shard) collapse to the highest revision
// on merge; SeriesRows reads with FINAL so it never sees the others.
func (r *ClickHouseWindowRepository) InsertWindows(ctx context.Context, rs []metrics.Result) error {
	if len(rs) == 0 {
		return nil
	}
	if r.http != nil {
		return r.insertNative(ctx, rs)
	}
	n := len(rs)
	var (
		metricCol, keys, kinds                  = mk[string](n), mk[string](n), mk[string](n)
		names, values                           = mk[[]string](n), mk[[]string](n)
		starts                                  = mk[time.Time](n)
		startMs, endMs, revisions, counts, wmMs = mk[int64](n), mk[int64](n), mk[int64](n), mk[int64](n), mk[int64](n)
		shards                                  = mk[int32](n)
		completes                               = mk[uint8](n)
		sums, mins, maxs, vals                  = mk[float64](n), mk[float64](n), mk[float64](n), mk[float64](n)
	)
	for i := range rs {
		w := &rs[i]
		metricCol[i], keys[i], kinds[i] = w.Metric, metrics.LabelsKey(w.Labels), w.Kind
		names[i], values[i] = sortedPairs(w.Labels)
		starts[i], startMs[i], endMs[i] = dateTime(w.WindowStart), w.WindowStart, w.WindowEnd
		shards[i], revisions[i], counts[i], wmMs[i] = w.Shard, w.Revision, w.Count, w.Watermark
		if w.Complete {
			completes[i] = 1
		}
		sums[i], mins[i], maxs[i], vals[i] = w.Sum, w.Min, w.Max, w.Value
	}
	batch, err := r.conn.PrepareBatch(ctx, r.insert)
	if err != nil {
		return fmt.Errorf("prepare metric_windows insert: %w", err)
	}
	// In windowColumns order, whole columns (clickhouse-go's columnar API:
	// no per-row reflection).
	cols := []any{metricCol, keys, names, values, starts, startMs, endMs, shards, completes, kinds, revisions, counts,
		sums, mins, maxs, vals, wmMs}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append metric_windows column %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d windows: %w", len(rs), err)
	}
	return nil
}

// SeriesRows implements query.SeriesReader with one aggregate over
// metric_windows FINAL. Names in q are window.ValidName values, yet they are
// still passed as bound arguments like every value: the only identifiers in
// the SQL text are the database (validated config) and fixed column names.
// clickhouse-go binds "?" on the client with proper quoting, the form
// ClickHouse 18.16 supports over the native protocol.
func (r *ClickHouseWindowRepository) SeriesRows(ctx context.Context, q window.SeriesQuery) ([]window.Row, error) {
	sql, args := r.seriesSQL(q)
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query metric_windows: %w", err)
	}
	defer rows.Close()
	var out []window.Row
	for rows.Next() {
		var row window.Row
		if err := rows.Scan(&row.T, &row.Group, &row.Value); err != nil {
			return nil, fmt.Errorf("scan metric_windows: %w", err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read metric_windows: %w", err)
	}
	return out, nil
}

// seriesSQL builds the series statement and its arguments, in placeholder
// order.
func (r *ClickHouseWindowRepository) seriesSQL(q window.SeriesQuery) (string, []any) {
	step := q.Step().Millis()
	return windowAggSQL(r.table+" FINAL", "intDiv(window_start_ms, ?) * ? AS t", []any{step, step}, q, "", nil, "t, grp", "grp, t")
}

// windowAggSQL builds "SELECT <key>, <group> AS grp, sum(value) AS v FROM
// <from> WHERE <metric, range, filters, extra> GROUP BY <groupBy> ORDER
// BY <orderBy>" over a metric_windows-shaped table; keyArgs bind the
// placeholders of key, extraArgs those of extra.
func windowAggSQL(from, key string, keyArgs []any, q window.SeriesQuery, extra string, extraArgs []any, groupBy, orderBy string) (string, []any) {
	var b strings.Builder
	args := append([]any{}, keyArgs...)
	b.WriteString("SELECT " + key + ", ")
	if q.GroupBy() != "" {
		b.WriteString("label_values[indexOf(label_names, ?)]")
		args = append(args, q.GroupBy())
	} else {
		b.WriteString("''")
	}
	b.WriteString(" AS grp, sum(value) AS v FROM " + from + " WHERE metric = ?")
	args = append(args, q.Metric())
	// window_start (seconds) narrows the partitions read; window_start_ms
	// is the exact condition and uses the primary key.
	b.WriteString(" AND window_start >= toDateTime(?) AND window_start <= toDateTime(?)")
	args = append(args, dateTime(q.From()).Unix(), dateTime(q.To()-1).Unix())
	b.WriteString(" AND window_start_ms >= ? AND window_start_ms < ?")
	args = append(args, q.From(), q.To())
	args = appendLabelFilters(&b, args, q.Filters())
	if extra != "" {
		b.WriteString(" AND " + extra)
		args = append(args, extraArgs...)
	}
	b.WriteString(" GROUP BY " + groupBy + " ORDER BY " + orderBy)
	return b.String(), args
}

// SeriesWindows implements query.LayeredSeriesReader for the speed layer:
// per window and group of q, the latest revisions summed over shards.
func (r *ClickHouseWindowRepository) SeriesWindows(ctx context.Context, q window.SeriesQuery) ([]window.WindowRow, error) {
	sql, args := windowAggSQL(r.table+" FINAL", "window_start_ms AS ws, window_end_ms AS we", nil, q, "", nil, "ws, we, grp", "grp, ws")
	return scanWindowRows(ctx, r.conn, sql, args, false)
}

func scanWindowRows(ctx context.Context, conn driver.Conn, sql string, args []any, withRun bool) ([]window.WindowRow, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query windows: %w", err)
	}
	defer rows.Close()
	var out []window.WindowRow
	for rows.Next() {
		var w window.WindowRow
		dest := []any{&w.Start, &w.End}
		if withRun {
			dest = append(dest, &w.Run)
		}
		dest = append(dest, &w.Group, &w.Value)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan windows: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	return out, nil
}

// TopK implements query.TopKReader with one aggregate over metric_windows
// FINAL: per value of q.By (windows without the label are left out), the
// sum of value and count over q's range, the largest first (ties by key),
// at most q.N. Every name and value is a bound argument.
func (r *ClickHouseWindowRepository) TopK(ctx context.Context, q window.TopKQuery) ([]window.TopKEntry, error) {
	var b strings.Builder
	args := []any{q.By()}
	b.WriteString("SELECT label_values[indexOf(label_names, ?)] AS k, sum(value) AS v, sum(count) AS c FROM ")
	b.WriteString(r.table)
	b.WriteString(" FINAL WHERE metric = ? AND has(label_names, ?)")
	args = append(args, q.Metric(), q.By())
	b.WriteString(" AND window_start >= toDateTime(?) AND window_start <= toDateTime(?) AND window_start_ms >= ? AND window_start_ms < ?")
	args = append(args, dateTime(q.From()).Unix(), dateTime(q.To()-1).Unix(), q.From(), q.To())
	args = appendLabelFilters(&b, args, q.Filters())
	b.WriteString(" GROUP BY k ORDER BY v DESC, k LIMIT ?")
	args = append(args, q.N())

	rows, err := r.conn.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("query top-k: %w", err)
	}
	defer rows.Close()
	var out []window.TopKEntry
	for rows.Next() {
		var e window.TopKEntry
		if err := rows.Scan(&e.Key, &e.Value, &e.Count); err != nil {
			return nil, fmt.Errorf("scan top-k: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read top-k: %w", err)
	}
	return out, nil
}

// appendLabelFilters writes " AND label = any of values" per filter to b
// and returns args with the bound values appended.
func appendLabelFilters(b *strings.Builder, args []any, filters []window.Filter) []any {
	for _, f := range filters {
		b.WriteString(" AND label_values[indexOf(label_names, ?)] IN (")
		args = append(args, f.Label)
		for i, v := range f.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("?")
			args = append(args, v)
		}
		b.WriteString(")")
	}
	return args
}
