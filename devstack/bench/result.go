package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Result is everything one run measured; it is written as JSON as is.
type Result struct {
	Date       time.Time  `json:"date"`
	Host       string     `json:"host"`
	CPUs       int        `json:"cpus"`
	GoVersion  string     `json:"go_version"`
	Note       string     `json:"note,omitempty"`
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
	Config     ConfigJSON `json:"config"`
	// Phases are "max" (as fast as possible) and "half" (50 % of the
	// sustainable rate of max).
	Phases      []Phase  `json:"phases"`
	PhaseErrors []string `json:"phase_errors,omitempty"`
	Ceiling     Ceiling  `json:"ceiling"`
	// CeilingError says why the ceiling is missing.
	CeilingError string `json:"ceiling_error,omitempty"`
	// PipelineVsCeiling is the max phase's sustainable rate over the
	// ceiling's events/s.
	PipelineVsCeiling float64            `json:"pipeline_vs_ceiling"`
	Profiles          map[string]Profile `json:"profiles,omitempty"`
	ProfileNote       string             `json:"profile_note,omitempty"`
	Targets           []Target           `json:"targets"`
	Samples           []Sample           `json:"samples"`
}

// ConfigJSON records the settings of a run.
type ConfigJSON struct {
	DurationS      float64 `json:"duration_s"`
	Workers        int     `json:"workers"`
	Batch          int     `json:"batch"`
	MaxEPS         float64 `json:"max_eps"`
	Partitions     int32   `json:"partitions"`
	CeilingEvents  int64   `json:"ceiling_events"`
	ProbeIntervalS float64 `json:"probe_interval_s"`
	LivePollS      float64 `json:"live_poll_s"`
}

// Phase is one load level. Counts are events (JSON events, access-log
// lines and metric samples alike).
type Phase struct {
	Name string `json:"name"`
	// TargetRate is the wall-clock rate asked for (0: as fast as possible).
	TargetRate float64 `json:"target_rate"`
	// StartS and EndS bound the phase in seconds since the start of the
	// run (EndS after the drain).
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// EventTimeStart and EventTimeEnd bound the phase's event times (ms).
	EventTimeStart int64 `json:"event_time_start_ms"`
	EventTimeEnd   int64 `json:"event_time_end_ms"`
	// EventRate is the event-time rate at the end of sending (events per
	// second of event time).
	EventRate float64 `json:"event_time_rate"`

	Sent           int64  `json:"sent"`
	Accepted       int64  `json:"accepted"`
	Rejected       int64  `json:"rejected"`
	Failed         int64  `json:"failed"`
	SendErrors     int    `json:"send_errors"`
	FirstSendError string `json:"first_send_error,omitempty"`
	// Tally is the generator's exact count; Expected adds the probes the
	// collector accepted.
	Tally          int64 `json:"tally"`
	ProbesAccepted int64 `json:"probes_accepted"`
	Expected       int64 `json:"expected"`
	// Counted is the sum of the aggregator's events_by_type counts stored
	// in ClickHouse; Stored the distinct raw events in ClickHouse.
	Counted    int64 `json:"counted"`
	Stored     int64 `json:"stored"`
	Loss       int64 `json:"loss"`
	StoredLoss int64 `json:"stored_loss"`
	// SendSeconds is the sending time; ProcessedSeconds from the start of
	// sending until every expected event was counted.
	SendSeconds      float64 `json:"send_s"`
	ProcessedSeconds float64 `json:"processed_s"`
	DrainTimedOut    bool    `json:"drain_timed_out"`
	// AcceptedRate is Accepted/SendSeconds, ProcessedRate
	// Counted/ProcessedSeconds, Sustainable the smaller.
	AcceptedRate  float64 `json:"accepted_rate"`
	ProcessedRate float64 `json:"processed_rate"`
	Sustainable   float64 `json:"sustainable_rate"`

	LiveLatency   LatencySummary `json:"live_latency"`
	BreachLatency LatencySummary `json:"breach_latency"`
	LiveProbes    []ProbeRecord  `json:"live_probes"`
	BreachProbes  []ProbeRecord  `json:"breach_probes"`

	// Procs are per process: CPU during the phase and peak RSS.
	Procs map[string]ProcPhase `json:"procs"`
	// MaxLag is each consumer group's largest sampled lag (records).
	MaxLag map[string]int64 `json:"max_lag"`
	// PerMinuteAccepted and PerMinuteProcessed are events/s in each whole
	// minute of the phase (flat over a long run is the target).
	PerMinuteAccepted  []float64 `json:"per_minute_accepted"`
	PerMinuteProcessed []float64 `json:"per_minute_processed"`
}

