package adapters

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/eventsearch"
)

var (
	_ command.EventWriter = (*ClickHouseEventRepository)(nil)
	_ query.EventSearcher = (*ClickHouseEventRepository)(nil)
)

// eventColumns are the columns of the events table an insert names (18.16
// rejects an INSERT without a column list from clickhouse-go).
const eventColumns = "event_id, type, event_time, event_time_ms, receive_time_ms, v, key, source, " +
	"user_id, session_id, page, product_id, amount, query, properties_keys, properties_values, " +
	"service, endpoint, latency_ms, status, client_ip, method, path, protocol, bytes, referrer, user_agent"

// ClickHouseEventRepository writes raw events to <database>.events (see
// migrations/sql/0001_events.up.sql). Safe for concurrent use.
type ClickHouseEventRepository struct {
	conn   driver.Conn
	table  string // database.table
	insert string
}

// NewClickHouseEventRepository returns a repository on conn writing to
// database.events. database must be a validated identifier (config
// Validate does that); it is part of the SQL text.
func NewClickHouseEventRepository(conn driver.Conn, database string) *ClickHouseEventRepository {
	return NewClickHouseEventRepositoryOn(conn, database, DefaultTables.Events)
}

// NewClickHouseEventRepositoryOn is NewClickHouseEventRepository on
// database.table (both validated identifiers), e.g. a replay's fresh table.
func NewClickHouseEventRepositoryOn(conn driver.Conn, database, table string) *ClickHouseEventRepository {
	qualified := database + "." + table
	return &ClickHouseEventRepository{conn: conn, table: qualified, insert: "INSERT INTO " + qualified + " (" + eventColumns + ")"}
}

// InsertEvents writes evs as one ClickHouse insert (one block): all or
// none. A replayed event collapses with its earlier copy on merge (the
// table is a ReplacingMergeTree ordered by type, event_time, event_id).
// Columns are appended whole (clickhouse-go's columnar API), which is
// several times faster than appending row by row.
func (r *ClickHouseEventRepository) InsertEvents(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	n := len(evs)
	var (
		ids, types, keys, sources, users, sessions, pages, products, queries = mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		services, endpoints, ips, methods, paths, protos, refs, agents       = mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		times                                                                = mk[time.Time](n)
		timeMs, recvMs, bytes                                                = mk[int64](n), mk[int64](n), mk[int64](n)
		vs                                                                   = mk[uint16](n)
		amounts, latencies                                                   = mk[float64](n), mk[float64](n)
		statuses                                                             = mk[int32](n)
		propKeys, propValues                                                 = mk[[]string](n), mk[[]string](n)
	)
	for i := range evs {
		e := &evs[i]
		ids[i], types[i], keys[i], sources[i] = e.ID, string(e.Type), e.Key, e.Source
		users[i], sessions[i], pages[i], products[i], queries[i] = e.UserID, e.SessionID, e.Page, e.ProductID, e.Query
		services[i], endpoints[i], ips[i], methods[i], paths[i] = e.Service, e.Endpoint, e.ClientIP, e.Method, e.Path
		protos[i], refs[i], agents[i] = e.Protocol, e.Referrer, e.UserAgent
		times[i], timeMs[i], recvMs[i], bytes[i] = dateTime(e.Time), e.Time, e.ReceiveTime, e.Bytes
		vs[i] = uint16(min(max(e.V, 0), 1<<16-1))
		amounts[i], latencies[i], statuses[i] = e.Amount, e.LatencyMs, int32(e.Status)
		propKeys[i], propValues[i] = sortedPairs(e.Properties)
	}
	batch, err := r.conn.PrepareBatch(ctx, r.insert)
	if err != nil {
		return fmt.Errorf("prepare events insert: %w", err)
	}
	// In eventColumns order.
	cols := []any{ids, types, times, timeMs, recvMs, vs, keys, sources, users, sessions, pages, products, amounts, queries,
		propKeys, propValues, services, endpoints, latencies, statuses, ips, methods, paths, protos, bytes, refs, agents}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append events column %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d events: %w", len(evs), err)
	}
	return nil
}

func mk[T any](n int) []T { return make([]T, n) }

// sortedPairs returns the map's keys sorted and the values in the same
// order; both are empty (not nil) for an empty map.
func sortedPairs(m map[string]string) (keys, values []string) {
	keys = make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return keys, values
}

