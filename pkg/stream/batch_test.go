package stream_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
)

// routedRecorder is a recorder that also publishes in rounds
// (stream.RoutedPublisher) and counts them.
type routedRecorder struct {
	recorder
	rounds []int // messages per PublishRouted call
	topics []string
}

var _ stream.RoutedPublisher = (*routedRecorder)(nil)

func (r *routedRecorder) PublishRouted(rs []messaging.Routed) error {
	r.mu.Lock()
	fail := r.fail
	if fail == nil {
		r.rounds = append(r.rounds, len(rs))
	}
	r.mu.Unlock()
	if fail != nil {
		return fail
	}
	for _, m := range rs {
		if err := r.Publish(m.Topic, m.Msg); err != nil {
			return err
		}
	}
	return nil
}

// Publish records msgs and their topic.
func (r *routedRecorder) Publish(topic string, msgs ...*message.Message) error {
	if err := r.recorder.Publish(topic, msgs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for range msgs {
		r.topics = append(r.topics, topic)
	}
	return nil
}

func batch(part int32, from int64, payloads ...string) []*message.Message {
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = record(part, from+int64(i), p)
	}
	return msgs
}

func TestHandleBatchCommitsOnceAndPublishesInOneRound(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &routedRecorder{}
	p := newProc(t, store, pub)
	require.NoError(t, p.HandleBatch(context.Background(), batch(0, 0, "1", "2", "3", "4")))
	snap, err := store.Load(context.Background(), "g", "in", 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, snap.Version, "one commit for the batch")
	require.EqualValues(t, 3, snap.Offset)
	require.Contains(t, string(snap.Data), `"sum":10`)
	require.Equal(t, []string{"sum-0=1", "sum-1=3", "sum-2=6", "sum-3=10"}, pub.payloads())
	require.Equal(t, []int{4}, pub.rounds, "every output in one round")

	// The batch again (a redelivery after a crash before the offset
	// commit), with one new record: only the new one has an effect.
	require.NoError(t, p.HandleBatch(context.Background(), batch(0, 0, "1", "2", "3", "4", "5")))
	snap, err = store.Load(context.Background(), "g", "in", 0)
	require.NoError(t, err)
	require.EqualValues(t, 2, snap.Version)
	require.EqualValues(t, 4, snap.Offset)
	require.Contains(t, string(snap.Data), `"sum":15`)
	require.Equal(t, []int{4, 1}, pub.rounds)
}

func TestHandleBatchDeadLettersPoisonAndGoesOn(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &routedRecorder{}
	p := newProc(t, store, pub)
	require.NoError(t, p.HandleBatch(context.Background(), batch(0, 0, "1", "2", "not a number", "4", "oops", "5")))
	snap, err := store.Load(context.Background(), "g", "in", 0)
	require.NoError(t, err)
	require.EqualValues(t, 5, snap.Offset)
	require.Contains(t, string(snap.Data), `"sum":12`, "the good records applied once each")

	var outs, dead []string
	for i, m := range pub.msgs {
		switch pub.topics[i] {
		case "out":
			outs = append(outs, m.UUID+"="+string(m.Payload))
		case messaging.DLQ("in"):
			dead = append(dead, m.Metadata.Get(messaging.MetaSourceOffset)+":"+string(m.Payload))
			require.Contains(t, m.Metadata.Get(messaging.MetaError), "invalid syntax")
		default:
			t.Fatalf("published to %s", pub.topics[i])
		}
	}
	// The reload after the second poison record re-publishes the outbox of
	// the last commit (the two records before the first one; same ids).
	require.Equal(t, []string{"sum-0=1", "sum-1=3", "sum-0=1", "sum-1=3", "sum-3=7", "sum-5=12"}, outs)
	require.Equal(t, []string{"2:not a number", "4:oops"}, dead)
}

func TestHandleBatchPublishFailureRepublishesOutbox(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &routedRecorder{}
	pub.fail = errors.New("broker down")
	p := newProc(t, store, pub)
	err := p.HandleBatch(context.Background(), batch(1, 0, "5", "6"))
	require.Error(t, err)
	require.False(t, messaging.IsPermanent(err))
	pub.fail = nil
	// The batch is handed again: committed already, so only the outbox
	// (both outputs) goes out, once.
	require.NoError(t, p.HandleBatch(context.Background(), batch(1, 0, "5", "6")))
	require.Equal(t, []string{"sum-0=5", "sum-1=11"}, pub.payloads())
	snap, err := store.Load(context.Background(), "g", "in", 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, snap.Version)
}

// TestHandleBatchTracesEachRecord hands two records carrying their
// producers' trace context: each gets a consumer span "process in", a
// child of its producer's span, and its output carries that span's trace
// context (as behind the router's middleware).
func TestHandleBatchTracesEachRecord(t *testing.T) {
	prevProp, prevTP := otel.GetTextMapPropagator(), otel.GetTracerProvider()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	sr := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)))
	t.Cleanup(func() { otel.SetTextMapPropagator(prevProp); otel.SetTracerProvider(prevTP) })
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &routedRecorder{}
	p := newProc(t, store, pub)

	producer := sdktrace.NewTracerProvider().Tracer("producer")
	msgs := batch(0, 0, "1", "2")
	var parents []trace.SpanContext
	for _, m := range msgs {
		ctx, span := producer.Start(context.Background(), "send in")
		md := map[string]string{}
		telemetry.Inject(ctx, md)
		for k, v := range md {
			m.Metadata.Set(k, v)
		}
		parents = append(parents, span.SpanContext())
		span.End()
	}
	require.NoError(t, p.HandleBatch(context.Background(), msgs))

	spans := sr.Ended()
	require.Len(t, spans, 2)
	require.Len(t, pub.msgs, 2)
	for i, s := range spans {
		require.Equal(t, "process in", s.Name())
		require.Equal(t, trace.SpanKindConsumer, s.SpanKind())
		require.Equal(t, parents[i].SpanID(), s.Parent().SpanID(), "child of its record's producer span")
		require.Equal(t, parents[i].TraceID(), s.SpanContext().TraceID())
		want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
		require.Equal(t, want, pub.msgs[i].Metadata.Get("traceparent"), "output %d continues its record's span", i)
	}
}