// ProcPhase is one process's resource use in a phase.
type ProcPhase struct {
	CPUSeconds float64 `json:"cpu_s"`
	// CPUPerMillion is CPU seconds per million counted events.
	CPUPerMillion float64 `json:"cpu_s_per_million_events"`
	// PeakRSSBytes is the largest sampled RSS in the phase; HWMBytes the
	// process's peak since it started (VmHWM) at the end of the phase.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	HWMBytes     int64 `json:"hwm_bytes"`
}

// procDeltas returns each process's CPU between before and after, and its
// peak RSS among the phase's samples and after.
func procDeltas(before, after map[string]ProcStat, samples []Sample, phase string, events int64) map[string]ProcPhase {
	out := map[string]ProcPhase{}
	for name, a := range after {
		b, ok := before[name]
		if !ok || a.CPUSeconds < b.CPUSeconds { // restarted: no delta
			continue
		}
		p := ProcPhase{CPUSeconds: a.CPUSeconds - b.CPUSeconds, PeakRSSBytes: a.RSSBytes, HWMBytes: a.PeakRSSBytes}
		p.CPUPerMillion = Ratio(p.CPUSeconds*1e6, float64(events))
		for _, s := range samples {
			if s.Phase == phase {
				p.PeakRSSBytes = max(p.PeakRSSBytes, s.Procs[name].RSSBytes)
			}
		}
		out[name] = p
	}
	return out
}

// maxLag returns each group's largest lag in the phase's samples.
func maxLag(samples []Sample, phase string) map[string]int64 {
	out := map[string]int64{}
	for _, s := range samples {
		if s.Phase != phase {
			continue
		}
		for g, l := range s.Lag {
			out[g] = max(out[g], l)
		}
	}
	return out
}

// Recount computes each phase's per-minute rates (PerMinuteAccepted,
// PerMinuteProcessed, events/s) again from res.Samples with this build's
// rules, for a result written by an older build (streamwatch-bench
// -render).
func Recount(res *Result) {
	for i := range res.Phases {
		ph := &res.Phases[i]
		ph.PerMinuteAccepted, ph.PerMinuteProcessed = perMinute(res.Samples, ph.Name, ph.StartS, ph.StartS+ph.SendSeconds)
	}
}

// perMinute returns the phase's accepted events/s per whole minute of
// sending (startS to sendEnd, seconds since the run's start) and
// processed events/s per whole minute from its start. The accepted count
// stops growing when sending ends, so the first sample after sendEnd
// gives the count at sendEnd: the sampler ticks about once a second, and
// without it a 600 s phase whose last sample before sendEnd came at
// 599.6 s had nine minutes (the 20:34 run's flat-throughput check said
// "not measured").
func perMinute(samples []Sample, phase string, startS, sendEnd float64) (accepted, processed []float64) {
	acc := []Counter{{T: startS}}
	proc := []Counter{{T: startS}}
	ended := false
	for _, s := range samples {
		if s.Phase != phase {
			continue
		}
		switch {
		case s.T <= sendEnd:
			acc = append(acc, Counter{T: s.T, Count: s.Accepted})
		case !ended:
			acc = append(acc, Counter{T: sendEnd, Count: s.Accepted})
			ended = true
		}
		if s.Processed >= 0 {
			proc = append(proc, Counter{T: s.T, Count: s.Processed})
		}
	}
	return PerWindow(acc, startS, 60), PerWindow(proc, startS, 60)
}

