package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

type sink struct {
	mu   sync.Mutex
	msgs []*message.Message
	fail bool
}

func (s *sink) Publish(_ string, msgs ...*message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return fmt.Errorf("broker down")
	}
	s.msgs = append(s.msgs, msgs...)
	return nil
}

func (s *sink) Close() error { return nil }

// TestProcessorChaosExactCounts runs the operator in stream.Processors on
// real Redis with incremental checkpoints, and disrupts it the ways a
// deployment does: instances crash (their memory is dropped) at random
// points, two instances process the same partition interleaved (a
// rebalance with a zombie), records are redelivered, ticks run in between,
// publishing fails now and then. Finals go out in steps of 3, 6, ...
// results (window.Config.ScanStep) a pause apart, so crashes come between
// the steps of a boundary too. The latest revision of every result must
// still equal the exact per-window count and sum.
func TestProcessorChaosExactCounts(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	y := `
metrics:
  - name: requests
    types: [http_request]
    window: {size: 1m}
  - name: bytes
    types: [http_request]
    value: bytes
    aggregations: [sum, count]
    window: {size: 1m}
  - name: requests_by_client
    types: [http_request]
    group_by: [client_ip]
    window: {size: 1m}
`
	defs, err := metrics.ParseDefinitions("chaos.yaml", []byte(y))
	require.NoError(t, err)
	clock := time.UnixMilli(1_000_000)
	op := app.NewAggregate(app.Settings{Definitions: defs, Window: window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 300_000, EarlyInterval: 0,
		ScanStep: 3, ScanPause: 150},
		Clock: func() time.Time { return clock }})
	pub := &sink{}
	newProc := func() *stream.Processor[*window.State] {
		p, err := stream.New[*window.State](stream.Config{Group: "agg", Topic: "events.raw"}, op, checkpoint.New(rdb, "c:"), pub, nil)
		require.NoError(t, err)
		p.UseDeltaStore(stream.NewDeltaStore(rdb, "c:"))
		return p
	}
	rng := rand.New(rand.NewPCG(11, 12))
	type key struct {
		metric, client string
		start          int64
	}
	want := map[key][2]float64{}
	var records [][]byte
	seq := 0
	for range 400 {
		var evs []events.Event
		for range 50 {
			seq++
			tm := benchT0 + int64(seq)*40 - rng.Int64N(2_000)
			ip := fmt.Sprintf("10.0.0.%d", rng.IntN(8))
			e := httpEv(fmt.Sprint(seq), tm, ip)
			e.Bytes = rng.Int64N(1000)
			evs = append(evs, e)
			if rng.IntN(20) == 0 {
				evs = append(evs, e)
			}
			start := tm / 60_000 * 60_000
			for _, k := range []key{{"requests", "", start}, {"bytes", "", start}, {"requests_by_client", ip, start}} {
				w := want[k]
				w[0]++
				w[1] += float64(e.Bytes)
				want[k] = w
			}
		}
		p, err := events.EncodeBatch(evs)
		require.NoError(t, err)
		records = append(records, p)
	}
	flush, err := events.EncodeBatch([]events.Event{httpEv("flush", benchT0+3_600_000, "9.9.9.9")})
	require.NoError(t, err)
	records = append(records, flush)

	handle := func(p *stream.Processor[*window.State], off int) error {
		msg := message.NewMessage(fmt.Sprint(off), records[off])
		msg.SetContext(messaging.ContextWithPosition(context.Background(), 0, int64(off)))
		return p.Handle(msg)
	}
	a, b := newProc(), newProc()
	next := 0
	for next < len(records) {
		clock = clock.Add(100 * time.Millisecond)
		switch r := rng.IntN(100); {
		case r < 5: // a crashes: a new instance takes over from Redis
			a = newProc()
		case r < 15: // the zombie b processes a record too
			_ = handle(b, next)
		case r < 20: // redelivery of an older record
			if err := handle(a, max(0, next-1-rng.IntN(3))); err != nil {
				require.ErrorIs(t, err, checkpoint.ErrConflict)
			}
		case r < 25:
			a.TickAll(context.Background(), clock)
		case r < 28:
			pub.mu.Lock()
			pub.fail = true
			pub.mu.Unlock()
		}
		err := handle(a, next)
		pub.mu.Lock()
		pub.fail = false
		pub.mu.Unlock()
		if err != nil { // conflict with the zombie, or publish failure: redelivered
			require.NoError(t, handle(a, next))
		}
		next++
		a, b = b, a // the two instances trade places now and then
		if rng.IntN(2) == 0 {
			a, b = b, a
		}
	}
	// The flush record's finals go out in steps: a new instance loads the
	// partition (the flush again is a replay) and ticks until they are out.
	a = newProc()
	require.NoError(t, handle(a, len(records)-1))
	for range 40 {
		clock = clock.Add(200 * time.Millisecond)
		a.TickAll(context.Background(), clock)
	}
	latest := map[string]metrics.Result{}
	for _, m := range pub.msgs {
		if m.Metadata.Get(messaging.MetaSchema) == events.BatchSchema {
			continue // events.late
		}
		rs, err := metrics.DecodeRecord(m.Metadata.Get(messaging.MetaSchema), m.Payload)
		require.NoError(t, err)
		for _, r := range rs {
			if prev, ok := latest[r.ID()]; ok && prev.Revision == r.Revision {
				require.Equal(t, prev.Count, r.Count, "revision %d of %s published with two values", r.Revision, r.ID())
			}
			if prev, ok := latest[r.ID()]; !ok || r.Revision >= prev.Revision {
				latest[r.ID()] = r
			}
		}
	}
	got := map[key][2]float64{}
	for _, r := range latest {
		if r.WindowStart >= benchT0+3_000_000 {
			continue
		}
		k := key{r.Metric, r.Labels["client_ip"], r.WindowStart}
		require.Equal(t, metrics.KindFinal, r.Kind, "%+v", k)
		got[k] = [2]float64{float64(r.Count), r.Sum}
	}
	for k, w := range want {
		if k.metric != "bytes" {
			w[1] = 0
			want[k] = w
		}
	}
	require.Equal(t, want, got)
}
