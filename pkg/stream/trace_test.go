package stream_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
)

// TestOutputsContinueTheRecordsTrace handles a record whose context holds
// a span (as the router's middleware gives it): the output carries that
// span's traceparent, also when a new instance re-publishes it from the
// outbox; a record without a span gives an output without one.
func TestOutputsContinueTheRecordsTrace(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &recorder{}
	p := newProc(t, store, pub)

	ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "process in")
	defer span.End()
	traced := record(0, 0, "1")
	traced.SetContext(messaging.ContextWithPosition(ctx, 0, 0))
	require.NoError(t, p.Handle(traced))
	require.NoError(t, p.Handle(record(0, 1, "2")))

	want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
	require.Len(t, pub.msgs, 2)
	require.Equal(t, want, pub.msgs[0].Metadata.Get("traceparent"))
	require.Empty(t, pub.msgs[1].Metadata.Get("traceparent"), "no span, no trace context")

	// Crash after the commit of the traced record: the next instance
	// re-publishes its outbox with the trace context it was committed with.
	store2 := checkpoint.New(redistest.Start(t), "t:")
	pub2 := &recorder{}
	failing := &recorder{fail: errors.New("broker down")}
	p2 := newProc(t, store2, failing)
	require.Error(t, p2.Handle(traced))
	p3 := newProc(t, store2, pub2)
	require.NoError(t, p3.Handle(traced)) // redelivery: loads and re-publishes the outbox
	require.Len(t, pub2.msgs, 1)
	require.Equal(t, want, pub2.msgs[0].Metadata.Get("traceparent"))
}
