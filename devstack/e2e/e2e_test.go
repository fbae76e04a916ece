// Package e2e_test runs the whole suite on the embedded stack — the
// in-process Kafka-protocol broker, real Redis and real ClickHouse on free
// ports in temporary directories, and the five service binaries built from
// this checkout — and replays the real access log through it.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/devstack/stack"
)

var (
	st      *stack.Stack
	webhook = &webhookSink{}
	repo    string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse() // testing.Short needs parsed flags
	if testing.Short() {
		fmt.Println("e2e: skipped with -short")
		return 0
	}
	var err error
	repo, err = filepath.Abs("../..")
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "streamwatch-e2e-")
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	if err := stack.BuildServices(context.Background(), repo, bin); err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	hook := httptest.NewServer(webhook)
	defer hook.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err = stack.Start(ctx, stack.Options{
		DataDir: filepath.Join(tmp, "data"),
		BinDir:  bin,
		ServiceEnv: map[string]map[string]string{
			"notifier":   {"NOTIFIER_WEBHOOK_URL": hook.URL + "/hook"},
			"aggregator": {"AGG_IDLE_TIMEOUT": "3s"},
		},
	})
	if err != nil {
		fmt.Println("e2e: start stack:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		for _, s := range stack.ServiceNames() {
			if b, err := os.ReadFile(st.LogPath(s)); err == nil {
				fmt.Printf("---- %s log (tail) ----\n%s\n", s, tail(string(b), 40))
			}
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if err := st.Close(cctx); err != nil {
		fmt.Println("e2e: close stack:", err)
	}
	return code
}

// expected holds counts computed from the log file by this test alone,
// without the collector's parser.
type expected struct {
	total     int
	perStatus map[string]float64
	perHour   map[int64]float64
	perClass  map[string]map[int64]float64 // status class -> hour -> count
	from, to  int64                        // ms, hour-aligned; to exclusive
	burstIP   string
	burst     int
	burstAt   int64
}

func expectFromFile(t *testing.T, path string) expected {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	e := expected{perStatus: map[string]float64{}, perHour: map[int64]float64{}, perClass: map[string]map[int64]float64{}}
	perClientMinute := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ip := strings.Fields(line)[0]
		ts := line[strings.IndexByte(line, '[')+1 : strings.IndexByte(line, ']')]
		tm, err := time.Parse("02/Jan/2006:15:04:05 -0700", ts)
		require.NoError(t, err)
		status := strings.Fields(strings.Split(line, `"`)[2])[0]
		hour := tm.Truncate(time.Hour).UnixMilli()
		e.total++
		e.perStatus[status]++
		e.perHour[hour]++
		class := status[:1] + "xx"
		if e.perClass[class] == nil {
			e.perClass[class] = map[int64]float64{}
		}
		e.perClass[class][hour]++
		perClientMinute[ip+"|"+strconv.FormatInt(tm.Truncate(time.Minute).UnixMilli(), 10)]++
		if e.from == 0 || hour < e.from {
			e.from = hour
		}
		if hour+3600_000 > e.to {
			e.to = hour + 3600_000
		}
	}
	require.NoError(t, sc.Err())
	for k, n := range perClientMinute {
		if n > 100 {
			require.Empty(t, e.burstIP, "more than one client above 100 requests/min")
			ip, at, _ := strings.Cut(k, "|")
			e.burstIP, e.burst = ip, n
			e.burstAt, _ = strconv.ParseInt(at, 10, 64)
		}
	}
	return e
}

func TestAccessLogEndToEnd(t *testing.T) {
	logPath := filepath.Join(repo, "testdata", "apache_logs")
	want := expectFromFile(t, logPath)
	// Facts about the file that the issue states; if these fail the file changed.
	require.Equal(t, 10_000, want.total)
	require.InDelta(t, 9126.0, want.perStatus["200"], 0)
	require.InDelta(t, 445.0, want.perStatus["304"], 0)
	require.InDelta(t, 213.0, want.perStatus["404"], 0)
	require.Equal(t, "75.97.9.59", want.burstIP)
	require.Equal(t, 108, want.burst)
	require.Equal(t, time.Date(2015, 5, 18, 8, 5, 0, 0, time.UTC).UnixMilli(), want.burstAt)

	t.Run("replay", func(t *testing.T) {
		require.Equal(t, 10_000, postLog(t, logPath, "apache_logs"))
		waitQuiet(t)
		checkCounts(t, want)
	})

	t.Run("one alert reaches the webhook and alerts:recent", func(t *testing.T) {
		require.Eventually(t, func() bool { return webhook.count() >= 1 }, 60*time.Second, 200*time.Millisecond)
		waitQuiet(t)
		checkAlert(t, want)
	})

	t.Run("second replay changes nothing", func(t *testing.T) {
		require.Equal(t, 10_000, postLog(t, logPath, "apache_logs"))
		waitQuiet(t)
		// Let the aggregator's idle watermark and tick emissions run their
		// course, then wait for the pipeline to drain again.
		time.Sleep(5 * time.Second)
		waitQuiet(t)
		checkCounts(t, want)
		checkAlert(t, want)
	})
}

