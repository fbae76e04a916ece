package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQueryServiceOnTheRealLog checks the query service's read API on the
// stack after the real access log was replayed (idempotently): event
// search with cursor pagination against ClickHouse's own count, top-k
// against a count over the raw events, the alerts projection and the
// notifier's recent list, the OpenAPI document, SQL-injection attempts,
// and the Lambda batch layer: a batch run over the log's hours agrees with
// the speed layer exactly (empty divergence report) and series then say
// "batch" for those points. It sends no events of its own.
func TestQueryServiceOnTheRealLog(t *testing.T) {
	logPath := filepath.Join(repo, "testdata", "apache_logs")
	want := expectFromFile(t, logPath)
	postLog(t, logPath, "apache_logs") // idempotent: other tests replay it too
	waitQuiet(t)
	q := st.QueryURL()
	rng := fmt.Sprintf("from=%d&to=%d", want.from, want.to)

	t.Run("events paginate by cursor", func(t *testing.T) {
		const ip = "83.149.9.216"
		n, err := strconv.Atoi(clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE source = 'apache_logs' AND client_ip = '"+ip+"'"))
		require.NoError(t, err)
		require.Greater(t, n, 20)
		seen := map[string]bool{}
		last := int64(0)
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100)
			u := q + "/api/v1/events?" + rng + "&field=client_ip=" + ip + "&field=source=apache_logs&limit=7"
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			var page struct {
				Events []struct {
					ID   string `json:"event_id"`
					Time int64  `json:"event_time"`
					IP   string `json:"client_ip"`
				} `json:"events"`
				Next string `json:"next_cursor"`
			}
			getJSON(t, u, &page)
			for _, e := range page.Events {
				require.Equal(t, ip, e.IP)
				require.False(t, seen[e.ID], "event %s twice", e.ID)
				require.GreaterOrEqual(t, e.Time, last, "ordered by event time")
				seen[e.ID], last = true, e.Time
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		require.Len(t, seen, n)
	})

	t.Run("topk agrees with the raw events", func(t *testing.T) {
		var body struct {
			Top []struct {
				Key   string  `json:"key"`
				Value float64 `json:"value"`
			} `json:"top"`
		}
		getJSON(t, q+"/api/v1/topk?metric=requests_by_client&by=client_ip&n=3&"+rng, &body)
		require.Len(t, body.Top, 3)
		rows := strings.Split(clickhouse(t, "SELECT client_ip, count() AS c FROM streamwatch.events FINAL WHERE source = 'apache_logs' "+
			"GROUP BY client_ip ORDER BY c DESC, client_ip LIMIT 3"), "\n")
		for i, row := range rows {
			f := strings.Split(row, "\t")
			require.Equal(t, f[0], body.Top[i].Key)
			require.Equal(t, f[1], strconv.FormatFloat(body.Top[i].Value, 'f', -1, 64))
		}
	})

	t.Run("alerts projection and recent list", func(t *testing.T) {
		var alerts struct {
			Alerts []struct {
				Fingerprint string            `json:"fingerprint"`
				Rule        string            `json:"rule"`
				State       string            `json:"state"`
				Labels      map[string]string `json:"labels"`
				StartsAt    int64             `json:"starts_at"`
			} `json:"alerts"`
		}
		require.Eventually(t, func() bool {
			getJSON(t, q+"/api/v1/alerts?filter=client_ip="+want.burstIP, &alerts)
			return len(alerts.Alerts) == 1
		}, 30*time.Second, 200*time.Millisecond)
		a := alerts.Alerts[0]
		require.Equal(t, "high_request_rate_client", a.Rule)
		require.Equal(t, want.burstAt, a.StartsAt)
		getJSON(t, q+"/api/v1/alerts?state=pending", &alerts)
		for _, x := range alerts.Alerts {
			require.Equal(t, "pending", x.State)
		}
		var recent struct {
			Alerts []map[string]any `json:"alerts"`
		}
		getJSON(t, q+"/api/v1/alerts/recent?limit=100", &recent)
		found := false
		for _, r := range recent.Alerts {
			found = found || r["fingerprint"] == a.Fingerprint
		}
		require.True(t, found, "the alert is in the notifier's alerts:recent")
	})

	t.Run("openapi and injection attempts", func(t *testing.T) {
		var doc map[string]any
		getJSON(t, q+"/api/openapi.json", &doc)
		require.Contains(t, doc["paths"], "/api/v1/events")
		before := clickhouse(t, "SELECT count() FROM streamwatch.events")
		for _, target := range []string{
			"/api/v1/events?" + rng + "&field=client_ip=" + url.QueryEscape("' OR 1=1 --"),
			"/api/v1/topk?metric=requests_by_client&by=" + url.QueryEscape("client_ip; DROP TABLE streamwatch.events") + "&" + rng,
			"/api/v1/series?metric=requests&step=1h&" + rng + "&filter=status=" + url.QueryEscape("200') OR ('1'='1"),
			"/api/v1/alerts?filter=client_ip=" + url.QueryEscape("x' UNION SELECT * FROM system.tables --"),
		} {
			resp, err := st.Client().Get(q + target)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				require.NotContains(t, string(body), `"event_id"`, target)
				require.NotContains(t, string(body), `"key"`, target)
				require.NotContains(t, string(body), `"fingerprint"`, target)
				continue
			}
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", target, body)
			require.Contains(t, string(body), `"code":"bad_request"`)
		}
		require.Equal(t, before, clickhouse(t, "SELECT count() FROM streamwatch.events"))
	})

	t.Run("batch layer agrees with the speed layer", func(t *testing.T) {
		reqBody := fmt.Sprintf(`{"from":%d,"to":%d,"metrics":["requests","requests_by_status","requests_by_client"]}`, want.from, want.to)
		resp, err := st.Client().Post(q+"/api/v1/batch/runs", "application/json", bytes.NewBufferString(reqBody))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		var run struct {
			ID      string `json:"id"`
			Status  string `json:"status"`
			Windows int    `json:"windows"`
		}
		require.NoError(t, json.Unmarshal(body, &run))
		require.Equal(t, "done", run.Status)
		require.Positive(t, run.Windows)

		var rep struct {
			Compared    int              `json:"compared"`
			Divergent   int              `json:"divergent"`
			Divergences []map[string]any `json:"divergences"`
		}
		getJSON(t, q+"/api/v1/batch/runs/"+run.ID, &rep)
		require.GreaterOrEqual(t, rep.Compared, run.Windows)
		require.Zero(t, rep.Divergent, "speed and batch differ: %v", rep.Divergences)

		var series struct {
			Series []struct {
				Points []struct {
					Layer string  `json:"layer"`
					Value float64 `json:"value"`
				} `json:"points"`
			} `json:"series"`
		}
		getJSON(t, q+"/api/v1/series?metric=requests&step=1h&"+rng, &series)
		total := 0.0
		for _, p := range series.Series[0].Points {
			require.Equal(t, "batch", p.Layer)
			total += p.Value
		}
		require.InDelta(t, float64(want.total), total, 0)
	})
}
