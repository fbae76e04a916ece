// Package detectortest runs the detector on the embedded stack (broker,
// Redis, ClickHouse; collector, aggregator and detector built from this
// checkout): the real access log plus a synthetic burst give exactly the
// expected frequency alerts, also when the detector is killed with SIGKILL
// in the middle of the replay and restarted.
package detectortest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/stack"
)

var (
	st   *stack.Stack
	repo string
	bin  string
)

// groups must reach lag 0 before the alerts are final.
var groups = []string{
	"aggregator.windows", "detector.thresholds", "detector.events",
	"query.events-projector", "query.windows-projector", "query.live-projector",
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("detectortest: skipped with -short")
		return 0
	}
	var err error
	if repo, err = filepath.Abs("../.."); err != nil {
		fmt.Println("detectortest:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "streamwatch-detectortest-")
	if err != nil {
		fmt.Println("detectortest:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin = filepath.Join(tmp, "bin")
	services := []string{stack.Collector, stack.Aggregator, stack.Detector, stack.Query}
	if err := stack.BuildServices(context.Background(), repo, bin, services...); err != nil {
		fmt.Println("detectortest:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err = stack.Start(ctx, stack.Options{
		DataDir: filepath.Join(tmp, "data"), BinDir: bin, Services: services,
		ServiceEnv: map[string]map[string]string{"aggregator": {"AGG_IDLE_TIMEOUT": "3s"}},
	})
	if err != nil {
		fmt.Println("detectortest: start stack:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		for _, s := range services {
			if b, err := os.ReadFile(st.LogPath(s)); err == nil {
				lines := strings.Split(string(b), "\n")
				fmt.Printf("---- %s log (tail) ----\n%s\n", s, strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if err := st.Close(cctx); err != nil {
		fmt.Println("detectortest: close stack:", err)
	}
	return code
}

// alert is the part of an alerts record this test checks.
type alert struct {
	Rule     string            `json:"rule"`
	State    string            `json:"state"`
	Labels   map[string]string `json:"labels"`
	Value    float64           `json:"value"`
	StartsAt int64             `json:"starts_at"`
}

func TestFrequencyAlertsSurviveKill(t *testing.T) {
	logPath := filepath.Join(repo, "testdata", "apache_logs")
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	lines := strings.SplitAfter(strings.TrimRight(string(data), "\n"), "\n")
	require.Len(t, lines, 10_000)

	// First half, then SIGKILL the detector while it works on it.
	post(t, "apache_logs", 1, lines[:5000])
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, st.KillService(stack.Detector))
	post(t, "apache_logs", 5001, lines[5000:])

	// A synthetic burst from another client after the log's end:
	// 150 requests within one minute, sent while the detector is down.
	burstAt := time.Date(2015, 5, 21, 1, 0, 0, 0, time.UTC)
	var burst []string
	for i := range 150 {
		ts := burstAt.Add(time.Duration(i) * 300 * time.Millisecond).Format("02/Jan/2006:15:04:05 -0700")
		burst = append(burst, fmt.Sprintf("10.9.9.9 - - [%s] \"GET /burst/%d HTTP/1.1\" 200 10 \"-\" \"burst\"\n", ts, i))
	}
	// One later request of the same client moves its partition's watermark
	// past the burst's window, so the window is final without waiting for
	// the aggregator's idle watermark.
	burst = append(burst, fmt.Sprintf("10.9.9.9 - - [%s] \"GET /after HTTP/1.1\" 200 10 \"-\" \"burst\"\n",
		burstAt.Add(5*time.Minute).Format("02/Jan/2006:15:04:05 -0700")))
	post(t, "burst", 1, burst)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, st.StartService(ctx, stack.Detector))
	time.Sleep(5 * time.Second) // idle watermark closes the burst's window
	waitQuiet(t)

	firing := map[string]alert{}
	records := 0
	for id, a := range readAlerts(t) {
		records++
		if a.State == "firing" {
			firing[id] = a
		}
	}
	var got []string
	for _, a := range firing {
		got = append(got, fmt.Sprintf("%s %s %s %.0f", a.Rule, a.Labels["client_ip"], time.UnixMilli(a.StartsAt).UTC().Format(time.RFC3339), a.Value))
	}
	sort.Strings(got)
	require.Equal(t, []string{
		"high_request_rate_client 10.9.9.9 2015-05-21T01:00:00Z 150",
		"high_request_rate_client 75.97.9.59 2015-05-18T08:05:00Z 108",
	}, got, "firing alerts (distinct ids) after a SIGKILL of the detector")
	t.Logf("%d distinct alert state changes", records)

	t.Run("backtest over ClickHouse gives the same alerts", func(t *testing.T) {
		ruleFile := filepath.Join(t.TempDir(), "rules.yaml")
		require.NoError(t, os.WriteFile(ruleFile, []byte(`rules:
  - name: high_request_rate_client
    metric: requests_by_client
    op: ">"
    threshold: 100
`), 0o600))
		cmd := exec.Command(filepath.Join(bin, stack.Detector), "backtest", "--rule", ruleFile,
			"--from", "2015-05-17T00:00:00Z", "--to", "2015-05-22T00:00:00Z", "--clickhouse", st.ClickHouseAddr())
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, stderr.String())
		var bt []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var a alert
			require.NoError(t, json.Unmarshal([]byte(line), &a), line)
			if a.State == "firing" {
				bt = append(bt, fmt.Sprintf("%s %s %s %.0f", a.Rule, a.Labels["client_ip"], time.UnixMilli(a.StartsAt).UTC().Format(time.RFC3339), a.Value))
			}
		}
		sort.Strings(bt)
		require.Equal(t, got, bt, "backtest: %s", stderr.String())
	})
}

// post sends log lines to the collector in chunks of 1,000.
func post(t *testing.T, source string, firstLine int, lines []string) {
	t.Helper()
	for start := 0; start < len(lines); start += 1000 {
		chunk := strings.Join(lines[start:min(start+1000, len(lines))], "")
		u := fmt.Sprintf("%s/v1/logs?format=combined&source=%s&first_line=%d", st.CollectorURL(), url.QueryEscape(source), firstLine+start)
		resp, err := st.Client().Post(u, "text/plain", strings.NewReader(chunk))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	}
}

// readAlerts reads the whole alerts topic and returns the records by their
// id (fingerprint|starts_at|state): re-published duplicates collapse.
func readAlerts(t *testing.T) map[string]alert {
	t.Helper()
	out := map[string]alert{}
	readTopic(t, "alerts", func(r *kgo.Record) {
		var a struct {
			alert
			Fingerprint string `json:"fingerprint"`
		}
		require.NoError(t, json.Unmarshal(r.Value, &a))
		out[fmt.Sprintf("%s|%d|%s", a.Fingerprint, a.StartsAt, a.State)] = a.alert
	})
	return out
}

// readTopic calls f for every record on topic up to its current end.
func readTopic(t *testing.T, topic string, f func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "topic %s not read to its end", topic)
		fs.EachRecord(func(r *kgo.Record) {
			f(r)
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
}

// waitQuiet waits until the whole pipeline has drained (Stack.WaitDrained:
// groups stable with members and lag 0), for at most 3 minutes.
func waitQuiet(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, st.WaitDrained(ctx))
}

// TestRuleFromTopicWithoutRestart publishes a new rule on the rules topic
// while the detector runs; it applies to the events that follow.
func TestRuleFromTopicWithoutRestart(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	require.NoError(t, err)
	defer cl.Close()
	change := `{"v":1,"op":"upsert","id":"triple_get","rule":{"name":"triple_get","kind":"repetition",` +
		`"events":[{"type":"http_request","match":{"path":"/triple"}}],"count":3,"within":"60s","severity":"info"}}`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{
		Topic: "rules", Key: []byte("triple_get"), Value: []byte(change),
		Headers: []kgo.RecordHeader{{Key: "schema", Value: []byte("rules.change.v1")}},
	}).FirstErr())
	time.Sleep(2 * time.Second) // the detector follows the topic

	at := time.Date(2015, 5, 21, 2, 0, 0, 0, time.UTC)
	var lines []string
	for i := range 3 {
		ts := at.Add(time.Duration(i) * 10 * time.Second).Format("02/Jan/2006:15:04:05 -0700")
		lines = append(lines, fmt.Sprintf("10.7.7.7 - - [%s] \"GET /triple HTTP/1.1\" 200 10 \"-\" \"t\"\n", ts))
	}
	post(t, "triple", 1, lines)
	require.Eventually(t, func() bool {
		for _, a := range readAlerts(t) {
			if a.Rule == "triple_get" && a.State == "firing" && a.Labels["entity"] == "10.7.7.7" && a.StartsAt == at.UnixMilli() {
				return true
			}
		}
		return false
	}, 30*time.Second, time.Second, "the rule from the topic fires without a restart")
}
