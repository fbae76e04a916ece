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
// migrations/sql/0001_events.up.sql). Concurrent InsertEvents calls are
// grouped into one insert (DefaultEventsGroupCommit). Safe for concurrent
// use.
type ClickHouseEventRepository struct {
	conn   driver.Conn
	table  string // database.table
	insert string
	group  *groupCommit[events.Event]
	http   *ClickHouseHTTP            // nil: inserts go through conn
	blocks freeList[eventNativeBlock] // Native blocks reused across inserts
	// split is how many concurrent inserts a block of at least
	// split*splitMin rows is cut into (HTTP path; < 2: never).
	split, splitMin int
}

// NewClickHouseEventRepository returns a repository on conn writing to
// database.events. database must be a validated identifier (config
// Validate does that); it is part of the SQL text. When conn carries an
// HTTP interface client (WithClickHouseHTTP, as OpenClickHouse returns it
// with CLICKHOUSE_HTTP_ADDR set), inserts go through it (WithHTTPInsert).
func NewClickHouseEventRepository(conn driver.Conn, database string) *ClickHouseEventRepository {
	return NewClickHouseEventRepositoryOn(conn, database, DefaultTables.Events)
}

// NewClickHouseEventRepositoryOn is NewClickHouseEventRepository on
// database.table (both validated identifiers), e.g. a replay's fresh table.
func NewClickHouseEventRepositoryOn(conn driver.Conn, database, table string) *ClickHouseEventRepository {
	qualified := database + "." + table
	r := &ClickHouseEventRepository{conn: conn, table: qualified, insert: "INSERT INTO " + qualified + " (" + eventColumns + ")"}
	r.group = newGroupCommit(DefaultEventsGroupCommit, r.insertBlock)
	if h := clickHouseHTTPOf(conn); h != nil {
		return r.WithHTTPInsert(h)
	}
	return r
}

// WithGroupCommit returns r grouping concurrent inserts with cfg (Idle 0:
// every InsertEvents call is its own insert).
func (r *ClickHouseEventRepository) WithGroupCommit(cfg GroupCommitConfig) *ClickHouseEventRepository {
	c := *r
	c.group = newGroupCommit(cfg, c.insertBlock)
	return &c
}

// WithHTTPInsert returns r inserting through h (Native format over
// ClickHouse's HTTP interface) instead of clickhouse-go; searches still use
// the native connection. Up to two blocks are kept for reuse across
// inserts (each about twice the insert's data once grown: ~60 MB at
// 100,000 access-log rows); concurrent inserts beyond that allocate theirs.
func (r *ClickHouseEventRepository) WithHTTPInsert(h *ClickHouseHTTP) *ClickHouseEventRepository {
	c := *r
	c.http = h
	c.blocks = make(freeList[eventNativeBlock], 2)
	c.group = newGroupCommit(r.group.cfg, c.insertBlock)
	return &c
}

// WithSplitInserts returns r cutting a block of at least parts*minRows
// rows into parts concurrent inserts (HTTP path only; parts < 2: never).
// ClickHouse 18.16 parses and sorts an insert on one thread; concurrent
// inserts let it use more cores, at the cost of one part each and of
// atomicity across the parts (a retry re-inserts, and the table's key
// collapses the copies).
func (r *ClickHouseEventRepository) WithSplitInserts(parts, minRows int) *ClickHouseEventRepository {
	c := *r
	c.split, c.splitMin = parts, max(minRows, 1)
	c.group = newGroupCommit(r.group.cfg, c.insertBlock)
	return &c
}

// InsertEvents writes the events of every slice of parts in one ClickHouse
// insert (one block), together with the events of concurrent calls (group
// commit): all or none. It returns once that insert is done. A replayed
// event collapses with its earlier copy on merge (the table is a
// ReplacingMergeTree ordered by type, event_time, event_id).
func (r *ClickHouseEventRepository) InsertEvents(ctx context.Context, parts ...[]events.Event) error {
	return r.group.Write(ctx, parts...)
}

