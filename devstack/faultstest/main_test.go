// Package faultstest is Streamwatch's fault suite (make faults): the five
// service binaries on the embedded stack under a steady load from
// devstack/loadgen, while services are killed with SIGKILL and restarted,
// the broker is restarted, ClickHouse and Redis are stopped and started
// again, and a second aggregator and detector join and are killed. After
// every scenario the generator's exact tally must equal the raw events in
// ClickHouse, the aggregator's window results served by the query API and
// the batch recompute (no divergence), and every alert the tally implies
// must reach a loopback webhook exactly once. The suite prints a table of
// the scenarios. It also proves, for every consumer of every topic, that
// poison records go to the topic's dead-letter topic while the consumer
// goes on (poison_test.go).
//
// Environment (all optional): FAULTS_EVENTS items per scenario (default
// 3000, 2500..30000), FAULTS_RATE items per second of wall time (default
// 300), FAULTS_OUTAGE how long ClickHouse and Redis stay down (default
// 10s; the 30s in make faults), FAULTS_REPORT a file the table is
// also written to. Skipped with -short.
package faultstest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/devstack/stack"
)

var (
	st   *stack.Stack
	hook = &webhookSink{}
	opts suiteOptions
)

// suiteOptions are the suite's knobs, from the environment.
type suiteOptions struct {
	events int           // items per scenario
	rate   float64       // items per second of wall time
	outage time.Duration // ClickHouse and Redis downtime
	report string        // optional file for the results table
}

func loadOptions() (suiteOptions, error) {
	o := suiteOptions{events: 3000, rate: 300, outage: 10 * time.Second, report: os.Getenv("FAULTS_REPORT")}
	if v := os.Getenv("FAULTS_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2500 || n > 30000 {
			return o, fmt.Errorf("FAULTS_EVENTS=%q: want an integer in 2500..30000 (a scenario needs 3 minutes of event time for its incident and must stay within its hour)", v)
		}
		o.events = n
	}
	if v := os.Getenv("FAULTS_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			return o, fmt.Errorf("FAULTS_RATE=%q: want a positive number of items per second", v)
		}
		o.rate = r
	}
	if v := os.Getenv("FAULTS_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("FAULTS_OUTAGE=%q: want a positive duration", v)
		}
		o.outage = d
	}
	return o, nil
}

// routing sends every alert to the loopback webhook as a group of its own
// (grouped by the labels that tell the built-in rules' alerts apart), at
// once, never repeated within a run.
const routing = `
route:
  receiver: hook
  group_by: [alertname, client_ip, user_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 8760h
receivers:
  - name: hook
    webhook_configs:
      - url: ${FAULTS_HOOK_URL}
        timeout: 2s
`

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("faultstest: skipped with -short")
		return 0
	}
	var err error
	if opts, err = loadOptions(); err != nil {
		fmt.Println("faultstest:", err)
		return 2
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		fmt.Println("faultstest:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "streamwatch-faults-")
	if err != nil {
		fmt.Println("faultstest:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	if err := stack.BuildServices(context.Background(), repo, bin); err != nil {
		fmt.Println("faultstest:", err)
		return 1
	}
	routingFile := filepath.Join(tmp, "routing.yaml")
	if err := os.WriteFile(routingFile, []byte(routing), 0o644); err != nil {
		fmt.Println("faultstest:", err)
		return 1
	}
	srv := httptest.NewServer(hook)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err = stack.Start(ctx, stack.Options{
		DataDir: filepath.Join(tmp, "data"),
		BinDir:  bin,
		// API keys are not what this suite tests: the collector and the
		// query API run without them (AUTH_MODE=off).
		ServiceEnv: map[string]map[string]string{
			stack.Notifier:   {"NOTIFIER_CONFIG_FILE": routingFile, "FAULTS_HOOK_URL": srv.URL + "/hook"},
			stack.Aggregator: {"AGG_IDLE_TIMEOUT": "3s"},
			stack.Collector:  {"AUTH_MODE": "off"},
			stack.Query:      {"AUTH_MODE": "off"},
		},
	})
	if err != nil {
		fmt.Println("faultstest: start stack:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		for _, s := range stack.ServiceNames() {
			if b, err := os.ReadFile(st.LogPath(s)); err == nil {
				fmt.Printf("---- %s log (tail) ----\n%s\n", s, tail(string(b), 30))
			}
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if err := st.Close(cctx); err != nil {
		fmt.Println("faultstest: close stack:", err)
	}
	return code
}

// webhookSink is the loopback webhook receiver: it keeps every
// notification it is sent, duplicates included.
type webhookSink struct {
	mu   sync.Mutex
	msgs []webhookMessage
}

type webhookMessage struct {
	Status         string `json:"status"`
	NotificationID string `json:"notificationID"`
	Alerts         []struct {
		Status   string            `json:"status"`
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
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

// deliveries returns, per alert key (see alertKey) with a start in
// [from, to), how many distinct notifications (by notificationID) carried
// it firing, and how many notifications in that range arrived more than
// once (the same notificationID again: an at-least-once re-send).
func (w *webhookSink) deliveries(from, to time.Time) (perAlert map[string]int, resent int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	perAlert = map[string]int{}
	seen := map[string]bool{}
	for _, m := range w.msgs {
		inRange := false
		for _, a := range m.Alerts {
			inRange = inRange || (!a.StartsAt.Before(from) && a.StartsAt.Before(to))
		}
		if !inRange {
			continue
		}
		if seen[m.NotificationID] {
			resent++
			continue
		}
		seen[m.NotificationID] = true
		for _, a := range m.Alerts {
			if a.Status == "firing" && !a.StartsAt.Before(from) && a.StartsAt.Before(to) {
				perAlert[alertKey(a.Labels, a.StartsAt.UnixMilli())]++
			}
		}
	}
	return perAlert, resent
}

// alertKey names an alert episode of the built-in rules by the label that
// identifies its entity and its start (ms).
func alertKey(labels map[string]string, startsAt int64) string {
	entity := "client_ip=" + labels["client_ip"]
	if labels["client_ip"] == "" {
		entity = "user_id=" + labels["user_id"]
	}
	return entity + "@" + strconv.FormatInt(startsAt, 10)
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
// trimmed answer, or an error (ClickHouse may be down in a scenario).
func clickhouse(query string) (string, error) {
	resp, err := http.Post(st.ClickHouseHTTPURL()+"/", "text/plain", strings.NewReader(query))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse: %s: %s", resp.Status, body)
	}
	return strings.TrimSpace(string(body)), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
