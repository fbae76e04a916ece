package faultstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/loadgen"
	"github.com/streamwatch/streamwatch/devstack/stack"
)

// scenario is one fault under load. fault runs after a third of the
// scenario's items were sent and returns when the fault is repaired (the
// service restarted, the server started again).
type scenario struct {
	name  string
	setup func(ctx context.Context) error // before the load; may be nil
	fault func(ctx context.Context) error
}

// result is one row of the table.
type result struct {
	name                  string
	sent, counted         int64 // items the generator had accepted; events_by_type summed over the speed layer
	batch                 int64 // the batch recompute's events_by_type sum
	raw                   int64 // raw events in ClickHouse
	late                  int64 // records the aggregator wrote to events.late during the scenario
	alertsWant, alertsGot int
	resent                int // notifications the webhook got twice (same notificationID)
	recovery              time.Duration
}

func killAndRestart(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := st.KillService(name); err != nil {
			return err
		}
		return st.StartService(ctx, name)
	}
}

func scenarios() []scenario {
	outage := func(stop, start func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := stop(ctx); err != nil {
				return err
			}
			time.Sleep(opts.outage)
			return start(ctx)
		}
	}
	second := map[string]string{}
	twoInstances := func(name string) scenario {
		return scenario{
			name: "two " + name + "s, one killed",
			setup: func(ctx context.Context) error {
				inst, err := st.AddInstance(ctx, name)
				second[name] = inst
				return err
			},
			fault: func(context.Context) error { return st.KillService(second[name]) },
		}
	}
	return []scenario{
		{name: "no fault (baseline)", fault: func(context.Context) error { return nil }},
		{name: "kill -9 collector", fault: killAndRestart(stack.Collector)},
		{name: "kill -9 aggregator", fault: killAndRestart(stack.Aggregator)},
		{name: "kill -9 detector", fault: killAndRestart(stack.Detector)},
		{name: "kill -9 notifier", fault: killAndRestart(stack.Notifier)},
		{name: "kill -9 query", fault: killAndRestart(stack.Query)},
		{name: "broker restart", fault: func(ctx context.Context) error { return st.RestartBroker(ctx) }},
		{name: "clickhouse down " + opts.outage.String(), fault: outage(st.StopClickHouse, st.StartClickHouse)},
		{name: "redis down " + opts.outage.String(), fault: outage(st.StopRedis, st.StartRedis)},
		twoInstances(stack.Aggregator),
		twoInstances(stack.Detector),
	}
}

// base is the event time of the first scenario's first event: yesterday,
// on the hour, so no time bound of the collector refuses it. Scenario k
// starts k hours later; a scenario's events span well under an hour.
func base() time.Time { return time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour) }

// TestFaults runs every scenario in turn on the shared stack and checks,
// after each, counts and alerts exactly; it prints the table at the end.
func TestFaults(t *testing.T) {
	t0 := base()
	var rows []result
	defer func() { printTable(t, rows) }()
	for k, sc := range scenarios() {
		ok := t.Run(sc.name, func(t *testing.T) {
			r := result{name: sc.name}
			defer func() { rows = append(rows, r) }() // also when a check fails
			runScenario(t, k, t0.Add(time.Duration(k)*time.Hour), sc, &r)
		})
		if !ok {
			// Later scenarios would measure the damage of this one.
			break
		}
	}
}