// insertBlock writes the events of every slice of groups as one insert.
// Columns are built whole and appended with clickhouse-go's columnar API,
// several times faster than appending row by row.
func (r *ClickHouseEventRepository) insertBlock(ctx context.Context, groups [][]events.Event) error {
	n := 0
	for _, evs := range groups {
		n += len(evs)
	}
	if n == 0 {
		return nil
	}
	if r.http != nil {
		return r.insertNative(ctx, groups, n)
	}
	b := newEventBlock(n)
	i := 0
	for _, evs := range groups {
		for j := range evs {
			b.set(i, &evs[j])
			i++
		}
	}
	batch, err := r.conn.PrepareBatch(ctx, r.insert)
	if err != nil {
		return fmt.Errorf("prepare events insert: %w", err)
	}
	for i, col := range b.columns() {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append events column %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d events: %w", n, err)
	}
	return nil
}

// eventBlock holds the events table's columns of one insert.
type eventBlock struct {
	ids, types, keys, sources, users, sessions, pages, products, queries []string
	services, endpoints, ips, methods, paths, protos, refs, agents       []string
	times                                                                []time.Time
	timeMs, recvMs, bytes                                                []int64
	vs                                                                   []uint16
	amounts, latencies                                                   []float64
	statuses                                                             []int32
	propKeys, propValues                                                 [][]string
}

func newEventBlock(n int) *eventBlock {
	return &eventBlock{
		ids: mk[string](n), types: mk[string](n), keys: mk[string](n), sources: mk[string](n), users: mk[string](n),
		sessions: mk[string](n), pages: mk[string](n), products: mk[string](n), queries: mk[string](n),
		services: mk[string](n), endpoints: mk[string](n), ips: mk[string](n), methods: mk[string](n), paths: mk[string](n),
		protos: mk[string](n), refs: mk[string](n), agents: mk[string](n),
		times: mk[time.Time](n), timeMs: mk[int64](n), recvMs: mk[int64](n), bytes: mk[int64](n), vs: mk[uint16](n),
		amounts: mk[float64](n), latencies: mk[float64](n), statuses: mk[int32](n), propKeys: mk[[]string](n), propValues: mk[[]string](n),
	}
}

// set fills row i from e.
func (b *eventBlock) set(i int, e *events.Event) {
	b.ids[i], b.types[i], b.keys[i], b.sources[i] = e.ID, string(e.Type), e.Key, e.Source
	b.users[i], b.sessions[i], b.pages[i], b.products[i], b.queries[i] = e.UserID, e.SessionID, e.Page, e.ProductID, e.Query
	b.services[i], b.endpoints[i], b.ips[i], b.methods[i], b.paths[i] = e.Service, e.Endpoint, e.ClientIP, e.Method, e.Path
	b.protos[i], b.refs[i], b.agents[i] = e.Protocol, e.Referrer, e.UserAgent
	b.times[i], b.timeMs[i], b.recvMs[i], b.bytes[i] = dateTime(e.Time), e.Time, e.ReceiveTime, e.Bytes
	b.vs[i] = uint16(min(max(e.V, 0), 1<<16-1))
	b.amounts[i], b.latencies[i], b.statuses[i] = e.Amount, e.LatencyMs, int32(e.Status)
	b.propKeys[i], b.propValues[i] = sortedPairs(e.Properties)
}

// columns returns the columns in eventColumns order.
func (b *eventBlock) columns() []any {
	return []any{b.ids, b.types, b.times, b.timeMs, b.recvMs, b.vs, b.keys, b.sources, b.users, b.sessions, b.pages, b.products,
		b.amounts, b.queries, b.propKeys, b.propValues, b.services, b.endpoints, b.latencies, b.statuses, b.ips, b.methods,
		b.paths, b.protos, b.bytes, b.refs, b.agents}
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