// Target is one of the targets and how far this run is from it.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Status is "met", "not met" or "not measured".
	Status string `json:"status"`
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// Targets evaluates the targets on res.
func Targets(res *Result) []Target {
	var out []Target
	maxPh, hasMax := res.phase("max")
	half, hasHalf := res.phase("half")
	if hasMax {
		ok := maxPh.Sustainable >= 200_000 && maxPh.Loss == 0 && maxPh.StoredLoss == 0 && maxPh.SendSeconds >= 60
		loss := fmt.Sprintf("loss %d (windows) / %d (raw events)", maxPh.Loss, maxPh.StoredLoss)
		if maxPh.DrainTimedOut {
			loss = fmt.Sprintf("%d events not yet counted when the drain timeout ended the wait (%.0f s after sending began)",
				maxPh.Loss, maxPh.ProcessedSeconds)
		}
		out = append(out, Target{Name: "throughput", Goal: "≥ 200,000 events/s end to end for 60 s, zero loss",
			Measured: fmt.Sprintf("%.0f events/s sustained (%.1f %% of goal) over %.0f s, %s",
				maxPh.Sustainable, 100*maxPh.Sustainable/200_000, maxPh.SendSeconds, loss),
			Status: status(ok)})
	}
	if hasHalf {
		l, b := half.LiveLatency, half.BreachLatency
		out = append(out,
			Target{Name: "live latency", Goal: "p99 collector receive → /api/v1/live < 1 s at 50 % load",
				Measured: fmt.Sprintf("p99 %.0f ms (p50 %.0f ms) over %d probes, %d lost", l.P99, l.P50, l.N, l.Lost),
				Status:   status(l.N > 0 && l.Lost == 0 && l.P99 < 1000)},
			Target{Name: "breach latency", Goal: "p99 threshold breach → webhook < 2 s",
				Measured: fmt.Sprintf("p99 %.0f ms (p50 %.0f ms) over %d probes, %d lost", b.P99, b.P50, b.N, b.Lost),
				Status:   status(b.N > 0 && b.Lost == 0 && b.P99 < 2000)})
	}
	if hasMax {
		agg := maxPh.Procs["aggregator"]
		out = append(out, Target{Name: "aggregator memory", Goal: "aggregator peak RSS < 1 GiB with 1,000,000 active keys",
			Measured: fmt.Sprintf("peak RSS %.0f MiB, at far fewer active keys than 1,000,000 (the generator's populations: 10,000 users, 200 pages, 1,000 products)",
				float64(max(agg.PeakRSSBytes, agg.HWMBytes))/(1<<20)),
			Status: "not measured"})
	}
	flat := Target{Name: "flat throughput", Goal: "no per-event cost growth: flat throughput over a 10-minute run"}
	if acc := maxPh.PerMinuteAccepted; hasMax && len(acc) >= 10 {
		proc := maxPh.PerMinuteProcessed[:min(len(acc), len(maxPh.PerMinuteProcessed))]
		flat.Measured = fmt.Sprintf("events/s per minute of sending: accepted first %.0f, last %.0f (min %.0f, max %.0f), minutes 2–4 → last 3 %s; counted first %.0f, last %.0f (min %.0f, max %.0f), minutes 2–4 → last 3 %s",
			acc[0], acc[len(acc)-1], slices.Min(acc), slices.Max(acc), rateChange(acc),
			proc[0], proc[len(proc)-1], slices.Min(proc), slices.Max(proc), rateChange(proc))
		if g := costGrowth(PerMinuteCost(res.Samples, maxPh)); g != nil {
			flat.Measured += "; CPU-s per million events, minutes 2–4 → last 3: " + strings.Join(g, ", ")
		}
		// Flat: the mean rate of the last three minutes is at least 90 %
		// of that of minutes 2–4 (the first is warm-up), for what the
		// collector took and for what the pipeline counted: the windows
		// costGrowth compares. Until 2026-11-22 the last minute was
		// compared with the first, and a single minute of the shared
		// host's ±8 % swings decided the verdict. (The cost per process is
		// reported, not judged, for the same reason.)
		flat.Status = status(holdsRate(acc) && holdsRate(proc))
	} else {
		flat.Measured = "run shorter than 10 minutes (use -duration 10m)"
		flat.Status = "not measured"
	}
	return append(out, flat)
}