func checkCounts(t *testing.T, want expected) {
	t.Helper()
	require.Equal(t, float64(want.total), sumSeries(series(t, "requests", want, "")[""]), "requests over the whole log")
	require.Equal(t, want.perHour, series(t, "requests", want, "")[""], "requests per hour")
	byStatus := series(t, "requests_by_status", want, "status")
	gotStatus := map[string]float64{}
	for status, points := range byStatus {
		gotStatus[status] = sumSeries(points)
	}
	require.Equal(t, want.perStatus, gotStatus, "requests per status")
	byClass := series(t, "requests_by_status_class", want, "status_class")
	require.Equal(t, want.perClass, byClass, "requests per status class per hour")
	require.Equal(t, strconv.Itoa(want.total), clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE source = 'apache_logs'"),
		"raw events in ClickHouse")
}

func checkAlert(t *testing.T, want expected) {
	t.Helper()
	msgs := webhook.messages()
	require.Len(t, msgs, 1, "exactly one webhook notification")
	m := msgs[0]
	require.Equal(t, "firing", m.Status)
	require.Len(t, m.Alerts, 1)
	a := m.Alerts[0]
	require.Equal(t, want.burstIP, a.Labels["client_ip"])
	require.Equal(t, "warning", a.Labels["severity"])
	require.Equal(t, time.UnixMilli(want.burstAt).UTC(), a.StartsAt)
	require.Contains(t, a.Annotations["summary"], fmt.Sprintf("made %d requests", want.burst))

	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	items, err := rdb.LRange(context.Background(), "alerts:recent", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, items, 1, "exactly one entry in alerts:recent")
	var recent struct {
		Labels   map[string]string `json:"labels"`
		Value    float64           `json:"value"`
		StartsAt int64             `json:"starts_at"`
		State    string            `json:"state"`
	}
	require.NoError(t, json.Unmarshal([]byte(items[0]), &recent))
	require.Equal(t, want.burstIP, recent.Labels["client_ip"])
	require.InDelta(t, float64(want.burst), recent.Value, 0)
	require.Equal(t, want.burstAt, recent.StartsAt)
	require.Equal(t, "firing", recent.State)
}

// postLog replays a log file through POST /v1/logs in chunks of 1,000 lines
// and returns how many lines the collector accepted.
func postLog(t *testing.T, path, source string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.SplitAfter(strings.TrimRight(string(data), "\n"), "\n")
	accepted := 0
	for start := 0; start < len(lines); start += 1000 {
		chunk := strings.Join(lines[start:min(start+1000, len(lines))], "")
		u := fmt.Sprintf("%s/v1/logs?format=combined&source=%s&first_line=%d", st.CollectorURL(), url.QueryEscape(source), start+1)
		resp, err := st.Client().Post(u, "text/plain", strings.NewReader(chunk))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
		var r struct {
			Accepted int               `json:"accepted"`
			Rejected []json.RawMessage `json:"rejected"`
		}
		require.NoError(t, json.Unmarshal(body, &r))
		require.Empty(t, r.Rejected, string(body))
		accepted += r.Accepted
	}
	return accepted
}

type point struct {
	T     int64   `json:"t"`
	Value float64 `json:"value"`
}

// series fetches a metric per hour over the log's range; the result maps the
// group_by label's value ("" without group_by) to hour -> value.
func series(t *testing.T, metric string, want expected, groupBy string) map[string]map[int64]float64 {
	t.Helper()
	q := url.Values{"metric": {metric}, "from": {strconv.FormatInt(want.from, 10)}, "to": {strconv.FormatInt(want.to, 10)}, "step": {"1h"}}
	if groupBy != "" {
		q.Set("group_by", groupBy)
	}
	var body struct {
		Series []struct {
			Labels map[string]string `json:"labels"`
			Points []point           `json:"points"`
		} `json:"series"`
	}
	getJSON(t, st.QueryURL()+"/api/v1/series?"+q.Encode(), &body)
	out := map[string]map[int64]float64{}
	for _, s := range body.Series {
		k := s.Labels[groupBy]
		if out[k] == nil {
			out[k] = map[int64]float64{}
		}
		for _, p := range s.Points {
			out[k][p.T] += p.Value
		}
	}
	return out
}

