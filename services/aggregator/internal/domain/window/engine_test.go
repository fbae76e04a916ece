package window_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

var defs = []metrics.Definition{
	{Name: "requests", Types: []events.Type{events.TypeHTTPRequest}, Agg: metrics.AggCount, Window: time.Minute},
	{Name: "bytes", Types: []events.Type{events.TypeHTTPRequest}, Value: "bytes", Agg: metrics.AggSum, Window: time.Minute},
	{Name: "requests_by_client", Types: []events.Type{events.TypeHTTPRequest}, GroupBy: []string{"client_ip"}, Agg: metrics.AggCount, Window: time.Minute},
}

var cfg = window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000}

const t0 = int64(1_431_857_100_000) // 2015-05-17T10:05:00Z, a minute boundary

func ev(id string, t int64, ip string, bytes int64) events.Event {
	return events.Event{V: 1, ID: id, Type: events.TypeHTTPRequest, Time: t, Key: ip, ClientIP: ip, Method: "GET", Status: 200, Bytes: bytes}
}

func find(rs []metrics.Result, metric string, start int64) *metrics.Result {
	for i := range rs {
		if rs[i].Metric == metric && rs[i].WindowStart == start && len(rs[i].Labels) == 0 {
			return &rs[i]
		}
	}
	return nil
}

func TestTumblingAssignmentAndFinal(t *testing.T) {
	t.Parallel()
	s := window.NewState(3)
	out := s.Add(defs, cfg, []events.Event{
		ev("a", t0, "1.1.1.1", 10),
		ev("b", t0+59_999, "1.1.1.1", 20), // last ms of the first window
		ev("c", t0+60_000, "2.2.2.2", 5),  // first ms of the second window
	}, 1)
	require.Equal(t, 3, out.Accepted)
	// Watermark = t0+60000-5000: the first window has not ended yet.
	require.Empty(t, s.Emit(defs, cfg, false))

	s.Add(defs, cfg, []events.Event{ev("d", t0+65_000, "2.2.2.2", 1)}, 2) // wm = t0+60000
	rs := s.Emit(defs, cfg, false)
	r := find(rs, "requests", t0)
	require.NotNil(t, r)
	require.Equal(t, metrics.KindFinal, r.Kind)
	require.EqualValues(t, 2, r.Count)
	require.EqualValues(t, 1, r.Revision)
	require.Equal(t, t0+60_000, r.WindowEnd)
	require.EqualValues(t, 3, r.Shard)
	require.False(t, r.Complete)
	b := find(rs, "bytes", t0)
	require.NotNil(t, b)
	require.InDelta(t, 30.0, b.Value, 0)
	require.InDelta(t, 10.0, b.Min, 0)
	require.InDelta(t, 20.0, b.Max, 0)
	require.Nil(t, find(rs, "requests", t0+60_000), "second window still open")
	for _, r := range rs {
		if r.Metric == "requests_by_client" {
			require.True(t, r.Complete, "grouped by the entity key")
		}
	}
}

func TestEarlyResultsOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	s := window.NewState(0)
	s.Add(defs, cfg, []events.Event{ev("a", t0, "1.1.1.1", 1)}, 1)
	require.Empty(t, s.Emit(defs, cfg, false))
	rs := s.Emit(defs, cfg, true)
	r := find(rs, "requests", t0)
	require.NotNil(t, r)
	require.Equal(t, metrics.KindEarly, r.Kind)
	require.EqualValues(t, 1, r.Revision)
	require.Empty(t, s.Emit(defs, cfg, true), "nothing changed since")
	s.Add(defs, cfg, []events.Event{ev("b", t0+1, "1.1.1.1", 1)}, 2)
	r = find(s.Emit(defs, cfg, true), "requests", t0)
	require.EqualValues(t, 2, r.Revision)
	require.EqualValues(t, 2, r.Count)
}

func TestLatenessRevisionAndDrop(t *testing.T) {
	t.Parallel()
	s := window.NewState(0)
	s.Add(defs, cfg, []events.Event{ev("a", t0, "1.1.1.1", 1), ev("b", t0+70_000, "1.1.1.1", 1)}, 1) // wm = t0+65000
	r := find(s.Emit(defs, cfg, false), "requests", t0)
	require.Equal(t, metrics.KindFinal, r.Kind)

	// Within lateness (end + 60 s > wm): revises the fired window.
	out := s.Add(defs, cfg, []events.Event{ev("late1", t0+30_000, "1.1.1.1", 1)}, 2)
	require.Equal(t, 1, out.Accepted)
	r = find(s.Emit(defs, cfg, false), "requests", t0)
	require.Equal(t, metrics.KindRevised, r.Kind)
	require.EqualValues(t, 2, r.Revision)
	require.EqualValues(t, 2, r.Count)

	// Move the watermark to exactly end + lateness: the window is purged and
	// an event for it is late.
	s.Add(defs, cfg, []events.Event{ev("c", t0+125_000, "1.1.1.1", 1)}, 3) // wm = t0+120000
	s.Emit(defs, cfg, false)
	out = s.Add(defs, cfg, []events.Event{ev("late2", t0+1, "1.1.1.1", 1)}, 4)
	require.Len(t, out.Late, 1)
	require.Equal(t, "late2", out.Late[0].ID)
	require.Zero(t, out.Accepted)
}

