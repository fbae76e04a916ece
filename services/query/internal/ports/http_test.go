package ports_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

const (
	minute = int64(60_000)
	hourMs = 60 * minute
)

var labelSets = []map[string]string{
	{"status_class": "2xx", "method": "GET"},
	{"status_class": "4xx", "method": "GET"},
	{"status_class": "4xx", "method": "POST"},
}

// seedWindows stores two hours of one-minute windows of "requests" from
// may17, for three label sets on two shards, each as an early revision
// (value 1000, superseded) and a final one; plus a window at the exclusive
// end and a window of another metric. It returns the final values.
func seedWindows(t *testing.T, e *env) []metrics.Result {
	t.Helper()
	var rows, finals []metrics.Result
	for m := range int64(120) {
		for shard := int32(0); shard < 2; shard++ {
			for i, labels := range labelSets {
				start := may17 + m*minute
				early := result(labels, shard, start, 1, 1000)
				final := result(labels, shard, start, 2, float64(1+int(m)%7+i*10+int(shard)))
				final.Kind = metrics.KindFinal
				rows = append(rows, final, early) // the lower revision is inserted last
				finals = append(finals, final)
			}
		}
	}
	rows = append(rows, result(labelSets[0], 0, may17+2*hourMs, 1, 5000))
	other := result(labelSets[0], 0, may17, 1, 7000)
	other.Metric = "other"
	rows = append(rows, other)
	require.NoError(t, e.storage.Windows.InsertWindows(context.Background(), rows))
	return finals
}

// expected sums the finals per bucket of step ms for those passing keep,
// keyed by the value of label groupBy ("" without) and bucket start.
func expected(finals []metrics.Result, step int64, groupBy string, keep func(map[string]string) bool) map[string]map[int64]float64 {
	out := map[string]map[int64]float64{}
	for _, r := range finals {
		if keep != nil && !keep(r.Labels) {
			continue
		}
		g := ""
		if groupBy != "" {
			g = r.Labels[groupBy]
		}
		if out[g] == nil {
			out[g] = map[int64]float64{}
		}
		out[g][r.WindowStart/step*step] += r.Value
	}
	return out
}

// asMap turns a series response into the shape expected returns, and
// checks points are sorted by t.
func asMap(t *testing.T, resp ports.SeriesResponse, groupBy string) map[string]map[int64]float64 {
	t.Helper()
	out := map[string]map[int64]float64{}
	for _, s := range resp.Series {
		g := ""
		if groupBy != "" {
			require.Len(t, s.Labels, 1)
			g = s.Labels[groupBy]
		} else {
			require.Empty(t, s.Labels)
		}
		out[g] = map[int64]float64{}
		for i, p := range s.Points {
			if i > 0 {
				require.Less(t, s.Points[i-1].T, p.T, "points sorted by t")
			}
			out[g][p.T] = p.Value
		}
	}
	return out
}

