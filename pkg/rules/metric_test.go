package rules_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

const minute = int64(60_000)

func set(t testing.TB, yaml string) *rules.Set {
	t.Helper()
	rs, err := rules.Parse("test.yaml", []byte(yaml))
	require.NoError(t, err)
	s, err := rules.NewSet(rs)
	require.NoError(t, err)
	return s
}

func win(metric string, labels map[string]string, i int64, v float64) *rules.Point {
	return &rules.Point{
		Source: rules.SourceWindows, Metric: metric, Labels: labels, Start: i * minute, End: (i + 1) * minute,
		Value: v, Watermark: (i + 1) * minute, Kind: metrics.KindFinal, Complete: true,
	}
}

func states(as []alerts.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.State)
	}
	return out
}

func TestSeedRulesExpressible(t *testing.T) {
	t.Parallel()
	s := set(t, rules.SeedRules)
	require.Equal(t, 6, s.Len())
}

func TestThresholdBoundaries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		op    string
		value float64
		fires bool
	}{
		{">", 10, false}, {">", 10.5, true}, {">=", 10, true}, {">=", 9.9, false},
		{"<", 10, false}, {"<", 9, true}, {"<=", 10, true}, {"==", 10, true}, {"!=", 10, false}, {"!=", 11, true},
	} {
		s := set(t, "rules:\n  - {name: r, metric: error_count, op: \""+tc.op+"\", threshold: 10}\n")
		st := rules.NewMetricState()
		out := st.Evaluate(s, win("error_count", nil, 0, tc.value))
		require.Equal(t, tc.fires, len(out) == 1, "%v %s 10", tc.value, tc.op)
	}
}

func TestThresholdLabelMatchingAndPartials(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: r, metric: errors, match: {service: checkout}, op: \">\", threshold: 1, labels: {team: pay}, annotations: {summary: '{{ .Labels.service }} has {{ .Value }}'}}\n")
	st := rules.NewMetricState()
	require.Empty(t, st.Evaluate(s, win("errors", map[string]string{"service": "search"}, 0, 5)))
	p := win("errors", map[string]string{"service": "checkout"}, 0, 5)
	p.Complete = false
	require.Empty(t, st.Evaluate(s, p), "partial results are not evaluated")
	p = win("errors", map[string]string{"service": "checkout"}, 0, 5)
	p.Kind = metrics.KindEarly
	require.Empty(t, st.Evaluate(s, p), "early results are not evaluated by default")
	out := st.Evaluate(s, win("errors", map[string]string{"service": "checkout"}, 0, 5))
	require.Len(t, out, 1)
	require.Equal(t, "pay", out[0].Labels["team"])
	require.Equal(t, "r", out[0].Labels["alertname"])
	require.Equal(t, "checkout has 5", out[0].Annotations["summary"])
}

func TestThresholdForDuration(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: r, metric: m, op: \">\", threshold: 10, for: 3m}\n")
	st := rules.NewMetricState()
	require.Equal(t, []string{alerts.StatePending}, states(st.Evaluate(s, win("m", nil, 0, 11))))
	require.Empty(t, st.Evaluate(s, win("m", nil, 1, 11)))
	out := st.Evaluate(s, win("m", nil, 2, 11)) // held [0, 3m): fires
	require.Equal(t, []string{alerts.StateFiring}, states(out))
	require.Equal(t, int64(0), out[0].StartsAt)
	require.Empty(t, st.Evaluate(s, win("m", nil, 3, 11)), "one alert per episode")
	out = st.Evaluate(s, win("m", nil, 4, 1))
	require.Equal(t, []string{alerts.StateResolved}, states(out))
	require.Equal(t, 4*minute, out[0].EndsAt)

	// Held for less than `for`: pending, then resolved, never firing.
	st = rules.NewMetricState()
	st.Evaluate(s, win("m", nil, 0, 11))
	st.Evaluate(s, win("m", nil, 1, 11))
	require.Equal(t, []string{alerts.StateResolved}, states(st.Evaluate(s, win("m", nil, 2, 10))))

	// A gap restarts the clock.
	st = rules.NewMetricState()
	st.Evaluate(s, win("m", nil, 0, 11))
	st.Evaluate(s, win("m", nil, 1, 11))
	out = st.Evaluate(s, win("m", nil, 3, 11))
	require.Equal(t, []string{alerts.StateResolved, alerts.StatePending}, states(out))
}

func TestThresholdResolvesOnWatermark(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: r, metric: m, op: \">\", threshold: 10}\n")
	st := rules.NewMetricState()
	ip := map[string]string{"client_ip": "1.2.3.4"}
	require.Len(t, st.Evaluate(s, win("m", ip, 0, 11)), 1)
	// Another label set of the same shard moves the watermark to 2m: the
	// window after the breach [1m, 2m) is over without a result.
	out := st.Evaluate(s, win("m", map[string]string{"client_ip": "5.6.7.8"}, 1, 1))
	require.Equal(t, []string{alerts.StateResolved}, states(out))
	require.Equal(t, "1.2.3.4", out[0].Labels["client_ip"])
	require.Equal(t, minute, out[0].EndsAt)
}

