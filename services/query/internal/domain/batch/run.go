package batch

import "math"

// Run states.
const (
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// Layers a served point can come from.
const (
	LayerSpeed = "speed"
	LayerBatch = "batch"
	// LayerMixed marks a bucket whose windows came from both layers.
	LayerMixed = "mixed"
)

// Run is one batch recompute: the metrics it recomputed over the whole
// windows in [FromMs, ToMs) of event time.
type Run struct {
	ID         string
	FromMs     int64
	ToMs       int64
	Metrics    []string
	Skipped    []string
	Status     string
	Windows    uint64
	StartedMs  int64
	FinishedMs int64
	Error      string
}

// Covers reports whether a done run recomputed metric's window [ws, we).
func (r Run) Covers(metric string, ws, we int64) bool {
	if r.Status != StatusDone || ws < r.FromMs || we > r.ToMs {
		return false
	}
	for _, m := range r.Metrics {
		if m == metric {
			return true
		}
	}
	return false
}

// Window is one window's value of one metric and label set in one layer.
type Window struct {
	Metric    string
	LabelsKey string
	Labels    map[string]string
	Start     int64
	End       int64
	Value     float64
	Count     int64
}

// Divergence is a window where the speed and batch layers disagree.
type Divergence struct {
	Metric    string
	Labels    map[string]string
	Start     int64
	End       int64
	Speed     float64
	Batch     float64
	Diff      float64 // Speed - Batch
	RelDiff   float64 // |Diff| / max(|Speed|, |Batch|)
	SpeedOnly bool    // the speed layer has the window, the batch run not
	BatchOnly bool    // the batch run has the window, the speed layer not
}

// Equal reports whether two layer values agree: exactly up to float
// rounding (relative 1e-9).
func Equal(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// Diverge compares speed and batch windows of a run (keyed by metric,
// labels and window) and returns those that differ by more than relTol
// (relative; 0 means any difference beyond rounding), sorted by metric,
// start, labels. A window present in one layer only compares with 0.
func Diverge(speed, batchWins []Window, relTol float64) []Divergence {
	type key struct {
		metric, labels string
		start, end     int64
	}
	type pair struct {
		speed, batch       *Window
		haveSpeed, haveBat bool
	}
	m := map[key]*pair{}
	var order []key
	get := func(w *Window) *pair {
		k := key{w.Metric, w.LabelsKey, w.Start, w.End}
		p, ok := m[k]
		if !ok {
			p = &pair{}
			m[k] = p
			order = append(order, k)
		}
		return p
	}
	for i := range speed {
		p := get(&speed[i])
		p.speed, p.haveSpeed = &speed[i], true
	}
	for i := range batchWins {
		p := get(&batchWins[i])
		p.batch, p.haveBat = &batchWins[i], true
	}
	var out []Divergence
	for _, k := range order {
		p := m[k]
		var s, b float64
		var labels map[string]string
		if p.haveSpeed {
			s, labels = p.speed.Value, p.speed.Labels
		}
		if p.haveBat {
			b, labels = p.batch.Value, p.batch.Labels
		}
		if Equal(s, b) {
			continue
		}
		rel := math.Abs(s-b) / math.Max(math.Abs(s), math.Abs(b))
		if relTol > 0 && rel <= relTol {
			continue
		}
		out = append(out, Divergence{Metric: k.metric, Labels: labels, Start: k.start, End: k.end, Speed: s, Batch: b,
			Diff: s - b, RelDiff: rel, SpeedOnly: !p.haveBat, BatchOnly: !p.haveSpeed})
	}
	sortDivergences(out)
	return out
}