func TestSeries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	finals := seedWindows(t, e)
	from, to := may17, may17+2*hourMs

	t.Run("per-hour sums over shards and label sets", func(t *testing.T) {
		var resp ports.SeriesResponse
		status := e.get(t, fmt.Sprintf("/api/v1/series?metric=requests&from=%d&to=%d&step=1h", from, to), &resp)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "requests", resp.Metric)
		require.Equal(t, "1h", resp.Step)
		require.Equal(t, from, resp.From)
		require.Equal(t, to, resp.To)
		require.Len(t, resp.Series, 1)
		require.Len(t, resp.Series[0].Points, 2)
		require.Equal(t, expected(finals, hourMs, "", nil), asMap(t, resp, ""))
	})

	t.Run("group_by", func(t *testing.T) {
		var resp ports.SeriesResponse
		require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf(
			"/api/v1/series?metric=requests&from=%d&to=%d&step=1h&group_by=status_class", from, to), &resp))
		require.Len(t, resp.Series, 2)
		require.Equal(t, "2xx", resp.Series[0].Labels["status_class"], "series sorted by label value")
		require.Equal(t, expected(finals, hourMs, "status_class", nil), asMap(t, resp, "status_class"))
	})

	t.Run("filter", func(t *testing.T) {
		var resp ports.SeriesResponse
		require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf(
			"/api/v1/series?metric=requests&from=%d&to=%d&step=1h&filter=method=POST", from, to), &resp))
		post := func(l map[string]string) bool { return l["method"] == "POST" }
		require.Equal(t, expected(finals, hourMs, "", post), asMap(t, resp, ""))
	})

	t.Run("filter on one label twice means either value, combined with group_by", func(t *testing.T) {
		var resp ports.SeriesResponse
		require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf(
			"/api/v1/series?metric=requests&from=%d&to=%d&step=1d&group_by=method&filter=status_class=2xx&filter=status_class=4xx&filter=method=GET",
			from, to), &resp))
		get := func(l map[string]string) bool { return l["method"] == "GET" }
		require.Equal(t, expected(finals, 24*hourMs, "method", get), asMap(t, resp, "method"))
	})

	t.Run("RFC 3339 range, minute step, exclusive end", func(t *testing.T) {
		var resp ports.SeriesResponse
		require.Equal(t, http.StatusOK, e.get(t,
			"/api/v1/series?metric=requests&from=2015-05-17T11:00:00Z&to=2015-05-17T12:00:00Z&step=1m", &resp))
		require.Equal(t, may17+hourMs, resp.From)
		require.Len(t, resp.Series[0].Points, 60, "the window at 12:00 is outside [from, to)")
		inRange := map[int64]float64{}
		for k, v := range expected(finals, minute, "", nil)[""] {
			if k >= may17+hourMs {
				inRange[k] = v
			}
		}
		require.Equal(t, map[string]map[int64]float64{"": inRange}, asMap(t, resp, ""))
	})

	t.Run("label not present groups under empty value", func(t *testing.T) {
		var resp ports.SeriesResponse
		require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf(
			"/api/v1/series?metric=requests&from=%d&to=%d&step=1h&group_by=region", from, to), &resp))
		require.Len(t, resp.Series, 1)
		require.Equal(t, map[string]string{"region": ""}, resp.Series[0].Labels)
	})

	t.Run("no data", func(t *testing.T) {
		var resp ports.SeriesResponse
		require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf(
			"/api/v1/series?metric=unknown&from=%d&to=%d&step=1h", from, to), &resp))
		require.Len(t, resp.Series, 1)
		require.Empty(t, resp.Series[0].Labels)
		require.NotNil(t, resp.Series[0].Points)
		require.Empty(t, resp.Series[0].Points)

		require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf(
			"/api/v1/series?metric=unknown&from=%d&to=%d&step=1h&group_by=status_class", from, to), &resp))
		require.Empty(t, resp.Series)
	})
}

func TestSeriesBadParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := url.Values{"metric": {"requests"}, "from": {"1431856800000"}, "to": {"1431864000000"}, "step": {"1h"}}
	with := func(key string, values ...string) string {
		q := url.Values{}
		for k, v := range ok {
			q[k] = v
		}
		if values == nil {
			q.Del(key)
		} else {
			q[key] = values
		}
		return "/api/v1/series?" + q.Encode()
	}
	tests := []struct {
		name, target, param string
	}{
		{"missing metric", with("metric"), "metric"},
		{"uppercase metric", with("metric", "Requests"), "metric"},
		{"metric twice", with("metric", "a", "b"), "metric"},
		{"missing from", with("from"), "from"},
		{"from not a time", with("from", "yesterday"), "from"},
		{"from not RFC 3339", with("from", "2015-05-17 10:00:00"), "from"},
		{"to before from", with("to", "1431856700000"), "to"},
		{"to equal to from", with("to", "1431856800000"), "to"},
		{"negative from", with("from", "-5"), "from"},
		{"to out of range", with("to", "99999999999999999999"), "to"},
		{"missing step", with("step"), "step"},
		{"unknown step", with("step", "2h"), "step"},
		{"too many points", with("step", "1m", "to", "4102444800000"), "step"},
		{"bad group_by", with("group_by", "Status"), "group_by"},
		{"empty group_by", with("group_by", ""), "group_by"},
		{"filter without =", with("filter", "status_class"), "filter"},
		{"filter bad label", with("filter", "Status=4xx"), "filter"},
		{"unknown parameter", with("groupby", "status_class"), "groupby"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body httpserver.ErrorBody
			require.Equal(t, http.StatusBadRequest, e.get(t, tt.target, &body), tt.target)
			require.Equal(t, "bad_request", body.Code)
			require.Contains(t, body.Message, "parameter "+tt.param, body.Message)
		})
	}
}

func TestSeriesRejectsSQLInjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedWindows(t, e)
	before := e.count(t, "SELECT count() FROM streamwatch.metric_windows")
	tablesBefore := e.count(t, "SELECT count() FROM system.tables WHERE database = 'streamwatch'")

	base := "/api/v1/series?from=1431856800000&to=1431864000000&step=1h"
	attacks := []string{
		"&metric=" + url.QueryEscape("requests' OR '1'='1"),
		"&metric=" + url.QueryEscape("requests; DROP TABLE streamwatch.metric_windows"),
		"&metric=requests&group_by=" + url.QueryEscape("status_class]) FROM system.tables --"),
		"&metric=requests&filter=" + url.QueryEscape("x') OR 1=1 OR ('=a"),
		"&metric=requests&step=" + url.QueryEscape("1h) * 0 + (1"),
		"&metric=requests&from=" + url.QueryEscape("0 OR 1=1"),
	}
	for _, a := range attacks {
		var body httpserver.ErrorBody
		require.Equal(t, http.StatusBadRequest, e.get(t, base+a, &body), a)
		require.Equal(t, "bad_request", body.Code)
	}

	// A hostile filter value is only ever a bound value: it matches nothing.
	var resp ports.SeriesResponse
	require.Equal(t, http.StatusOK, e.get(t, base+"&metric=requests&filter=status_class="+
		url.QueryEscape(`4xx' OR '1'='1`), &resp))
	require.Len(t, resp.Series, 1)
	require.Empty(t, resp.Series[0].Points)
	require.Equal(t, http.StatusOK, e.get(t, base+"&metric=requests&filter=status_class="+
		url.QueryEscape(`4xx\' OR 1=1 --`), &resp))
	require.Empty(t, resp.Series[0].Points)

	require.Equal(t, before, e.count(t, "SELECT count() FROM streamwatch.metric_windows"))
	require.Equal(t, tablesBefore, e.count(t, "SELECT count() FROM system.tables WHERE database = 'streamwatch'"))
}

func TestLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s4 := map[string]string{"status_class": "4xx"}
	w1, w2 := may17, may17+minute
	for _, r := range []metrics.Result{
		result(nil, 0, w2, 1, 5),
		result(nil, 1, w2, 3, 7),
		result(nil, 1, w2, 2, 100), // older revision: ignored
		result(nil, 2, w1, 1, 50),  // shard behind: not summed
		result(s4, 0, w1, 1, 2),
		result(s4, 3, w1, 1, 4),
	} {
		require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, r)))
	}
	other := result(nil, 0, w1, 1, 9)
	other.Metric = "errors"
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, other)))

	var resp ports.LiveResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/live?metric=requests&metric=errors&metric=requests&metric=none", &resp))
	require.Equal(t, []ports.LiveJSON{
		{Metric: "requests", Labels: map[string]string{}, WindowStart: w2, WindowEnd: w2 + minute, Value: 12, Count: 12},
		{Metric: "requests", Labels: s4, WindowStart: w1, WindowEnd: w1 + minute, Value: 6, Count: 6},
		{Metric: "errors", Labels: map[string]string{}, WindowStart: w1, WindowEnd: w1 + minute, Value: 9, Count: 9},
	}, resp.Metrics)

	// Filters keep the label sets they name (summed over shards as
	// before), the same for every metric asked for.
	resp = ports.LiveResponse{} // a decoded response's maps would take the next one's keys
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/live?metric=requests&metric=errors&filter=status_class=4xx", &resp))
	require.Equal(t, []ports.LiveJSON{
		{Metric: "requests", Labels: s4, WindowStart: w1, WindowEnd: w1 + minute, Value: 6, Count: 6},
	}, resp.Metrics)
	resp = ports.LiveResponse{}
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/live?metric=requests&filter=status_class=&filter=status_class=5xx", &resp))
	require.Equal(t, []ports.LiveJSON{
		{Metric: "requests", Labels: map[string]string{}, WindowStart: w2, WindowEnd: w2 + minute, Value: 12, Count: 12},
	}, resp.Metrics, "a label set without the label has the empty value")

	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/live?metric=none", &resp))
	require.NotNil(t, resp.Metrics)
	require.Empty(t, resp.Metrics)

	for target, param := range map[string]string{
		"/api/v1/live":                                                     "metric",
		"/api/v1/live?metric=":                                             "metric",
		"/api/v1/live?metric=Requests":                                     "metric",
		"/api/v1/live?metric=" + url.QueryEscape("a*"):                     "metric",
		"/api/v1/live?metric=requests&labels=x":                            "labels",
		"/api/v1/live?metric=" + strings.Repeat("a", 200):                  "metric",
		"/api/v1/live?metric=requests&filter=status_class":                 "filter",
		"/api/v1/live?metric=requests&filter=" + url.QueryEscape("a b=1"):  "filter",
		"/api/v1/live?metric=requests" + strings.Repeat("&filter=a=1", 17): "filter",
	} {
		var body httpserver.ErrorBody
		require.Equal(t, http.StatusBadRequest, e.get(t, target, &body), target)
		require.Equal(t, "bad_request", body.Code)
		require.Contains(t, body.Message, "parameter "+param)
	}
}

func TestUnknownRouteIsJSON404(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var body httpserver.ErrorBody
	require.Equal(t, http.StatusNotFound, e.get(t, "/api/v1/nope", &body))
	require.Equal(t, "not_found", body.Code)
	require.NotEmpty(t, body.Message)
}
