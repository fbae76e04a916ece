package rules

import (
	"cmp"
	"slices"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// Backtest evaluates set over stored history with the code the live
// detector runs and returns the alert state changes it would have emitted,
// in event-time order of their causes.
//
// points are window results (final or revised, one per window: the
// highest revision) and samples, in any order; evs are raw events in any
// order. Windows are replayed by window end (the watermark of a replayed
// window is its end: a final result means the shard's watermark passed
// it), samples and events by event time, each stream in one state as if
// one partition held it (patterns are per entity, so that changes nothing
// for them). outOfOrderness is the live detector's, ms.
func Backtest(set *Set, points []Point, evs []events.Event, outOfOrderness int64) []alerts.Alert {
	var out []alerts.Alert
	windows, samples := make([]Point, 0, len(points)), []Point{}
	for _, p := range points {
		if p.Source == SourceSamples {
			samples = append(samples, p)
			continue
		}
		p.Watermark = max(p.Watermark, p.End)
		windows = append(windows, p)
	}
	slices.SortStableFunc(windows, func(a, b Point) int {
		return cmp.Or(cmp.Compare(a.End, b.End), cmp.Compare(a.Start, b.Start), cmp.Compare(a.Metric, b.Metric))
	})
	ms := NewMetricState()
	for i := range windows {
		out = append(out, ms.Evaluate(set, &windows[i])...)
	}

	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b events.Event) int { return cmp.Compare(a.Time, b.Time) })
	es, ss := NewEventState(), NewMetricState()
	for i := range evs {
		e := &evs[i]
		out = append(out, es.Apply(set, e)...)
		if e.Type == events.TypeMetricSample {
			samples = append(samples, Point{
				Source: SourceSamples, Metric: e.Series, Labels: e.Labels, Start: e.Time, End: e.Time, Value: e.Value,
			})
		}
		out = append(out, es.Advance(set, outOfOrderness)...)
	}
	slices.SortStableFunc(samples, func(a, b Point) int { return cmp.Compare(a.Start, b.Start) })
	for i := range samples {
		samples[i].Shard, samples[i].Watermark = 0, samples[i].Start-outOfOrderness
		out = append(out, ss.Evaluate(set, &samples[i])...)
	}
	return out
}