func sumSeries(points map[int64]float64) float64 {
	var s float64
	for _, v := range points {
		s += v
	}
	return s
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := st.Client().Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", u, body)
	require.NoError(t, json.Unmarshal(body, v), string(body))
}

// clickhouse runs a query over ClickHouse's HTTP interface and returns the
// trimmed answer.
func clickhouse(t *testing.T, query string) string {
	t.Helper()
	resp, err := http.Post(st.ClickHouseHTTPURL()+"/", "text/plain", strings.NewReader(query))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return strings.TrimSpace(string(body))
}

// waitQuiet waits until the whole pipeline has drained (Stack.WaitDrained),
// for at most 3 minutes.
func waitQuiet(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, st.WaitDrained(ctx))
}

// webhookSink is the webhook receiver on loopback: it records every
// notification it gets.
type webhookSink struct {
	mu   sync.Mutex
	msgs []webhookMessage
}

type webhookMessage struct {
	Status string `json:"status"`
	Alerts []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		Status      string            `json:"status"`
	} `json:"alerts"`
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var m webhookMessage
	if err != nil || json.Unmarshal(body, &m) != nil {
		http.Error(rw, "bad webhook body", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.msgs = append(w.msgs, m)
	w.mu.Unlock()
}

func (w *webhookSink) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.msgs)
}

func (w *webhookSink) messages() []webhookMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookMessage(nil), w.msgs...)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestBadInput sends the collector malformed and invalid input. Valid items
// in the same request must still go through, each error must name the
// problem, and no service may crash. Its events are dated before the access
// log, so they do not touch the counts checked above.
func TestBadInput(t *testing.T) {
	const early = "2015-05-16T12:00:00Z"
	valid := `{"type":"page_view","user_id":"u-bad-input","page":"/","event_time":"` + early + `"}`
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		accepted                int
		wants                   []string
	}{
		{"malformed JSON", "/v1/events", "application/json", `[{"type":"page_view",`, 400, 0, []string{"malformed JSON"}},
		{"wrong field type", "/v1/events", "application/json", `[{"type":"service_request","service":"api","status":"500","event_time":"` + early + `"}]`, 400, 0, []string{"status", "number"}},
		{"missing required field", "/v1/events", "application/json", `[{"type":"page_view","event_time":"` + early + `"}]`, 400, 0, []string{"user_id", "required"}},
		{"mixed valid and invalid", "/v1/events", "application/json", `[` + valid + `,{"type":"nope","event_time":1}]`, 202, 1, []string{`"index":1`, "unknown type"}},
		{"invalid log line among valid ones", "/v1/logs?format=combined&source=bad-input", "text/plain",
			"1.2.3.4 - - [16/May/2015:12:00:00 +0000] \"GET / HTTP/1.1\" 200 10 \"-\" \"ua\"\nthis is not a log line\n1.2.3.4 - - [16/May/2015:12:00:01 +0000] \"GET /x HTTP/1.1\" 404 0 \"-\" \"ua\"\n",
			202, 2, []string{`"line":2`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := st.Client().Post(st.CollectorURL()+tc.path, tc.ctype, strings.NewReader(tc.body))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			for _, w := range tc.wants {
				require.Contains(t, string(body), w)
			}
			var r struct {
				Accepted int `json:"accepted"`
			}
			require.NoError(t, json.Unmarshal(body, &r), string(body))
			require.Equal(t, tc.accepted, r.Accepted)
		})
	}
	t.Run("10 MB body", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), 10<<20)
		resp, err := st.Client().Post(st.CollectorURL()+"/v1/events", "application/json", bytes.NewReader(big))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(body))
		require.Contains(t, string(body), "bytes")
	})
	t.Run("valid items were not lost", func(t *testing.T) {
		waitQuiet(t)
		require.Equal(t, "2", clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE source = 'bad-input'"))
		require.Equal(t, "1", clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE user_id = 'u-bad-input'"))
	})
	t.Run("no service crashed", func(t *testing.T) {
		for _, s := range stack.ServiceNames() {
			require.True(t, st.ServiceRunning(s), s)
			resp, err := http.Get(st.ServiceURL(s) + "/healthz")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, s)
		}
	})
}
