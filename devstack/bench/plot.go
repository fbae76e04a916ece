package bench

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlots writes the run's PNG plots next to base (a path without
// extension) and returns their paths:
//   - base-throughput.png: accepted and processed events/s over time;
//   - base-latency.png: every probe's latency against its send time;
//   - base-latency-hist.png: histogram of the live-API latencies;
//   - base-lag.png: consumer lag per group over time.
func WritePlots(res *Result, base string) ([]string, error) {
	var out []string
	for _, pl := range []struct {
		suffix string
		make   func(*Result) (*plot.Plot, error)
	}{
		{"-throughput.png", throughputPlot},
		{"-latency.png", latencyPlot},
		{"-latency-hist.png", histogramPlot},
		{"-lag.png", lagPlot},
	} {
		p, err := pl.make(res)
		if err != nil {
			return out, fmt.Errorf("plot %s: %w", pl.suffix, err)
		}
		if p == nil {
			continue
		}
		path := base + pl.suffix
		if err := p.Save(20*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
			return out, fmt.Errorf("save %s: %w", path, err)
		}
		out = append(out, path)
	}
	return out, nil
}

func xys(pts []Point) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	for i, p := range pts {
		out[i].X, out[i].Y = p.T, p.V
	}
	return out
}

// phaseRates returns rates over five samples of the accepted and processed
// counters, each phase on its own (counters restart per phase).
func phaseRates(samples []Sample) (accepted, processed []Point) {
	var acc, proc []Counter
	flush := func() {
		accepted = append(accepted, Rates(acc, 5)...)
		processed = append(processed, Rates(proc, 5)...)
		acc, proc = nil, nil
	}
	phase := ""
	for _, s := range samples {
		if s.Phase != phase {
			flush()
			phase = s.Phase
		}
		acc = append(acc, Counter{T: s.T, Count: s.Accepted})
		if s.Processed >= 0 {
			proc = append(proc, Counter{T: s.T, Count: s.Processed})
		}
	}
	flush()
	return accepted, processed
}

func throughputPlot(res *Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Throughput, 5-sample moving rate (phases max, then half)"
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "events/s"
	acc, proc := phaseRates(res.Samples)
	if err := plotutil.AddLines(p, "accepted by the collector", xys(acc), "counted by the aggregator", xys(proc)); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	return p, nil
}

func probePoints(res *Result, breach bool) plotter.XYs {
	var out plotter.XYs
	for _, ph := range res.Phases {
		recs := ph.LiveProbes
		if breach {
			recs = ph.BreachProbes
		}
		for _, r := range recs {
			if r.Arrived {
				out = append(out, plotter.XY{X: r.T, Y: r.LatencyMs})
			}
		}
	}
	return out
}

func latencyPlot(res *Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "End-to-end latency of probes"
	p.X.Label.Text = "probe sent, seconds since start"
	p.Y.Label.Text = "ms"
	for i, s := range []struct {
		name   string
		breach bool
	}{{"receive → /api/v1/live", false}, {"breach → webhook", true}} {
		pts := probePoints(res, s.breach)
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	p.Legend.Top = true
	return p, nil
}

func histogramPlot(res *Result) (*plot.Plot, error) {
	var vals plotter.Values
	for _, xy := range probePoints(res, false) {
		vals = append(vals, xy.Y)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Latency receive → /api/v1/live (all phases)"
	p.X.Label.Text = "ms"
	p.Y.Label.Text = "probes"
	h, err := plotter.NewHist(vals, 30)
	if err != nil {
		return nil, err
	}
	h.FillColor = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	p.Add(h)
	return p, nil
}

func lagPlot(res *Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Consumer lag per group"
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "records"
	var args []any
	for _, g := range groupsOf(res.Samples) {
		var pts plotter.XYs
		for _, s := range res.Samples {
			if l, ok := s.Lag[g]; ok {
				pts = append(pts, plotter.XY{X: s.T, Y: float64(l)})
			}
		}
		args = append(args, g, pts)
	}
	if len(args) == 0 {
		return nil, nil
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	return p, nil
}
