package ports_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/accesslog"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

const apacheLogs = "../../../../testdata/apache_logs"

// accessLogEvents parses the real access log into events, as the collector
// does.
func accessLogEvents(t testing.TB) []events.Event {
	t.Helper()
	f, err := os.Open(apacheLogs)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	var out []events.Event
	for n := int64(1); sc.Scan(); n++ {
		r, err := accesslog.ParseCombined(sc.Text())
		require.NoError(t, err, "line %d", n)
		out = append(out, r.Event("apache_logs", n, time.UnixMilli(may17)))
	}
	require.NoError(t, sc.Err())
	return out
}

// syntheticEvents returns service requests and behaviour events around
// the log's time, shuffled (out of order), some ids repeated.
func syntheticEvents(n int) []events.Event {
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]events.Event, 0, n)
	for i := range n {
		t := may17 + rng.Int64N(3*3_600_000)
		if i%2 == 0 {
			out = append(out, events.Event{V: 1, ID: fmt.Sprintf("svc-%d", i), Type: events.TypeServiceRequest, Time: t, ReceiveTime: t,
				Key: fmt.Sprintf("svc%d", i%4), Service: fmt.Sprintf("svc%d", i%4), Endpoint: "/x", LatencyMs: float64(rng.IntN(500)) + 0.5,
				Status: []int{200, 200, 201, 404, 500, 503}[rng.IntN(6)]})
		} else {
			out = append(out, events.Event{V: 1, ID: fmt.Sprintf("pv-%d", i), Type: events.TypePageView, Time: t, ReceiveTime: t,
				Key: fmt.Sprintf("u%d", i%50), UserID: fmt.Sprintf("u%d", i%50), Page: fmt.Sprintf("/p%d", i%7)})
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return append(out, out[:100]...) // re-sent events: counted once
}

type winKey struct {
	metric, labels string
	start          int64
}

// bruteForce computes the definitions over evs in Go, event by event, for
// the whole windows inside [from, to): the headline value of each window
// and label set, as the aggregator defines it.
func bruteForce(t *testing.T, defs []metrics.Definition, evs []events.Event, from, to int64) map[winKey]float64 {
	t.Helper()
	type acc struct {
		count         int64
		sum, min, max float64
		distinct      map[string]bool
	}
	seen := map[string]bool{}
	accs := map[winKey]*acc{}
	for i := range defs {
		d := &defs[i]
		if _, err := batch.Compile(d, "x.events", from, to); err != nil {
			continue
		}
		start, end, _ := batch.Span(d, from, to)
		size := d.Window.Size.Milliseconds()
		step := size
		if d.Window.Kind == metrics.WindowHopping {
			step = d.Window.Slide.Milliseconds()
		}
		for j := range evs {
			e := &evs[j]
			id := d.Name + "|" + string(e.Type) + "|" + e.ID
			if seen[id] || !d.Matches(e) {
				continue
			}
			seen[id] = true
			for ws := e.Time / step * step; ws > e.Time-size; ws -= step {
				if ws < start || ws+size > end {
					continue
				}
				k := winKey{d.Name, metrics.LabelsKey(d.Labels(e)), ws}
				a := accs[k]
				if a == nil {
					a = &acc{min: math.Inf(1), max: math.Inf(-1), distinct: map[string]bool{}}
					accs[k] = a
				}
				v := d.ValueOf(e)
				a.count++
				a.sum += v
				a.min, a.max = math.Min(a.min, v), math.Max(a.max, v)
				a.distinct[d.DistinctOf(e)] = true
			}
		}
	}
	out := map[winKey]float64{}
	for k, a := range accs {
		var d *metrics.Definition
		for i := range defs {
			if defs[i].Name == k.metric {
				d = &defs[i]
			}
		}
		switch d.Headline() {
		case metrics.AggCount, metrics.AggTopK:
			out[k] = float64(a.count)
		case metrics.AggSum:
			out[k] = a.sum
		case metrics.AggMin:
			out[k] = a.min
		case metrics.AggMax:
			out[k] = a.max
		case metrics.AggAvg:
			out[k] = a.sum / float64(a.count)
		case metrics.AggRate:
			out[k] = float64(a.count) / d.Window.Size.Seconds()
		case metrics.AggDistinct:
			out[k] = float64(len(a.distinct))
		default:
			delete(accs, k) // quantiles: not brute-forced here
		}
	}
	return out
}

// TestBatchLayer replays the real access log plus a shuffled synthetic
// stream into the events table, runs the batch job, and checks: the batch
// view equals a brute-force computation of every compilable definition;
// the divergence report is empty when the speed layer holds the exact
// values (split over two shards); after one speed-layer window is made
// wrong the report lists exactly that window; series answer from the batch
// view inside the run and from the speed layer outside, per point.
func TestBatchLayer(t *testing.T) {
	if testing.Short() {
		t.Skip("real ClickHouse and the access log")
	}
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	evs := append(accessLogEvents(t), syntheticEvents(4000)...)
	projectEvents(t, e, evs)
	defs := metrics.DefaultDefinitions()
	from, to := int64(1431856800000), int64(1431856800000+2*3_600_000) // 10:00–12:00
	// Chunks of 7 minutes: window starts split mid-hour, and hopping
	// windows cross chunk boundaries.
	run, err := e.app.Commands.RunBatch.WithPlan(7*time.Minute, 2).Handle(ctx, "run1", from, to, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusDone, run.Status)
	require.Contains(t, run.Skipped, "user_sessions", "session windows have no batch form")
	require.Contains(t, run.Metrics, "requests_5m")

	all := requireBruteForce(t, e, "run1", defs, evs, from, to)
	require.Greater(t, len(all), 1000)

	// An exact speed layer: the verified values (and the exact quantiles)
	// as window results; additive headlines split over two shards
	// (partials add), the others whole on one shard.
	var speed []metrics.Result
	for k, v := range all {
		d := defByName(defs, k.metric)
		labels := labelsOf(t, e, k)
		parts := []float64{v}
		if h := d.Headline(); h == metrics.AggCount || h == metrics.AggSum {
			half := math.Floor(v / 2)
			parts = []float64{half, v - half}
		}
		for shard, part := range parts {
			speed = append(speed, metrics.Result{V: 1, Metric: k.metric, Labels: labels, WindowStart: k.start,
				WindowEnd: k.start + d.Window.Size.Milliseconds(), Shard: int32(shard), Kind: metrics.KindFinal, Revision: 1,
				Count: int64(part), Value: part, Sum: part})
		}
	}
	require.NoError(t, e.storage.Windows.InsertWindows(ctx, speed))
	var rep ports.BatchRunResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/batch/runs/run1", &rep))
	require.Equal(t, "done", rep.Run.Status)
	require.Equal(t, len(all), rep.Compared)
	require.Zero(t, rep.Divergent, "exact speed layer: %+v", rep.Divergences)

	// Inject a known error: one window of requests_by_status, revised.
	wrong := speed[0]
	for _, r := range speed {
		if r.Metric == "requests_by_status" && r.Labels["status"] == "200" {
			wrong = r
			break
		}
	}
	wrong.Revision, wrong.Value = 2, wrong.Value+3
	require.NoError(t, e.storage.Windows.InsertWindows(ctx, []metrics.Result{wrong}))
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/batch/runs/run1", &rep))
	require.Equal(t, 1, rep.Divergent)
	found := rep.Divergences
	require.Len(t, found, 1)
	require.Equal(t, "requests_by_status", found[0].Metric)
	require.Equal(t, wrong.WindowStart, found[0].WindowStart)
	require.Equal(t, map[string]string{"status": "200"}, found[0].Labels)
	require.InDelta(t, 3, found[0].Diff, 1e-9)

	// Serving: inside the run the batch answers (the injected error is
	// not served), outside the speed layer.
	outside := result(map[string]string{"status": "200"}, 0, to+60_000, 1, 5)
	outside.Metric = "requests_by_status"
	require.NoError(t, e.storage.Windows.InsertWindows(ctx, []metrics.Result{outside}))
	var series ports.SeriesResponse
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/series?metric=requests_by_status&step=1m&from=%d&to=%d&filter=status=200",
		from-3_600_000, to+3_600_000), &series))
	require.Len(t, series.Series, 1)
	layers := map[string]int{}
	for _, p := range series.Series[0].Points {
		layers[p.Layer]++
		inRun := p.T >= from && p.T < to
		require.Equal(t, map[bool]string{true: "batch", false: "speed"}[inRun], p.Layer, "t=%d", p.T)
		if p.T == wrong.WindowStart {
			require.InDelta(t, all[winKey{"requests_by_status", "status=200", wrong.WindowStart}], p.Value, 1e-9, "batch value, not the wrong speed value")
		}
	}
	require.Positive(t, layers["batch"])
	require.Positive(t, layers["speed"])

	var errBody map[string]any
	require.Equal(t, http.StatusNotFound, e.get(t, "/api/v1/batch/runs/nope", &errBody))
	require.Equal(t, http.StatusBadRequest, e.get(t, "/api/v1/batch/runs/x'%20OR%201=1", &errBody))
	require.Equal(t, http.StatusBadRequest, e.get(t, "/api/v1/batch/runs/run1?min_rel_diff=-1", &errBody))
}

