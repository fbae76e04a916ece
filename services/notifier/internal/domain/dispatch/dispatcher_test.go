package dispatch_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// t0 is the scenarios' epoch: Monday 2015-05-18 08:00:00 UTC.
var t0 = time.Date(2015, 5, 18, 8, 0, 0, 0, time.UTC).UnixMilli()

func at(d time.Duration) int64 { return t0 + d.Milliseconds() }

func alert(name, svc, severity, state string, start, end time.Duration) alerts.Alert {
	labels := map[string]string{"alertname": name, "service": svc, "severity": severity}
	a := alerts.Alert{
		V: 1, Fingerprint: alerts.Fingerprint(name, labels), Rule: name, State: state, Severity: severity,
		Labels: labels, StartsAt: at(start),
	}
	if state == alerts.StateResolved {
		a.EndsAt = at(end)
	}
	return a
}

func mustMatchers(t *testing.T, eq map[string]string) silences.Matchers {
	t.Helper()
	ms, err := silences.FromMaps(eq, nil)
	require.NoError(t, err)
	return ms
}

func baseConfig(t *testing.T) dispatch.Config {
	return dispatch.Config{
		Route: &dispatch.Route{
			ID: "0", Receiver: "team", GroupBy: []string{"alertname"},
			GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour,
		},
		SendResolved: map[string]bool{"team": true},
	}
}

// run applies a scenario and renders every notification and outcome as
// "<offset from t0> <receiver> <status> <alerts>" lines.
//
// After every step the state goes through its incremental checkpoint: the
// step's delta is applied to a map of entries (as Redis holds them), a
// fresh state is restored from all entries, it must equal the state, and
// the scenario goes on with the restored state. So every scenario also
// checks that the checkpoint misses no change.
type run struct {
	t       *testing.T
	d       *dispatch.Dispatcher
	st      *dispatch.State
	log     []string
	entries map[string][]byte
}

func newRun(t *testing.T, cfg dispatch.Config) *run {
	t.Helper()
	d, err := dispatch.New(cfg)
	require.NoError(t, err)
	st := dispatch.NewState()
	st.TrackChanges()
	return &run{t: t, d: d, st: st, entries: map[string][]byte{}}
}

// checkpoint takes the step's delta and continues with the state restored
// from all entries, after checking it equals the state.
func (r *run) checkpoint() {
	r.t.Helper()
	set, del, err := r.st.TakeDelta()
	require.NoError(r.t, err)
	maps.Copy(r.entries, set)
	for _, k := range del {
		_, ok := r.entries[k]
		require.True(r.t, ok, "deleted entry %q was written before", k)
		delete(r.entries, k)
	}
	restored := dispatch.NewState()
	restored.TrackChanges()
	require.NoError(r.t, restored.RestoreEntries(maps.Clone(r.entries)))
	want, err := json.Marshal(r.st)
	require.NoError(r.t, err)
	got, err := json.Marshal(restored)
	require.NoError(r.t, err)
	require.JSONEq(r.t, string(want), string(got), "state restored from the checkpoint entries")
	r.st = restored
}

func (r *run) record(res dispatch.Result) {
	type entry struct {
		at   int64
		line string
	}
	var es []entry
	for _, n := range res.Notifications {
		var as []string
		for _, a := range n.Alerts {
			s := a.Labels["service"] + "=" + a.State
			if a.Ack != nil {
				s += "(ack)"
			}
			as = append(as, s)
		}
		es = append(es, entry{n.At, fmt.Sprintf("%s %s %s [%s]", since(n.At), n.Receiver, n.Status, strings.Join(as, " "))})
	}
	for _, o := range res.Outcomes {
		es = append(es, entry{o.At, fmt.Sprintf("%s %s %s %d", since(o.At), o.Receiver, o.Kind, len(o.Fingerprints))})
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].at < es[j].at })
	for _, e := range es {
		r.log = append(r.log, e.line)
	}
	r.checkpoint()
}

func since(ms int64) time.Duration { return time.Duration(ms-t0) * time.Millisecond }

func (r *run) alert(a alerts.Alert)  { r.record(r.d.Alert(r.st, a)) }
func (r *run) until(d time.Duration) { r.record(r.d.Advance(r.st, at(d))) }

func TestGroupingWaitsAndBatches(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "web", "warning", "firing", 10*time.Second, 0))
	r.alert(alert("disk", "db", "warning", "firing", 20*time.Second, 0))
	// A duplicate state change changes nothing.
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.until(3 * time.Minute)
	require.Equal(t, []string{
		"30s team firing [api=firing web=firing]",
		"50s team firing [db=firing]",
	}, r.log)
}