// TestThresholdSeriesAtRestAreNotKept: points that do not breach create
// no threshold series and mark none for the checkpoint; a breach creates
// its series, the points that resolve it mark it, and once at rest it is
// left alone again until its retention ends.
func TestThresholdSeriesAtRestAreNotKept(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: r, metric: m, op: \">\", threshold: 10}\n")
	st := rules.NewMetricState()
	st.TrackChanges()
	user := func(i int) map[string]string { return map[string]string{"user_id": string(rune('a' + i))} }
	for i := range 20 {
		require.Empty(t, st.Evaluate(s, win("m", user(i), 0, 5)))
	}
	require.Empty(t, st.Series, "no series for label sets that never breached")
	require.Empty(t, st.TakeChanges(), "nothing to checkpoint")

	require.Equal(t, []string{alerts.StateFiring}, states(st.Evaluate(s, win("m", user(3), 1, 11))))
	require.Len(t, st.Series, 1)
	require.Len(t, st.TakeChanges(), 1)
	require.Equal(t, []string{alerts.StateResolved}, states(st.Evaluate(s, win("m", user(3), 2, 5))))
	require.Len(t, st.TakeChanges(), 1, "the resolution is checkpointed")
	for i := range 20 {
		require.Empty(t, st.Evaluate(s, win("m", user(i), 3, 5)))
	}
	require.Empty(t, st.TakeChanges(), "a series at rest is left alone")
	require.Len(t, st.Series, 1)
	// It breaches again as a new episode.
	require.Equal(t, []string{alerts.StateFiring}, states(st.Evaluate(s, win("m", user(3), 4, 12))))
	// Its retention counts from its last change: past it, the series goes.
	require.Equal(t, []string{alerts.StateResolved}, states(st.Evaluate(s, win("m", user(3), 5, 1))))
	st.TakeChanges()
	st.Evaluate(s, win("m", user(9), 6+rules.Retention/minute, 1))
	require.Empty(t, st.Series)
	require.Len(t, st.TakeChanges(), 1, "the deletion is checkpointed")
}

func TestChangeRules(t *testing.T) {
	t.Parallel()
	s := set(t, `rules:
  - {name: jump, kind: change, metric: m, op: ">", threshold: 50}
  - {name: daily, kind: change, metric: m, compare: day_ago, op: "<", threshold: -50}
`)
	st := rules.NewMetricState()
	require.Empty(t, st.Evaluate(s, win("m", nil, 0, 100)))
	require.Empty(t, st.Evaluate(s, win("m", nil, 1, 150)), "+50% is not > 50%")
	out := st.Evaluate(s, win("m", nil, 2, 226))
	require.Len(t, out, 1)
	require.Equal(t, "jump", out[0].Rule)
	require.InDelta(t, 50.67, out[0].Value, 0.01)

	day := rules.Day / minute
	st = rules.NewMetricState()
	st.Evaluate(s, win("m", nil, 5, 100))
	out = st.Evaluate(s, win("m", nil, day+5, 40))
	require.Equal(t, []string{"daily"}, []string{out[len(out)-1].Rule})
	require.InDelta(t, -60, out[len(out)-1].Value, 1e-9)
}

func TestAbsence(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: gone, kind: absence, metric: heartbeats, for: 5m}\n  - {name: other, metric: x, op: \">\", threshold: 1e9}\n")
	st := rules.NewMetricState()
	hb := map[string]string{"service": "a"}
	require.Empty(t, st.Evaluate(s, win("heartbeats", hb, 0, 1)))
	// Watermark at 6m: silent for 5m exactly (last seen 1m): not yet.
	require.Empty(t, st.Evaluate(s, win("x", nil, 5, 1)))
	out := st.Evaluate(s, win("x", nil, 6, 1))
	require.Len(t, out, 1)
	require.Equal(t, alerts.StateFiring, out[0].State)
	require.Equal(t, minute, out[0].StartsAt)
	out = st.Evaluate(s, win("heartbeats", hb, 8, 1))
	require.Equal(t, []string{alerts.StateResolved}, states(out))
}

func TestAnomalyRuleOneAlertPerEpisode(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: anom, kind: anomaly, source: samples, metric: cpu, anomaly: {no_season: true, warmup: 50}}\n")
	st := rules.NewMetricState()
	var got []alerts.Alert
	xs := base(600, 3, 0, 1)
	for i := 300; i < 310; i++ {
		xs[i] += 20
	}
	for i, x := range xs {
		ts := int64(i) * minute
		got = append(got, st.Evaluate(s, &rules.Point{Source: rules.SourceSamples, Metric: "cpu", Start: ts, End: ts, Value: x, Watermark: ts})...)
	}
	require.Equal(t, []string{alerts.StateFiring, alerts.StateResolved}, states(got))
	require.Equal(t, 300*minute, got[0].StartsAt)
	require.Greater(t, got[0].Score, 0.5)
}

// A checkpoint written by the first detector ({"watermarks", "active"}) or
// an empty one decodes into a usable state.
func TestStateFromOldCheckpoint(t *testing.T) {
	t.Parallel()
	s := set(t, rules.DefaultRules)
	var st rules.MetricState
	require.NoError(t, json.Unmarshal([]byte(`{"watermarks":{"0":5},"active":{}}`), &st))
	require.Len(t, st.Evaluate(s, win("requests_by_client", map[string]string{"client_ip": "1.1.1.1"}, 0, 150)), 1)
	var es rules.EventState
	require.NoError(t, json.Unmarshal([]byte(`{}`), &es))
	require.Empty(t, es.Apply(s, ev("a", events.TypeClick, "u", 1)))
	require.Empty(t, es.Advance(s, 0))
}