// projectEvents projects evs through the events.raw handler in records of
// 500 events, as the collector packs them.
func projectEvents(t *testing.T, e *env, evs []events.Event) {
	t.Helper()
	for i := 0; i < len(evs); i += 500 {
		require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, evs[i:min(i+500, len(evs))])))
	}
}

// requireBruteForce checks that run's batch view equals a brute-force
// computation of defs over evs (each event id once) for every window whose
// headline is not a quantile, and returns every window of the run.
func requireBruteForce(t *testing.T, e *env, run string, defs []metrics.Definition, evs []events.Event, from, to int64) map[winKey]float64 {
	t.Helper()
	want := bruteForce(t, defs, evs, from, to)
	got, all := map[winKey]float64{}, map[winKey]float64{}
	rows, err := e.ch.Query(context.Background(), "SELECT metric, labels_key, window_start_ms, value FROM streamwatch.metric_windows_batch FINAL WHERE run_id = ?", run)
	require.NoError(t, err)
	for rows.Next() {
		var k winKey
		var v float64
		require.NoError(t, rows.Scan(&k.metric, &k.labels, &k.start, &v))
		all[k] = v
		if _, quantile := metrics.QuantileOf[defHeadline(defs, k.metric)]; quantile {
			continue
		}
		got[k] = v
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(want), len(got))
	for k, v := range want {
		require.True(t, batch.Equal(v, got[k]), "%v: brute force %v, batch %v", k, v, got[k])
	}
	return all
}

