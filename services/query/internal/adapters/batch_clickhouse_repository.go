package adapters

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

const batchWindowColumns = "run_id, metric, labels_key, label_names, label_values, window_start, window_start_ms, window_end_ms, " +
	"count, sum, min, max, value"

// ClickHouseBatchRepository runs compiled batch queries over
// <database>.events into <database>.metric_windows_batch, records runs in
// <database>.batch_runs (migration 0005), and reads both for serving and
// for the divergence report. Safe for concurrent use.
//
// Recompute reads the events table without FINAL where that is exact (see
// batch.Deduplicated), compacting partitions the run reads whole with
// OPTIMIZE ... FINAL first, and with FINAL elsewhere.
type ClickHouseBatchRepository struct {
	conn     driver.Conn
	database string
	// optimizeMu serialises OPTIMIZE statements: two chunks of a run may
	// want the same partition, and merges are heavy.
	optimizeMu sync.Mutex
	stats      struct{ merged, final, redone, optimized atomic.Uint64 }
	// afterRead, when set (tests), runs after a merged read and before its
	// parts are listed again.
	afterRead func()
}

// BatchStats counts how Recompute read the events table since the
// repository was made.
type BatchStats struct {
	// Merged queries read without FINAL (deduplicated parts).
	Merged uint64
	// Final queries read with FINAL, including Redone.
	Final uint64
	// Redone merged reads whose parts changed while they ran, so they were
	// recomputed with FINAL.
	Redone uint64
	// Optimized partitions compacted with OPTIMIZE ... FINAL.
	Optimized uint64
}

// NewClickHouseBatchRepository returns a repository on conn for database
// (a validated identifier).
func NewClickHouseBatchRepository(conn driver.Conn, database string) *ClickHouseBatchRepository {
	return &ClickHouseBatchRepository{conn: conn, database: database}
}

// Stats returns the read-path counters.
func (r *ClickHouseBatchRepository) Stats() BatchStats {
	return BatchStats{Merged: r.stats.merged.Load(), Final: r.stats.final.Load(), Redone: r.stats.redone.Load(),
		Optimized: r.stats.optimized.Load()}
}

// EventsTable is the qualified raw events table compiled queries read.
func (r *ClickHouseBatchRepository) EventsTable() string {
	return r.database + "." + DefaultTables.Events
}

// SaveRun records run's current state; version orders the states of one
// run (the highest wins).
func (r *ClickHouseBatchRepository) SaveRun(ctx context.Context, run batch.Run, version uint64) error {
	b, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.database+".batch_runs (run_id, from_ms, to_ms, metrics, skipped, status, windows, "+
		"started_ms, finished_ms, error, version)")
	if err != nil {
		return fmt.Errorf("prepare batch_runs insert: %w", err)
	}
	metricsList, skipped := run.Metrics, run.Skipped
	if metricsList == nil {
		metricsList = []string{}
	}
	if skipped == nil {
		skipped = []string{}
	}
	if err := b.Append(run.ID, run.FromMs, run.ToMs, metricsList, skipped, run.Status, run.Windows, run.StartedMs, run.FinishedMs, run.Error, version); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append run %s: %w", run.ID, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record run %s: %w", run.ID, err)
	}
	return nil
}

