package window_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

const hour = int64(3_600_000)

func mustStep(t *testing.T, s string) window.Step {
	t.Helper()
	st, err := window.ParseStep(s)
	require.NoError(t, err)
	return st
}

func TestParseStep(t *testing.T) {
	t.Parallel()
	for s, ms := range map[string]int64{"1m": 60_000, "5m": 300_000, "1h": hour, "1d": 24 * hour} {
		st, err := window.ParseStep(s)
		require.NoError(t, err)
		require.Equal(t, ms, st.Millis())
		require.Equal(t, s, st.String())
	}
	for _, s := range []string{"", "2h", "1H", "60s", "1h; DROP"} {
		_, err := window.ParseStep(s)
		var pe *window.ParamError
		require.ErrorAs(t, err, &pe, s)
		require.Equal(t, "step", pe.Param)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"requests", "_x", "status_class", "a1"} {
		require.True(t, window.ValidName(ok), ok)
	}
	for _, bad := range []string{"", "Requests", "1a", "a-b", "a b", "a'", "a)", string(make([]byte, 200))} {
		require.False(t, window.ValidName(bad), bad)
	}
}

func TestNewSeriesQuery(t *testing.T) {
	t.Parallel()
	h := mustStep(t, "1h")
	m := mustStep(t, "1m")
	tests := []struct {
		name       string
		metric     string
		from, to   int64
		step       window.Step
		groupBy    string
		filters    []window.Filter
		wantParams []string
	}{
		{name: "ok", metric: "requests", from: 0, to: hour, step: h},
		{name: "ok grouped and filtered", metric: "requests", from: 0, to: hour, step: h, groupBy: "status_class",
			filters: []window.Filter{{Label: "method", Values: []string{"GET"}}}},
		{name: "missing metric", from: 0, to: hour, step: h, wantParams: []string{"metric"}},
		{name: "bad metric", metric: "x' OR 1=1", from: 0, to: hour, step: h, wantParams: []string{"metric"}},
		{name: "from not before to", metric: "r", from: hour, to: hour, step: h, wantParams: []string{"to"}},
		{name: "negative from", metric: "r", from: -1, to: hour, step: h, wantParams: []string{"from"}},
		{name: "too many points", metric: "r", from: 0, to: 365 * 24 * hour, step: m, wantParams: []string{"step"}},
		{name: "missing step", metric: "r", from: 0, to: hour, wantParams: []string{"step"}},
		{name: "bad group_by", metric: "r", from: 0, to: hour, step: h, groupBy: "a)b", wantParams: []string{"group_by"}},
		{name: "bad filter label", metric: "r", from: 0, to: hour, step: h,
			filters: []window.Filter{{Label: "x=1--", Values: []string{"v"}}}, wantParams: []string{"filter"}},
		{name: "everything wrong", metric: "", from: 5, to: 1, step: h, groupBy: "A",
			wantParams: []string{"metric", "to", "group_by"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := window.NewSeriesQuery(tt.metric, tt.from, tt.to, tt.step, tt.groupBy, tt.filters)
			if len(tt.wantParams) == 0 {
				require.NoError(t, err)
				require.Equal(t, tt.metric, q.Metric())
				return
			}
			require.ErrorIs(t, err, window.ErrInvalidParam)
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var pe *window.ParamError
				require.True(t, errors.As(e, &pe))
				got = append(got, pe.Param)
			}
			require.ElementsMatch(t, tt.wantParams, got)
		})
	}
}

func TestNewSeriesQueryMergesFiltersOnOneLabel(t *testing.T) {
	t.Parallel()
	q, err := window.NewSeriesQuery("r", 0, hour, mustStep(t, "1h"), "", []window.Filter{
		{Label: "status_class", Values: []string{"4xx"}},
		{Label: "method", Values: []string{"GET"}},
		{Label: "status_class", Values: []string{"5xx"}},
	})
	require.NoError(t, err)
	require.Equal(t, []window.Filter{
		{Label: "status_class", Values: []string{"4xx", "5xx"}},
		{Label: "method", Values: []string{"GET"}},
	}, q.Filters())
}

func TestMatches(t *testing.T) {
	t.Parallel()
	filters := []window.Filter{
		{Label: "status_class", Values: []string{"4xx", "5xx"}},
		{Label: "method", Values: []string{"GET", ""}},
	}
	for _, c := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"status_class": "4xx", "method": "GET"}, true},
		{map[string]string{"status_class": "5xx", "method": "GET", "path": "/x"}, true},
		{map[string]string{"status_class": "5xx"}, true}, // no method: the empty value
		{map[string]string{"status_class": "2xx", "method": "GET"}, false},
		{map[string]string{"status_class": "4xx", "method": "POST"}, false},
		{map[string]string{"method": "GET"}, false},
		{nil, false},
	} {
		require.Equal(t, c.want, window.Matches(filters, c.labels), "%v", c.labels)
	}
	require.True(t, window.Matches(nil, map[string]string{"a": "b"}), "no filters keep everything")
}

