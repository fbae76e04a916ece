package adapters_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/collector/internal/adapters"
)

const topic = messaging.TopicEventsRaw

// record is one PublishPartition call of fakeParts.
type record struct {
	part int32
	evs  []events.Event
	at   time.Time
}

// fakeParts is a PartitionPublisher with n partitions that records every
// record; fail makes a partition's records fail, block holds them until
// closed.
type fakeParts struct {
	n     int32
	delay time.Duration // per record, as a broker round trip
	fail  map[int32]error
	block chan struct{}

	mu      sync.Mutex
	records []record
}

func (f *fakeParts) Partitions(string) (int32, error) { return f.n, nil }

func (f *fakeParts) PublishPartition(ctx context.Context, _ string, part int32, evs []events.Event) error {
	for _, e := range evs {
		if got := messaging.PartitionFor(e.Key, f.n); got != part {
			return fmt.Errorf("event %s of partition %d in a record of %d", e.ID, got, part)
		}
	}
	if f.block != nil {
		<-f.block
	}
	time.Sleep(f.delay)
	if err := f.fail[part]; err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, record{part: part, evs: slices.Clone(evs), at: time.Now()})
	return nil
}

// keyOf returns a key that PartitionFor maps to part of n.
func keyOf(part, n int32) string {
	for i := 0; ; i++ {
		if k := fmt.Sprintf("k%d", i); messaging.PartitionFor(k, n) == part {
			return k
		}
	}
}

// batch returns count events of partition part of n, ids prefix-0...
func batch(prefix string, part, n int32, count int) []events.Event {
	key := keyOf(part, n)
	evs := make([]events.Event, count)
	for i := range evs {
		evs[i] = events.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Key: key, Type: events.TypeClick, UserID: key}
	}
	return evs
}

func newGroup(t *testing.T, pub adapters.PartitionPublisher, cfg adapters.GroupConfig) *adapters.GroupPublisher {
	t.Helper()
	g, err := adapters.NewGroupPublisher(pub, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, g.Close()) })
	return g
}

func TestGroupPublisherCoalescesConcurrentCallsPerPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakeParts{n: 3, delay: time.Millisecond}
		g := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 1000, Linger: 5 * time.Millisecond})
		var wg sync.WaitGroup
		returned := make([]time.Time, 4)
		for c := range 4 {
			// Each call: events of partitions 0 and 2, interleaved, so the
			// split has to pick them apart in order.
			a, b := batch(fmt.Sprintf("c%d-p0", c), 0, 3, 10), batch(fmt.Sprintf("c%d-p2", c), 2, 3, 10)
			var evs []events.Event
			for i := range a {
				evs = append(evs, a[i], b[i])
			}
			wg.Go(func() {
				time.Sleep(time.Duration(c) * time.Millisecond) // within the linger of the first
				require.NoError(t, g.PublishEvents(t.Context(), topic, evs))
				returned[c] = time.Now()
			})
		}
		wg.Wait()
		require.Len(t, pub.records, 2, "one record per partition for the four calls")
		for _, r := range pub.records {
			require.Len(t, r.evs, 40)
			for c := range 4 {
				var ids []string
				for _, e := range r.evs {
					if p := fmt.Sprintf("c%d-p%d-", c, r.part); len(e.ID) > len(p) && e.ID[:len(p)] == p {
						ids = append(ids, e.ID)
					}
				}
				want := make([]string, 10)
				for i := range want {
					want[i] = fmt.Sprintf("c%d-p%d-%d", c, r.part, i)
				}
				require.Equal(t, want, ids, "a call's events keep their order")
			}
			for c := range 4 {
				require.False(t, returned[c].Before(r.at), "call %d returned before its record was acknowledged", c)
			}
		}
	})
}

func TestGroupPublisherWritesAtOnceWhenFullOrNoLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakeParts{n: 2}
		g := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 10, Linger: time.Hour})
		start := time.Now()
		require.NoError(t, g.PublishEvents(t.Context(), topic, batch("full", 1, 2, 25)))
		require.Zero(t, time.Since(start), "a full partition does not linger")
		var sizes []int
		for _, r := range pub.records {
			sizes = append(sizes, len(r.evs))
		}
		require.Equal(t, []int{10, 10, 5}, sizes, "MaxEvents per record, in order")

		g0 := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 10})
		start = time.Now()
		require.NoError(t, g0.PublishEvents(t.Context(), topic, batch("one", 0, 2, 1)))
		require.Zero(t, time.Since(start), "Linger 0 writes at once")
	})
}