// TestBatchMergedReadCountsReplayedEventsOnce checks the batch job's read
// without FINAL: the access log and a synthetic stream are projected, then
// partly replayed (the same records again, and a record holding one event
// twice), so every partition holds duplicates across and inside insert
// parts. A run over the whole days compacts the partitions and reads them
// without FINAL, and still equals the brute force (each event id once).
// A later replay into one day makes that partition unmerged again: a run
// reading only part of that day reads it with FINAL, a run over the whole
// range compacts it again; both stay exact.
func TestBatchMergedReadCountsReplayedEventsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("real ClickHouse and the access log")
	}
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	evs := append(accessLogEvents(t), syntheticEvents(2000)...)
	project := func(evs []events.Event) { projectEvents(t, e, evs) }
	project(evs)
	project(evs[:3000])                                                 // a replay of the log's first records
	project([]events.Event{evs[5000], evs[5000], evs[6000], evs[7000]}) // duplicates inside one insert
	require.Greater(t, e.count(t, "SELECT count() FROM streamwatch.events"), e.count(t, "SELECT count() FROM streamwatch.events FINAL"),
		"the table holds duplicates")

	defs := metrics.DefaultDefinitions()
	day := int64(24 * 3_600_000)
	from, to := (may17/day-1)*day, (may17/day+4)*day // 2015-05-16..2015-05-21: every event, whole days
	stats := e.storage.Batch.Stats()
	run, err := e.app.Commands.RunBatch.Handle(ctx, "all1", from, to, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusDone, run.Status)
	after := e.storage.Batch.Stats()
	require.Positive(t, after.Optimized-stats.Optimized, "partitions compacted")
	require.Positive(t, after.Merged-stats.Merged, "queries read without FINAL")
	require.Equal(t, stats.Final, after.Final, "every query read merged parts")
	require.Greater(t, len(requireBruteForce(t, e, "all1", defs, evs, from, to)), 1000)

	// Replay into 2015-05-17 again: that partition holds an insert part.
	project(evs[:1500])
	stats = e.storage.Batch.Stats()
	run, err = e.app.Commands.RunBatch.Handle(ctx, "part1", may17, may17+2*3_600_000, []string{"requests", "requests_by_status"})
	require.NoError(t, err)
	require.Equal(t, batch.StatusDone, run.Status)
	after = e.storage.Batch.Stats()
	require.Equal(t, stats.Optimized, after.Optimized, "a run reading part of a day does not compact it")
	require.Positive(t, after.Final-stats.Final, "the unmerged day is read with FINAL")
	requireBruteForce(t, e, "part1", pick(defs, "requests", "requests_by_status"), evs, may17, may17+2*3_600_000)

	stats = e.storage.Batch.Stats()
	run, err = e.app.Commands.RunBatch.Handle(ctx, "all2", from, to, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusDone, run.Status)
	after = e.storage.Batch.Stats()
	require.Equal(t, uint64(1), after.Optimized-stats.Optimized, "only the replayed day is compacted again")
	require.Equal(t, stats.Final, after.Final)
	requireBruteForce(t, e, "all2", defs, evs, from, to)
}

