package adapters

import (
	"context"
	"fmt"
	"sort"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
)

var _ command.EventWriter = (*ClickHouseEventRepository)(nil)

// eventColumns are the columns of the events table an insert names (18.16
// rejects an INSERT without a column list from clickhouse-go).
const eventColumns = "event_id, type, event_time, event_time_ms, receive_time_ms, v, key, source, " +
	"user_id, session_id, page, product_id, amount, query, properties_keys, properties_values, " +
	"service, endpoint, latency_ms, status, client_ip, method, path, protocol, bytes, referrer, user_agent"

// ClickHouseEventRepository writes raw events to <database>.events (see
// migrations/sql/0001_events.up.sql). Safe for concurrent use.
type ClickHouseEventRepository struct {
	conn   driver.Conn
	insert string
}

// NewClickHouseEventRepository returns a repository on conn writing to
// database.events. database must be a validated identifier (config
// Validate does that); it is part of the SQL text.
func NewClickHouseEventRepository(conn driver.Conn, database string) *ClickHouseEventRepository {
	return &ClickHouseEventRepository{
		conn:   conn,
		insert: "INSERT INTO " + database + ".events (" + eventColumns + ")",
	}
}

// InsertEvents writes evs as one ClickHouse insert (one block): all or
// none. A replayed event collapses with its earlier copy on merge (the
// table is a ReplacingMergeTree ordered by type, event_time, event_id).
func (r *ClickHouseEventRepository) InsertEvents(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, r.insert)
	if err != nil {
		return fmt.Errorf("prepare events insert: %w", err)
	}
	for i := range evs {
		e := &evs[i]
		keys, values := sortedPairs(e.Properties)
		if err := batch.Append(
			e.ID, string(e.Type), dateTime(e.Time), e.Time, e.ReceiveTime, uint16(min(max(e.V, 0), 1<<16-1)), e.Key, e.Source,
			e.UserID, e.SessionID, e.Page, e.ProductID, e.Amount, e.Query, keys, values,
			e.Service, e.Endpoint, e.LatencyMs, int32(e.Status), e.ClientIP, e.Method, e.Path, e.Protocol, e.Bytes, e.Referrer, e.UserAgent,
		); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append event %q: %w", e.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d events: %w", len(evs), err)
	}
	return nil
}

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
