package rules_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/rules"
)

const step = int64(5 * 60 * 1000) // 5-minute points, as most NAB series

// series is a synthetic labelled series: a daily pattern plus noise, with
// injected anomalies starting at the indexes in starts.
type series struct {
	xs     []float64
	starts []int
}

func base(n int, seed uint64, amp, noise float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	xs := make([]float64, n)
	for i := range xs {
		day := float64(int64(i)*step%rules.Day) / float64(rules.Day)
		xs[i] = 100 + amp*math.Sin(2*math.Pi*day) + noise*rng.NormFloat64()
	}
	return xs
}

// episodes runs the model with alert episodes as the detector forms them
// (score >= threshold; an episode ends after keep points below it) and
// returns the index where each episode started.
func episodes(xs []float64, threshold float64, keep int) []int {
	m := rules.NewModel(rules.AnomalyConfig{})
	var starts []int
	last := -1 << 30
	for i, x := range xs {
		s := m.Update(int64(i)*step, x)
		if s < 0 || s > 1 || math.IsNaN(s) {
			panic("score out of [0, 1]")
		}
		if s >= threshold {
			if i-last > keep {
				starts = append(starts, i)
			}
			last = i
		}
	}
	return starts
}

// score matches episodes to injected anomalies: an episode starting within
// [start, start+maxDelay] detects it; every other episode is a false positive.
func score(t *testing.T, name string, s series, maxDelay int) (delays []int, fps int) {
	t.Helper()
	eps := episodes(s.xs, 0.5, 12)
	used := map[int]bool{}
	for _, st := range s.starts {
		d := -1
		for j, e := range eps {
			if !used[j] && e >= st && e <= st+maxDelay {
				d, used[j] = e-st, true
				break
			}
		}
		delays = append(delays, d)
	}
	for j, e := range eps {
		inside := false
		for _, st := range s.starts {
			inside = inside || (e >= st && e <= st+3*maxDelay)
		}
		if !used[j] && !inside {
			fps++
		}
	}
	t.Logf("%s: episodes %v, delays %v, false positives %d", name, eps, delays, fps)
	return delays, fps
}

func TestAnomalyCleanSeriesFalsePositives(t *testing.T) {
	t.Parallel()
	// 20 seeds × 14 days of 5-minute points = 80,640 normal points.
	total := 0
	for seed := range uint64(20) {
		_, fps := score(t, "clean", series{xs: base(14*288, seed, 20, 2)}, 0)
		total += fps
	}
	// Stated bound: at most 15 false alert episodes in 80,640 normal points
	// (one per ~5,400 points, i.e. under one per 14 days of 5-minute
	// data). Measured when written: 11.
	require.LessOrEqual(t, total, 15, "false alert episodes over 280 days of clean data")
}

func TestAnomalyDetectsInjected(t *testing.T) {
	t.Parallel()
	const n = 10 * 288
	for _, tc := range []struct {
		name   string
		inject func(xs []float64, at int)
		delay  int // stated detection bound, points
	}{
		{"spike", func(xs []float64, at int) { xs[at] += 30 }, 1},
		{"dip", func(xs []float64, at int) { xs[at] -= 30 }, 1},
		{"level shift", func(xs []float64, at int) {
			for i := at; i < len(xs); i++ {
				xs[i] += 15
			}
		}, 3},
		{"variance x4", func(xs []float64, at int) {
			for i := at; i < len(xs); i++ {
				xs[i] = 100 + 4*(xs[i]-100)
			}
		}, 12},
		{"daily pattern lost", func(xs []float64, at int) {
			for i := at; i < len(xs); i++ {
				day := float64(int64(i)*step%rules.Day) / float64(rules.Day)
				xs[i] -= 20 * math.Sin(2*math.Pi*day)
			}
		}, 36},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			missed, fps := 0, 0
			for seed := range uint64(10) {
				xs := base(n, 100+seed, 20, 2)
				at := 5*288 + int(seed)*37
				tc.inject(xs, at)
				d, fp := score(t, tc.name, series{xs: xs, starts: []int{at}}, tc.delay)
				if d[0] < 0 {
					missed++
				}
				fps += fp
			}
			require.Zero(t, missed, "anomalies detected within %d points", tc.delay)
			// Stated bound: at most 5 false episodes in 10 series of 10 days
			// (measured: 0); detection delays are the stated tc.delay.
			require.LessOrEqual(t, fps, 5, "false alert episodes over 100 days")
		})
	}
}
