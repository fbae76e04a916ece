package ports_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

// manyEvents returns n http_request events one second apart from may17,
// status 200 for even i and 404 for odd i, two of them with the same time.
func manyEvents(n int) []events.Event {
	out := make([]events.Event, n)
	for i := range n {
		status := 200
		if i%2 == 1 {
			status = 404
		}
		t := may17 + int64(i)*1000
		if i == 1 {
			t = may17 // ties with event 0: order falls back to event_id
		}
		out[i] = events.Event{V: 1, ID: fmt.Sprintf("log:%03d", i), Type: events.TypeHTTPRequest, Time: t, ReceiveTime: t,
			Key: "10.0.0.1", Source: "test", ClientIP: "10.0.0.1", Method: "GET", Path: fmt.Sprintf("/p%d", i%3),
			Status: status, Properties: map[string]string{"shard": fmt.Sprint(i % 2)}}
	}
	return out
}

func TestEventsPaginatesInStableOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evs := manyEvents(25)
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, evs)))
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, evs[:10]))) // a replay: no duplicates

	base := fmt.Sprintf("/api/v1/events?from=%d&to=%d&type=http_request&limit=7", may17, may17+3_600_000)
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		var resp ports.EventsResponse
		target := base
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		require.Equal(t, http.StatusOK, e.get(t, target, &resp))
		for _, ev := range resp.Events {
			ids = append(ids, ev.ID)
		}
		if resp.NextCursor == "" {
			require.LessOrEqual(t, len(resp.Events), 7)
			break
		}
		require.Len(t, resp.Events, 7)
		cursor = resp.NextCursor
	}
	require.Len(t, ids, 25)
	require.Equal(t, "log:000", ids[0])
	require.Equal(t, "log:001", ids[1], "same time: by event_id")
	require.Equal(t, "log:024", ids[24])

	// Filters: status and a property, AND across fields, OR within one.
	var resp ports.EventsResponse
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/events?from=%d&to=%d&field=status=404&field=properties.shard=1&limit=1000", may17, may17+3_600_000), &resp))
	require.Len(t, resp.Events, 12)
	require.Equal(t, "1", resp.Events[0].Properties["shard"])
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/events?from=%d&to=%d&field=path=/p0&field=path=/p1", may17, may17+3_600_000), &resp))
	require.Len(t, resp.Events, 17)
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/events?from=%d&to=%d&type=click", may17, may17+3_600_000), &resp))
	require.Empty(t, resp.Events)
}

func TestTopK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Two shards, two windows, three statuses; revision 2 replaces 1.
	for _, r := range []struct {
		status string
		shard  int32
		start  int64
		rev    int64
		value  float64
	}{
		{"200", 0, may17, 1, 5}, {"200", 0, may17, 2, 10}, {"200", 1, may17, 1, 4}, {"200", 0, may17 + 60_000, 1, 3},
		{"404", 0, may17, 1, 6}, {"500", 1, may17 + 60_000, 1, 1},
		{"503", 0, may17 + 3_600_000, 1, 100}, // outside the range
	} {
		require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(map[string]string{"status": r.status}, r.shard, r.start, r.rev, r.value))))
	}
	var resp ports.TopKResponse
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/topk?metric=requests&by=status&from=%d&to=%d&n=2", may17, may17+3_600_000), &resp))
	require.Equal(t, []ports.TopKEntry{{Key: "200", Value: 17, Count: 17}, {Key: "404", Value: 6, Count: 6}}, resp.Top)
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/topk?metric=requests&by=status&from=%d&to=%d&filter=status=500", may17, may17+3_600_000), &resp))
	require.Equal(t, []ports.TopKEntry{{Key: "500", Value: 1, Count: 1}}, resp.Top)

	// The same ranking per window from Redis: shards add, revisions
	// replace, a late revision of an older window still counts.
	var live ports.LiveTopKResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/topk/live?metric=requests&by=status", &live))
	require.Equal(t, may17+3_600_000, live.WindowStart, "latest window by default")
	require.Equal(t, []ports.TopKEntry{{Key: "503", Value: 100}}, live.Top)
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(map[string]string{"status": "404"}, 0, may17, 2, 20))))
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(map[string]string{"status": "404"}, 0, may17, 2, 20)))) // replay
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/topk/live?metric=requests&by=status&window_start=%d", may17), &live))
	require.Equal(t, []ports.TopKEntry{{Key: "404", Value: 20}, {Key: "200", Value: 14}}, live.Top)
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/topk/live?metric=requests&by=status&n=1&window_start=%d", may17), &live))
	require.Len(t, live.Top, 1)
	var errBody map[string]any
	require.Equal(t, http.StatusBadRequest, e.get(t, "/api/v1/topk/live?metric=requests&by=x'y", &errBody))
}

