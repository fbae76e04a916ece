// Package metrics defines the window result record carried on the
// metrics.windows topic and the metric definitions the aggregator evaluates.
package metrics

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// ResultSchema is the value of the schema metadata on metrics.windows records.
const ResultSchema = "metrics.window.v1"

// Kinds of window result emissions.
const (
	// KindEarly is an update while the window is still open.
	KindEarly = "early"
	// KindFinal is the result when the watermark passes the window end.
	KindFinal = "final"
	// KindRevised is a result revised by late events within allowed lateness.
	KindRevised = "revised"
)

// Result is one emission of one window of one metric and label set, computed
// from the events of one events.raw partition (Shard).
//
// Times are milliseconds since the epoch (UTC); the window is
// [WindowStart, WindowEnd). Revision starts at 1 and grows by one with every
// emission of the same window, so projections keep the highest revision.
//
// When Complete is true the metric is grouped by the entity key, so one
// shard holds every event of the label set and the result is the whole
// value. Otherwise it is a partial: the serving layer adds the partials of
// all shards (count and sum add, min and max take the extreme).
type Result struct {
	V           int               `json:"v"`
	Metric      string            `json:"metric"`
	Labels      map[string]string `json:"labels,omitempty"`
	WindowStart int64             `json:"window_start"`
	WindowEnd   int64             `json:"window_end"`
	Shard       int32             `json:"shard"`
	Complete    bool              `json:"complete"`
	Kind        string            `json:"kind"`
	Revision    int64             `json:"revision"`
	// Count is the number of events in the window.
	Count int64 `json:"count"`
	// Sum, Min and Max are over the metric's value field (0 when it has none).
	Sum float64 `json:"sum"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Value is the metric's headline value: the value of its first
	// aggregation (Agg): Count for count metrics, Sum for sum metrics, the
	// average, a quantile, the distinct estimate, or the rate.
	Value float64 `json:"value"`
	// Watermark is the shard's watermark (ms) when the result was emitted.
	Watermark int64 `json:"watermark"`

	// Agg names the headline aggregation Value holds (see AggCount...);
	// empty in records of the first producer, where it was count or sum.
	Agg string `json:"agg,omitempty"`
	// Unit is the value field's unit from the definition ("bytes", "ms").
	Unit string `json:"unit,omitempty"`
	// Distinct is the HyperLogLog estimate of the distinct values of the
	// definition's distinct field (AggDistinct), within
	// DistinctRelativeError (standard error).
	Distinct float64 `json:"distinct,omitempty"`
	// Quantiles maps "p50", "p90", "p95", "p99" (those the definition
	// lists) to their DDSketch value, within QuantileRelativeAccuracy.
	Quantiles map[string]float64 `json:"quantiles,omitempty"`
	// TopK holds the definition's top N keys with counts (AggTopK).
	TopK []KeyCount `json:"topk,omitempty"`
	// DistinctSketch and QuantileSketch carry the serialized sketches
	// (Distinct.MarshalBinary, Quantiles.MarshalBinary) in partial results
	// (Complete false), so MergePartials can compute whole values.
	DistinctSketch []byte `json:"distinct_sketch,omitempty"`
	QuantileSketch []byte `json:"quantile_sketch,omitempty"`

	// Unchanged is true when the window took no event since its previous
	// revision: every value equals that revision's, and only Kind,
	// Revision and Watermark differ. The aggregator sets it on a final
	// result whose window did not change after its last early result (at
	// a minute boundary, most of them), so a projection that depends on
	// values only (the query service's per-window top-N sets) can skip it.
	// False in records of earlier builds, which is always safe.
	Unchanged bool `json:"unchanged,omitempty"`
}

// LabelsKey returns the canonical form of a label set: name=value pairs
// sorted by name and joined with ",". Values are quoted when they hold a
// comma, an equals sign or a quote. The empty set gives "".
func LabelsKey(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		v := labels[k]
		b.WriteString(k)
		b.WriteByte('=')
		if strings.ContainsAny(v, ",=\"") {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// ID returns the deterministic id of the window (without revision):
// metric|labels|start|end|shard. Re-emitting a result with the same ID and
// revision is harmless.
func (r *Result) ID() string {
	return fmt.Sprintf("%s|%s|%d|%d|%d", r.Metric, LabelsKey(r.Labels), r.WindowStart, r.WindowEnd, r.Shard)
}

// ErrInvalidResult is wrapped by Validate errors.
var ErrInvalidResult = errors.New("invalid window result")

// NameRe is what metric and label names must match (as in the query API):
// the name rule of package events, which samples' series and label names
// follow too. IsName is the same test without the regexp machine.
var NameRe = events.NameRe

// IsName reports whether s matches NameRe (events.IsName): a lower-case
// ASCII letter or '_', then letters, digits and '_'.
func IsName(s string) bool { return events.IsName(s) }

// Validate checks the fields a consumer relies on.
func (r *Result) Validate() error {
	switch {
	case r.V != 1:
		return fmt.Errorf("%w: schema version %d (this build reads 1)", ErrInvalidResult, r.V)
	case !IsName(r.Metric):
		return fmt.Errorf("%w: metric name %q does not match %s", ErrInvalidResult, r.Metric, NameRe)
	case r.Shard < 0:
		return fmt.Errorf("%w: negative shard %d", ErrInvalidResult, r.Shard)
	case r.Kind != KindEarly && r.Kind != KindFinal && r.Kind != KindRevised:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidResult, r.Kind)
	case r.WindowEnd <= r.WindowStart:
		return fmt.Errorf("%w: window end %d not after start %d", ErrInvalidResult, r.WindowEnd, r.WindowStart)
	case r.Revision < 1:
		return fmt.Errorf("%w: revision %d < 1", ErrInvalidResult, r.Revision)
	case r.WindowStart < 0 || r.WindowEnd > events.MaxTime:
		return fmt.Errorf("%w: window %d..%d outside 0..%d (events.MaxTime)", ErrInvalidResult, r.WindowStart, r.WindowEnd, events.MaxTime)
	case r.Count < 0:
		return fmt.Errorf("%w: negative count %d", ErrInvalidResult, r.Count)
	}
	for k := range r.Labels {
		if !IsName(k) {
			return fmt.Errorf("%w: label name %q does not match %s", ErrInvalidResult, k, NameRe)
		}
	}
	return nil
}
