package rules_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

const (
	benchRules    = 1000
	benchEntities = 100_000
	benchBatch    = 500 // points or events per record, as the collector packs them
)

// BenchmarkThresholdRules: 1,000 threshold rules over 100 metrics (10 per
// metric, with label matchers on half of them), window results of 100,000
// client label sets, one in 1,000 breaching; Advance once per record of
// 500 results.
func BenchmarkThresholdRules(b *testing.B) {
	var y strings.Builder
	y.WriteString("rules:\n")
	for i := range benchRules {
		m := i % 100
		if i%2 == 0 {
			fmt.Fprintf(&y, "  - {name: r%d, metric: m%d, op: \">\", threshold: %d, for: 2m}\n", i, m, 50+i%50)
		} else {
			fmt.Fprintf(&y, "  - {name: r%d, metric: m%d, op: \">\", threshold: %d, match: {zone: z%d}}\n", i, m, 50+i%50, i%4)
		}
	}
	s := set(b, y.String())
	pts := make([]rules.Point, benchEntities)
	for i := range pts {
		pts[i] = rules.Point{
			Source: rules.SourceWindows, Metric: fmt.Sprintf("m%d", i%100), Kind: metrics.KindFinal, Complete: true,
			Labels: map[string]string{"client_ip": fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), "zone": fmt.Sprintf("z%d", i%4)},
		}
	}
	st := rules.NewMetricState()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		p := &pts[n%len(pts)]
		w := int64(n / len(pts))
		p.Start, p.End, p.Watermark = w*minute, (w+1)*minute, (w+1)*minute
		p.Value = float64(n % 50) // below every threshold ...
		if n%1000 == 0 {
			p.Value = 1000 // ... but one result in 1,000
		}
		st.Apply(s, p)
		if n%benchBatch == benchBatch-1 {
			st.Advance(s)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
}

// BenchmarkPatternRules: 1,000 pattern rules (sequence, repetition and
// negation over the behaviour types, each step on one of 200 pages) on the
// events of 100,000 users; each event is checked against the ~200 rules of
// its type and matches the steps of about one. Advance once per record of
// 500 events.
func BenchmarkPatternRules(b *testing.B) {
	types := []events.Type{events.TypePageView, events.TypeClick, events.TypeAddCart, events.TypePurchase, events.TypeSearch}
	var y strings.Builder
	y.WriteString("rules:\n")
	for i := range benchRules {
		a, c := types[i%5], types[(i/5)%5]
		pa, pc := fmt.Sprintf("/p%d", i%200), fmt.Sprintf("/p%d", (i+1)%200)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&y, "  - {name: p%d, kind: sequence, events: [{type: %s, match: {page: %s}}, {type: %s, match: {page: %s}}], within: %ds}\n", i, a, pa, c, pc, 30+i%60)
		case 1:
			fmt.Fprintf(&y, "  - {name: p%d, kind: repetition, events: [{type: %s, match: {page: %s}}], count: %d, within: 60s}\n", i, a, pa, 3+i%5)
		default:
			fmt.Fprintf(&y, "  - {name: p%d, kind: negation, events: [{type: %s, match: {page: %s}}, {type: %s, match: {page: %s}}], within: 30m}\n", i, a, pa, c, pc)
		}
	}
	s := set(b, y.String())
	evs := make([]events.Event, 4096)
	for i := range evs {
		evs[i] = events.Event{V: 1, Type: types[(i*7)%5], Page: fmt.Sprintf("/p%d", (i*13)%200)}
	}
	users := make([]string, benchEntities)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	st := rules.NewEventState()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		e := &evs[n%len(evs)]
		u := users[(n*7919)%benchEntities]
		e.Key, e.UserID, e.ID, e.Time = u, u, "", int64(n)*10 // 100 events/s of event time
		st.Apply(s, e)
		if n%benchBatch == benchBatch-1 {
			st.Advance(s, 5000)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(st.Partials)), "partials")
}

// BenchmarkAnomalyModel: one Update of the streaming anomaly model.
func BenchmarkAnomalyModel(b *testing.B) {
	xs := base(10_000, 1, 20, 2)
	m := rules.NewModel(rules.AnomalyConfig{})
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		m.Update(int64(n)*step, xs[n%len(xs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