// runScenario runs sc with generator seed 1000+k from event time start and
// fills r as it measures.
func runScenario(t *testing.T, k int, start time.Time, sc scenario, r *result) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	if sc.setup != nil {
		require.NoError(t, sc.setup(ctx), "setup")
	}
	gcfg := loadgen.DefaultConfig(uint64(1000+k), start)
	gcfg.EventsPerSecond = 10 // 180 access-log lines a minute: no client or user reaches 100 by itself
	abusive := fmt.Sprintf("203.0.113.%d", k+1)
	gcfg.Incidents = []loadgen.Incident{{Kind: loadgen.AbusiveClient, At: 2 * time.Minute, Duration: time.Minute, Magnitude: 300, ClientIP: abusive}}
	want := expect(t, gcfg, opts.events)
	require.Contains(t, want.alerts, "client_ip="+abusive+"@"+strconv.FormatInt(start.Add(2*time.Minute).UnixMilli(), 10),
		"the incident must breach the rule")
	r.alertsWant = len(want.alerts)
	lateBefore := lateRecords(t, ctx)

	g, err := loadgen.New(gcfg)
	require.NoError(t, err)
	type sendResult struct {
		rep loadgen.Report
		err error
	}
	sent := make(chan sendResult, 1)
	go func() {
		rep, err := loadgen.Send(ctx, g, loadgen.SendOptions{
			CollectorURL: st.CollectorURL(), Items: int64(opts.events), Batch: 100, Workers: 1,
			Rate: opts.rate, Source: "faults-" + strconv.Itoa(k), RetryFor: 3 * time.Minute, APIKey: st.Keys().Ingest,
		})
		sent <- sendResult{rep, err}
	}()
	time.Sleep(time.Duration(float64(opts.events) / opts.rate / 3 * float64(time.Second)))
	require.NoError(t, sc.fault(ctx), "fault")
	repaired := time.Now()
	s := <-sent
	require.NoError(t, s.err, "load generator")
	require.Zero(t, s.rep.Failed)
	require.Zero(t, s.rep.Rejected)
	r.sent = s.rep.Accepted
	require.EqualValues(t, want.total, r.sent, "the generator's tally")

	from, to := start, start.Add(time.Hour)
	// Converged: raw events, speed-layer counts and alerts all complete.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		r.raw, _ = rawEvents(from, to)
		r.counted, _ = speedCount(from, to)
		got, _ := hook.deliveries(from, to)
		r.alertsGot = len(got)
		if r.raw == want.total && r.counted == want.total && covers(got, want.alerts) {
			break
		}
		if time.Now().After(deadline) {
			r.recovery = time.Since(repaired)
			t.Errorf("not converged %s after the repair: raw %d, counted %d, alerts %d of %d; want %d events",
				r.recovery.Round(time.Second), r.raw, r.counted, len(got), len(want.alerts), want.total)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.recovery = time.Since(repaired)

	drained, cancelDrain := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelDrain()
	require.NoError(t, st.WaitDrained(drained))
	// Settled: nothing changed while the pipeline drained.
	r.raw, err = rawEvents(from, to)
	require.NoError(t, err)
	r.counted, err = speedCount(from, to)
	require.NoError(t, err)
	r.batch, err = batchCount(t, from, to)
	require.NoError(t, err)
	r.late = lateRecords(t, ctx) - lateBefore
	got, resent := hook.deliveries(from, to)
	r.alertsGot, r.resent = len(got), resent

	require.Equal(t, want.total, r.raw, "raw events in ClickHouse (lost or doubled)")
	require.Equal(t, want.total, r.counted, "events_by_type in the speed layer (lost or double-counted)")
	require.Equal(t, want.total, r.batch, "events_by_type in the batch recompute")
	require.Zero(t, r.late, "events sent to events.late")
	for key := range want.alerts {
		require.Equal(t, 1, got[key], "alert %s: distinct notifications", key)
	}
	for key := range got {
		require.Contains(t, want.alerts, key, "unexpected alert")
	}
	if sc.name != "kill -9 notifier" {
		// Only a notifier killed between the receiver's 200 and its done
		// marker may send a notification again (docs/notifier.md).
		require.Zero(t, resent, "notifications sent twice")
	}
	for _, name := range stack.ServiceNames() {
		require.True(t, st.ServiceRunning(name), "%s is running", name)
	}
}

// expectation is what a scenario's traffic must produce.
type expectation struct {
	total  int64
	alerts map[string]bool // alertKey of every episode the built-in rules fire
}

// expect replays the generator (deterministic for a Config) and derives the
// tally and the alerts of the built-in rules: a client IP with more than 100
// requests, or a user with more than 100 events, in a one-minute window;
// consecutive breaching minutes are one episode that starts at the first.
func expect(t *testing.T, cfg loadgen.Config, n int) expectation {
	t.Helper()
	g, err := loadgen.New(cfg)
	require.NoError(t, err)
	perMinute := map[string]map[int64]int{} // entity key -> minute -> count
	add := func(entity string, tm time.Time) {
		if perMinute[entity] == nil {
			perMinute[entity] = map[int64]int{}
		}
		perMinute[entity][tm.Truncate(time.Minute).UnixMilli()]++
	}
	for range n {
		it := g.Next()
		switch {
		case it.Line != "":
			add("client_ip="+it.ClientIP, it.Time)
		case it.Event["user_id"] != nil:
			add("user_id="+it.Event["user_id"].(string), it.Time)
		}
	}
	e := expectation{total: g.Tally().Total, alerts: map[string]bool{}}
	for entity, minutes := range perMinute {
		var breach []int64
		for m, c := range minutes {
			if c > 100 {
				breach = append(breach, m)
			}
		}
		slices.Sort(breach)
		for i, m := range breach {
			if i == 0 || breach[i-1] != m-60_000 {
				e.alerts[entity+"@"+strconv.FormatInt(m, 10)] = true
			}
		}
	}
	return e
}