// eventReadColumns are the columns SearchEvents reads, in scan order.
const eventReadColumns = "event_id, type, event_time_ms, receive_time_ms, v, key, source, " +
	"user_id, session_id, page, product_id, amount, query, properties_keys, properties_values, " +
	"service, endpoint, latency_ms, status, client_ip, method, path, protocol, bytes, referrer, user_agent"

// SearchEvents implements query.EventSearcher: one page of q from
// events FINAL (replayed copies collapsed) in q's stable order, reading one
// row more than the page to know whether a next page exists. Every value
// of q is a bound argument; column names come from eventsearch.Fields.
func (r *ClickHouseEventRepository) SearchEvents(ctx context.Context, q eventsearch.Query) (eventsearch.Page, error) {
	sql, args := r.searchSQL(q)
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return eventsearch.Page{}, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		var (
			e          events.Event
			typ        string
			v          uint16
			keys, vals []string
			status     int32
		)
		if err := rows.Scan(&e.ID, &typ, &e.Time, &e.ReceiveTime, &v, &e.Key, &e.Source,
			&e.UserID, &e.SessionID, &e.Page, &e.ProductID, &e.Amount, &e.Query, &keys, &vals,
			&e.Service, &e.Endpoint, &e.LatencyMs, &status, &e.ClientIP, &e.Method, &e.Path, &e.Protocol, &e.Bytes, &e.Referrer, &e.UserAgent,
		); err != nil {
			return eventsearch.Page{}, fmt.Errorf("scan events: %w", err)
		}
		e.Type, e.V, e.Status = events.Type(typ), int(v), int(status)
		if len(keys) > 0 {
			e.Properties = make(map[string]string, len(keys))
			for i, k := range keys {
				if i < len(vals) {
					e.Properties[k] = vals[i]
				}
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return eventsearch.Page{}, fmt.Errorf("read events: %w", err)
	}
	page := eventsearch.Page{Events: out}
	if len(out) > q.Limit() {
		page.Events = out[:q.Limit()]
		last := page.Events[len(page.Events)-1]
		page.Next = eventsearch.Cursor{TimeMs: last.Time, Type: string(last.Type), ID: last.ID}.Encode()
	}
	return page, nil
}

// searchSQL builds the search statement and its arguments in placeholder
// order.
func (r *ClickHouseEventRepository) searchSQL(q eventsearch.Query) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("SELECT " + eventReadColumns + " FROM " + r.table + " FINAL")
	// event_time (seconds) selects partitions and the key range;
	// event_time_ms is the exact bound.
	b.WriteString(" WHERE event_time >= toDateTime(?) AND event_time <= toDateTime(?) AND event_time_ms >= ? AND event_time_ms < ?")
	args = append(args, dateTime(q.From()).Unix(), dateTime(q.To()-1).Unix(), q.From(), q.To())
	if len(q.Types()) > 0 {
		b.WriteString(" AND type IN (" + placeholders(len(q.Types())) + ")")
		for _, t := range q.Types() {
			args = append(args, t)
		}
	}
	filters := q.Filters()
	for i := 0; i < len(filters); {
		j := i
		for j < len(filters) && filters[j].Field == filters[i].Field {
			j++
		}
		b.WriteString(" AND (")
		for k, f := range filters[i:j] {
			if k > 0 {
				b.WriteString(" OR ")
			}
			switch {
			case f.Property != "":
				b.WriteString("properties_values[indexOf(properties_keys, ?)] = ? AND has(properties_keys, ?)")
				args = append(args, f.Property, f.Value, f.Property)
			case eventsearch.NumericFields[f.Field]:
				n, _ := strconv.ParseInt(f.Value, 10, 64) // validated by eventsearch
				b.WriteString(f.Column + " = ?")
				args = append(args, n)
			default:
				b.WriteString(f.Column + " = ?")
				args = append(args, f.Value)
			}
		}
		b.WriteString(")")
		i = j
	}
	if c := q.After(); c != nil {
		// Row-value comparison spelled out: 18.16 has no tuple ordering.
		b.WriteString(" AND (event_time_ms > ? OR (event_time_ms = ? AND (type > ? OR (type = ? AND event_id > ?))))")
		args = append(args, c.TimeMs, c.TimeMs, c.Type, c.Type, c.ID)
	}
	b.WriteString(" ORDER BY event_time_ms, type, event_id LIMIT ?")
	args = append(args, q.Limit()+1)
	return b.String(), args
}

// placeholders returns n "?" separated by ", ".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
