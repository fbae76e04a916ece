package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// BaseName is the file name stem of a result: <date>-<host>, with
// -<duration> appended when the phases did not last DefaultDuration (so a
// 10-minute run does not replace the day's default run).
func BaseName(res *Result) string {
	host := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, res.Host)
	base := res.Date.Format("2006-01-02") + "-" + host
	if d := time.Duration(res.Config.DurationS * float64(time.Second)); d != DefaultDuration {
		base += "-" + d.String()
	}
	return base
}

// WriteResults writes <dir>/<BaseName>.json, .md and the PNG plots, and
// returns the paths written.
func WriteResults(res *Result, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, BaseName(res))
	plots, err := WritePlots(res, base)
	if err != nil {
		return nil, err
	}
	j, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	rel := make([]string, len(plots))
	for i, p := range plots {
		rel[i] = filepath.Base(p)
	}
	written := append(plots, base+".json", base+".md")
	if err := os.WriteFile(base+".json", append(j, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(base+".md", Markdown(res, rel), 0o644); err != nil {
		return nil, err
	}
	return written, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Markdown renders res as a report; plots are file names relative to the
// report.
func Markdown(res *Result, plots []string) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Streamwatch end-to-end benchmark, %s, %s\n\n", res.Date.Format("2006-01-02 15:04 UTC"), res.Host)
	p("Machine: %d CPUs, %s. Load average (1/5/15 min) before %.2f/%.2f/%.2f, after %.2f/%.2f/%.2f: the machine is shared, so other work competes for the CPUs.\n\n",
		res.CPUs, res.GoVersion, res.LoadBefore[0], res.LoadBefore[1], res.LoadBefore[2], res.LoadAfter[0], res.LoadAfter[1], res.LoadAfter[2])
	if res.Note != "" {
		p("%s\n\n", res.Note)
	}
	c := res.Config
	p("Settings: %.0f s of sending per phase, generator with %d concurrent requests of %d items, %d partitions per topic, a live probe and a breach probe every %.0f s. ",
		c.DurationS, c.Workers, c.Batch, c.Partitions, c.ProbeIntervalS)
	p("Phase `max` sends as fast as the collector accepts; phase `half` at 50 %% of the sustainable rate of `max`. Processed = counted in the aggregator's `events_by_type` windows in ClickHouse; loss = generator tally + accepted probes − counted.\n\n")

	p("## Targets\n\n| target | goal | measured | status |\n|---|---|---|---|\n")
	for _, t := range res.Targets {
		p("| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, t.Status)
	}

	p("\n## Throughput\n\n| phase | asked events/s | accepted | accepted events/s | counted (windows) | stored (raw events) | loss | processed events/s | sent for | counted after |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, ph := range res.Phases {
		asked := "max"
		if ph.TargetRate > 0 {
			asked = fmt.Sprintf("%.0f", ph.TargetRate)
		}
		drained := fmt.Sprintf("%.1f s", ph.ProcessedSeconds)
		if ph.DrainTimedOut {
			drained = fmt.Sprintf("not all (gave up at %.0f s)", ph.ProcessedSeconds)
		}
		p("| %s | %s | %d | %.0f | %d | %d | %d | %.0f | %.1f s | %s |\n", ph.Name, asked, ph.Accepted, ph.AcceptedRate,
			ph.Counted, ph.Stored, ph.Loss, ph.ProcessedRate, ph.SendSeconds, drained)
	}
	for _, ph := range res.Phases {
		if ph.Rejected+ph.Failed > 0 || ph.SendErrors > 0 {
			p("\nPhase %s: %d rejected, %d failed items, %d send errors (first: %s).\n", ph.Name, ph.Rejected, ph.Failed, ph.SendErrors, ph.FirstSendError)
		}
	}
	for _, e := range res.PhaseErrors {
		p("\nPhase error: %s\n", e)
	}

	p("\n## Ceiling: the broker path alone\n\n")
	if res.CeilingError != "" {
		p("Not measured: %s\n", res.CeilingError)
	} else {
		cl := res.Ceiling
		p("%d of the collector's own `events.raw` batch records (%d distinct, %.0f events per record) produced to and consumed from the embedded broker by one franz-go client each, every record decoded with `events.DecodeBatch`: **%.0f events/s** (%.1f s, %.0f MiB, %.0f events per CPU-second of this process).\n\n",
			cl.Records, cl.SourceRecords, Ratio(float64(cl.Events), float64(cl.Records)), cl.EventsPerSecond, cl.Seconds, mib(cl.Bytes), cl.EventsPerCPUSecond)
		p("Full pipeline / ceiling = **%.3f** (sustainable rate of `max` over the ceiling).\n", res.PipelineVsCeiling)
	}

	p("\n## Latency\n\nFrom the probe's POST to the collector until the live API shows its series (polled every %.0f ms), or until the webhook receives its alert.\n\n| phase | path | probes | lost | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|\n", c.LivePollS*1000)
	for _, ph := range res.Phases {
		for _, l := range []struct {
			path string
			s    LatencySummary
		}{{"receive → /api/v1/live", ph.LiveLatency}, {"breach → webhook", ph.BreachLatency}} {
			p("| %s | %s | %d | %d | %s | %s | %s | %s |\n", ph.Name, l.path, l.s.N, l.s.Lost,
				fmtMs(l.s.N, l.s.P50), fmtMs(l.s.N, l.s.P90), fmtMs(l.s.N, l.s.P99), fmtMs(l.s.N, l.s.Max))
		}
	}

	p("\n## CPU and memory per process\n\n`bench` is this process: the embedded broker and the load generator.\n\n| process | phase | CPU s | CPU s per million events | peak RSS MiB | VmHWM MiB |\n|---|---|---|---|---|---|\n")
	for _, name := range procNames(res) {
		for _, ph := range res.Phases {
			if pp, ok := ph.Procs[name]; ok {
				p("| %s | %s | %.1f | %.1f | %.0f | %.0f |\n", name, ph.Name, pp.CPUSeconds, pp.CPUPerMillion, mib(pp.PeakRSSBytes), mib(pp.HWMBytes))
			}
		}
	}

	p("\n## Consumer lag\n\nLargest sampled lag per consumer group, in records, not events (an `events.raw` record carries up to `COLLECTOR_MAX_BATCH` events, a `metrics.windows` record up to 500 window results); over time in the lag plot.\n\n| group |")
	for _, ph := range res.Phases {
		p(" %s |", ph.Name)
	}
	p("\n|---|%s\n", strings.Repeat("---|", len(res.Phases)))
	for _, g := range groupsOf(res.Samples) {
		p("| %s |", g)
		for _, ph := range res.Phases {
			p(" %d |", ph.MaxLag[g])
		}
		p("\n")
	}

	p("\n## Throughput per minute\n\n")
	for _, ph := range res.Phases {
		p("- %s: accepted %s; processed %s events/s\n", ph.Name, fmtRates(ph.PerMinuteAccepted), fmtRates(ph.PerMinuteProcessed))
	}
	for _, ph := range res.Phases {
		costs := PerMinuteCost(res.Samples, ph)
		names := make([]string, 0, len(costs))
		for n := range costs {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 || len(costs[names[0]]) < 2 {
			continue
		}
		minutes := len(costs[names[0]]) // every process is sampled at the same times
		p("\nCPU seconds per million counted events, per minute of phase `%s` (flat is the target):\n\n| process |", ph.Name)
		for m := range minutes {
			p(" %d |", m+1)
		}
		p("\n|---|%s\n", strings.Repeat("---|", minutes))
		for _, n := range names {
			p("| %s |", n)
			for _, c := range costs[n] {
				p(" %.1f |", c)
			}
			p("\n")
		}
	}

	if len(res.Profiles) > 0 || res.ProfileNote != "" {
		p("\n## CPU profiles\n\n%s.\n", res.ProfileNote)
		names := make([]string, 0, len(res.Profiles))
		for n := range res.Profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			pr := res.Profiles[n]
			p("\n### %s\n\n| self %% | function | | cumulative %% | function |\n|---|---|---|---|---|\n", n)
			for i := range max(len(pr.Self), len(pr.Cumulative)) {
				var a, b ProfileEntry
				if i < len(pr.Self) {
					a = pr.Self[i]
				}
				if i < len(pr.Cumulative) {
					b = pr.Cumulative[i]
				}
				p("| %s | `%s` | | %s | `%s` |\n", pct(a.Percent), a.Symbol, pct(b.Percent), b.Symbol)
			}
		}
	}

	if len(plots) > 0 {
		p("\n## Plots\n\n")
		for _, f := range plots {
			p("![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
		}
	}
	return b.Bytes()
}

func procNames(res *Result) []string {
	seen := map[string]bool{}
	for _, ph := range res.Phases {
		for n := range ph.Procs {
			seen[n] = true
		}
	}
	order := []string{"collector", "aggregator", "detector", "notifier", "query", "redis", "clickhouse", "bench"}
	var out []string
	for _, n := range order {
		if seen[n] {
			out = append(out, n)
			delete(seen, n)
		}
	}
	rest := make([]string, 0, len(seen))
	for n := range seen {
		rest = append(rest, n)
	}
	slices.Sort(rest)
	return append(out, rest...)
}

func fmtMs(n int, v float64) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func pct(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtRates(rs []float64) string {
	if len(rs) == 0 {
		return "– (phase shorter than a minute of samples)"
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%.0f", r)
	}
	return strings.Join(s, ", ")
}