func alertMessage(t *testing.T, a alerts.Alert) *message.Message {
	t.Helper()
	b, err := json.Marshal(a)
	require.NoError(t, err)
	msg := message.NewMessage(watermill.NewUUID(), b)
	msg.Metadata.Set(messaging.MetaSchema, alerts.Schema)
	msg.SetContext(context.Background())
	return msg
}

func TestAlertsProjectionAndSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mk := func(rule, state, sev string, labels map[string]string, starts int64) alerts.Alert {
		return alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint(rule, labels), Rule: rule, State: state, Severity: sev,
			Labels: labels, Metric: "requests", Value: 10, Threshold: 5, StartsAt: starts}
	}
	a1 := mk("high_errors", alerts.StateFiring, alerts.SeverityCritical, map[string]string{"service": "checkout"}, may17)
	a1resolved := a1
	a1resolved.State, a1resolved.EndsAt = alerts.StateResolved, may17+120_000
	a2 := mk("high_errors", alerts.StatePending, alerts.SeverityCritical, map[string]string{"service": "search"}, may17+60_000)
	a3 := mk("slow", alerts.StateFiring, alerts.SeverityWarning, map[string]string{"service": "checkout"}, may17+30_000)
	// resolved arrives before firing (out of order) and firing twice (replay).
	for _, a := range []alerts.Alert{a1resolved, a1, a1, a2, a3} {
		require.NoError(t, e.proj.HandleAlert(alertMessage(t, a)))
	}
	poison := alertMessage(t, alerts.Alert{V: 1, Fingerprint: "x", State: "exploded"})
	require.True(t, messaging.IsPermanent(e.proj.HandleAlert(poison)))

	var resp ports.AlertsResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/alerts", &resp))
	require.Len(t, resp.Alerts, 3)
	require.Equal(t, a2.Fingerprint, resp.Alerts[0].Fingerprint, "newest start first")
	require.Equal(t, alerts.StateResolved, resp.Alerts[2].State, "latest state of the episode")
	require.Equal(t, may17+120_000, resp.Alerts[2].EndsAt)

	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/alerts?state=firing&severity=warning", &resp))
	require.Len(t, resp.Alerts, 1)
	require.Equal(t, "slow", resp.Alerts[0].Rule)
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/alerts?filter=service=checkout&severity=critical", &resp))
	require.Len(t, resp.Alerts, 1)
	require.Equal(t, map[string]string{"service": "checkout"}, resp.Alerts[0].Labels)
	require.Equal(t, http.StatusOK, e.get(t, fmt.Sprintf("/api/v1/alerts?from=%d&to=%d", may17+1, may17+60_000), &resp))
	require.Len(t, resp.Alerts, 1)
	require.Equal(t, "slow", resp.Alerts[0].Rule)
}

func TestNotificationsProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"id":"n1","receiver":"webhook","ok":true}`))
	msg.SetContext(context.Background())
	require.NoError(t, e.proj.HandleNotification(msg))
	msg2 := message.NewMessage(watermill.NewUUID(), []byte(`{"id":"n1","receiver":"webhook","ok":true}`))
	msg2.SetContext(context.Background())
	require.NoError(t, e.proj.HandleNotification(msg2))
	require.Equal(t, uint64(1), e.count(t, "SELECT count() FROM streamwatch.notifications FINAL"))
	var payload string
	require.NoError(t, e.ch.QueryRow(context.Background(), "SELECT payload FROM streamwatch.notifications FINAL").Scan(&payload))
	require.JSONEq(t, `{"id":"n1","receiver":"webhook","ok":true}`, payload)

	bad := message.NewMessage(watermill.NewUUID(), []byte(`[1]`))
	bad.SetContext(context.Background())
	require.True(t, messaging.IsPermanent(e.proj.HandleNotification(bad)))

	// Another schema or version, and an absurd time, are poison too (the
	// fault suite's poison test found them stored).
	for _, tc := range []struct{ schema, payload, want string }{
		{"notifications.outcome.v2", `{"id":"n2"}`, `schema "notifications.outcome.v2"`},
		{"", `{"v":2,"id":"n3"}`, "schema version 2"},
		{"notifications.outcome.v1", `{"v":1,"id":"n4","at":253402300799000}`, "at 253402300799000 outside"},
	} {
		m := message.NewMessage(watermill.NewUUID(), []byte(tc.payload))
		m.SetContext(context.Background())
		if tc.schema != "" {
			m.Metadata.Set(messaging.MetaSchema, tc.schema)
		}
		err := e.proj.HandleNotification(m)
		require.True(t, messaging.IsPermanent(err), tc.payload)
		require.ErrorContains(t, err, tc.want)
	}
	require.Equal(t, uint64(1), e.count(t, "SELECT count() FROM streamwatch.notifications FINAL"), "nothing poison was stored")
}

func TestRecentAlertsReadsNotifierList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var resp ports.RecentResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/alerts/recent", &resp))
	require.Empty(t, resp.Alerts)
	for i := range 3 {
		require.NoError(t, e.rdb.LPush(ctx, recentKey, fmt.Sprintf(`{"v":1,"fingerprint":"f%d","state":"firing"}`, i)).Err())
	}
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/alerts/recent?limit=2", &resp))
	require.Len(t, resp.Alerts, 2)
	require.JSONEq(t, `{"v":1,"fingerprint":"f2","state":"firing"}`, string(resp.Alerts[0]), "newest first")
}

func TestStreamPushesStoredWindows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewServer(e.http)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/stream?metric=requests", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	lines := bufio.NewScanner(resp.Body)
	require.True(t, lines.Scan())
	require.Equal(t, ": connected", lines.Text())

	other := result(nil, 0, may17, 1, 1)
	other.Metric = "bytes"
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, other)))
	r := result(map[string]string{"status": "200"}, 0, may17, 3, 42)
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, r)))

	var sawHeartbeat bool
	for lines.Scan() {
		line := lines.Text()
		if line == ": heartbeat" {
			sawHeartbeat = true
			continue
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var got struct {
				Metric   string  `json:"metric"`
				Revision int64   `json:"revision"`
				Value    float64 `json:"value"`
			}
			require.NoError(t, json.Unmarshal([]byte(data), &got))
			require.Equal(t, "requests", got.Metric, "bytes was not asked for")
			require.Equal(t, int64(3), got.Revision)
			require.InDelta(t, 42, got.Value, 0)
			break
		}
	}
	// Wait for a heartbeat (every 50 ms in the test env).
	for !sawHeartbeat && lines.Scan() {
		sawHeartbeat = lines.Text() == ": heartbeat"
	}
	require.True(t, sawHeartbeat)

	// The client leaves: the subscription goes away.
	cancel()
	require.Eventually(t, func() bool { return e.storage.Hub.Subscribers() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var doc map[string]any
	require.Equal(t, http.StatusOK, e.get(t, "/api/openapi.json", &doc))
	require.Equal(t, "3.0.3", doc["openapi"])
}

// TestBadParametersAndInjection sends invalid values and SQL-injection
// attempts in every string parameter of every endpoint: each answer is a
// JSON 400 naming the problem, or a 200 without rows, and the tables are
// unchanged.
func TestBadParametersAndInjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, manyEvents(5))))
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(map[string]string{"status": "200"}, 0, may17, 1, 5))))
	counts := func() [2]uint64 {
		return [2]uint64{e.count(t, "SELECT count() FROM streamwatch.events"), e.count(t, "SELECT count() FROM streamwatch.metric_windows")}
	}
	before := counts()
	tableCount := func() uint64 {
		var n uint64
		require.NoError(t, e.ch.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = 'streamwatch'").Scan(&n))
		return n
	}
	tablesBefore := tableCount()
	rng := fmt.Sprintf("from=%d&to=%d", may17, may17+3_600_000)

	bad := map[string]string{
		"/api/v1/events?" + rng + "&limit=0":                 "limit",
		"/api/v1/events?" + rng + "&limit=abc":               "limit",
		"/api/v1/events?from=x&to=1":                         "from",
		"/api/v1/events?" + rng + "&type=bogus":              "type",
		"/api/v1/events?" + rng + "&field=nosuch=1":          "field",
		"/api/v1/events?" + rng + "&field=status=abc":        "field",
		"/api/v1/events?" + rng + "&field=path":              "field",
		"/api/v1/events?" + rng + "&cursor=%21%21":           "cursor",
		"/api/v1/events?" + rng + "&page=2":                  "page",
		"/api/v1/topk?metric=requests&" + rng:                "by",
		"/api/v1/topk?metric=requests&by=status&n=0&" + rng:  "n",
		"/api/v1/topk?metric=requests&by=status&from=5&to=1": "to",
		"/api/v1/alerts?state=burning":                       "state",
		"/api/v1/alerts?severity=meh":                        "severity",
		"/api/v1/alerts?limit=5000":                          "limit",
		"/api/v1/alerts/recent?limit=101":                    "limit",
		"/api/v1/stream?metric=Bad-Name":                     "metric",
		"/api/v1/series?metric=requests&step=1m&from=1&to=1": "to",
	}
	for target, param := range bad {
		var body httpserver.ErrorBody
		require.Equal(t, http.StatusBadRequest, e.get(t, target, &body), target)
		require.Equal(t, "bad_request", body.Code)
		require.Contains(t, body.Message, param, target)
	}

	attacks := []string{
		"' OR 1=1 --", "x'); DROP TABLE streamwatch.events; --", `"; TRUNCATE TABLE streamwatch.metric_windows; --`,
		"200' UNION SELECT * FROM system.tables --", `\' OR \'1\'=\'1`,
	}
	for _, a := range attacks {
		q := url.QueryEscape(a)
		targets := []string{
			"/api/v1/events?" + rng + "&field=path=" + q,
			"/api/v1/events?" + rng + "&field=properties.shard=" + q,
			"/api/v1/events?" + rng + "&field=" + q + "=1",
			"/api/v1/events?" + rng + "&type=" + q,
			"/api/v1/events?" + rng + "&cursor=" + q,
			"/api/v1/events?from=" + q + "&to=1",
			"/api/v1/topk?metric=requests&by=status&" + rng + "&filter=status=" + q,
			"/api/v1/topk?metric=" + q + "&by=status&" + rng,
			"/api/v1/topk?metric=requests&by=" + q + "&" + rng,
			"/api/v1/series?metric=requests&step=1m&" + rng + "&filter=status=" + q,
			"/api/v1/series?metric=requests&step=1m&" + rng + "&group_by=" + q,
			"/api/v1/alerts?filter=service=" + q,
			"/api/v1/alerts?state=" + q,
			"/api/v1/alerts?severity=" + q,
			"/api/v1/live?metric=" + q,
			"/api/v1/stream?metric=" + q,
		}
		for _, target := range targets {
			var body map[string]any
			code := e.get(t, target, &body)
			if code == http.StatusOK {
				for _, k := range []string{"events", "top", "alerts"} {
					if v, ok := body[k]; ok {
						require.Empty(t, v, target)
					}
				}
				if s, ok := body["series"].([]any); ok {
					for _, sr := range s {
						require.Empty(t, sr.(map[string]any)["points"], target)
					}
				}
				continue
			}
			require.Equal(t, http.StatusBadRequest, code, "%s: %v", target, body)
		}
	}
	require.Equal(t, before, counts(), "tables unchanged")
	require.Equal(t, tablesBefore, tableCount(), "no table dropped or created")
}