func TestNewAlertWaitsForGroupIntervalAndRepeat(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "web", "warning", "firing", time.Minute, 0)) // after the first flush
	r.until(2*time.Hour + time.Minute)
	require.Equal(t, []string{
		"30s team firing [api=firing]",
		"5m30s team firing [api=firing web=firing]",
		// unchanged: repeated after repeat_interval (1h), on a flush tick
		"1h5m30s team firing [api=firing web=firing]",
	}, r.log, "the 2h5m30s repeat is after the horizon")
}

func TestResolutionSentOnceThenGroupGone(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "web", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "api", "warning", "resolved", 0, 2*time.Minute))
	r.alert(alert("cpu", "web", "warning", "resolved", 0, 7*time.Minute))
	r.until(30 * time.Minute)
	require.Equal(t, []string{
		"30s team firing [api=firing web=firing]",
		"5m30s team firing [web=firing api=resolved]",
		"10m30s team resolved [web=resolved]",
	}, r.log)
	require.Empty(t, r.st.Groups)
	require.Empty(t, r.st.Alerts)
}

func TestResolvedOnlyReceiverGetsNoResolution(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.SendResolved = map[string]bool{}
	r := newRun(t, cfg)
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "api", "warning", "resolved", 0, 2*time.Minute))
	r.until(30 * time.Minute)
	require.Equal(t, []string{"30s team firing [api=firing]"}, r.log)
	require.Empty(t, r.st.Groups)
}

func TestRoutingContinueAndChildren(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	crit := mustMatchers(t, map[string]string{"severity": "critical"})
	re, err := silences.FromMaps(nil, map[string]string{"service": "db|cache"})
	require.NoError(t, err)
	cfg.Route.Routes = []*dispatch.Route{
		{ID: "0.0", Matchers: crit, Receiver: "pager", GroupBy: []string{"service"}, Continue: true,
			GroupInterval: time.Minute, RepeatInterval: time.Hour},
		{ID: "0.1", Matchers: re, Receiver: "dba", GroupBy: []string{"alertname"},
			GroupInterval: time.Minute, RepeatInterval: time.Hour},
	}
	cfg.SendResolved["pager"] = true
	r := newRun(t, cfg)
	r.alert(alert("down", "db", "critical", "firing", 0, 0))   // pager (continue) and dba
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))    // root
	r.alert(alert("slow", "cache", "warning", "firing", 0, 0)) // dba
	r.until(time.Minute)
	sort.Strings(r.log)
	require.Equal(t, []string{
		"0s dba firing [cache=firing]",
		"0s dba firing [db=firing]",
		"0s pager firing [db=firing]",
		"30s team firing [api=firing]",
	}, r.log)
}

func TestInhibitionAndOwedResolution(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Route.GroupBy = []string{"alertname", "service"}
	cfg.Inhibit = []dispatch.InhibitRule{{
		Source: mustMatchers(t, map[string]string{"severity": "critical"}),
		Target: mustMatchers(t, map[string]string{"severity": "warning"}),
		Equal:  []string{"service"},
	}}
	r := newRun(t, cfg)
	r.alert(alert("latency", "api", "warning", "firing", 0, 0))
	r.alert(alert("latency", "web", "warning", "firing", 0, 0))
	r.until(time.Minute) // both warnings notified
	r.alert(alert("down", "api", "critical", "firing", 2*time.Minute, 0))
	// api's warning is inhibited from now on; it resolves while inhibited,
	// and its resolution is still delivered (alertmanager#226).
	r.alert(alert("latency", "api", "warning", "resolved", 0, 4*time.Minute))
	r.until(20 * time.Minute)
	require.Equal(t, []string{
		"30s team firing [api=firing]",
		"30s team firing [web=firing]",
		"2m30s team firing [api=firing]",
		"5m30s team resolved [api=resolved]",
	}, r.log)
	require.Contains(t, r.st.Groups, `0:{alertname="latency",service="web"}`)

	// A warning that starts while inhibited is never sent, only reported.
	r.log = nil
	r.alert(alert("errors", "api", "warning", "firing", 21*time.Minute, 0))
	r.until(40 * time.Minute)
	require.Equal(t, []string{"21m30s team inhibited 1"}, r.log)
}

