package bench

import (
	"math"
	"slices"
)

// Percentile returns the q-quantile (0 ≤ q ≤ 1) of sorted (ascending) by
// linear interpolation between the closest ranks: Hyndman and Fan's
// definition 7, the default of R and NumPy. It returns NaN for an empty
// slice and clamps q to [0, 1].
func Percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	q = min(max(q, 0), 1)
	h := q * float64(n-1)
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// LatencySummary describes a set of latencies in milliseconds. Lost counts
// probes that never arrived within the probe timeout; they are not in the
// percentiles.
type LatencySummary struct {
	N    int     `json:"n"`
	Lost int     `json:"lost"`
	Min  float64 `json:"min_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Summarize returns the summary of latencies (ms, any order) with lost
// probes; every value of an empty set is 0 (N says it is empty).
func Summarize(latencies []float64, lost int) LatencySummary {
	s := slices.Clone(latencies)
	slices.Sort(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	if len(s) == 0 {
		return LatencySummary{Lost: lost} // zeros, not NaN: the summary is JSON
	}
	return LatencySummary{N: len(s), Lost: lost, Min: s[0], Max: s[len(s)-1], Mean: sum / float64(len(s)),
		P50: Percentile(s, 0.5), P90: Percentile(s, 0.9), P99: Percentile(s, 0.99)}
}

// Ratio returns a/b, or 0 when b is not positive.
func Ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// Rate returns count/seconds, or 0 when seconds is not positive.
func Rate(count int64, seconds float64) float64 { return Ratio(float64(count), seconds) }

// Counter is one sample of a monotonically growing count at time T
// (seconds since the start of the run).
type Counter struct {
	T     float64 `json:"t_s"`
	Count int64   `json:"count"`
}

// Rates turns cumulative counter samples into rates over a moving span of
// samples: one point per sample from the span-th on, at that sample's time,
// with the count difference to the sample span places earlier divided by
// the time between them (pairs with no time between them are skipped). A
// span of 1 gives per-interval rates; larger spans smooth counters that
// move in steps (the generator reports accepted events per chunk).
func Rates(samples []Counter, span int) []Point {
	span = max(span, 1)
	var out []Point
	for i := span; i < len(samples); i++ {
		dt := samples[i].T - samples[i-span].T
		if dt <= 0 {
			continue
		}
		out = append(out, Point{T: samples[i].T, V: float64(samples[i].Count-samples[i-span].Count) / dt})
	}
	return out
}

// Point is one value V at time T (seconds since the start of the run).
type Point struct {
	T float64 `json:"t_s"`
	V float64 `json:"v"`
}

// PerWindow splits cumulative counter samples into consecutive windows of
// width seconds starting at from and returns each window's rate (events/s),
// the count at the window's end interpolated linearly between samples. The
// last window is included only when the samples reach its end. It shows
// whether throughput stays flat over a long run (one window per minute).
func PerWindow(samples []Counter, from, width float64) []float64 {
	if width <= 0 || len(samples) == 0 {
		return nil
	}
	at := func(t float64) float64 {
		i, _ := slices.BinarySearchFunc(samples, t, func(c Counter, t float64) int {
			switch {
			case c.T < t:
				return -1
			case c.T > t:
				return 1
			}
			return 0
		})
		switch {
		case i == 0:
			return float64(samples[0].Count)
		case i >= len(samples):
			return float64(samples[len(samples)-1].Count)
		}
		a, b := samples[i-1], samples[i]
		return float64(a.Count) + (t-a.T)/(b.T-a.T)*float64(b.Count-a.Count)
	}
	var out []float64
	last := samples[len(samples)-1].T
	for start := from; start+width <= last+1e-9; start += width {
		out = append(out, (at(start+width)-at(start))/width)
	}
	return out
}
