package window_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

type agg struct {
	count int64
	sum   float64
}

// TestMatchesBruteForce feeds random streams with out-of-order delivery,
// duplicates, far-too-late events, random early emissions and random
// checkpoint restores (the state is rebuilt from its delta entries, as after
// a crash), then checks that the last emitted value of every window equals
// a brute-force computation over the distinct events that were not reported
// late: tumbling, filtered, grouped, hopping and session windows.
func TestMatchesBruteForce(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, testDefs)
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			e := window.NewEngine(defs, cfg)
			var stream []events.Event
			for i := range 500 {
				tm := t0 + int64(i)*500 + rng.Int64N(20_000) - 10_000 // up to 10 s out of order
				if rng.IntN(50) == 0 {
					tm -= 600_000 // far too late for every window
				}
				if rng.IntN(40) == 0 {
					tm += 40_000 // gaps that split and later bridge sessions
				}
				x := ev(fmt.Sprintf("e%d", i), tm, fmt.Sprintf("10.0.0.%d", rng.IntN(5)), rng.Int64N(1000))
				if rng.IntN(8) == 0 {
					x.Status = 500 + rng.IntN(4)
				}
				stream = append(stream, x)
				if rng.IntN(10) == 0 {
					stream = append(stream, x) // duplicate delivery
				}
			}
			s := window.NewState(0)
			entries := map[string][]byte{}
			latest := map[string]metrics.Result{}
			accepted := map[string]bool{}
			for i := 0; i < len(stream); {
				n := 1 + rng.IntN(20)
				batch := stream[i:min(i+n, len(stream))]
				i += n
				out := e.Add(s, batch, int64(i))
				late := map[string]bool{}
				for _, x := range out.Late {
					late[x.ID] = true
				}
				for _, x := range batch {
					if !late[x.ID] {
						accepted[x.ID] = true
					}
				}
				for _, r := range e.Emit(s, int64(i), rng.IntN(3) == 0) {
					k := r.ID()
					if prev, ok := latest[k]; ok {
						require.Greater(t, r.Revision, prev.Revision)
					}
					latest[k] = r
				}
				set, del, err := s.TakeDelta()
				require.NoError(t, err)
				for k, v := range set {
					entries[k] = bytes.Clone(v) // the next TakeDelta reuses v
				}
				for _, k := range del {
					delete(entries, k)
				}
				if rng.IntN(15) == 0 { // crash and restore from the checkpoint
					s = window.NewState(0)
					require.NoError(t, s.RestoreEntries(entries))
				}
			}
			e.AdvanceIdle(s, 1<<50) // flush everything
			for _, r := range e.Emit(s, 1<<50, true) {
				latest[r.ID()] = r
			}

			want := map[string]agg{}
			add := func(k string, bytes int64) {
				a := want[k]
				a.count++
				a.sum += float64(bytes)
				want[k] = a
			}
			seen := map[string]bool{}
			times := map[string][]int64{}
			for _, x := range stream {
				if seen[x.ID] || !accepted[x.ID] {
					continue
				}
				seen[x.ID] = true
				start := (x.Time / 60_000) * 60_000
				add(fmt.Sprintf("requests||%d|%d", start, start+60_000), 0)
				add(fmt.Sprintf("bytes||%d|%d", start, start+60_000), x.Bytes)
				add(fmt.Sprintf("requests_by_client|%s|%d|%d", x.ClientIP, start, start+60_000), 0)
				if x.Status >= 500 {
					add(fmt.Sprintf("errors||%d|%d", start, start+60_000), 0)
				}
				for hs := start; hs > x.Time-180_000; hs -= 60_000 {
					add(fmt.Sprintf("hop||%d|%d", hs, hs+180_000), 0)
				}
				times[x.ClientIP] = append(times[x.ClientIP], x.Time)
			}
			type span struct{ start, end int64 }
			sessions := map[string][]span{}
			for ip, ts := range times {
				slices.Sort(ts)
				cur := span{ts[0], ts[0] + 30_000}
				for _, tm := range ts[1:] {
					if tm <= cur.end {
						cur.end = max(cur.end, tm+30_000)
						continue
					}
					sessions[ip] = append(sessions[ip], cur)
					cur = span{tm, tm + 30_000}
				}
				sessions[ip] = append(sessions[ip], cur)
				for _, sp := range sessions[ip] {
					n := int64(0)
					for _, tm := range ts {
						if tm >= sp.start && tm < sp.end {
							n++
						}
					}
					want[fmt.Sprintf("sessions|%s|%d|%d", ip, sp.start, sp.end)] = agg{count: n}
				}
			}
			got := map[string]agg{}
			for _, r := range latest {
				k := fmt.Sprintf("%s|%s|%d|%d", r.Metric, r.Labels["client_ip"], r.WindowStart, r.WindowEnd)
				if r.Metric == "sessions" {
					if _, ok := want[k]; !ok {
						// A session result superseded by a merge: its start
						// lies inside a final session of the same client.
						ip := r.Labels["client_ip"]
						require.True(t, slices.ContainsFunc(sessions[ip], func(sp span) bool {
							return r.WindowStart >= sp.start && r.WindowEnd <= sp.end
						}), "stale session %s", k)
						continue
					}
				}
				require.Equal(t, metrics.Headline(r.Agg, &r, float64(r.WindowEnd-r.WindowStart)/1000), r.Value)
				got[k] = agg{count: r.Count, sum: r.Sum}
			}
			require.Equal(t, want, got)
		})
	}
}