func TestBuildSeries(t *testing.T) {
	t.Parallel()
	step := mustStep(t, "1h")
	rows := []window.Row{
		{Group: "5xx", T: 2 * hour, Value: 1},
		{Group: "4xx", T: hour, Value: 3},
		{Group: "4xx", T: 0, Value: 2},
	}

	grouped, err := window.NewSeriesQuery("r", 0, 3*hour, step, "status_class", nil)
	require.NoError(t, err)
	require.Equal(t, []window.Series{
		{Labels: map[string]string{"status_class": "4xx"}, Points: []window.Point{{T: 0, Value: 2}, {T: hour, Value: 3}}},
		{Labels: map[string]string{"status_class": "5xx"}, Points: []window.Point{{T: 2 * hour, Value: 1}}},
	}, window.BuildSeries(grouped, rows))
	require.Empty(t, window.BuildSeries(grouped, nil))

	plain, err := window.NewSeriesQuery("r", 0, 3*hour, step, "", nil)
	require.NoError(t, err)
	require.Equal(t, []window.Series{{Labels: map[string]string{}, Points: []window.Point{}}}, window.BuildSeries(plain, nil))
	require.Equal(t, []window.Series{{Labels: map[string]string{}, Points: []window.Point{{T: 0, Value: 4}, {T: hour, Value: 5}}}},
		window.BuildSeries(plain, []window.Row{{T: hour, Value: 5}, {T: 0, Value: 4}}))
}

func TestLatest(t *testing.T) {
	t.Parallel()
	res := func(labels map[string]string, shard int32, start int64, value float64, count int64) metrics.Result {
		return metrics.Result{V: 1, Metric: "requests", Labels: labels, Shard: shard, WindowStart: start,
			WindowEnd: start + 60_000, Value: value, Count: count, Revision: 1}
	}
	s4 := map[string]string{"status_class": "4xx"}
	got := window.Latest("requests", []metrics.Result{
		res(nil, 0, 120_000, 5, 5),
		res(nil, 1, 120_000, 7, 7),
		res(nil, 2, 60_000, 100, 100), // shard behind: not added
		res(s4, 0, 60_000, 1, 1),
		res(s4, 3, 60_000, 2, 2),
		{V: 1, Metric: "other", WindowStart: 999_999, WindowEnd: 1_000_000, Revision: 1},
	})
	require.Equal(t, []window.LiveValue{
		{Metric: "requests", Labels: map[string]string{}, WindowStart: 120_000, WindowEnd: 180_000, Value: 12, Count: 12},
		{Metric: "requests", Labels: s4, WindowStart: 60_000, WindowEnd: 120_000, Value: 3, Count: 3},
	}, got)
	require.Empty(t, window.Latest("requests", nil))
}

func TestLayerRows(t *testing.T) {
	t.Parallel()
	q, err := window.NewSeriesQuery("m", 0, 2*hour, mustStep(t, "1h"), "", nil)
	require.NoError(t, err)
	minute := int64(60_000)
	speed := []window.WindowRow{{Start: 0, End: minute, Value: 1}, {Start: hour, End: hour + minute, Value: 2}, {Start: hour + minute, End: hour + 2*minute, Value: 4}}
	batchRows := []window.WindowRow{{Start: hour, End: hour + minute, Value: 20, Run: "new"}, {Start: hour, End: hour + minute, Value: 200, Run: "old"}}
	// The run "new" covers the first minute of the second hour only.
	covering := func(start, end int64) (string, bool) { return "new", start >= hour && end <= hour+minute }
	series := window.BuildSeries(q, window.LayerRows(q, speed, batchRows, covering, "speed", "batch"))
	require.Equal(t, []window.Point{{T: 0, Value: 1, Layer: "speed"}, {T: hour, Value: 24, Layer: window.LayerMixed}}, series[0].Points,
		"hour 1: batch 20 (not the older run, not speed 2) plus speed 4")
}

func TestParseLabelsKeyInvertsLabelsKey(t *testing.T) {
	t.Parallel()
	for _, labels := range []map[string]string{
		{}, {"status": "200"}, {"a": "x,y", "b": `q"uote`, "c": "k=v", "d": ""},
	} {
		got, ok := window.ParseLabelsKey(metrics.LabelsKey(labels))
		require.True(t, ok)
		require.Equal(t, labels, got)
	}
	for _, bad := range []string{"=x", "a", `a="x`, `a="x"b`} {
		_, ok := window.ParseLabelsKey(bad)
		require.False(t, ok, bad)
	}
	top := window.RankBy([]window.LabelScore{{"ip=1,status=200", 3}, {"ip=1,status=404", 2}, {"ip=2,status=200", 4}, {"other=1", 9}}, "ip", 5)
	require.Equal(t, []window.TopKEntry{{Key: "1", Value: 5}, {Key: "2", Value: 4}}, top)
}
