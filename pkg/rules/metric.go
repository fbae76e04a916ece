package rules

import (
	"maps"
	"slices"
	"time"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// SampleStaleness is how long after its last breaching sample a firing
// sample alert resolves when the series sends nothing more (Prometheus'
// staleness period), ms.
const SampleStaleness = int64(5 * time.Minute / time.Millisecond)

// Point is one value of one metric series: a window result or a sample.
// Times are ms since the epoch; a window is [Start, End), a sample has
// Start == End.
type Point struct {
	Source string
	Metric string
	Labels map[string]string
	Start  int64
	End    int64
	Value  float64
	// Shard is the events.raw partition that computed or carried the point;
	// Watermark is that shard's watermark (ms) when the point was emitted.
	Shard     int32
	Watermark int64
	// Kind is the window result kind (early, final, revised); "" for samples.
	Kind string
	// Complete is false for a per-shard partial window result.
	Complete bool
}

// PointFromResult converts a window result.
func PointFromResult(res *metrics.Result) Point {
	return Point{
		Source: SourceWindows, Metric: res.Metric, Labels: res.Labels, Start: res.WindowStart, End: res.WindowEnd,
		Value: res.Value, Shard: res.Shard, Watermark: res.Watermark, Kind: res.Kind, Complete: res.Complete,
	}
}

// Series is the state of one rule on one label set.
type Series struct {
	Rule   string            `json:"rule"`
	Labels map[string]string `json:"labels"`
	Shard  int32             `json:"shard"`
	// State is "", pending or firing.
	State string `json:"state,omitempty"`
	// Alert is the last emitted pending or firing state change.
	Alert *alerts.Alert `json:"alert,omitempty"`
	// StartsAt is when the condition started holding (ms).
	StartsAt int64 `json:"starts_at,omitempty"`
	// LastBreachStart and LastBreachEnd delimit the last breaching point.
	LastBreachStart int64 `json:"last_breach_start,omitempty"`
	LastBreachEnd   int64 `json:"last_breach_end,omitempty"`
	// LastSeen is the end of the latest point of the series (ms).
	LastSeen int64 `json:"last_seen"`
	// Size is the window size of the series (ms, 0 for samples).
	Size int64 `json:"size,omitempty"`
	// History holds recent values for change rules, by point start.
	History []Value `json:"history,omitempty"`
	// Model is the anomaly model (anomaly rules).
	Model *Model `json:"model,omitempty"`
}

// Value is a timestamped value.
type Value struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// MetricState is the metric rule state of one input partition. It is plain
// data (JSON), so it can be checkpointed; its size is bounded by the number
// of (rule, label set) pairs seen (for threshold rules: that breached), and
// series silent for longer than Retention behind the watermark are
// dropped. A threshold rule's series is created by its first breaching
// point, and points that do not breach leave a series at rest (no alert
// pending or firing) untouched: its retention counts from its last
// breach or resolution.
type MetricState struct {
	// Watermarks holds the latest watermark of each shard, ms.
	Watermarks map[int32]int64 `json:"watermarks"`
	// Series by rule name + "\xff" + canonical labels.
	Series map[string]*Series `json:"series"`
	// NextDue is a lower bound of the earliest watermark at which Advance
	// has something to do (0: nothing), so most calls cost O(shards).
	NextDue int64 `json:"next_due,omitempty"`

	// changed holds the keys of the series changed, added or deleted since
	// the last TakeChanges, while tracking is on (TrackChanges).
	changed map[string]struct{}
}

// TrackChanges makes the state remember the key of every series that
// Apply or Advance adds, changes or deletes, until TakeChanges hands them
// out: an incremental checkpoint writes only those series (see the
// detector's delta state). Off by default, so states nobody asks never
// grow a change set.
func (st *MetricState) TrackChanges() {
	if st.changed == nil {
		st.changed = map[string]struct{}{}
	}
}

// TakeChanges returns the keys (as in Series) of the series changed since
// the last call, in no particular order, and forgets them; a key missing
// from Series was deleted. It returns nil when tracking is off.
func (st *MetricState) TakeChanges() []string {
	if len(st.changed) == 0 {
		return nil
	}
	keys := make([]string, 0, len(st.changed))
	for k := range st.changed {
		keys = append(keys, k)
	}
	clear(st.changed)
	return keys
}

// touch records that the series key changed, when tracking is on.
func (st *MetricState) touch(key string) {
	if st.changed != nil {
		st.changed[key] = struct{}{}
	}
}

// Retention is how long a series with no alert in progress is kept after
// its last point (a day and a window, for day_ago change rules), ms.
const Retention = Day + int64(time.Hour/time.Millisecond)

// NewMetricState returns an empty state.
func NewMetricState() *MetricState {
	return &MetricState{Watermarks: map[int32]int64{}, Series: map[string]*Series{}}
}

// init makes the maps of a state decoded from an older or empty
// checkpoint usable.
func (st *MetricState) init() {
	if st.Watermarks == nil {
		st.Watermarks = map[int32]int64{}
	}
	if st.Series == nil {
		st.Series = map[string]*Series{}
	}
}

// Evaluate applies one point and then, when the point moved its shard's
// watermark, Advance. It returns the alert state changes in a deterministic
// order: the point's rules in rule order, then the watermark's changes
// sorted by series key.
func (st *MetricState) Evaluate(set *Set, p *Point) []alerts.Alert {
	moved := p.Watermark > st.Watermarks[p.Shard]
	out := st.Apply(set, p)
	if moved {
		out = append(out, st.Advance(set)...)
	}
	return out
}

// ObserveWatermark records that shard's watermark (ms) reached wm, as a
// point of that shard would, without its effects; call Advance after a
// batch. It is what Apply does with a point no rule reads, for a caller
// that did not decode such points (metrics.DecodeRecordSelect).
func (st *MetricState) ObserveWatermark(shard int32, wm int64) {
	st.init()
	if wm > st.Watermarks[shard] {
		st.Watermarks[shard] = wm
	}
}

// Apply applies one point to the state (and records its watermark) without
// the watermark's effects; call Advance after a batch of points.
func (st *MetricState) Apply(set *Set, p *Point) []alerts.Alert {
	st.ObserveWatermark(p.Shard, p.Watermark)
	var out []alerts.Alert
	var rs []*Rule
	if p.Source == SourceSamples {
		rs = set.samples[p.Metric]
	} else if p.Complete {
		rs = set.byMetric[p.Metric] // partial values would compare wrongly
	}
	labelsKey, keyed := "", false
	for _, r := range rs {
		if p.Kind == metrics.KindEarly && !r.Early {
			continue
		}
		if !r.matchLabels(p.Labels) {
			continue
		}
		if !keyed {
			labelsKey, keyed = metrics.LabelsKey(p.Labels), true
		}
		key := r.Name + "\xff" + labelsKey
		s := st.Series[key]
		if r.Kind == KindThreshold && (s == nil || s.State == "") && !r.breached(p.Value) {
			// A threshold series at rest has nothing to remember: the
			// point changes no alert, so it neither creates the series nor
			// marks it for the checkpoint. Most points are such (every
			// client's and user's final at a minute boundary, under the
			// built-in rules), and each used to rewrite its series entry.
			continue
		}
		if s == nil {
			s = &Series{Rule: r.Name, Labels: p.Labels, Shard: p.Shard}
			st.Series[key] = s
		}
		st.touch(key)
		if p.Start == p.End && s.LastSeen != 0 && p.End <= s.LastSeen {
			continue // a sample re-sent or out of order: series are in time order
		}
		s.Size = p.End - p.Start
		if p.End > s.LastSeen {
			s.LastSeen = p.End
		}
		out = append(out, s.apply(r, p)...)
		if due := s.due(r); st.NextDue == 0 || due < st.NextDue {
			st.NextDue = due
		}
	}
	return out
}

// due is the watermark at which Advance must look at the series: when an
// absence fires, a firing alert resolves by silence, or the series expires.
func (s *Series) due(r *Rule) int64 {
	switch {
	case r.Kind == KindAbsence && s.State == "":
		return s.LastSeen + r.For.Ms() + 1
	case r.Kind != KindAbsence && s.State != "":
		return s.LastBreachEnd + s.silence() + r.KeepFiringFor.Ms()
	}
	return s.LastSeen + Retention + 1
}

// Advance emits what the shard watermarks alone decide: absence alerts,
// resolutions of series that went silent after a breach, and drops series
// past retention. Call it after every watermark change (Evaluate does).
func (st *MetricState) Advance(set *Set) []alerts.Alert {
	st.init()
	var maxWM int64
	for _, wm := range st.Watermarks {
		maxWM = max(maxWM, wm)
	}
	if st.NextDue == 0 || maxWM < st.NextDue {
		return nil
	}
	var due []string
	st.NextDue = 0
	for key, s := range st.Series {
		wm := st.Watermarks[s.Shard]
		r := set.Rule(s.Rule)
		switch {
		case r == nil || r.Source != SourceWindows && r.Source != SourceSamples:
			due = append(due, key) // rule deleted or changed kind
			continue
		case r.Kind == KindAbsence && s.State == "" && wm > s.LastSeen+r.For.Ms():
			due = append(due, key)
			continue
		case r.Kind != KindAbsence && s.State != "" && wm >= s.LastBreachEnd+s.silence()+r.KeepFiringFor.Ms():
			due = append(due, key)
			continue
		case s.State == "" && wm > s.LastSeen+Retention:
			delete(st.Series, key)
			st.touch(key)
			continue
		}
		if d := s.due(r); st.NextDue == 0 || d < st.NextDue {
			st.NextDue = d
		}
	}
	slices.Sort(due)
	out := make([]alerts.Alert, 0, len(due))
	for _, key := range due {
		s := st.Series[key]
		r := set.Rule(s.Rule)
		st.touch(key)
		switch {
		case r == nil || r.Source != SourceWindows && r.Source != SourceSamples:
			if s.State != "" {
				out = append(out, s.resolve(st.Watermarks[s.Shard])) // its rule is gone
			}
			delete(st.Series, key)
			continue
		case r.Kind == KindAbsence:
			s.State, s.StartsAt = alerts.StateFiring, s.LastSeen
			out = append(out, s.newAlert(r, alerts.StateFiring, &Point{Start: s.LastSeen, End: s.LastSeen}, 0, 0))
		default:
			out = append(out, s.resolve(s.LastBreachEnd))
		}
		if d := s.due(r); st.NextDue == 0 || d < st.NextDue {
			st.NextDue = d
		}
	}
	return out
}

// silence is how long after the end of its last breaching point a series
// with no newer point counts as not breaching: one window, or
// SampleStaleness for samples.
func (s *Series) silence() int64 {
	if s.Size == 0 {
		return SampleStaleness
	}
	return s.Size
}

// apply evaluates one point of the series under rule r.
func (s *Series) apply(r *Rule, p *Point) []alerts.Alert {
	switch r.Kind {
	case KindThreshold:
		return s.step(r, p, r.breached(p.Value), p.Value, 0)
	case KindChange:
		ref, ok := s.reference(r, p)
		s.remember(r, p)
		if !ok || ref == 0 {
			return s.step(r, p, false, 0, 0)
		}
		pct := (p.Value - ref) / abs(ref) * 100
		return s.step(r, p, r.breached(pct), pct, 0)
	case KindAnomaly:
		if s.Model == nil {
			s.Model = NewModel(r.Anomaly)
		}
		score := s.Model.Update(p.Start, p.Value)
		return s.step(r, p, r.breached(score), p.Value, score)
	case KindAbsence:
		if s.State != "" && p.Start >= s.StartsAt {
			return []alerts.Alert{s.resolve(p.Start)}
		}
	}
	return nil
}

// step runs the pending → firing → resolved lifecycle for one point whose
// condition is cond.
func (s *Series) step(r *Rule, p *Point, cond bool, value, score float64) []alerts.Alert {
	if !cond {
		switch {
		case s.State == "" || p.Start < s.LastBreachEnd:
			return nil // nothing in progress, or an older window revised
		case s.State == alerts.StatePending:
			return []alerts.Alert{s.resolve(p.Start)}
		case p.Start >= s.LastBreachEnd+r.KeepFiringFor.Ms():
			return []alerts.Alert{s.resolve(p.Start)}
		}
		return nil
	}
	var out []alerts.Alert
	if s.State == alerts.StatePending && p.Start > s.LastBreachEnd && p.Start != p.End {
		// A gap between breaching windows restarts the `for` clock.
		out = append(out, s.resolve(s.LastBreachEnd))
	}
	if p.Start < s.LastBreachStart {
		return out // an older window revised: the episode is already tracked
	}
	s.LastBreachStart, s.LastBreachEnd = p.Start, p.End
	switch s.State {
	case "":
		s.StartsAt = p.Start
		if p.End-p.Start >= r.For.Ms() {
			s.State = alerts.StateFiring
			return append(out, s.newAlert(r, alerts.StateFiring, p, value, score))
		}
		s.State = alerts.StatePending
		return append(out, s.newAlert(r, alerts.StatePending, p, value, score))
	case alerts.StatePending:
		if p.End-s.StartsAt >= r.For.Ms() {
			s.State = alerts.StateFiring
			return append(out, s.newAlert(r, alerts.StateFiring, p, value, score))
		}
	}
	return out
}

func (s *Series) newAlert(r *Rule, state string, p *Point, value, score float64) alerts.Alert {
	labels := r.alertLabels(s.Labels)
	a := alerts.Alert{
		V: 1, Fingerprint: alerts.Fingerprint(r.Name, labels), Rule: r.Name, Kind: string(r.Kind), State: state,
		Severity: r.Severity, Labels: labels, Metric: r.Metric, Value: value, Threshold: r.Threshold,
		Score: score, StartsAt: s.StartsAt, WindowStart: p.Start, WindowEnd: p.End,
	}
	a.Annotations = r.annotate(&a)
	s.Alert = &a
	return a
}

// resolve ends the series' pending or firing alert at endsAt (ms).
func (s *Series) resolve(endsAt int64) alerts.Alert {
	a := *s.Alert
	a.Labels = maps.Clone(a.Labels)
	a.State = alerts.StateResolved
	a.EndsAt = max(endsAt, a.StartsAt)
	s.State, s.Alert, s.StartsAt = "", nil, 0
	return a
}

// reference returns the value the change rule compares p with.
func (s *Series) reference(r *Rule, p *Point) (float64, bool) {
	want := p.Start - (p.End - p.Start) // the previous window
	if r.Compare == CompareDayAgo {
		want = p.Start - Day
	}
	i, ok := slices.BinarySearchFunc(s.History, want, func(v Value, t int64) int { return cmpInt(v.T, t) })
	if !ok {
		return 0, false
	}
	return s.History[i].V, true
}

// remember stores p for later change comparisons, keeping only what the
// rule can still need (the previous window, or a day plus a window).
func (s *Series) remember(r *Rule, p *Point) {
	i, ok := slices.BinarySearchFunc(s.History, p.Start, func(v Value, t int64) int { return cmpInt(v.T, t) })
	if ok {
		s.History[i].V = p.Value // a revision
	} else {
		s.History = slices.Insert(s.History, i, Value{T: p.Start, V: p.Value})
	}
	keep := 2 * (p.End - p.Start)
	if r.Compare == CompareDayAgo {
		keep = Day + (p.End - p.Start)
	}
	last := s.History[len(s.History)-1].T
	cut := 0
	for cut < len(s.History) && s.History[cut].T < last-keep {
		cut++
	}
	s.History = s.History[cut:]
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
