package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/profiles"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

const joinDefs = `metrics:
  - name: views_by_segment
    types: [page_view]
    group_by: [user.segment]
    window: {kind: tumbling, size: 1m}
  - name: revenue_by_category_plan
    types: [purchase]
    where: [{field: user.plan, in: [pro, team]}]
    group_by: [product.category]
    value: amount
    aggregations: [sum]
    window: {kind: tumbling, size: 1m}
`

// TestJoinedMetricsMatchABruteForceJoin drives the aggregator with the join
// over six partitions while profiles change between batches (updates,
// tombstones, never-seen users and products), and checks every window's
// count and sum, summed over shards, against a brute-force join: each event
// joined with a plain map of the profiles as they were when its batch was
// applied.
func TestJoinedMetricsMatchABruteForceJoin(t *testing.T) {
	t.Parallel()
	defs, err := metrics.ParseDefinitions("join.yaml", []byte(joinDefs))
	require.NoError(t, err)
	tab := join.NewTable(0)
	j := join.NewJoiner(join.Settings{Table: tab})
	op := app.NewAggregate(app.Settings{Definitions: defs, Join: j,
		Window: window.Config{OutOfOrderness: 600_000, AllowedLateness: 0, IdleTimeout: 3_600_000},
		Clock:  func() time.Time { return time.UnixMilli(1) }})
	ctx := context.Background()

	rng := rand.New(rand.NewPCG(11, 12))
	type userRef struct{ segment, plan string }
	users, products := map[string]userRef{}, map[string]string{} // the brute-force "table"
	var profOffset int64
	apply := func(key string, p *profiles.Profile) {
		var v []byte
		if p != nil {
			p.V = profiles.SchemaVersion
			v, err = profiles.Encode(p)
			require.NoError(t, err)
		}
		require.NoError(t, tab.Apply(int32(profOffset%3), profOffset/3, key, v))
		profOffset++
	}

	const parts = 6
	states := make([]*window.State, parts)
	offsets := make([]int64, parts)
	for p := range states {
		states[p] = op.NewState(int32(p))
	}
	type wkey struct {
		metric, label string
		start         int64
	}
	wantCount, wantSum := map[wkey]int64{}, map[wkey]float64{}
	results := map[string]metrics.Result{} // id -> latest revision
	take := func(outs []stream.Output) {
		for _, o := range outs {
			if o.Topic != messaging.TopicMetricsWindows {
				continue
			}
			rs, err := metrics.DecodeRecord(o.Metadata[messaging.MetaSchema], o.Payload)
			require.NoError(t, err)
			for _, r := range rs {
				if old, ok := results[r.ID()]; !ok || r.Revision > old.Revision {
					results[r.ID()] = r
				}
			}
		}
	}

	t0 := benchT0 - benchT0%60_000
	var seq int
	for step := 0; step < 400; step++ {
		if rng.IntN(3) == 0 { // a profile change
			u := fmt.Sprintf("u%d", rng.IntN(60))
			switch rng.IntN(4) {
			case 0:
				apply(profiles.Key(profiles.TypeUser, u), nil)
				delete(users, u)
			default:
				ref := userRef{segment: fmt.Sprintf("s%d", rng.IntN(4)), plan: []string{"free", "pro", "team"}[rng.IntN(3)]}
				apply(profiles.Key(profiles.TypeUser, u), &profiles.Profile{Type: profiles.TypeUser, ID: u, Segment: ref.segment, Plan: ref.plan})
				users[u] = ref
			}
			if rng.IntN(2) == 0 {
				pid := fmt.Sprintf("p%d", rng.IntN(15))
				cat := fmt.Sprintf("c%d", rng.IntN(3))
				apply(profiles.Key(profiles.TypeProduct, pid), &profiles.Profile{Type: profiles.TypeProduct, ID: pid, Category: cat})
				products[pid] = cat
			}
			continue
		}
		part := rng.IntN(parts)
		var evs []events.Event
		for range 1 + rng.IntN(40) {
			seq++
			u := fmt.Sprintf("u%d", rng.IntN(70)) // u60..u69 never get a profile
			tm := t0 + int64(rng.IntN(10*60_000))
			e := events.Event{V: 1, ID: fmt.Sprint("e", seq), Time: tm, Key: u, UserID: u, Type: events.TypePageView}
			ref := users[u]
			if rng.IntN(3) == 0 {
				e.Type, e.ProductID, e.Amount = events.TypePurchase, fmt.Sprintf("p%d", rng.IntN(18)), float64(1+rng.IntN(100))
				if ref.plan == "pro" || ref.plan == "team" {
					k := wkey{"revenue_by_category_plan", products[e.ProductID], tm - tm%60_000}
					wantCount[k]++
					wantSum[k] += e.Amount
				}
			} else {
				k := wkey{"views_by_segment", ref.segment, tm - tm%60_000}
				wantCount[k]++
			}
			evs = append(evs, e)
		}
		outs, err := op.Apply(ctx, states[part], batchMsg(t, evs), offsets[part])
		require.NoError(t, err)
		offsets[part]++
		take(outs)
	}
	// Close every window: one event far ahead per partition (its own window
	// is left out of the comparison).
	for p := range parts {
		flush := events.Event{V: 1, ID: fmt.Sprint("flush", p), Time: t0 + 3_600_000, Key: "flush", UserID: "flush", Type: events.TypePageView}
		outs, err := op.Apply(ctx, states[p], batchMsg(t, []events.Event{flush}), offsets[p])
		require.NoError(t, err)
		take(outs)
	}

	gotCount, gotSum := map[wkey]int64{}, map[wkey]float64{}
	for _, r := range results {
		if r.WindowStart >= t0+3_600_000-60_000 {
			continue
		}
		label := r.Labels["user_segment"]
		if r.Metric == "revenue_by_category_plan" {
			label = r.Labels["product_category"]
		}
		k := wkey{r.Metric, label, r.WindowStart}
		gotCount[k] += r.Count
		gotSum[k] += r.Sum
	}
	require.Equal(t, wantCount, gotCount)
	for k, v := range wantSum {
		require.InDelta(t, v, gotSum[k], 1e-6, "%v", k)
	}
	require.Contains(t, gotCount, wkey{"views_by_segment", "", t0}, "unknown users are counted under an empty segment")
	st := j.Stats()
	require.Positive(t, st.UserMisses)
	require.Positive(t, st.ProductMisses)
	require.Greater(t, st.UserLookups, st.UserMisses)
}
