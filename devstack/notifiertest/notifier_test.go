// Package notifiertest runs the notifier binary on the embedded stack and
// checks its exactly-once promise across kill -9: alerts are published to
// the alerts topic directly, a webhook on loopback counts what arrives.
package notifiertest

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
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// binDir runs a prebuilt notifier (e.g. of another commit, to compare
// BenchmarkProbeBehindBurst before and after a change) instead of building
// the checkout's.
var binDir = flag.String("bin", "", "directory with a prebuilt notifier binary (default: build the checkout)")

var (
	st    *stack.Stack
	sink  = &webhookSink{}
	flaky = &failingSink{failN: 3}
	dead  = &failingSink{failN: 1 << 30}
)

// failingSink answers 503 to its first failN calls and counts the rest.
type failingSink struct {
	mu        sync.Mutex
	failN     int
	calls, ok int
}

func (s *failingSink) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failN {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.ok++
}

func (s *failingSink) counts() (calls, ok int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.ok
}

// routing is the notifier's routing file in this test: one webhook
// receiver (URL from the environment), resolved notifications on, short
// timers so the test runs in seconds; BenchmarkProbeBehindBurst's probes go
// one group each to their own webhook and its bursts to the Redis list
// (as devstack/bench routes them).
const routing = `
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 3s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - match: {alertname: flaky}
      receiver: flaky
      group_wait: 0s
    - match: {alertname: probe}
      receiver: probe
      group_by: [alertname, service]
      group_wait: 0s
    - match_re: {alertname: "storm_.*"}
      receiver: recent
      group_wait: 0s
      group_interval: 1m
receivers:
  - name: probe
    webhook_configs: [{url: "${TEST_PROBE_URL}", send_resolved: false, max_tries: 1}]
  - name: recent
    redis_configs: [{key: "alerts:recent", limit: 100}]
  - name: hook
    webhook_configs:
      - url: ${TEST_HOOK_URL}
        timeout: 2s
  - name: flaky
    webhook_configs:
      - url: ${TEST_FLAKY_URL}
        max_tries: 5
      - url: ${TEST_DEAD_URL}
        max_tries: 2
`

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("notifiertest: skipped with -short")
		return 0
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		fmt.Println("notifiertest:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "streamwatch-notifiertest-")
	if err != nil {
		fmt.Println("notifiertest:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := *binDir
	if bin == "" {
		bin = filepath.Join(tmp, "bin")
		if err := stack.BuildServices(context.Background(), repo, bin, stack.Notifier); err != nil {
			fmt.Println("notifiertest:", err)
			return 1
		}
	}
	cfgPath := filepath.Join(tmp, "notifier.yaml")
	if err := os.WriteFile(cfgPath, []byte(routing), 0o600); err != nil {
		fmt.Println("notifiertest:", err)
		return 1
	}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	flakyHook := httptest.NewServer(flaky)
	defer flakyHook.Close()
	deadHook := httptest.NewServer(dead)
	defer deadHook.Close()
	probeHook := httptest.NewServer(probes)
	defer probeHook.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err = stack.Start(ctx, stack.Options{
		DataDir: filepath.Join(tmp, "data"), BinDir: bin, Services: []string{stack.Notifier},
		ServiceEnv: map[string]map[string]string{stack.Notifier: {
			"NOTIFIER_CONFIG_FILE": cfgPath, "TEST_HOOK_URL": hook.URL + "/hook", "NOTIFIER_TICK_INTERVAL": "200ms",
			"TEST_FLAKY_URL": flakyHook.URL, "TEST_DEAD_URL": deadHook.URL, "NOTIFIER_RETRY_INITIAL": "50ms",
			"TEST_PROBE_URL": probeHook.URL,
		}},
	})
	if err != nil {
		fmt.Println("notifiertest: start stack:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		if b, err := os.ReadFile(st.LogPath(stack.Notifier)); err == nil {
			fmt.Printf("---- notifier log ----\n%s\n", b)
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if err := st.Close(cctx); err != nil {
		fmt.Println("notifiertest: close stack:", err)
	}
	return code
}

// webhookSink records every webhook message.
type webhookSink struct {
	mu   sync.Mutex
	msgs []webhookMessage
}

type webhookMessage struct {
	Status         string `json:"status"`
	NotificationID string `json:"notificationID"`
	Alerts         []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// readWebhook decodes a webhook call's body; it answers 400 and returns
// false when the body is not a webhook message.
func readWebhook(w http.ResponseWriter, r *http.Request) (webhookMessage, bool) {
	b, _ := io.ReadAll(r.Body)
	var m webhookMessage
	if err := json.Unmarshal(b, &m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return m, false
	}
	return m, true
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, ok := readWebhook(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
}

// summary renders the messages as "status: ip=state ip=state".
func (s *webhookSink) summary() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		var parts []string
		for _, a := range m.Alerts {
			parts = append(parts, a.Labels["client_ip"]+"="+a.Status)
		}
		sort.Strings(parts)
		out = append(out, m.Status+": "+strings.Join(parts, " "))
	}
	return out
}

func alert(ip, state string, start, end time.Time) alerts.Alert {
	labels := map[string]string{"alertname": "burst", "client_ip": ip, "severity": "warning"}
	a := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("burst", labels), Rule: "burst", State: state,
		Severity: "warning", Labels: labels, StartsAt: start.UnixMilli(), Value: 120, Threshold: 100}
	if state == alerts.StateResolved {
		a.EndsAt = end.UnixMilli()
	}
	return a
}

func publish(t *testing.T, pub message.Publisher, as ...alerts.Alert) {
	t.Helper()
	for _, a := range as {
		b, err := json.Marshal(a)
		require.NoError(t, err)
		m := message.NewMessage(a.ID(), b)
		m.Metadata.Set(messaging.MetaKey, a.Fingerprint)
		require.NoError(t, pub.Publish(messaging.TopicAlerts, m))
	}
}

// waitGrouped waits until the dispatcher's committed state holds every
// fingerprint in a group (its checkpoint in Redis: the entries of the
// incremental checkpoint, or a snapshot's "d" field).
func waitGrouped(t *testing.T, rdb *redis.Client, fps ...string) {
	t.Helper()
	key := "sw:ckpt:notifier.dispatch:" + messaging.TopicNotifierDispatch + ":0"
	require.Eventually(t, func() bool {
		entries, err := rdb.HGetAll(context.Background(), key+":entries").Result()
		if err != nil {
			return false
		}
		d, _ := rdb.HGet(context.Background(), key, "d").Result()
		for _, v := range entries {
			d += v
		}
		for _, fp := range fps {
			if !strings.Contains(d, `"`+fp+`":true`) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)
}

func TestKill9MidGroupDeliversEachNotificationOnce(t *testing.T) {
	ctx := context.Background()
	pub, err := messaging.NewPublisher(config.Kafka{Brokers: st.Brokers()}, "notifiertest", nil)
	require.NoError(t, err)
	defer pub.Close()
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	a, b := alert("10.0.0.1", "firing", start, time.Time{}), alert("10.0.0.2", "firing", start, time.Time{})
	publish(t, pub, a, b)
	// Both alerts are in the group (durably) and group_wait (3s) has not
	// passed: kill -9 the notifier mid-group.
	waitGrouped(t, rdb, a.Fingerprint, b.Fingerprint)
	require.Empty(t, sink.summary())
	require.NoError(t, st.KillService(stack.Notifier))
	require.NoError(t, st.StartService(ctx, stack.Notifier))
	require.Eventually(t, func() bool { return len(sink.summary()) >= 1 }, 60*time.Second, 100*time.Millisecond)

	// The same alerts again (a detector replay) and both resolutions; kill
	// -9 again while the resolutions wait for the group interval.
	end := time.Now()
	publish(t, pub, a, b, alert("10.0.0.1", "resolved", start, end), alert("10.0.0.2", "resolved", start, end))
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, st.KillService(stack.Notifier))
	require.NoError(t, st.StartService(ctx, stack.Notifier))
	require.Eventually(t, func() bool { return len(sink.summary()) >= 2 }, 60*time.Second, 100*time.Millisecond)
	time.Sleep(5 * time.Second) // anything extra (a duplicate) would arrive by now

	require.Equal(t, []string{
		"firing: 10.0.0.1=firing 10.0.0.2=firing",
		"resolved: 10.0.0.1=resolved 10.0.0.2=resolved",
	}, sink.summary())
	ids := map[string]bool{}
	for _, m := range sink.msgs {
		require.False(t, ids[m.NotificationID], "notification %s delivered twice", m.NotificationID)
		ids[m.NotificationID] = true
	}
}

// records reads every record of topic from the start.
func records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 {
			return out
		}
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestFailingReceiversRetryOrDeadLetter(t *testing.T) {
	pub, err := messaging.NewPublisher(config.Kafka{Brokers: st.Brokers()}, "notifiertest", nil)
	require.NoError(t, err)
	defer pub.Close()
	labels := map[string]string{"alertname": "flaky", "client_ip": "10.9.9.9", "severity": "warning"}
	a := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("flaky", labels), Rule: "flaky", State: "firing",
		Severity: "warning", Labels: labels, StartsAt: time.Now().UnixMilli()}
	publish(t, pub, a)

	require.Eventually(t, func() bool { _, ok := flaky.counts(); return ok == 1 }, 60*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { c, _ := dead.counts(); return c == 2 }, 60*time.Second, 100*time.Millisecond)
	var dl []*kgo.Record
	require.Eventually(t, func() bool {
		dl = records(t, messaging.DLQ(messaging.TopicNotifierDeliveries))
		return len(dl) == 1
	}, 60*time.Second, time.Second)
	require.Equal(t, "answered 503 Service Unavailable", header(dl[0], messaging.MetaError))
	require.Equal(t, "flaky/webhook/1", header(dl[0], "integration"))
	require.Contains(t, string(dl[0].Value), a.Fingerprint)

	var kinds []string
	require.Eventually(t, func() bool {
		kinds = nil
		for _, r := range records(t, messaging.TopicNotifications) {
			var oc struct {
				Kind        string `json:"kind"`
				Integration string `json:"integration"`
			}
			require.NoError(t, json.Unmarshal(r.Value, &oc))
			if strings.HasPrefix(oc.Integration, "flaky/") {
				kinds = append(kinds, oc.Integration+" "+oc.Kind)
			}
		}
		sort.Strings(kinds)
		return len(kinds) == 6
	}, 60*time.Second, time.Second)
	require.Equal(t, []string{
		"flaky/webhook/0 retried", "flaky/webhook/0 retried", "flaky/webhook/0 retried", "flaky/webhook/0 sent",
		"flaky/webhook/1 failed", "flaky/webhook/1 retried",
	}, kinds)
	time.Sleep(2 * time.Second)
	calls, ok := flaky.counts()
	require.Equal(t, 4, calls, "3 failures, then one success, nothing after")
	require.Equal(t, 1, ok)
}
