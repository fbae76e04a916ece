package bench

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPercentileInterpolatesBetweenRanks(t *testing.T) {
	t.Parallel()
	xs := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, tc := range []struct {
		name string
		q    float64
		want float64
	}{
		{"min", 0, 10},
		{"median of even count", 0.5, 55},
		{"p90", 0.9, 91},
		{"p99", 0.99, 99.1},
		{"max", 1, 100},
		{"clamped below", -1, 10},
		{"clamped above", 2, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tc.want, Percentile(xs, tc.q), 1e-9)
		})
	}
	require.True(t, math.IsNaN(Percentile(nil, 0.5)))
	require.Equal(t, 7.0, Percentile([]float64{7}, 0.99))
}

func TestSummarizeSortsAndCountsLost(t *testing.T) {
	t.Parallel()
	s := Summarize([]float64{300, 100, 200}, 2)
	require.Equal(t, LatencySummary{N: 3, Lost: 2, Min: 100, P50: 200, P90: 280, P99: 298, Max: 300, Mean: 200}, s)
	empty := Summarize(nil, 1)
	require.Equal(t, LatencySummary{Lost: 1}, empty, "an empty set has zeros, which JSON can encode")
}

func TestRatioAndRate(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 0.25, Ratio(50_000, 200_000), 1e-12)
	require.Zero(t, Ratio(1, 0))
	require.Zero(t, Ratio(1, -1))
	require.InDelta(t, 1500, Rate(3000, 2), 1e-12)
}

func TestRatesAndPerWindow(t *testing.T) {
	t.Parallel()
	samples := []Counter{{T: 0, Count: 0}, {T: 1, Count: 100}, {T: 1, Count: 100}, {T: 3, Count: 500}}
	require.Equal(t, []Point{{T: 1, V: 100}, {T: 3, V: 200}}, Rates(samples, 1))
	require.Equal(t, Rates(samples, 1), Rates(samples, 0), "span 0 is 1")
	require.Equal(t, []Point{{T: 3, V: 500.0 / 3}}, Rates(samples, 3))

	// 100 events/s for 60 s, then 50 events/s for 60 s, sampled every 5 s
	// up to 130 s: two whole minutes.
	var cs []Counter
	for t := 0.0; t <= 130; t += 5 {
		n := 100 * t
		if t > 60 {
			n = 6000 + 50*(t-60)
		}
		cs = append(cs, Counter{T: t, Count: int64(n)})
	}
	got := PerWindow(cs, 0, 60)
	require.Len(t, got, 2, "a third minute is not complete")
	require.InDelta(t, 100, got[0], 1)
	require.InDelta(t, 50, got[1], 1)
	require.Nil(t, PerWindow(nil, 0, 60))
}

func TestPerMinuteCostIsCPUPerCountedEvent(t *testing.T) {
	// Phase "max" from t = 10 s: 1,000 events/s counted; the aggregator
	// spends 1 ms, then 2 ms, then 3 ms of CPU a second (1, 2, 3 CPU-s per
	// million events); its CPU before the phase (5 s) is not the phase's.
	var samples []Sample
	cpu := 5.0
	for s := 1; s <= 180; s++ {
		cpu += float64((s-1)/60+1) / 1000
		samples = append(samples, Sample{T: 10 + float64(s), Phase: "max", Processed: int64(1000 * s),
			Procs: map[string]ProcStat{"aggregator": {CPUSeconds: cpu}}})
	}
	samples = append(samples, Sample{T: 191, Phase: "half", Processed: 1, Procs: map[string]ProcStat{"aggregator": {CPUSeconds: 99}}})
	ph := Phase{Name: "max", StartS: 10}
	_, ph.PerMinuteProcessed = perMinute(samples, "max", 10, 190)
	costs := PerMinuteCost(samples, ph)
	require.Len(t, costs["aggregator"], 3)
	for m, want := range []float64{1, 2, 3} {
		require.InDelta(t, want, costs["aggregator"][m], 0.02, "minute %d", m+1)
	}

	g := costGrowth(map[string][]float64{"a": {9, 1, 1, 1, 1, 1, 2, 2, 2}, "b": {1, 4, 4, 4, 4, 4, 4, 4, 4}})
	require.Equal(t, []string{"a 1.0 → 2.0 (+100 %)", "b 4.0 → 4.0 (+0 %)"}, g, "minute 1 is warm-up")
	require.Nil(t, costGrowth(map[string][]float64{"a": {1, 1, 1}}), "too short to tell")
}