// Recompute runs q and writes its rows, tagged with runID, into the batch
// view in inserts of up to 50,000 rows. It returns the windows written.
// The aggregation runs in ClickHouse; only one row per window and label
// set crosses the wire.
//
// FINAL merges the parts of the range in one stream at read time, which
// halves the read rate, so Recompute reads without it where that is exact:
//
//  1. list the active parts holding events of q's range; if they are not
//     batch.Deduplicated, compact with OPTIMIZE TABLE ... PARTITION ID ...
//     FINAL every partition that is not and whose events all lie inside
//     q's plan (the run reads it whole anyway, so compacting costs about
//     one FINAL read, and later runs read it merged); list again;
//  2. if deduplicated, run q.MergedSQL, then list the parts again: the
//     same names mean the read saw exactly those parts (batch.SameParts);
//     otherwise (an insert or merge raced the read) run q.SQL, whose rows
//     replace the first ones (same batch view keys, inserted later);
//  3. else run q.SQL (FINAL).
func (r *ClickHouseBatchRepository) Recompute(ctx context.Context, runID string, q batch.Query) (uint64, error) {
	if q.MergedSQL != "" {
		parts, err := r.dedupParts(ctx, q)
		if err != nil {
			return 0, err
		}
		if batch.Deduplicated(parts) {
			n, err := r.recompute(ctx, runID, q, q.MergedSQL)
			if err != nil {
				return n, err
			}
			if r.afterRead != nil {
				r.afterRead()
			}
			after, err := r.readParts(ctx, q)
			if err != nil {
				return n, err
			}
			if batch.SameParts(parts, after) {
				r.stats.merged.Add(1)
				return n, nil
			}
			r.stats.redone.Add(1)
		}
	}
	r.stats.final.Add(1)
	return r.recompute(ctx, runID, q, q.SQL)
}

// partsSQL lists the active parts of the events table in the partitions
// that hold events in [?, ?] (seconds) or parts of unknown time range, with
// each part's time range.
const partsSQL = "SELECT name, partition_id, toUInt32(level), toInt64(toUInt32(min_time)), toInt64(toUInt32(max_time))" +
	" FROM system.parts WHERE database = ? AND table = ? AND active AND partition_id IN (" +
	"SELECT partition_id FROM system.parts WHERE database = ? AND table = ? AND active" +
	" AND ((toUInt32(max_time) >= ? AND toUInt32(min_time) <= ?) OR toUInt32(max_time) = 0))"

// seconds converts the event range [fromMs, toMs) to the inclusive
// event_time bounds compiled statements use.
func seconds(fromMs, toMs int64) (from, to int64) {
	return max(fromMs/1000, 0), max((toMs-1)/1000, 0)
}