func (res *Result) phase(name string) (Phase, bool) {
	for _, p := range res.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return Phase{}, false
}

// PerMinuteCost returns per process the CPU seconds it spent per million
// events counted, in each whole minute of phase ph (ph.PerMinuteProcessed),
// from the run's samples: the target "no component's per-event cost grows
// with the events already processed" read directly, where throughput per
// minute only shows it when the machine is otherwise steady. A minute with
// no counted events is NaN.
func PerMinuteCost(samples []Sample, ph Phase) map[string][]float64 {
	cpu := map[string][]Counter{}
	for _, s := range samples {
		if s.Phase != ph.Name {
			continue
		}
		for name, p := range s.Procs {
			cpu[name] = append(cpu[name], Counter{T: s.T, Count: int64(p.CPUSeconds * 1e6)})
		}
	}
	events := ph.PerMinuteProcessed
	out := map[string][]float64{}
	for name, cs := range cpu {
		// The first reading stands for the phase's start: the CPU a
		// process spent before its first sample in the phase is not the
		// phase's.
		micros := PerWindow(append([]Counter{{T: ph.StartS, Count: cs[0].Count}}, cs...), ph.StartS, 60)
		costs := make([]float64, min(len(micros), len(events)))
		for m := range costs {
			costs[m] = math.NaN()
			if events[m] > 0 {
				costs[m] = micros[m] / events[m] // µs per event = CPU-s per million events
			}
		}
		out[name] = costs
	}
	return out
}

// windowMeans returns the mean of minutes 2–4 of v (the first is
// warm-up) and the mean of its last three, NaN minutes left out: the two
// windows the flat target compares. ok is false for fewer than seven
// minutes.
func windowMeans(v []float64) (first, last float64, ok bool) {
	if len(v) < 7 {
		return 0, 0, false
	}
	mean := func(v []float64) float64 {
		s, n := 0.0, 0
		for _, x := range v {
			if !math.IsNaN(x) {
				s += x
				n++
			}
		}
		return s / float64(n)
	}
	return mean(v[1:4]), mean(v[len(v)-3:]), true
}

// rateChange is the change in percent from the mean rate of minutes 2–4
// to that of the last three (windowMeans), or "n/a" for fewer than seven
// minutes.
func rateChange(rates []float64) string {
	first, last, ok := windowMeans(rates)
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%+.0f %%", 100*(last/first-1))
}

// holdsRate reports whether the mean of the last three per-minute rates
// is at least 90 % of the mean of minutes 2–4 (windowMeans); false for
// fewer than seven minutes.
func holdsRate(rates []float64) bool {
	first, last, ok := windowMeans(rates)
	return ok && last >= 0.9*first
}

// costGrowth summarizes per-minute costs (PerMinuteCost) for the flat
// target: per process the mean of minutes 2–4 (the first is warm-up) and
// of the last three, and the change between them in percent; processes in
// name order. It returns nil for fewer than seven minutes.
func costGrowth(costs map[string][]float64) []string {
	names := make([]string, 0, len(costs))
	for n := range costs {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		first, last, ok := windowMeans(costs[n])
		if !ok {
			return nil
		}
		out = append(out, fmt.Sprintf("%s %.1f → %.1f (%+.0f %%)", n, first, last, 100*(last/first-1)))
	}
	return out
}
