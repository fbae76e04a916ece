package adapters

import (
	"context"
	"fmt"
	"regexp"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

var databaseRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ClickHouseHistory reads stored window results and raw events (the
// query service's tables metric_windows and events) for backtests.
type ClickHouseHistory struct {
	conn driver.Conn
	db   string
}

// NewClickHouseHistory connects to ClickHouse at addr (native protocol).
func NewClickHouseHistory(ctx context.Context, addr, database, user, password string) (*ClickHouseHistory, error) {
	if !databaseRe.MatchString(database) {
		return nil, fmt.Errorf("database name %q must match %s", database, databaseRe)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: database, Username: user, Password: password}})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	return &ClickHouseHistory{conn: conn, db: database}, nil
}

// Close closes the connection.
func (h *ClickHouseHistory) Close() error { return h.conn.Close() }

// Windows returns the complete window results of the metrics whose windows
// start in [from, to) ms, each at its highest revision (FINAL).
func (h *ClickHouseHistory) Windows(ctx context.Context, metrics []string, from, to int64) ([]rules.Point, error) {
	if len(metrics) == 0 {
		return nil, nil
	}
	rows, err := h.conn.Query(ctx, fmt.Sprintf(`SELECT metric, label_names, label_values, window_start_ms, window_end_ms, shard, kind, value, watermark_ms
FROM %s.metric_windows FINAL
WHERE has(?, metric) AND complete = 1 AND window_start_ms >= ? AND window_start_ms < ?
ORDER BY window_end_ms, metric, labels_key`, h.db), metrics, from, to)
	if err != nil {
		return nil, fmt.Errorf("read metric_windows: %w", err)
	}
	defer rows.Close()
	var out []rules.Point
	for rows.Next() {
		var (
			p             rules.Point
			names, values []string
		)
		if err := rows.Scan(&p.Metric, &names, &values, &p.Start, &p.End, &p.Shard, &p.Kind, &p.Value, &p.Watermark); err != nil {
			return nil, fmt.Errorf("scan metric_windows: %w", err)
		}
		p.Source, p.Complete = rules.SourceWindows, true
		p.Labels = make(map[string]string, len(names))
		for i := range min(len(names), len(values)) {
			p.Labels[names[i]] = values[i]
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read metric_windows: %w", err)
	}
	return out, nil
}

// Events returns the raw events of the types with event time in [from, to)
// ms, deduplicated (FINAL), in event-time order. The events table does not
// store metric sample fields yet, so samples cannot be backtested from it.
func (h *ClickHouseHistory) Events(ctx context.Context, types []events.Type, from, to int64) ([]events.Event, error) {
	if len(types) == 0 {
		return nil, nil
	}
	ts := make([]string, len(types))
	for i, t := range types {
		ts[i] = string(t)
	}
	rows, err := h.conn.Query(ctx, fmt.Sprintf(`SELECT event_id, type, event_time_ms, key, source, user_id, session_id, page, product_id,
  query, service, endpoint, status, client_ip, method, path
FROM %s.events FINAL
WHERE has(?, type) AND event_time_ms >= ? AND event_time_ms < ?
ORDER BY event_time_ms, event_id`, h.db), ts, from, to)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		var (
			e      events.Event
			typ    string
			status int32
		)
		if err := rows.Scan(&e.ID, &typ, &e.Time, &e.Key, &e.Source, &e.UserID, &e.SessionID, &e.Page, &e.ProductID,
			&e.Query, &e.Service, &e.Endpoint, &status, &e.ClientIP, &e.Method, &e.Path); err != nil {
			return nil, fmt.Errorf("scan events: %w", err)
		}
		e.V, e.Type, e.Status = 1, events.Type(typ), int(status)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}
