package tracetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/devstack/tracetest"
)

// TestOneTraceFromIngestToClickHouse runs the collector, the aggregator and
// the query service (real binaries) on the embedded stack with OTLP export
// to an in-memory receiver, sends one ingest request whose events close a
// one-minute window (two requests of one service ten minutes apart, so the
// aggregator's Apply of that one batch record emits final results), and
// checks by ids that one trace connects:
//
//	collector  POST /v1/events        (server span, root)
//	aggregator process events.raw     (child of it: trace context in the record's headers)
//	query      receive metrics.windows (the windows batch consumer's span: child of the
//	           aggregator span, whose context the outputs' headers carry, linked to it too)
//	query      clickhouse INSERT INTO streamwatch.metric_windows (linked to that span:
//	           the batched insert links to every record whose rows it holds)
func TestOneTraceFromIngestToClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded stack")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	services := []string{stack.Collector, stack.Aggregator, stack.Query}
	require.NoError(t, stack.BuildServices(ctx, repo, bin, services...))

	rcv := &tracetest.Receiver{}
	otlp := httptest.NewServer(rcv)
	defer otlp.Close()
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.URL,
		"OTEL_BSP_SCHEDULE_DELAY":     "100", // ms: export soon after spans end
	}
	st, err := stack.Start(ctx, stack.Options{
		DataDir: filepath.Join(tmp, "data"), BinDir: bin, Services: services,
		ServiceEnv: map[string]map[string]string{stack.Collector: env, stack.Aggregator: env, stack.Query: env},
	})
	require.NoError(t, err)
	defer func() {
		if t.Failed() {
			t.Logf("spans received (service and name: count): %s", summary(rcv.Spans()))
			for _, s := range services {
				if b, err := os.ReadFile(st.LogPath(s)); err == nil {
					t.Logf("---- %s log ----\n%s", s, tail(string(b), 30))
				}
			}
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		_ = st.Close(cctx)
	}()

	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	body := fmt.Sprintf(`[
		{"event_id":"trace-1","type":"service_request","service":"tracecheck","status":200,"latency_ms":12,"event_time":%d},
		{"event_id":"trace-2","type":"service_request","service":"tracecheck","status":500,"latency_ms":40,"event_time":%d}
	]`, t0.Add(10*time.Second).UnixMilli(), t0.Add(10*time.Minute).UnixMilli())
	resp, err := st.Client().Post(st.CollectorURL()+"/v1/events", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))

	var chain struct{ ingest, agg, proj, insert tracetest.Span }
	require.Eventually(t, func() bool {
		spans := rcv.Spans()
		ingest, ok := find(spans, func(s tracetest.Span) bool {
			return s.Service == "streamwatch-collector" && s.Kind == "server" && s.Name == "POST /v1/events"
		})
		if !ok {
			return false
		}
		agg, ok := find(spans, func(s tracetest.Span) bool {
			return s.Service == "streamwatch-aggregator" && s.Name == "process events.raw" && s.TraceID == ingest.TraceID
		})
		if !ok {
			return false
		}
		// The live view and the history both consume metrics.windows, in
		// consumer groups of their own, so the aggregator's span has a child
		// for each; the insert links to the history's.
		var proj tracetest.Span
		insert, ok := find(spans, func(s tracetest.Span) bool {
			if s.Service != "streamwatch-query" || !strings.HasPrefix(s.Name, "clickhouse INSERT INTO") || !strings.Contains(s.Name, "metric_windows") {
				return false
			}
			for _, l := range s.Links {
				if l.TraceID != ingest.TraceID {
					continue
				}
				if p, ok := find(spans, func(c tracetest.Span) bool {
					return c.SpanID == l.SpanID && c.Service == "streamwatch-query" && c.Name == "receive metrics.windows" && c.Parent == agg.SpanID
				}); ok {
					proj = p
					return true
				}
			}
			return false
		})
		chain.ingest, chain.agg, chain.proj, chain.insert = ingest, agg, proj, insert
		return ok
	}, 90*time.Second, 250*time.Millisecond, "no trace connects the ingest request to the window insert (spans received are logged above)")

	// The ids, spelled out.
	require.Empty(t, chain.ingest.Parent, "the collector's HTTP span is the root")
	require.Equal(t, chain.ingest.SpanID, chain.agg.Parent, "aggregator span is a child of the HTTP span")
	require.Equal(t, "consumer", chain.agg.Kind)
	require.Equal(t, "aggregator.windows", chain.agg.Attrs["messaging.consumer.group.name"])
	require.Equal(t, chain.ingest.TraceID, chain.proj.TraceID)
	require.Equal(t, chain.agg.SpanID, chain.proj.Parent, "projector span is a child of the aggregator span")
	require.Equal(t, "query.windows-projector", chain.proj.Attrs["messaging.consumer.group.name"], "the insert's projector")
	require.Equal(t, "client", chain.insert.Kind)
	require.Equal(t, "clickhouse", chain.insert.Attrs["db.system"])
	require.Contains(t, chain.insert.Links, tracetest.Link{TraceID: chain.ingest.TraceID, SpanID: chain.proj.SpanID})

	// Redis calls of the aggregator's checkpoint commit are spans in the same trace.
	_, ok := find(rcv.Spans(), func(s tracetest.Span) bool {
		return s.Service == "streamwatch-aggregator" && s.Kind == "client" && s.TraceID == chain.ingest.TraceID
	})
	require.True(t, ok, "no Redis client span in the aggregator's part of the trace")
}

func find(spans []tracetest.Span, match func(tracetest.Span) bool) (tracetest.Span, bool) {
	for _, s := range spans {
		if match(s) {
			return s, true
		}
	}
	return tracetest.Span{}, false
}

func summary(spans []tracetest.Span) string {
	counts := map[string]int{}
	for _, s := range spans {
		counts[s.Service+" "+s.Name]++
	}
	return fmt.Sprint(counts)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