func TestSilenceMutesAndStillDeliversOwedResolution(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.until(time.Minute)
	r.d.Silence(r.st, silences.Silence{
		V: 1, ID: "s1", Matchers: mustMatchers(t, map[string]string{"service": "api"}),
		StartsAt: at(time.Minute), EndsAt: at(3 * time.Hour), CreatedBy: "ops", UpdatedAt: at(time.Minute),
	})
	r.alert(alert("cpu", "web", "warning", "firing", 2*time.Minute, 0))
	r.until(2 * time.Hour) // api is silenced: not repeated; web is new and sent
	r.alert(alert("cpu", "api", "warning", "resolved", 0, 2*time.Hour+time.Minute))
	r.until(2*time.Hour + 10*time.Minute)
	require.Equal(t, []string{
		"30s team firing [api=firing]",
		"5m30s team firing [web=firing]",
		"5m30s team silenced 1",
		"1h5m30s team firing [web=firing]",
		"2h5m30s team firing [web=firing api=resolved]",
	}, r.log)
}

func TestSilenceUntilResolvedAndExpire(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.d.Silence(r.st, silences.Silence{
		V: 1, ID: "s1", Matchers: mustMatchers(t, map[string]string{"alertname": "cpu"}),
		StartsAt: 0, UntilResolved: true, CreatedBy: "ops",
	})
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "api", "warning", "resolved", 0, 10*time.Minute))
	r.until(20 * time.Minute)
	require.NotZero(t, r.st.Silences["s1"].ExpiredAt, "expired once nothing it muted fires")
	// A new episode is not silenced any more.
	r.alert(alert("cpu", "api", "warning", "firing", 30*time.Minute, 0))
	r.until(31 * time.Minute)
	require.Equal(t, []string{"30s team silenced 1", "30m30s team firing [api=firing]"}, r.log)

	// An explicit expire ends a silence at its time.
	r.log = nil
	r.d.Silence(r.st, silences.Silence{V: 1, ID: "s2", Matchers: mustMatchers(t, map[string]string{"alertname": "disk"}),
		StartsAt: at(30 * time.Minute), EndsAt: at(10 * time.Hour), CreatedBy: "ops", UpdatedAt: 1})
	r.alert(alert("disk", "db", "warning", "firing", 32*time.Minute, 0))
	r.until(40 * time.Minute)
	r.d.Silence(r.st, silences.Silence{V: 1, ID: "s2", Op: silences.OpExpire, UpdatedAt: at(41 * time.Minute)})
	r.until(50 * time.Minute)
	require.Equal(t, []string{"32m30s team silenced 1", "42m30s team firing [db=firing]"}, r.log)
}

func TestAcknowledgedAlertStopsRepeatingButResolves(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	a := alert("cpu", "api", "warning", "firing", 0, 0)
	r.alert(a)
	r.until(time.Minute)
	r.d.Ack(r.st, silences.Ack{V: 1, ID: "k1", Fingerprint: a.Fingerprint, By: "alice", At: at(time.Minute), Comment: "on it"})
	r.until(3 * time.Hour)
	r.alert(alert("cpu", "api", "warning", "resolved", 0, 3*time.Hour))
	r.until(4 * time.Hour)
	require.Equal(t, []string{
		"30s team firing [api=firing]",
		"3h0m30s team resolved [api=resolved]",
	}, r.log)
}

func TestMuteWindowDelaysInsteadOfDropping(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Route.MuteTimeIntervals = []string{"maintenance"}
	cfg.MuteIntervals = map[string][]dispatch.TimeInterval{"maintenance": {{
		Weekdays: []time.Weekday{time.Monday}, Times: []dispatch.TimeRange{{Start: 8 * 60, End: 8*60 + 20}},
	}}}
	r := newRun(t, cfg)
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0)) // Monday 08:00, muted until 08:20
	r.until(time.Hour)
	require.Equal(t, []string{"30s team muted 0", "20m30s team firing [api=firing]"}, r.log)
}

func TestClockFollowsProcessingTimeWhenIdle(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	proc := time.Date(2026, 11, 21, 21, 0, 0, 0, time.UTC).UnixMilli()
	r.record(r.d.Tick(r.st, proc)) // first tick: reference only
	require.Empty(t, r.log)
	r.record(r.d.Tick(r.st, proc+29_000))
	require.Empty(t, r.log)
	r.record(r.d.Tick(r.st, proc+31_000))
	require.Equal(t, []string{"30s team firing [api=firing]"}, r.log, "flushed at its due time")
}

