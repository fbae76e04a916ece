package service

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// TestDeliveryAttemptIsASpanWithTheHTTPCallInside delivers one notification
// through a traced webhook integration inside a "record" span: the attempt
// is a client span under it, the POST an otelhttp client span under that,
// and the receiver gets the trace in its traceparent header.
//
// Not parallel: it installs the global tracer provider and propagator.
func TestDeliveryAttemptIsASpanWithTheHTTPCallInside(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	got := make(chan string, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
	}))
	defer hook.Close()
	built := []Built{{Ref: app.IntegrationRef{Name: "team/webhook/0"}, Target: adapters.NewWebhook(hook.URL, "http://query", 0)}}
	traced(built)

	ctx, record := tp.Tracer("test").Start(context.Background(), "process notifier.deliveries")
	require.NoError(t, built[0].Target.Notify(ctx, dispatch.Notification{V: 1, ID: "n1", GroupKey: "g", Receiver: "team", Status: "firing"}))
	record.End()

	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = s
	}
	attempt, ok := byName["notify team/webhook/0"]
	require.True(t, ok, "spans: %v", byName)
	require.Equal(t, trace.SpanKindClient, attempt.SpanKind)
	require.Equal(t, record.SpanContext().SpanID(), attempt.Parent.SpanID())
	var post tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Parent.SpanID() == attempt.SpanContext.SpanID() {
			post = s
		}
	}
	require.True(t, post.SpanContext.IsValid(), "no HTTP client span under the attempt: %v", byName)
	require.Equal(t, trace.SpanKindClient, post.SpanKind)
	require.Contains(t, <-got, post.SpanContext.TraceID().String(), "the webhook receives the trace")
}

// TestOutcomePublisherCountsByKind publishes an outcome record and an
// unrelated one through the counting publisher: both pass on, the outcome
// is counted once under its kind and integration.
//
// Not parallel: it installs the global meter provider.
func TestOutcomePublisherCountsByKind(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(prev) })

	inner := &recordingPublisher{}
	p, err := newOutcomePublisher(inner)
	require.NoError(t, err)
	out, err := app.OutcomeOutput(dispatch.Outcome{V: 1, ID: "o1", Kind: dispatch.OutcomeSent, GroupKey: "g", Receiver: "team", Integration: "team/webhook/0"})
	require.NoError(t, err)
	require.NoError(t, p.Publish(out.Topic, message.NewMessage(out.UUID, out.Payload)))
	require.NoError(t, p.Publish("other", message.NewMessage("x", []byte("not json"))))
	require.Equal(t, []string{out.Topic, "other"}, inner.topics)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	var points []metricdata.DataPoint[int64]
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "streamwatch.notifier.outcomes" {
				points = append(points, m.Data.(metricdata.Sum[int64]).DataPoints...)
			}
		}
	}
	require.Len(t, points, 1)
	require.Equal(t, int64(1), points[0].Value)
	kind, _ := points[0].Attributes.Value("kind")
	integration, _ := points[0].Attributes.Value("integration")
	require.Equal(t, dispatch.OutcomeSent, kind.AsString())
	require.Equal(t, "team/webhook/0", integration.AsString())
}

type recordingPublisher struct{ topics []string }

func (r *recordingPublisher) Publish(topic string, _ ...*message.Message) error {
	r.topics = append(r.topics, topic)
	return nil
}

func (r *recordingPublisher) Close() error { return nil }