func TestGroupPublisherBoundsRecordBytes(t *testing.T) {
	pub := &fakeParts{n: 1}
	g := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 100, MaxBytes: 1000})
	evs := batch("big", 0, 1, 10)
	for i := range evs {
		evs[i].UserAgent = string(make([]byte, 300))
	}
	require.NoError(t, g.PublishEvents(t.Context(), topic, evs))
	n := 0
	for _, r := range pub.records {
		require.LessOrEqual(t, len(r.evs), 2, "two ~450-byte events fill 1000 bytes")
		n += len(r.evs)
	}
	require.Equal(t, 10, n)
}

func TestGroupPublisherFailsEveryMemberOfAFailedRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("broker says no")
		pub := &fakeParts{n: 2, fail: map[int32]error{1: boom}}
		g := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 1000, Linger: 5 * time.Millisecond})
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for c, evs := range [][]events.Event{
			batch("a", 1, 2, 3),
			append(batch("b0", 0, 2, 3), batch("b1", 1, 2, 3)...),
			batch("c", 0, 2, 3),
		} {
			wg.Go(func() { errs[c] = g.PublishEvents(t.Context(), topic, evs) })
		}
		wg.Wait()
		require.ErrorIs(t, errs[0], boom)
		require.ErrorIs(t, errs[1], boom, "a call fails when one of its partitions fails")
		require.NoError(t, errs[2], "partition 0 was written")
	})
}

func TestGroupPublisherReturnsWhenTheCallerGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakeParts{n: 1, block: make(chan struct{})}
		g := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 10})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- g.PublishEvents(ctx, topic, batch("x", 0, 1, 1)) }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		close(pub.block) // the record is still written; Close (cleanup) waits for it
	})
}

func TestGroupPublisherRefusesAfterClose(t *testing.T) {
	g, err := adapters.NewGroupPublisher(&fakeParts{n: 1}, adapters.GroupConfig{MaxEvents: 1})
	require.NoError(t, err)
	require.NoError(t, g.Close())
	require.NoError(t, g.Close())
	require.ErrorContains(t, g.PublishEvents(t.Context(), topic, batch("x", 0, 1, 1)), "closed")
	_, err = adapters.NewGroupPublisher(&fakeParts{n: 1}, adapters.GroupConfig{})
	require.Error(t, err)
}

// spanRecorder is a PartitionPublisher that keeps the span context each
// record was written under (the one the record's headers carry).
type spanRecorder struct {
	fakeParts
	spans []trace.SpanContext
}

func (s *spanRecorder) PublishPartition(ctx context.Context, topic string, part int32, evs []events.Event) error {
	s.mu.Lock()
	s.spans = append(s.spans, trace.SpanContextFromContext(ctx))
	s.mu.Unlock()
	return s.fakeParts.PublishPartition(ctx, topic, part, evs)
}

// Not parallel: it sets the global tracer provider.
func TestGroupPublisherTraceContinuesFirstRequestAndLinksTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		prev := otel.GetTracerProvider()
		otel.SetTracerProvider(tp)
		t.Cleanup(func() { otel.SetTracerProvider(prev) })

		pub := &spanRecorder{fakeParts: fakeParts{n: 1}}
		g := newGroup(t, pub, adapters.GroupConfig{MaxEvents: 100, Linger: 5 * time.Millisecond})
		tracer := tp.Tracer("test")
		ctxA, a := tracer.Start(t.Context(), "request a")
		ctxB, b := tracer.Start(t.Context(), "request b")
		var wg sync.WaitGroup
		wg.Go(func() { require.NoError(t, g.PublishEvents(ctxA, topic, batch("a", 0, 1, 2))) })
		synctest.Wait()
		wg.Go(func() { require.NoError(t, g.PublishEvents(ctxB, topic, batch("b", 0, 1, 2))) })
		wg.Wait()
		a.End()
		b.End()

		require.Len(t, pub.spans, 1, "one record for both requests")
		var group sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == "group "+topic {
				group = s
			}
		}
		require.NotNil(t, group, "a group span")
		require.Equal(t, group.SpanContext().SpanID(), pub.spans[0].SpanID(), "the record carries the group span")
		require.Equal(t, a.SpanContext().SpanID(), group.Parent().SpanID(), "child of the first request")
		require.Len(t, group.Links(), 1)
		require.Equal(t, b.SpanContext().SpanID(), group.Links()[0].SpanContext.SpanID(), "linked to the other")

		// A record of one request carries that request's own span.
		ctxC, c := tracer.Start(t.Context(), "request c")
		require.NoError(t, g.PublishEvents(ctxC, topic, batch("c", 0, 1, 2)))
		c.End()
		require.Equal(t, c.SpanContext().SpanID(), pub.spans[1].SpanID())
	})
}
