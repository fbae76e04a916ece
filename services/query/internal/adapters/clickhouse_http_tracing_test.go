package adapters

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// TestNativeHTTPInsertIsAClientSpan checks that an insert over HTTP is a
// client span like clickhouse-go's traced batches: a child of the caller's
// span, linked to the spans in the context, with the statement and row
// count, and an error status when the server refuses it.
//
// Not parallel: it installs the global tracer provider NewClickHouseHTTP
// checks.
func TestNativeHTTPInsertIsAClientSpan(t *testing.T) {
	srv := chtest.StartClickHouse(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	ctx := context.Background()
	conn := srv.Conn(t)
	require.NoError(t, migrations.Up(ctx, conn, "streamwatch", nil))
	h, err := NewClickHouseHTTP(srv.HTTPAddr, "default", "")
	require.NoError(t, err)
	t.Cleanup(h.Close)
	repo := NewClickHouseEventRepository(WithClickHouseHTTP(conn, h), "streamwatch").WithGroupCommit(GroupCommitConfig{})

	pctx, parent := tp.Tracer("test").Start(ctx, "process events.raw")
	_, record := tp.Tracer("test").Start(ctx, "record")
	pctx = telemetry.WithLinks(pctx, telemetry.LinksOf([]trace.SpanContext{record.SpanContext()}))
	require.NoError(t, repo.InsertEvents(pctx, edgeEvents()))
	parent.End()
	record.End()
	missing := NewClickHouseEventRepositoryOn(WithClickHouseHTTP(conn, h), "streamwatch", "no_such_table").WithGroupCommit(GroupCommitConfig{})
	require.Error(t, missing.InsertEvents(ctx, edgeEvents()))

	var ok, failed []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		switch {
		case s.Name == "clickhouse INSERT INTO streamwatch.events":
			ok = append(ok, s)
		case s.Name == "clickhouse INSERT INTO streamwatch.no_such_table":
			failed = append(failed, s)
		}
	}
	require.Len(t, ok, 1)
	s := ok[0]
	require.Equal(t, trace.SpanKindClient, s.SpanKind)
	require.Equal(t, parent.SpanContext().SpanID(), s.Parent.SpanID())
	require.Len(t, s.Links, 1)
	require.Equal(t, record.SpanContext().SpanID(), s.Links[0].SpanContext.SpanID())
	require.Contains(t, s.Attributes, attribute.String("db.system", "clickhouse"))
	require.Contains(t, s.Attributes, attribute.Int("db.operation.batch.size", len(edgeEvents())))
	var stmt string
	for _, a := range s.Attributes {
		if a.Key == "db.query.text" {
			stmt = a.Value.AsString()
		}
	}
	require.True(t, strings.HasPrefix(stmt, "INSERT INTO streamwatch.events (event_id,"), stmt)
	require.Len(t, failed, 1)
	require.Equal(t, codes.Error, failed[0].Status.Code)
	require.Contains(t, failed[0].Status.Description, "no_such_table")
}