func covers(got map[string]int, want map[string]bool) bool {
	for k := range want {
		if got[k] == 0 {
			return false
		}
	}
	return true
}

func rawEvents(from, to time.Time) (int64, error) {
	s, err := clickhouse(fmt.Sprintf("SELECT count() FROM streamwatch.events FINAL WHERE event_time_ms >= %d AND event_time_ms < %d",
		from.UnixMilli(), to.UnixMilli()))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// speedCount sums events_by_type over [from, to) as the query API serves it
// (GET /api/v1/series: latest revision of every window, summed over shards).
func speedCount(from, to time.Time) (int64, error) {
	q := url.Values{"metric": {"events_by_type"}, "from": {strconv.FormatInt(from.UnixMilli(), 10)},
		"to": {strconv.FormatInt(to.UnixMilli(), 10)}, "step": {"1h"}, "group_by": {"type"}}
	resp, err := st.Client().Get(st.QueryURL() + "/api/v1/series?" + q.Encode())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("series: %s: %s", resp.Status, body)
	}
	var s struct {
		Series []struct {
			Points []struct {
				Value float64 `json:"value"`
				Layer string  `json:"layer"`
			} `json:"points"`
		} `json:"series"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return 0, err
	}
	var n float64
	for _, se := range s.Series {
		for _, p := range se.Points {
			n += p.Value
		}
	}
	return int64(n), nil
}

// batchCount runs the batch recompute of events_by_type over [from, to)
// (POST /api/v1/batch/runs), requires an empty divergence report against
// the speed layer, and returns the batch layer's sum.
func batchCount(t *testing.T, from, to time.Time) (int64, error) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"from": from.UnixMilli(), "to": to.UnixMilli(), "metrics": []string{"events_by_type"}})
	resp, err := st.Client().Post(st.QueryURL()+"/api/v1/batch/runs", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("batch run: %s: %s", resp.Status, b)
	}
	var run struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(b, &run); err != nil {
		return 0, err
	}
	require.Equal(t, "done", run.Status, run.Error)
	var report struct {
		Compared    int               `json:"compared"`
		Divergent   int               `json:"divergent"`
		Divergences []json.RawMessage `json:"divergences"`
	}
	getJSON(t, st.QueryURL()+"/api/v1/batch/runs/"+url.PathEscape(run.ID), &report)
	require.Positive(t, report.Compared)
	require.Zero(t, report.Divergent, "speed vs batch: %s", report.Divergences)
	s, err := clickhouse(fmt.Sprintf("SELECT sum(count) FROM streamwatch.metric_windows_batch WHERE run_id = '%s' AND metric = 'events_by_type'", run.ID))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// lateRecords returns the end offsets of events.late summed over its
// partitions: records the aggregator found too late so far.
func lateRecords(t *testing.T, ctx context.Context) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "events.late")
	require.NoError(t, err)
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func printTable(t *testing.T, rows []result) {
	var b strings.Builder
	fmt.Fprintf(&b, "fault suite, %s, %d items per scenario at %.0f items/s, outages %s\n",
		time.Now().UTC().Format(time.RFC3339), opts.events, opts.rate, opts.outage)
	fmt.Fprintf(&b, "| %-28s | %6s | %7s | %6s | %6s | %4s | %15s | %6s | %8s |\n",
		"scenario", "sent", "counted", "batch", "raw", "late", "alerts exp/got", "resent", "recovery")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 30), strings.Repeat("-", 8), strings.Repeat("-", 9),
		strings.Repeat("-", 8), strings.Repeat("-", 8), strings.Repeat("-", 6), strings.Repeat("-", 17), strings.Repeat("-", 8), strings.Repeat("-", 10))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %-28s | %6d | %7d | %6d | %6d | %4d | %15s | %6d | %8s |\n", r.name, r.sent, r.counted, r.batch, r.raw, r.late,
			fmt.Sprintf("%d/%d", r.alertsWant, r.alertsGot), r.resent, r.recovery.Round(100*time.Millisecond))
	}
	fmt.Print(b.String())
	t.Log("\n" + b.String())
	if opts.report != "" {
		if err := os.WriteFile(opts.report, []byte(b.String()), 0o644); err != nil {
			t.Errorf("write %s: %v", opts.report, err)
		}
	}
}
