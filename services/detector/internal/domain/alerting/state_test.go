package alerting_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/detector/internal/domain/alerting"
	"github.com/streamwatch/streamwatch/services/detector/internal/domain/rule"
)

const m = int64(60_000)

func rules(t *testing.T) []rule.Threshold {
	t.Helper()
	rs, err := rule.Parse("defaults", []byte(rule.Defaults))
	require.NoError(t, err)
	return rs
}

func result(ip string, start int64, value float64, kind string, wm int64) *metrics.Result {
	return &metrics.Result{
		V: 1, Metric: "requests_by_client", Labels: map[string]string{"client_ip": ip},
		WindowStart: start, WindowEnd: start + m, Shard: 2, Complete: true, Kind: kind, Revision: 1,
		Count: int64(value), Value: value, Watermark: wm,
	}
}

func TestThresholdBoundary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		value float64
		fires bool
	}{{"equal does not breach >", 100, false}, {"above breaches", 101, true}, {"below", 3, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := alerting.NewState()
			out := s.Evaluate(rules(t), result("1.2.3.4", 10*m, tc.value, metrics.KindFinal, 11*m))
			require.Equal(t, tc.fires, len(out) == 1)
		})
	}
}

func TestFiresOnceAndResolvesOnWatermark(t *testing.T) {
	t.Parallel()
	s := alerting.NewState()
	rs := rules(t)
	out := s.Evaluate(rs, result("75.97.9.59", 10*m, 108, metrics.KindFinal, 11*m))
	require.Len(t, out, 1)
	a := out[0]
	require.Equal(t, alerts.StateFiring, a.State)
	require.Equal(t, "high_request_rate_client", a.Rule)
	require.Equal(t, "75.97.9.59", a.Labels["client_ip"])
	require.Equal(t, alerts.SeverityWarning, a.Labels["severity"])
	require.InDelta(t, 108.0, a.Value, 0)
	require.Equal(t, 10*m, a.StartsAt)
	require.Equal(t, "client 75.97.9.59 made 108 requests in one minute (threshold 100)", a.Annotations["summary"])

	// The same result again (a replayed output) and a revision: no new alert.
	require.Empty(t, s.Evaluate(rs, result("75.97.9.59", 10*m, 108, metrics.KindFinal, 11*m)))
	require.Empty(t, s.Evaluate(rs, result("75.97.9.59", 10*m, 109, metrics.KindRevised, 11*m)))
	// Early results are not evaluated by default.
	require.Empty(t, s.Evaluate(rs, result("9.9.9.9", 10*m, 500, metrics.KindEarly, 11*m)))

	// The shard's watermark passes the next window's end: resolved.
	out = s.Evaluate(rs, result("8.8.8.8", 12*m, 1, metrics.KindFinal, 12*m))
	require.Len(t, out, 1)
	require.Equal(t, alerts.StateResolved, out[0].State)
	require.Equal(t, a.Fingerprint, out[0].Fingerprint)
	require.Equal(t, 11*m, out[0].EndsAt)
	require.Empty(t, s.Active)
}

func TestResolvesOnNonBreachingNextWindow(t *testing.T) {
	t.Parallel()
	s := alerting.NewState()
	rs := rules(t)
	require.Len(t, s.Evaluate(rs, result("1.1.1.1", 10*m, 150, metrics.KindFinal, 11*m)), 1)
	require.Empty(t, s.Evaluate(rs, result("1.1.1.1", 11*m, 150, metrics.KindFinal, 11*m+m/2)), "still breaching")
	out := s.Evaluate(rs, result("1.1.1.1", 12*m, 5, metrics.KindFinal, 12*m+m/2))
	require.Len(t, out, 1)
	require.Equal(t, alerts.StateResolved, out[0].State)
	require.Equal(t, 12*m, out[0].EndsAt)
}

func TestPartialResultsAreNotEvaluated(t *testing.T) {
	t.Parallel()
	s := alerting.NewState()
	r := result("1.1.1.1", 10*m, 1000, metrics.KindFinal, 11*m)
	r.Complete = false
	require.Empty(t, s.Evaluate(rules(t), r))
}