func TestSameSequenceWhateverTheStepSize(t *testing.T) {
	t.Parallel()
	scenario := func(step time.Duration) []string {
		r := newRun(t, baseConfig(t))
		r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
		r.alert(alert("cpu", "web", "warning", "firing", 40*time.Second, 0))
		for d := time.Duration(0); d <= 3*time.Hour; d += step {
			r.until(d)
		}
		return r.log
	}
	require.Equal(t, scenario(3*time.Hour), scenario(7*time.Second))
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := dispatch.New(dispatch.Config{Route: &dispatch.Route{ID: "0", MuteTimeIntervals: []string{"x"}}})
	require.ErrorContains(t, err, "needs a receiver")
	require.ErrorContains(t, err, "group_interval")
	require.ErrorContains(t, err, `unknown mute_time_interval "x"`)
}

func TestFiringAndResolvedInOneInstant(t *testing.T) {
	t.Parallel()
	// The detector may report a one-window burst as firing and resolved at
	// the same event time. With group_wait 0 the firing goes out; the
	// resolution follows a group interval later if the receiver wants it.
	for _, sendResolved := range []bool{false, true} {
		cfg := baseConfig(t)
		cfg.Route.GroupWait = 0
		cfg.SendResolved = map[string]bool{"team": sendResolved}
		r := newRun(t, cfg)
		r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
		r.alert(alert("cpu", "api", "warning", "resolved", 0, 0))
		r.until(time.Hour)
		want := []string{"0s team firing [api=firing]"}
		if sendResolved {
			want = append(want, "5m0s team resolved [api=resolved]")
		}
		require.Equal(t, want, r.log, "send_resolved=%v", sendResolved)
		require.Empty(t, r.st.Groups)
	}
	// With a positive group_wait nothing was ever notified: nothing is sent
	// (as in Alertmanager).
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "api", "warning", "firing", 0, 0))
	r.alert(alert("cpu", "api", "warning", "resolved", 0, 0))
	r.until(time.Hour)
	require.Empty(t, r.log)
}

func TestReplaysAndLateEpisodesAreIgnored(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	fire := alert("cpu", "api", "warning", "firing", 0, 0)
	res := alert("cpu", "api", "warning", "resolved", 0, 2*time.Minute)
	r.alert(fire)
	r.alert(res)
	r.until(time.Hour)
	require.Empty(t, r.st.Groups)
	// The detector replays the same episode after the alert left its group.
	r.alert(fire)
	r.alert(res)
	// An older episode arrives late.
	r.alert(alert("cpu", "api", "warning", "firing", -time.Hour, 0))
	r.until(2 * time.Hour)
	// A new episode is new.
	r.alert(alert("cpu", "api", "warning", "firing", 3*time.Hour, 0))
	r.until(4 * time.Hour)
	require.Equal(t, []string{
		"30s team firing [api=firing]",
		"5m30s team resolved [api=resolved]",
		"3h0m30s team firing [api=firing]",
	}, r.log)
	require.Len(t, r.st.Latest, 1, "one entry per alert, not per state change")
}

// TestForgetsAfterTheirTime checks what gc forgets and when: an alert
// leaves the state's alerts with the flush that took it out of its last
// group (not while another group still holds it), and its latest episode
// is forgotten within one HistorySweep of the clock after Retention, and
// not before.
func TestForgetsAfterTheirTime(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Route.Routes = []*dispatch.Route{
		{ID: "0.0", Receiver: "team", GroupBy: []string{"alertname"}, Continue: true, GroupWait: 30 * time.Second,
			GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour, Matchers: mustMatchers(t, map[string]string{"service": "api"})},
		{ID: "0.1", Receiver: "team", GroupBy: []string{"service"}, GroupWait: 30 * time.Second,
			GroupInterval: 10 * time.Minute, RepeatInterval: time.Hour},
	}
	r := newRun(t, cfg)
	fire := alert("cpu", "api", "warning", "firing", 0, 0)
	r.alert(fire)
	r.alert(alert("cpu", "api", "warning", "resolved", 0, time.Minute))
	r.until(5*time.Minute + 30*time.Second) // route 0.0 flushed the resolution; 0.1 holds it until 10m30s
	require.Contains(t, r.st.Alerts, fire.Fingerprint)
	r.until(10*time.Minute + 30*time.Second)
	require.Empty(t, r.st.Groups)
	require.Empty(t, r.st.Alerts)
	require.Contains(t, r.st.Latest, fire.Fingerprint)
	applied := r.st.Latest[fire.Fingerprint].At
	r.until(time.Duration(applied-t0+dispatch.Retention) * time.Millisecond)
	require.Contains(t, r.st.Latest, fire.Fingerprint, "kept for Retention")
	r.until(time.Duration(applied-t0+dispatch.Retention+dispatch.HistorySweep+1) * time.Millisecond)
	require.Empty(t, r.st.Latest, "forgotten within one sweep after Retention")
}
