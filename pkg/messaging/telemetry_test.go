package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// TestTraceContextCrossesKafka publishes a batch record inside a span,
// consumes it with a router handler that publishes a derived record, and
// consumes that one too, all through the embedded broker: the two consumer
// spans form a chain under the producer's span (checked by ids, from an
// in-memory exporter), and the pipeline metrics count what passed. A
// record published without a span carries no trace headers.
//
// Not parallel: it installs global tracer and meter providers (the ones the
// package's instruments use), restored when it ends.
func TestTraceContextCrossesKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded broker")
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prevTP, prevMP, prevProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		otel.SetTextMapPropagator(prevProp)
	})

	const derived = "trace.derived"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, messaging.TopicEventsRaw, derived))
	require.NoError(t, err)
	defer cluster.Close()
	cfg := config.Kafka{Brokers: cluster.ListenAddrs(), Partitions: 2}
	pub, err := messaging.NewPublisher(cfg, "test", nil)
	require.NoError(t, err)
	defer pub.Close()
	bp, err := messaging.NewBatchPublisher(cfg, pub, 500)
	require.NoError(t, err)
	defer bp.Close()

	router, err := messaging.NewRouter(nil)
	require.NoError(t, err)
	first, err := messaging.NewSubscriber(cfg, "trace.first", nil)
	require.NoError(t, err)
	defer first.Close()
	second, err := messaging.NewSubscriber(cfg, "trace.second", nil)
	require.NoError(t, err)
	defer second.Close()
	router.AddConsumerHandler("trace.first", messaging.TopicEventsRaw, first, func(msg *message.Message) error {
		out := message.NewMessage(watermill.NewUUID(), []byte("derived"))
		out.SetContext(msg.Context()) // the consumer span: the derived record continues the trace
		return pub.Publish(derived, out)
	})
	got := make(chan trace.SpanContext, 1)
	router.AddConsumerHandler("trace.second", derived, second, func(msg *message.Message) error {
		got <- trace.SpanContextFromContext(msg.Context())
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	defer router.Close()
	<-router.Running()

	ingestCtx, ingest := tp.Tracer("test").Start(ctx, "ingest")
	evs := []events.Event{
		{V: 1, ID: "a", Type: events.TypeClick, Time: 1, Key: "u1", UserID: "u1"},
		{V: 1, ID: "b", Type: events.TypeClick, Time: 2, Key: "u1", UserID: "u1"},
		{V: 1, ID: "c", Type: events.TypeClick, Time: 3, Key: "u1", UserID: "u1"},
	}
	require.NoError(t, bp.PublishEvents(ingestCtx, messaging.TopicEventsRaw, evs))
	ingest.End()
	var last trace.SpanContext
	select {
	case last = <-got:
	case <-ctx.Done():
		t.Fatal("the derived record was not consumed")
	}

	spans := map[string]tracetest.SpanStub{}
	require.Eventually(t, func() bool {
		for _, s := range exp.GetSpans() {
			spans[s.Name] = s
		}
		return len(spans) >= 3 // ingest, process events.raw, process trace.derived
	}, 10*time.Second, 50*time.Millisecond)
	p1, p2 := spans["process "+messaging.TopicEventsRaw], spans["process "+derived]
	require.Equal(t, ingest.SpanContext().TraceID(), p1.SpanContext.TraceID())
	require.Equal(t, ingest.SpanContext().SpanID(), p1.Parent.SpanID(), "first consumer span is a child of the producer's span")
	require.Equal(t, trace.SpanKindConsumer, p1.SpanKind)
	require.Equal(t, p1.SpanContext.SpanID(), p2.Parent.SpanID(), "second consumer span is a child of the first")
	require.Equal(t, p2.SpanContext.SpanID(), last.SpanID(), "the handler sees its consumer span")
	require.Contains(t, p1.Attributes, attribute.String("messaging.consumer.group.name", "trace.first"))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	require.Equal(t, int64(3), counter(t, rm, "streamwatch.consumer.events", attribute.String("handler", "trace.first")))
	require.Equal(t, int64(1), counter(t, rm, "streamwatch.consumer.records", attribute.String("handler", "trace.first"), attribute.String("outcome", "ok")))
	require.Equal(t, int64(3), counter(t, rm, "streamwatch.producer.events", attribute.String("topic", messaging.TopicEventsRaw)))
	require.Equal(t, int64(1), counter(t, rm, "streamwatch.producer.records", attribute.String("topic", derived)))

	// Without a span nothing is injected: the record has no trace headers.
	require.NoError(t, pub.Publish(derived, message.NewMessage("plain", []byte("x"))))
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(derived),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	headers := map[string]map[string]string{} // by watermill uuid
	for len(headers) < 2 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			headers[h["_watermill_message_uuid"]] = h
		})
	}
	require.NotContains(t, headers["plain"], "traceparent")
	for id, h := range headers {
		if id != "plain" {
			require.Contains(t, h, "traceparent", "the derived record carries its trace")
		}
	}
}

// counter returns the value of the Int64 sum name at the data point whose
// attributes include attrs.
func counter(t *testing.T, rm metricdata.ResourceMetrics, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is an int64 sum", name)
		points:
			for _, dp := range sum.DataPoints {
				for _, a := range attrs {
					if v, ok := dp.Attributes.Value(a.Key); !ok || v != a.Value {
						continue points
					}
				}
				return dp.Value
			}
		}
	}
	t.Fatalf("no %s data point with %v", name, attrs)
	return 0
}
