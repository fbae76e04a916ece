package window

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Step is the bucket width of a series. Buckets are aligned to the epoch
// (UTC): a window belongs to bucket floor(window_start / step) * step.
type Step struct {
	name string
	ms   int64
}

// Steps accepted by ParseStep, by name.
var steps = map[string]int64{
	"1m": time.Minute.Milliseconds(),
	"5m": 5 * time.Minute.Milliseconds(),
	"1h": time.Hour.Milliseconds(),
	"1d": 24 * time.Hour.Milliseconds(),
}

// ParseStep parses "1m", "5m", "1h" or "1d"; anything else is a *ParamError
// for "step".
func ParseStep(s string) (Step, error) {
	ms, ok := steps[s]
	if !ok {
		if s == "" {
			return Step{}, InvalidParam("step", "missing (one of 1m, 5m, 1h, 1d)")
		}
		return Step{}, InvalidParam("step", "%q is not one of 1m, 5m, 1h, 1d", s)
	}
	return Step{name: s, ms: ms}, nil
}

// String returns the step as the client wrote it ("1h").
func (s Step) String() string { return s.name }

// Millis returns the width in milliseconds.
func (s Step) Millis() int64 { return s.ms }

// Limits of a series query.
const (
	// MaxPoints bounds (to - from) / step, the buckets one series may have.
	MaxPoints = 10_000
	// MaxFilters bounds the filter parameters of one query.
	MaxFilters = 16
	// MaxFilterValueLen bounds a filter value, in bytes.
	MaxFilterValueLen = 1024
	// MaxTimeMs is the latest time accepted: the end of ClickHouse's
	// DateTime range (2106-02-07T06:28:15Z), in ms since the epoch.
	MaxTimeMs = int64(1<<32-1) * 1000
)

// Filter keeps the windows whose label Label has one of Values. A window
// without the label has the value "".
type Filter struct {
	Label  string
	Values []string
}

// Matches reports whether labels pass every filter: for each filter, the
// label's value ("" when labels lack it) is one of its Values. No filters
// match every label set. It is the in-memory form of the condition the
// ClickHouse queries build from the same filters.
func Matches(filters []Filter, labels map[string]string) bool {
	for _, f := range filters {
		if !slices.Contains(f.Values, labels[f.Label]) {
			return false
		}
	}
	return true
}

// SeriesQuery asks for one metric's value summed per step bucket over
// windows starting in [From, To), summed over shards and over the label
// sets that share a GroupBy value (or over all of them without GroupBy).
// Build it with NewSeriesQuery; the zero value is not valid.
type SeriesQuery struct {
	metric  string
	from    int64
	to      int64
	step    Step
	groupBy string
	filters []Filter
}

// NewSeriesQuery validates a series query. from and to are ms since the
// epoch (0 <= from < to <= MaxTimeMs); groupBy is a label name or "";
// filters are label = value pairs, at most MaxFilters, and several values
// for one label mean any of them. Every problem is reported, joined; each is
// a *ParamError naming the parameter.
func NewSeriesQuery(metric string, from, to int64, step Step, groupBy string, filters []Filter) (SeriesQuery, error) {
	var errs []error
	if err := CheckMetric(metric); err != nil {
		errs = append(errs, err)
	}
	if step.ms == 0 {
		errs = append(errs, InvalidParam("step", "missing (one of 1m, 5m, 1h, 1d)"))
	}
	for _, p := range []struct {
		name string
		ms   int64
	}{{"from", from}, {"to", to}} {
		if p.ms < 0 || p.ms > MaxTimeMs {
			errs = append(errs, InvalidParam(p.name, "%d ms is outside 1970-01-01..2106-02-07", p.ms))
		}
	}
	if from >= to {
		errs = append(errs, InvalidParam("to", "must be after from (from=%d, to=%d)", from, to))
	} else if step.ms > 0 && (to-from)/step.ms > MaxPoints {
		errs = append(errs, InvalidParam("step", "%s over %s gives more than %d points; use a larger step or a shorter range",
			step.name, time.Duration(to-from)*time.Millisecond, MaxPoints))
	}
	if groupBy != "" {
		if err := checkName("group_by", groupBy); err != nil {
			errs = append(errs, err)
		}
	}
	merged, err := mergeFilters(filters)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return SeriesQuery{}, errors.Join(errs...)
	}
	return SeriesQuery{metric: metric, from: from, to: to, step: step, groupBy: groupBy, filters: merged}, nil
}

// MergeFilters validates label filters (names, value lengths, at most
// MaxFilters values) and merges those on the same label, in first-seen
// label order. Errors are *ParamError for "filter".
func MergeFilters(filters []Filter) ([]Filter, error) { return mergeFilters(filters) }

// mergeFilters validates filters and merges those on the same label, in
// first-seen label order.
func mergeFilters(filters []Filter) ([]Filter, error) {
	var errs []error
	count := 0
	var merged []Filter
	index := map[string]int{}
	for _, f := range filters {
		count += len(f.Values)
		if err := checkName("filter", f.Label); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, v := range f.Values {
			if len(v) > MaxFilterValueLen {
				errs = append(errs, InvalidParam("filter", "value for %s longer than %d bytes", f.Label, MaxFilterValueLen))
			}
		}
		i, ok := index[f.Label]
		if !ok {
			i = len(merged)
			index[f.Label] = i
			merged = append(merged, Filter{Label: f.Label})
		}
		merged[i].Values = append(merged[i].Values, f.Values...)
	}
	if count > MaxFilters {
		errs = append(errs, InvalidParam("filter", "more than %d filters", MaxFilters))
	}
	for _, f := range merged {
		if len(f.Values) == 0 {
			errs = append(errs, InvalidParam("filter", "no value for label %s", f.Label))
		}
	}
	return merged, errors.Join(errs...)
}

