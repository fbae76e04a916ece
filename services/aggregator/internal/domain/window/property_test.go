package window_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

type agg struct {
	count    int64
	sum      float64
	distinct float64
}

// propertyDefs are testDefs (access-log requests: dedup horizon 3 m − 1 m
// + 65 s, of the hopping metric) plus a 1-minute tumbling metric of service
// requests (horizon 65 s) and 4-minute sessions of page views (4 m + 65 s):
// three types with three dedup horizons; and the distinct users of the
// requests' sessions (HyperLogLog: exact for so few users), whose windows
// merge and move.
var propertyDefs = testDefs + strings.ReplaceAll(dedupMetrics, "GAP", "4m") + `
  - name: sess_users
    types: [http_request]
    group_by: [client_ip]
    distinct: user_id
    aggregations: [distinct, count]
    window: {kind: session, gap: 30s}
`

// TestMatchesBruteForce feeds random streams of three event types with
// out-of-order delivery, duplicates (at once and re-delivered up to 400 s
// of event time later, around every type's dedup horizon), events of
// different types with the same id, far-too-late events, random early
// emissions and random checkpoint restores (the state is rebuilt from its
// delta entries, as after a crash), then checks that the last emitted value
// of every window equals a brute-force computation over the distinct
// events (by type and id) that were not reported late: tumbling, filtered,
// grouped, hopping and session windows. Every last result is a final or
// a revision. Odd seeds fire finals in steps (Config.ScanStep) of 1 to 7
// results with pauses that the next Emit may or may not have passed.
func TestMatchesBruteForce(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, propertyDefs)
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			c := cfg
			if seed%2 == 1 {
				c.ScanStep, c.ScanPause = 1+int(seed%7), 6
			}
			e := window.NewEngine(defs, c)
			var stream, sent []events.Event
			used := map[string]bool{} // type|id
			for i := range 900 {
				tm := t0 + int64(i)*500 + rng.Int64N(20_000) - 10_000 // up to 10 s out of order
				if rng.IntN(50) == 0 {
					tm -= 600_000 // far too late for every window
				}
				if rng.IntN(40) == 0 {
					tm += 40_000 // gaps that split and later bridge sessions
				}
				id := fmt.Sprintf("e%d", i)
				var x events.Event
				switch r := rng.IntN(10); {
				case r < 6:
					x = ev(id, tm, fmt.Sprintf("10.0.0.%d", rng.IntN(5)), rng.Int64N(1000))
					x.UserID = fmt.Sprintf("v%d", rng.IntN(30))
					if rng.IntN(8) == 0 {
						x.Status = 500 + rng.IntN(4)
					}
				case r < 8:
					x = svcEv(id, tm)
				default:
					x = pageEv(id, tm, fmt.Sprintf("u%d", rng.IntN(4)))
				}
				if o := sent[rng.IntN(i+1):]; len(o) > 0 && !used[string(x.Type)+"|"+o[0].ID] && rng.IntN(10) == 0 {
					x.ID = o[0].ID // the id of an event of another type
				}
				used[string(x.Type)+"|"+x.ID] = true
				stream = append(stream, x)
				sent = append(sent, x)
				if rng.IntN(10) == 0 {
					stream = append(stream, x) // duplicate delivery
				}
				if rng.IntN(12) == 0 && i > 0 {
					// Re-delivery of an event sent up to 400 s before.
					stream = append(stream, sent[max(0, len(sent)-1-rng.IntN(800))])
				}
			}
			key := func(x events.Event) string { return string(x.Type) + "|" + x.ID }
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
					late[key(x)] = true
				}
				for _, x := range batch {
					if !late[key(x)] {
						accepted[key(x)] = true
					}
				}
				for _, r := range e.Emit(s, int64(i), rng.IntN(3) == 0) {
					k := r.ID()
					if prev, ok := latest[k]; ok {
						require.Greater(t, r.Revision, prev.Revision)
					}
					latest[k] = r
				}
				takeDelta(t, s, entries)
				if rng.IntN(15) == 0 { // crash and restore from the checkpoint
					s = window.NewState(0)
					require.NoError(t, s.RestoreEntries(entries))
				}
			}
			e.AdvanceIdle(s, 1<<50) // flush everything, step by step
			for now := int64(1 << 50); ; now += c.ScanPause {
				rs := e.Emit(s, now, true)
				if len(rs) == 0 {
					break
				}
				for _, r := range rs {
					latest[r.ID()] = r
				}
			}
			require.Zero(t, s.ActiveWindows(), "the flush fired and dropped every window")

			want := map[string]agg{}
			add := func(k string, bytes int64) {
				a := want[k]
				a.count++
				a.sum += float64(bytes)
				want[k] = a
			}
			seen := map[string]bool{}
			times := map[string][]int64{}
			visits := map[string][]int64{}
			users := map[string][]events.Event{} // by client

			for _, x := range stream {
				if seen[key(x)] || !accepted[key(x)] {
					continue
				}
				seen[key(x)] = true
				start := (x.Time / 60_000) * 60_000
				switch x.Type {
				case events.TypeServiceRequest:
					add(fmt.Sprintf("svc||%d|%d", start, start+60_000), 0)
					continue
				case events.TypePageView:
					visits[x.UserID] = append(visits[x.UserID], x.Time)
					continue
				}
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
				users[x.ClientIP] = append(users[x.ClientIP], x)
			}
			sessions := map[string][]span{}
			bruteSessions(want, sessions, "sessions", times, 30_000)
			bruteSessions(want, sessions, "visits", visits, 240_000)
			bruteSessions(want, sessions, "sess_users", times, 30_000)
			for ip, xs := range users {
				for _, sp := range sessions["sess_users|"+ip] {
					in := map[string]bool{}
					for _, x := range xs {
						if x.Time >= sp.start && x.Time < sp.end {
							in[x.UserID] = true
						}
					}
					k := fmt.Sprintf("sess_users|%s|%d|%d", ip, sp.start, sp.end)
					a := want[k]
					a.distinct = float64(len(in))
					want[k] = a
				}
			}
			got := map[string]agg{}
			for _, r := range latest {
				label := r.Labels["client_ip"] + r.Labels["user_id"]
				k := fmt.Sprintf("%s|%s|%d|%d", r.Metric, label, r.WindowStart, r.WindowEnd)
				if r.Metric == "sessions" || r.Metric == "visits" || r.Metric == "sess_users" {
					if _, ok := want[k]; !ok {
						// A session result superseded by a merge: its start
						// lies inside a final session of the same key.
						require.True(t, slices.ContainsFunc(sessions[r.Metric+"|"+label], func(sp span) bool {
							return r.WindowStart >= sp.start && r.WindowEnd <= sp.end
						}), "stale session %s", k)
						continue
					}
				}
				require.Contains(t, []string{metrics.KindFinal, metrics.KindRevised}, r.Kind, "last result of %s", k)
				require.Equal(t, metrics.Headline(r.Agg, &r, float64(r.WindowEnd-r.WindowStart)/1000), r.Value)
				got[k] = agg{count: r.Count, sum: r.Sum, distinct: r.Distinct}
			}
			require.Equal(t, want, got)
		})
	}
}

type span struct{ start, end int64 }

// bruteSessions adds to want the counts of the sessions (gap in ms) of
// metric over the event times of each key, and to sessions the spans by
// metric|key.
func bruteSessions(want map[string]agg, sessions map[string][]span, metric string, times map[string][]int64, gap int64) {
	for k, ts := range times {
		slices.Sort(ts)
		var spans []span
		cur := span{ts[0], ts[0] + gap}
		for _, tm := range ts[1:] {
			if tm <= cur.end {
				cur.end = max(cur.end, tm+gap)
				continue
			}
			spans = append(spans, cur)
			cur = span{tm, tm + gap}
		}
		spans = append(spans, cur)
		sessions[metric+"|"+k] = spans
		for _, sp := range spans {
			n := int64(0)
			for _, tm := range ts {
				if tm >= sp.start && tm < sp.end {
					n++
				}
			}
			want[fmt.Sprintf("%s|%s|%d|%d", metric, k, sp.start, sp.end)] = agg{count: n}
		}
	}
}
