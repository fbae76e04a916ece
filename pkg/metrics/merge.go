package metrics

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ErrNotMergeable is wrapped by MergePartials errors.
var ErrNotMergeable = errors.New("window results not mergeable")

// MergePartials combines the partial results of one window (same metric,
// labels, start and end; one per shard, each the latest revision) into the
// whole value: counts and sums add, min and max take the extreme, the
// HyperLogLog and DDSketch sketches merge, top-k counters add (Space-Saving
// merge). The merged result has Shard 0, Complete true, the largest
// revision and kind of the inputs (final only when every input is final or
// revised), the smallest watermark and Unchanged false (it describes one
// shard's revisions, not a merge of several). Headline values are recomputed from
// the merged aggregates for every aggregation the inputs carry.
func MergePartials(rs []Result) (Result, error) {
	if len(rs) == 0 {
		return Result{}, fmt.Errorf("%w: no results", ErrNotMergeable)
	}
	m := rs[0]
	m.Labels = maps.Clone(m.Labels)
	m.Shard, m.Complete, m.Unchanged = 0, true, false
	m.Quantiles = maps.Clone(m.Quantiles)
	var dist *Distinct
	var quant *Quantiles
	var top *TopK
	early := false
	for i := range rs {
		r := &rs[i]
		if r.Metric != m.Metric || LabelsKey(r.Labels) != LabelsKey(m.Labels) || r.WindowStart != m.WindowStart || r.WindowEnd != m.WindowEnd {
			return Result{}, fmt.Errorf("%w: %s and %s are different windows", ErrNotMergeable, m.ID(), r.ID())
		}
		early = early || r.Kind == KindEarly
		if i > 0 {
			if r.Count > 0 && (m.Count == 0 || r.Min < m.Min) {
				m.Min = r.Min
			}
			if r.Count > 0 && (m.Count == 0 || r.Max > m.Max) {
				m.Max = r.Max
			}
			m.Count += r.Count
			m.Sum += r.Sum
			m.Revision = max(m.Revision, r.Revision)
			m.Watermark = min(m.Watermark, r.Watermark)
		}
		if len(r.DistinctSketch) > 0 {
			d, err := DecodeDistinct(r.DistinctSketch)
			if err != nil {
				return Result{}, fmt.Errorf("%w: %s: %w", ErrNotMergeable, r.ID(), err)
			}
			if dist == nil {
				dist = d
			} else if err := dist.Merge(d); err != nil {
				return Result{}, fmt.Errorf("%w: %s: %w", ErrNotMergeable, r.ID(), err)
			}
		}
		if len(r.QuantileSketch) > 0 {
			q, err := DecodeQuantiles(r.QuantileSketch)
			if err != nil {
				return Result{}, fmt.Errorf("%w: %s: %w", ErrNotMergeable, r.ID(), err)
			}
			if quant == nil {
				quant = q
			} else if err := quant.Merge(q); err != nil {
				return Result{}, fmt.Errorf("%w: %s: %w", ErrNotMergeable, r.ID(), err)
			}
		}
		if len(r.TopK) > 0 {
			if top == nil {
				top = NewTopK(len(r.TopK) * TopKCapacityFactor)
			}
			for _, kc := range r.TopK {
				top.AddCount(kc.Key, kc.Count, kc.Err)
			}
		}
	}
	switch {
	case early:
		m.Kind = KindEarly
	case slices.ContainsFunc(rs, func(r Result) bool { return r.Kind == KindRevised }):
		m.Kind = KindRevised
	default:
		m.Kind = KindFinal
	}
	m.DistinctSketch, m.QuantileSketch = nil, nil
	if dist != nil {
		m.Distinct = float64(dist.Estimate())
	}
	if quant != nil {
		for k := range m.Quantiles {
			m.Quantiles[k] = quant.Quantile(QuantileOf[k])
		}
	}
	if top != nil {
		m.TopK = top.Top(len(rs[0].TopK))
	}
	m.Value = Headline(m.Agg, &m, float64(m.WindowEnd-m.WindowStart)/1000)
	return m, nil
}

// Headline returns the value of aggregation agg from the aggregates in r;
// windowSeconds is the window length for AggRate. An empty agg (records of
// the first producer) gives Value unchanged.
func Headline(agg string, r *Result, windowSeconds float64) float64 {
	switch agg {
	case AggCount:
		return float64(r.Count)
	case AggSum:
		return r.Sum
	case AggMin:
		return r.Min
	case AggMax:
		return r.Max
	case AggAvg:
		if r.Count == 0 {
			return 0
		}
		return r.Sum / float64(r.Count)
	case AggRate:
		if windowSeconds <= 0 {
			return 0
		}
		return float64(r.Count) / windowSeconds
	case AggDistinct:
		return r.Distinct
	case AggP50, AggP90, AggP95, AggP99:
		return r.Quantiles[agg]
	case AggTopK:
		if len(r.TopK) > 0 {
			return float64(r.TopK[0].Count)
		}
		return 0
	}
	return r.Value
}