// Metric returns the metric name (a ValidName).
func (q SeriesQuery) Metric() string { return q.metric }

// From returns the inclusive start of the range, ms since the epoch.
func (q SeriesQuery) From() int64 { return q.from }

// To returns the exclusive end of the range, ms since the epoch.
func (q SeriesQuery) To() int64 { return q.to }

// Step returns the bucket width.
func (q SeriesQuery) Step() Step { return q.step }

// GroupBy returns the label to group by (a ValidName), or "".
func (q SeriesQuery) GroupBy() string { return q.groupBy }

// Filters returns the label filters, one per label (a ValidName), each
// with at least one value. The slice must not be modified.
func (q SeriesQuery) Filters() []Filter { return q.filters }

// Row is one bucket of one group as storage returns it: the sum of the
// values of every window in the bucket whose GroupBy label is Group (""
// without GroupBy).
type Row struct {
	Group string
	T     int64
	Value float64
	// Layer is the serving layer the value came from (batch.LayerSpeed,
	// LayerBatch); rows of one group and bucket from different layers
	// make a "mixed" point.
	Layer string
}

// Point is one bucket of a series: T is the bucket start (ms since the
// epoch), Value the sum, Layer where it came from ("speed", "batch" or
// "mixed").
type Point struct {
	T     int64
	Value float64
	Layer string
}

// LayerMixed is the Layer of a point summed from rows of different layers.
const LayerMixed = "mixed"

// Series is the points of one group, sorted by T. Labels is
// {GroupBy: group} with GroupBy, and empty (not nil) without.
type Series struct {
	Labels map[string]string
	Points []Point
}

// BuildSeries turns rows into series: one per group, sorted by group
// value, points sorted by T; rows of the same group and T are added. Without GroupBy it always returns exactly one
// series (its points may be empty); with GroupBy, only groups that have
// rows. Rows outside the query's range are a storage bug and are dropped.
func BuildSeries(q SeriesQuery, rows []Row) []Series {
	groups := map[string][]Point{}
	type slot struct {
		group string
		t     int64
	}
	index := map[slot]int{}
	first := q.from / q.step.ms * q.step.ms // bucket holding from (from >= 0)
	for _, r := range rows {
		if r.T < first || r.T >= q.to {
			continue
		}
		k := slot{r.Group, r.T}
		if i, ok := index[k]; ok {
			p := &groups[r.Group][i]
			p.Value += r.Value
			if p.Layer != r.Layer {
				p.Layer = LayerMixed
			}
			continue
		}
		index[k] = len(groups[r.Group])
		groups[r.Group] = append(groups[r.Group], Point{T: r.T, Value: r.Value, Layer: r.Layer})
	}
	if q.groupBy == "" {
		points := groups[""]
		sortPoints(points)
		if points == nil {
			points = []Point{}
		}
		return []Series{{Labels: map[string]string{}, Points: points}}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	out := make([]Series, 0, len(names))
	for _, g := range names {
		points := groups[g]
		sortPoints(points)
		out = append(out, Series{Labels: map[string]string{q.groupBy: g}, Points: points})
	}
	return out
}

func sortPoints(p []Point) {
	sort.Slice(p, func(i, j int) bool { return p[i].T < p[j].T })
}

// String describes the query for logs.
func (q SeriesQuery) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%d, %d) step %s", q.metric, q.from, q.to, q.step.name)
	if q.groupBy != "" {
		fmt.Fprintf(&b, " by %s", q.groupBy)
	}
	for _, f := range q.filters {
		fmt.Fprintf(&b, " %s in %q", f.Label, f.Values)
	}
	return b.String()
}

// WindowRow is one window of one group in one layer, as storage returns
// it for layered serving: the value summed over shards (speed) or the
// batch run's value (Run set).
type WindowRow struct {
	Group      string
	Start, End int64
	Value      float64
	Run        string
}

// LayerRows picks, per window, the layer that answers it and buckets the
// values by q's step: a window that covering(start, end) attributes to a
// batch run is answered by that run's rows (speed rows of it are
// ignored); every other window by the speed layer. Layer names are
// speedLayer and batchLayer.
func LayerRows(q SeriesQuery, speed, batch []WindowRow, covering func(start, end int64) (run string, ok bool), speedLayer, batchLayer string) []Row {
	step := q.step.ms
	out := make([]Row, 0, len(speed)+len(batch))
	for _, w := range speed {
		if _, covered := covering(w.Start, w.End); covered {
			continue
		}
		out = append(out, Row{Group: w.Group, T: w.Start / step * step, Value: w.Value, Layer: speedLayer})
	}
	for _, w := range batch {
		if run, ok := covering(w.Start, w.End); !ok || run != w.Run {
			continue // an older run of the same window
		}
		out = append(out, Row{Group: w.Group, T: w.Start / step * step, Value: w.Value, Layer: batchLayer})
	}
	return out
}