// pick returns the definitions named.
func pick(defs []metrics.Definition, names ...string) []metrics.Definition {
	var out []metrics.Definition
	for _, n := range names {
		out = append(out, *defByName(defs, n))
	}
	return out
}

func defByName(defs []metrics.Definition, name string) *metrics.Definition {
	for i := range defs {
		if defs[i].Name == name {
			return &defs[i]
		}
	}
	return nil
}

func defHeadline(defs []metrics.Definition, name string) string {
	return defByName(defs, name).Headline()
}

// labelsOf reads back the label map of a batch window by its labels key.
func labelsOf(t *testing.T, e *env, k winKey) map[string]string {
	t.Helper()
	var names, values []string
	require.NoError(t, e.ch.QueryRow(context.Background(), "SELECT label_names, label_values FROM streamwatch.metric_windows_batch "+
		"WHERE run_id = 'run1' AND metric = ? AND labels_key = ? AND window_start_ms = ? LIMIT 1", k.metric, k.labels, k.start).Scan(&names, &values))
	if len(names) == 0 {
		return nil
	}
	m := map[string]string{}
	for i := range names {
		m[names[i]] = values[i]
	}
	return m
}

func TestStartBatchRunOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, manyEvents(120))))
	var run ports.BatchRunJSON
	require.Equal(t, http.StatusCreated, e.send(t, http.MethodPost, "/api/v1/batch/runs",
		fmt.Sprintf(`{"from":%d,"to":"2015-05-17T11:00:00Z","metrics":["requests","requests_by_status"]}`, may17), &run))
	require.Equal(t, batch.StatusDone, run.Status)
	require.Equal(t, []string{"requests", "requests_by_status"}, run.Metrics)
	require.Positive(t, run.Windows)
	var rep ports.BatchRunResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/batch/runs/"+run.ID, &rep))
	require.Equal(t, run.ID, rep.Run.ID)
	require.Equal(t, int(run.Windows), rep.Divergent, "no speed layer here: every batch window is batch-only")

	for body, want := range map[string]string{
		`{"from":1,"to":1}`:                    "to",
		`{"from":"x","to":5}`:                  "from",
		`{"from":1,"to":5,"metrics":["nope"]}`: "no such definition",
		`{"from":1,"to":5,"metrics":["a'--"]}`: "metric",
		`{"from":1,"to":5,"bogus":true}`:       "unknown field",
	} {
		var errBody map[string]any
		require.Equal(t, http.StatusBadRequest, e.send(t, http.MethodPost, "/api/v1/batch/runs", body, &errBody), body)
		require.Contains(t, errBody["message"], want, body)
	}
}
