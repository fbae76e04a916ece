package adapters

import (
	"context"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// tracerName names the tracer of the ClickHouse client spans.
const tracerName = "github.com/streamwatch/streamwatch/services/query/clickhouse"

// TraceClickHouse returns conn with every query, exec and batch insert as a
// client span (db.system clickhouse, the statement's first words as the
// name, the statement as db.query.text), the child of the caller's span
// and linked to the spans in telemetry.Links(ctx): a batch insert the
// Batcher flushes links to every record whose rows it holds. A batch span
// lasts from PrepareBatch to Send or Abort. There is no contrib
// instrumentation for clickhouse-go, hence this decorator. When tracing is
// off (telemetry.TracingEnabled is false) it returns conn itself.
func TraceClickHouse(conn driver.Conn) driver.Conn {
	if !telemetry.TracingEnabled() {
		return conn
	}
	return tracedConn{Conn: conn, tracer: otel.Tracer(tracerName)}
}

type tracedConn struct {
	driver.Conn
	tracer trace.Tracer
}

// maxStatement bounds db.query.text; statements are templates (values are
// bound separately), so this cuts only long generated SQL.
const maxStatement = 2000

func (c tracedConn) start(ctx context.Context, query string) (context.Context, trace.Span) {
	name := "clickhouse " + operation(query)
	stmt := query
	if len(stmt) > maxStatement {
		stmt = stmt[:maxStatement]
	}
	return c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(telemetry.Links(ctx)...),
		trace.WithAttributes(attribute.String("db.system", "clickhouse"), attribute.String("db.query.text", stmt)))
}

// operation returns the statement's verb and, for INSERT, its table:
// "INSERT INTO db.t", "SELECT", "ALTER".
func operation(query string) string {
	f := strings.Fields(query)
	if len(f) == 0 {
		return "query"
	}
	verb := strings.ToUpper(f[0])
	if verb == "INSERT" && len(f) >= 3 && strings.EqualFold(f[1], "INTO") {
		return "INSERT INTO " + f[2]
	}
	return verb
}

func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Select implements driver.Conn.
func (c tracedConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	ctx, span := c.start(ctx, query)
	err := c.Conn.Select(ctx, dest, query, args...)
	end(span, err)
	return err
}

// Query implements driver.Conn; the span covers sending the query and
// receiving the first block, not reading the rows.
func (c tracedConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	ctx, span := c.start(ctx, query)
	rows, err := c.Conn.Query(ctx, query, args...)
	end(span, err)
	return rows, err
}

// QueryRow implements driver.Conn.
func (c tracedConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	ctx, span := c.start(ctx, query)
	row := c.Conn.QueryRow(ctx, query, args...)
	end(span, row.Err())
	return row
}

// Exec implements driver.Conn.
func (c tracedConn) Exec(ctx context.Context, query string, args ...any) error {
	ctx, span := c.start(ctx, query)
	err := c.Conn.Exec(ctx, query, args...)
	end(span, err)
	return err
}

// PrepareBatch implements driver.Conn: the span ends with the batch.
func (c tracedConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	ctx, span := c.start(ctx, query)
	b, err := c.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		end(span, err)
		return nil, err
	}
	return &tracedBatch{Batch: b, span: span}, nil
}

type tracedBatch struct {
	driver.Batch
	span trace.Span
	once sync.Once
}

func (b *tracedBatch) finish(err error) {
	b.once.Do(func() { end(b.span, err) })
}

// Send implements driver.Batch.
func (b *tracedBatch) Send() error {
	rows := b.Batch.Rows()
	err := b.Batch.Send()
	b.once.Do(func() {
		b.span.SetAttributes(attribute.Int("db.operation.batch.size", rows))
		end(b.span, err)
	})
	return err
}

// Abort implements driver.Batch.
func (b *tracedBatch) Abort() error {
	err := b.Batch.Abort()
	b.finish(err)
	return err
}

// Close implements driver.Batch.
func (b *tracedBatch) Close() error {
	err := b.Batch.Close()
	b.finish(nil)
	return err
}
