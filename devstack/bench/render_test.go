package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleResult() *Result {
	res := &Result{
		Date: time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC), Host: "dev box", CPUs: 2, GoVersion: "go1.26",
		Config:  ConfigJSON{DurationS: 60, Workers: 4, Batch: 1000, Partitions: 6, ProbeIntervalS: 1, LivePollS: 0.1},
		Ceiling: Ceiling{Records: 2000, SourceRecords: 100, Events: 1_000_000, Seconds: 2, EventsPerSecond: 500_000},
		Phases: []Phase{
			{Name: "max", Accepted: 1_200_000, AcceptedRate: 20_000, Counted: 1_200_060, Stored: 1_200_060, Expected: 1_200_060,
				ProcessedRate: 15_000, Sustainable: 15_000, SendSeconds: 60, ProcessedSeconds: 80,
				LiveLatency: Summarize([]float64{400, 600, 900}, 0), BreachLatency: Summarize([]float64{1500, 2500}, 1),
				Procs:  map[string]ProcPhase{"aggregator": {CPUSeconds: 30, PeakRSSBytes: 300 << 20}},
				MaxLag: map[string]int64{"aggregator": 120}},
			{Name: "half", TargetRate: 7500, Accepted: 450_000, AcceptedRate: 7500, Counted: 450_060, Expected: 450_060, Stored: 450_060,
				ProcessedRate: 7400, Sustainable: 7400, SendSeconds: 60, ProcessedSeconds: 61,
				LiveLatency: Summarize([]float64{300, 500, 700, 800}, 0), BreachLatency: Summarize([]float64{1200, 1300}, 0)},
		},
		Samples: []Sample{
			{T: 1, Phase: "max", Accepted: 20_000, Processed: 10_000, Lag: map[string]int64{"aggregator": 50}},
			{T: 2, Phase: "max", Accepted: 40_000, Processed: 25_000, Lag: map[string]int64{"aggregator": 120}},
		},
	}
	res.PipelineVsCeiling = Ratio(res.Phases[0].Sustainable, res.Ceiling.EventsPerSecond)
	res.Targets = Targets(res)
	return res
}

func TestTargetsSayHowFarEachIs(t *testing.T) {
	t.Parallel()
	got := map[string]Target{}
	for _, tg := range sampleResult().Targets {
		got[tg.Name] = tg
	}
	require.Equal(t, "not met", got["throughput"].Status)
	require.Contains(t, got["throughput"].Measured, "15000 events/s sustained (7.5 % of goal)")
	require.Equal(t, "met", got["live latency"].Status, "p99 of 300..800 ms is below 1 s")
	require.Equal(t, "met", got["breach latency"].Status)
	require.Equal(t, "not measured", got["aggregator memory"].Status)
	require.Equal(t, "not measured", got["flat throughput"].Status)

	res := sampleResult()
	res.Phases[0].Sustainable, res.Phases[0].Loss = 250_000, 0
	res.Phases[1].BreachLatency = Summarize([]float64{1000}, 1)
	res.Phases[0].PerMinuteAccepted = []float64{100, 100, 100, 100, 96, 92, 88, 84, 80, 76}
	res.Phases[0].PerMinuteProcessed = []float64{90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 30}
	for _, tg := range Targets(res) {
		switch tg.Name {
		case "throughput":
			require.Equal(t, "met", tg.Status)
		case "breach latency":
			require.Equal(t, "not met", tg.Status, "a lost probe fails the target")
		case "flat throughput":
			require.Equal(t, "not met", tg.Status, "the rate fell minute by minute: last three 20 % below minutes 2–4")
			require.Contains(t, tg.Measured, "minutes 2–4 → last 3 -20 %")
		}
	}
	res.Phases[0].PerMinuteAccepted = []float64{80, 100, 100, 100, 100, 100, 100, 100, 100, 80}
	require.Equal(t, "met", Targets(res)[4].Status,
		"a slow first minute (warm-up) and one slow last minute are not a trend; the drain's minute of counting is not a minute of sending")
	res.Phases[0].PerMinuteProcessed[8], res.Phases[0].PerMinuteProcessed[9] = 60, 60
	require.Equal(t, "not met", Targets(res)[4].Status, "the counted rate fell")
}

func TestTargetsSayWhenTheDrainGaveUp(t *testing.T) {
	t.Parallel()
	res := sampleResult()
	res.Phases[0].DrainTimedOut, res.Phases[0].Loss, res.Phases[0].ProcessedSeconds = true, 1234, 900
	require.Contains(t, Targets(res)[0].Measured, "1234 events not yet counted when the drain timeout ended the wait (900 s after sending began)")
}

func TestMarkdownReport(t *testing.T) {
	t.Parallel()
	md := string(Markdown(sampleResult(), []string{"x-throughput.png"}))
	for _, want := range []string{
		"# Streamwatch end-to-end benchmark, 2026-11-21 23:00 UTC, dev box",
		"| max | max | 1200000 | 20000 | 1200060 | 1200060 | 0 | 15000 | 60.0 s | 80.0 s |",
		"| half | 7500 | 450000 |",
		"Full pipeline / ceiling = **0.030**",
		"| max | breach → webhook | 2 | 1 | 2000 | 2400 | 2490 | 2500 |",
		"(polled every 100 ms)",
		"| aggregator | max | 30.0 | 0.0 | 300 | 0 |",
		"| aggregator | 120 | 0 |",
		"![x-throughput](x-throughput.png)",
	} {
		require.Contains(t, md, want)
	}
}

func TestWriteResults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := WriteResults(sampleResult(), dir)
	require.NoError(t, err)
	base := filepath.Join(dir, "2026-11-21-dev_box")
	short := sampleResult()
	short.Config.DurationS = 600
	require.Equal(t, "2026-11-21-dev_box-10m0s", BaseName(short), "a non-default duration is in the name")
	require.Contains(t, files, base+".md")
	require.Contains(t, files, base+"-throughput.png")
	b, err := os.ReadFile(base + ".json")
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, sampleResult().Phases[1].LiveLatency, back.Phases[1].LiveLatency)
	png, err := os.ReadFile(base + "-latency.png")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"))
}

func TestPerMinuteAcceptedStopsWithSending(t *testing.T) {
	t.Parallel()
	var samples []Sample
	for s := 11.0; s <= 140; s++ { // phase starts at 10 s, sends until 70 s, drains until 140 s
		acc := int64(100 * (min(s, 70) - 10))
		samples = append(samples, Sample{T: s, Phase: "max", Accepted: acc, Processed: acc / 2})
	}
	samples = append(samples, Sample{T: 200, Phase: "half", Accepted: 1})
	acc, proc := perMinute(samples, "max", 10, 70)
	require.Len(t, acc, 1, "the drain is not a minute of sending")
	require.InDelta(t, 100, acc[0], 1e-9)
	require.Len(t, proc, 2)
	require.InDelta(t, 50, proc[0], 1e-9)
	require.InDelta(t, 0, proc[1], 1e-9)

	// Samples a second apart that miss the end of sending by 0.4 s: the
	// minute still counts, from the sample after it.
	samples = samples[:0]
	for s := 10.6; s <= 140; s++ {
		samples = append(samples, Sample{T: s, Phase: "max", Accepted: int64(100 * (min(s, 70.001) - 10))})
	}
	acc, _ = perMinute(samples, "max", 10, 70.001)
	require.Len(t, acc, 1, "a whole minute of sending")
	require.InDelta(t, 100, acc[0], 0.01)
}
