// Package alerting keeps the detector's alert state for one partition of
// metrics.windows: which alerts are firing, and when they resolve. No I/O.
//
// Lifecycle, as in Prometheus alerting rules without a `for` duration: a
// breaching window result fires the alert of its (rule, labels) fingerprint
// unless it is already firing; the alert resolves at the first later window
// of the same label set that does not breach, or, when the label set has no
// events in the next window, once the watermark of the shard that computes
// it passes the end of the window after the last breach.
package alerting

import (
	"maps"
	"slices"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/detector/internal/domain/rule"
)

// Active is a firing alert.
type Active struct {
	Alert alerts.Alert `json:"alert"`
	// Shard is the events.raw partition that computes the alert's label set.
	Shard int32 `json:"shard"`
	// LastBreachStart and LastBreachEnd delimit the last breaching window, ms.
	LastBreachStart int64 `json:"last_breach_start"`
	LastBreachEnd   int64 `json:"last_breach_end"`
}

// State is the alert state of one metrics.windows partition.
type State struct {
	// Watermarks holds the latest watermark reported by each shard, ms.
	Watermarks map[int32]int64 `json:"watermarks"`
	// Active holds firing alerts by fingerprint.
	Active map[string]*Active `json:"active"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Watermarks: map[int32]int64{}, Active: map[string]*Active{}}
}

// Evaluate applies one window result to the state and returns the alert
// state changes it causes, in a deterministic order (firing and resolutions
// by rule order, then resolutions by watermark sorted by fingerprint).
func (s *State) Evaluate(rules []rule.Threshold, res *metrics.Result) []alerts.Alert {
	var out []alerts.Alert
	if res.Watermark > s.Watermarks[res.Shard] {
		s.Watermarks[res.Shard] = res.Watermark
	}
	for i := range rules {
		r := &rules[i]
		if !r.Applies(res) {
			continue
		}
		labels := r.AlertLabels(res)
		fp := alerts.Fingerprint(r.Name, labels)
		a, firing := s.Active[fp]
		switch {
		case r.Breached(res.Value) && !firing:
			al := alerts.Alert{
				V: 1, Fingerprint: fp, Rule: r.Name, State: alerts.StateFiring, Severity: r.Severity,
				Labels: labels, Annotations: r.Annotate(res, labels), Metric: res.Metric,
				Value: res.Value, Threshold: r.Threshold, StartsAt: res.WindowStart,
				WindowStart: res.WindowStart, WindowEnd: res.WindowEnd,
			}
			s.Active[fp] = &Active{Alert: al, Shard: res.Shard, LastBreachStart: res.WindowStart, LastBreachEnd: res.WindowEnd}
			out = append(out, al)
		case r.Breached(res.Value) && firing:
			if res.WindowStart > a.LastBreachStart {
				a.LastBreachStart, a.LastBreachEnd = res.WindowStart, res.WindowEnd
			}
		case !r.Breached(res.Value) && firing && res.WindowStart >= a.LastBreachEnd:
			out = append(out, s.resolve(fp, res.WindowStart))
		}
	}
	for _, fp := range slices.Sorted(maps.Keys(s.Active)) {
		a := s.Active[fp]
		size := a.LastBreachEnd - a.LastBreachStart
		if s.Watermarks[a.Shard] >= a.LastBreachEnd+size {
			out = append(out, s.resolve(fp, a.LastBreachEnd))
		}
	}
	return out
}

// resolve removes a firing alert and returns its resolution, ending at endsAt (ms).
func (s *State) resolve(fp string, endsAt int64) alerts.Alert {
	a := s.Active[fp]
	delete(s.Active, fp)
	al := a.Alert
	al.Labels = maps.Clone(al.Labels)
	al.State = alerts.StateResolved
	al.EndsAt = endsAt
	return al
}