func TestDuplicatesHaveNoEffect(t *testing.T) {
	t.Parallel()
	s := window.NewState(0)
	batch := []events.Event{ev("a", t0, "1.1.1.1", 1), ev("b", t0+1, "1.1.1.1", 1)}
	require.Equal(t, 2, s.Add(defs, cfg, batch, 1).Accepted)
	out := s.Add(defs, cfg, batch, 2)
	require.Equal(t, 2, out.Duplicates)
	require.Zero(t, out.Accepted)
	r := find(s.Emit(defs, cfg, true), "requests", t0)
	require.EqualValues(t, 2, r.Count)
}

func TestIdlePartitionAdvancesWithProcessingTime(t *testing.T) {
	t.Parallel()
	s := window.NewState(0)
	s.Add(defs, cfg, []events.Event{ev("a", t0+30_000, "1.1.1.1", 1)}, 1_000)
	require.False(t, s.AdvanceIdle(cfg, 1_000+9_999), "not idle yet")
	require.True(t, s.AdvanceIdle(cfg, 1_000+10_000+30_000))
	require.Equal(t, t0+60_000, s.Watermark)
	r := find(s.Emit(defs, cfg, false), "requests", t0)
	require.Equal(t, metrics.KindFinal, r.Kind)
}

// TestMatchesBruteForce feeds random streams with out-of-order delivery and
// duplicates, then checks that the last emitted value of every window equals
// a brute-force count over the distinct events that were not reported late.
func TestMatchesBruteForce(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			var stream []events.Event
			for i := range 400 {
				tm := t0 + int64(i)*500 + rng.Int64N(20_000) - 10_000 // up to 10 s out of order
				if rng.IntN(50) == 0 {
					tm -= 200_000 // far too late
				}
				e := ev(fmt.Sprintf("e%d", i), tm, fmt.Sprintf("10.0.0.%d", rng.IntN(5)), rng.Int64N(1000))
				stream = append(stream, e)
				if rng.IntN(10) == 0 {
					stream = append(stream, e) // duplicate delivery
				}
			}
			s := window.NewState(0)
			latest := map[string]metrics.Result{}
			accepted := map[string]bool{}
			for i := 0; i < len(stream); {
				n := 1 + rng.IntN(20)
				batch := stream[i:min(i+n, len(stream))]
				i += n
				out := s.Add(defs, cfg, batch, int64(i))
				late := map[string]bool{}
				for _, e := range out.Late {
					late[e.ID] = true
				}
				for _, e := range batch {
					if !late[e.ID] {
						accepted[e.ID] = true
					}
				}
				for _, r := range s.Emit(defs, cfg, rng.IntN(3) == 0) {
					k := r.ID()
					if prev, ok := latest[k]; ok {
						require.Greater(t, r.Revision, prev.Revision)
					}
					latest[k] = r
				}
			}
			s.AdvanceIdle(cfg, 1<<50) // flush everything
			for _, r := range s.Emit(defs, cfg, true) {
				latest[r.ID()] = r
			}
			want := map[string]float64{}
			seen := map[string]bool{}
			for _, e := range stream {
				if seen[e.ID] || !accepted[e.ID] {
					continue
				}
				seen[e.ID] = true
				start := (e.Time / 60_000) * 60_000
				want[fmt.Sprintf("requests|%d", start)]++
				want[fmt.Sprintf("bytes|%d", start)] += float64(e.Bytes)
				want[fmt.Sprintf("requests_by_client|%s|%d", e.ClientIP, start)]++
			}
			got := map[string]float64{}
			for _, r := range latest {
				if r.Metric == "requests_by_client" {
					got[fmt.Sprintf("%s|%s|%d", r.Metric, r.Labels["client_ip"], r.WindowStart)] = r.Value
				} else {
					got[fmt.Sprintf("%s|%d", r.Metric, r.WindowStart)] = r.Value
				}
			}
			require.Equal(t, want, got)
		})
	}
}
