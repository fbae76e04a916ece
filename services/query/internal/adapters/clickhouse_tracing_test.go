package adapters_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// TestBatchedInsertSpanLinksItsRecords writes the window results of two
// "records" (two callers, each in its own span) through the Batcher into
// one insert on a real ClickHouse: the insert is one client span that links
// to both callers' spans, and the rows are stored.
//
// Not parallel: it installs the global tracer provider TraceClickHouse
// checks.
func TestBatchedInsertSpanLinksItsRecords(t *testing.T) {
	srv := chtest.StartClickHouse(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	conn := adapters.TraceClickHouse(srv.Conn(t))
	ctx := context.Background()
	const db = "streamwatch"
	require.NoError(t, migrations.Up(ctx, conn, db, nil))
	windows := adapters.NewClickHouseWindowRepository(conn, db)
	batcher, err := adapters.NewBatcher(adapters.BatcherConfig{MaxRows: 2, MaxDelay: 10 * time.Second, Idle: 5 * time.Second}, windows.InsertWindows)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- batcher.Run(runCtx) }()
	defer func() { stop(); require.NoError(t, <-done) }()

	const may17 = int64(1431820800000)
	var wg sync.WaitGroup
	callers := make([]trace.SpanContext, 2)
	for i := range callers {
		rctx, span := tp.Tracer("test").Start(ctx, "process metrics.windows")
		callers[i] = span.SpanContext()
		wg.Go(func() {
			defer span.End()
			r := metrics.Result{V: 1, Metric: "requests", Labels: map[string]string{"status": "200"},
				WindowStart: may17 + int64(i)*60_000, WindowEnd: may17 + int64(i+1)*60_000, Kind: metrics.KindFinal,
				Revision: 1, Count: 1, Value: 1}
			require.NoError(t, batcher.WriteAll(rctx, []metrics.Result{r}))
		})
	}
	wg.Wait()

	var inserts []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "clickhouse INSERT INTO "+db+".metric_windows") {
			inserts = append(inserts, s)
		}
	}
	require.Len(t, inserts, 1, "both records' rows in one insert")
	ins := inserts[0]
	require.Equal(t, trace.SpanKindClient, ins.SpanKind)
	require.Contains(t, ins.Attributes, attribute.String("db.system", "clickhouse"))
	require.Contains(t, ins.Attributes, attribute.Int("db.operation.batch.size", 2))
	var linked []trace.SpanID
	for _, l := range ins.Links {
		linked = append(linked, l.SpanContext.SpanID())
	}
	require.ElementsMatch(t, []trace.SpanID{callers[0].SpanID(), callers[1].SpanID()}, linked)

	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".metric_windows").Scan(&n))
	require.Equal(t, uint64(2), n)
	var counted bool
	for _, s := range exp.GetSpans() {
		counted = counted || (s.Name == "clickhouse SELECT" &&
			slices.Contains(s.Attributes, attribute.String("db.query.text", "SELECT count() FROM "+db+".metric_windows")))
	}
	require.True(t, counted, "queries are spans too")
}