// TestAlertsBatchHandlerGroupsAndDeadLetters: the alerts projector's batch
// handler dead-letters an invalid record alone and queues the others for
// one grouped insert, whose wait reports when they are stored.
func TestAlertsBatchHandlerGroupsAndDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.storage.AlertBatcher.Run(runCtx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	application := e.app
	application.Commands.ProjectAlert = application.Commands.ProjectAlert.WithQueue(e.storage.AlertBatcher)
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16, Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })

	var msgs []*message.Message
	for i := range 5 {
		labels := map[string]string{"service": fmt.Sprintf("svc-%d", i)}
		msgs = append(msgs, alertMessage(t, alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("slow", labels), Rule: "slow",
			State: alerts.StateFiring, Severity: alerts.SeverityWarning, Labels: labels, Metric: "requests", StartsAt: may17}))
	}
	msgs = append(msgs[:2], append([]*message.Message{alertMessage(t, alerts.Alert{V: 1, Fingerprint: "x", State: "exploded"})}, msgs[2:]...)...)
	for i, m := range msgs {
		m.SetContext(messaging.ContextWithPosition(ctx, 1, int64(i)))
	}
	wait, err := ports.NewProjections(application).AlertsBatchHandler(ps, slog.New(slog.DiscardHandler))(ctx, msgs)
	require.NoError(t, err)
	require.NotNil(t, wait)
	require.NoError(t, wait(ctx))
	require.Equal(t, uint64(5), e.count(t, "SELECT count() FROM streamwatch.alerts FINAL"))
	require.Equal(t, uint64(1), e.count(t, "SELECT count() FROM system.parts WHERE database = 'streamwatch' AND table = 'alerts'"),
		"the five alerts in one insert (one part)")

	dlq, err := ps.Subscribe(ctx, messaging.DLQ(messaging.TopicAlerts))
	require.NoError(t, err)
	select {
	case m := <-dlq:
		require.Equal(t, "2", m.Metadata.Get(messaging.MetaSourceOffset))
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("invalid alert not dead-lettered")
	}
}