// partitionParts returns the active parts of the partitions holding
// events of q's range, by partition id.
func (r *ClickHouseBatchRepository) partitionParts(ctx context.Context, q batch.Query) (map[string][]batch.Part, error) {
	from, to := seconds(q.ReadFromMs, q.ReadToMs)
	rows, err := r.conn.Query(ctx, partsSQL, r.database, DefaultTables.Events, r.database, DefaultTables.Events, from, to)
	if err != nil {
		return nil, fmt.Errorf("list events parts: %w", err)
	}
	defer rows.Close()
	out := map[string][]batch.Part{}
	for rows.Next() {
		var p batch.Part
		if err := rows.Scan(&p.Name, &p.Partition, &p.Level, &p.MinTime, &p.MaxTime); err != nil {
			return nil, fmt.Errorf("scan events part: %w", err)
		}
		out[p.Partition] = append(out[p.Partition], p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events parts: %w", err)
	}
	return out, nil
}

// readParts returns the active parts holding events of q's range.
func (r *ClickHouseBatchRepository) readParts(ctx context.Context, q batch.Query) ([]batch.Part, error) {
	byPartition, err := r.partitionParts(ctx, q)
	if err != nil {
		return nil, err
	}
	from, to := seconds(q.ReadFromMs, q.ReadToMs)
	var out []batch.Part
	for _, parts := range byPartition {
		for _, p := range parts {
			if p.MaxTime >= from && p.MinTime <= to || p.MaxTime == 0 { // 0: unknown range, see batch.Deduplicated
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// dedupParts returns the active parts holding events of q's range after
// compacting the partitions that are not deduplicated and lie inside q's
// plan (step 1 of Recompute).
func (r *ClickHouseBatchRepository) dedupParts(ctx context.Context, q batch.Query) ([]batch.Part, error) {
	parts, err := r.readParts(ctx, q)
	if err != nil || batch.Deduplicated(parts) {
		return parts, err
	}
	r.optimizeMu.Lock()
	defer r.optimizeMu.Unlock()
	byPartition, err := r.partitionParts(ctx, q) // again: another chunk may have compacted meanwhile
	if err != nil {
		return nil, err
	}
	spanFrom, spanTo := seconds(q.SpanFromMs, q.SpanToMs)
	for id, ps := range byPartition {
		if batch.Deduplicated(ps) {
			continue
		}
		inside := true
		for _, p := range ps {
			inside = inside && p.MinTime >= spanFrom && p.MaxTime <= spanTo
		}
		if !inside {
			continue
		}
		if err := r.conn.Exec(ctx, "OPTIMIZE TABLE "+r.EventsTable()+" PARTITION ID ? FINAL", id); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("optimize events partition %s: %w", id, err)
			}
			continue // e.g. a merge of the partition is running: this query reads it with FINAL
		}
		r.stats.optimized.Add(1)
	}
	return r.readParts(ctx, q)
}

// recompute runs sql (q.SQL or q.MergedSQL) with q's arguments and writes
// its rows into the batch view (see Recompute).
func (r *ClickHouseBatchRepository) recompute(ctx context.Context, runID string, q batch.Query, sql string) (uint64, error) {
	rows, err := r.conn.Query(ctx, sql, q.Args...)
	if err != nil {
		return 0, fmt.Errorf("batch query %s: %w", q.Metric, err)
	}
	defer rows.Close()
	insert := "INSERT INTO " + r.database + ".metric_windows_batch (" + batchWindowColumns + ")"
	var (
		pending driver.Batch
		n       uint64
		inBatch int
	)
	flush := func() error {
		if pending == nil {
			return nil
		}
		err := pending.Send()
		pending, inBatch = nil, 0
		if err != nil {
			return fmt.Errorf("insert batch windows of %s: %w", q.Metric, err)
		}
		return nil
	}
	for rows.Next() {
		var (
			ws, we        int64
			values        []string
			c             uint64
			s, mn, mx, vv float64
		)
		if err := rows.Scan(&ws, &we, &values, &c, &s, &mn, &mx, &vv); err != nil {
			return n, fmt.Errorf("scan batch rows of %s: %w", q.Metric, err)
		}
		labels := make(map[string]string, len(q.GroupBy))
		for i, name := range q.GroupBy {
			if i < len(values) {
				labels[name] = values[i]
			}
		}
		names, vals := sortedPairs(labels)
		if pending == nil {
			if pending, err = r.conn.PrepareBatch(ctx, insert); err != nil {
				return n, fmt.Errorf("prepare batch view insert: %w", err)
			}
		}
		if err := pending.Append(runID, q.Metric, metrics.LabelsKey(labels), names, vals, dateTime(ws), ws, we,
			int64(c), s, mn, mx, vv); err != nil {
			_ = pending.Abort()
			return n, fmt.Errorf("append batch window: %w", err)
		}
		n++
		if inBatch++; inBatch >= 50_000 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read batch rows of %s: %w", q.Metric, err)
	}
	return n, flush()
}

const runColumns = "run_id, from_ms, to_ms, metrics, skipped, status, windows, started_ms, finished_ms, error"

func scanRuns(rows driver.Rows) ([]batch.Run, error) {
	defer rows.Close()
	var out []batch.Run
	for rows.Next() {
		var run batch.Run
		if err := rows.Scan(&run.ID, &run.FromMs, &run.ToMs, &run.Metrics, &run.Skipped, &run.Status, &run.Windows,
			&run.StartedMs, &run.FinishedMs, &run.Error); err != nil {
			return nil, fmt.Errorf("scan batch run: %w", err)
		}
		out = append(out, run)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read batch runs: %w", err)
	}
	return out, nil
}

// Run returns run id's current state; ok is false when there is none.
func (r *ClickHouseBatchRepository) Run(ctx context.Context, id string) (batch.Run, bool, error) {
	rows, err := r.conn.Query(ctx, "SELECT "+runColumns+" FROM "+r.database+".batch_runs FINAL WHERE run_id = ?", id)
	if err != nil {
		return batch.Run{}, false, fmt.Errorf("query batch run: %w", err)
	}
	runs, err := scanRuns(rows)
	if err != nil || len(runs) == 0 {
		return batch.Run{}, false, err
	}
	return runs[0], true, nil
}

// DoneRuns returns the done runs that recomputed metric and overlap
// [from, to), the latest finished first.
func (r *ClickHouseBatchRepository) DoneRuns(ctx context.Context, metric string, from, to int64) ([]batch.Run, error) {
	rows, err := r.conn.Query(ctx, "SELECT "+runColumns+" FROM "+r.database+".batch_runs FINAL WHERE status = ? AND has(metrics, ?)"+
		" AND from_ms < ? AND to_ms > ? ORDER BY finished_ms DESC, run_id DESC", batch.StatusDone, metric, to, from)
	if err != nil {
		return nil, fmt.Errorf("query batch runs: %w", err)
	}
	return scanRuns(rows)
}

// SeriesWindows returns, per window and group of q, the batch view's
// values of the given runs (Run set on each row).
func (r *ClickHouseBatchRepository) SeriesWindows(ctx context.Context, q window.SeriesQuery, runIDs []string) ([]window.WindowRow, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	extraArgs := make([]any, len(runIDs))
	for i, id := range runIDs {
		extraArgs[i] = id
	}
	sql, args := windowAggSQL(r.database+".metric_windows_batch FINAL", "window_start_ms AS ws, window_end_ms AS we, run_id AS run", nil, q,
		"run_id IN ("+placeholders(len(runIDs))+")", extraArgs, "ws, we, run, grp", "grp, ws")
	return scanWindowRows(ctx, r.conn, sql, args, true)
}

// RunWindows returns every window of run in the batch view.
func (r *ClickHouseBatchRepository) RunWindows(ctx context.Context, run batch.Run) ([]batch.Window, error) {
	return r.windows(ctx, "SELECT metric, labels_key, label_names, label_values, window_start_ms, window_end_ms, value, count FROM "+
		r.database+".metric_windows_batch FINAL WHERE run_id = ?", run.ID)
}

// SpeedWindows returns the speed layer's windows of run's metrics that lie
// inside its range, the latest revision of each summed over shards.
func (r *ClickHouseBatchRepository) SpeedWindows(ctx context.Context, run batch.Run) ([]batch.Window, error) {
	if len(run.Metrics) == 0 {
		return nil, nil
	}
	args := []any{dateTime(run.FromMs).Unix(), dateTime(run.ToMs - 1).Unix(), run.FromMs, run.ToMs}
	for _, m := range run.Metrics {
		args = append(args, m)
	}
	return r.windows(ctx, "SELECT metric, labels_key, any(label_names), any(label_values), window_start_ms, window_end_ms, sum(value), sum(count) FROM "+
		r.database+"."+DefaultTables.Windows+" FINAL WHERE window_start >= toDateTime(?) AND window_start <= toDateTime(?)"+
		" AND window_start_ms >= ? AND window_end_ms <= ? AND metric IN ("+placeholders(len(run.Metrics))+")"+
		" GROUP BY metric, labels_key, window_start_ms, window_end_ms", args...)
}

func (r *ClickHouseBatchRepository) windows(ctx context.Context, sql string, args ...any) ([]batch.Window, error) {
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query windows: %w", err)
	}
	defer rows.Close()
	var out []batch.Window
	for rows.Next() {
		var (
			w            batch.Window
			names, value []string
		)
		if err := rows.Scan(&w.Metric, &w.LabelsKey, &names, &value, &w.Start, &w.End, &w.Value, &w.Count); err != nil {
			return nil, fmt.Errorf("scan windows: %w", err)
		}
		w.Labels = pairsMap(names, value)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	return out, nil
}
