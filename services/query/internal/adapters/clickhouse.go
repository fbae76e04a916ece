// Package adapters implements the query service's storage interfaces on
// ClickHouse (events, metric_windows) and Redis (the live view), plus the
// batching writer that groups window results into one insert.
package adapters

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/config"
)

// OpenClickHouse connects to ClickHouse over the native protocol and pings
// it. The connection uses the server's default database: repositories name
// their tables with cfg.Database, which may not exist before migrations run.
// Calls are client spans when tracing is on (TraceClickHouse). When
// cfg.HTTPAddr is set it also pings the HTTP interface there and returns
// the connection carrying that client (WithClickHouseHTTP): raw events are
// then inserted in Native format over HTTP. The caller closes the
// connection.
func OpenClickHouse(ctx context.Context, cfg config.ClickHouse) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{cfg.Addr},
		Auth:        clickhouse.Auth{Username: cfg.User, Password: cfg.Password},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s: %w", cfg.Addr, err)
	}
	if cfg.HTTPAddr == "" {
		return TraceClickHouse(conn), nil
	}
	h, err := NewClickHouseHTTP(cfg.HTTPAddr, cfg.User, cfg.Password)
	if err == nil {
		err = h.Ping(ctx)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("CLICKHOUSE_HTTP_ADDR: %w", err)
	}
	return WithClickHouseHTTP(TraceClickHouse(conn), h), nil
}

// httpConn is a native connection that also carries an HTTP interface
// client for inserts (WithClickHouseHTTP).
type httpConn struct {
	driver.Conn
	http *ClickHouseHTTP
}

// WithClickHouseHTTP returns conn carrying h: repositories built on the
// result insert through h where they can (the events repository), and
// Close closes both.
func WithClickHouseHTTP(conn driver.Conn, h *ClickHouseHTTP) driver.Conn {
	return httpConn{Conn: conn, http: h}
}

// Close implements driver.Conn.
func (c httpConn) Close() error {
	c.http.Close()
	return c.Conn.Close()
}

// clickHouseHTTPOf returns the HTTP client conn carries, nil if none.
func clickHouseHTTPOf(conn driver.Conn) *ClickHouseHTTP {
	if c, ok := conn.(httpConn); ok {
		return c.http
	}
	return nil
}

// maxDateTimeSec is the last second ClickHouse's DateTime (UInt32) holds.
const maxDateTimeSec = 1<<32 - 1

// dateTime converts ms since the epoch to a time for a DateTime column,
// clamped to DateTime's range so that no value fails an insert (the exact
// ms go to the *_ms column beside it).
func dateTime(ms int64) time.Time {
	return time.Unix(dateTimeSec(ms), 0).UTC()
}

// dateTimeSec is dateTime in seconds since the epoch: the DateTime value
// ClickHouse stores.
func dateTimeSec(ms int64) int64 {
	sec := ms / 1000
	if ms < 0 && ms%1000 != 0 {
		sec--
	}
	return min(max(sec, 0), maxDateTimeSec)
}

// Tables names the projection tables of one database (unqualified,
// validated identifiers).
type Tables struct {
	Events, Windows, Alerts, Notifications string
}

// DefaultTables are the tables the migrations create and the service
// serves from.
var DefaultTables = Tables{Events: "events", Windows: "metric_windows", Alerts: "alerts", Notifications: "notifications"}

// identifierRe is what a database or table name pasted into SQL must match.
var identifierRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
