package e2e_test

import (
	"bufio"
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/stack"
)

// TestPipelineMetrics replays the real access log, sends one event far
// older than every window still open (late) and one undecodable record
// straight to events.raw (poison), then scrapes GET /metrics of every
// service and checks the pipeline metrics against what was sent: events
// published and consumed, events per record, processing latency, consumer
// lag (0 once drained), open windows and state size, watermark delay, late
// events, dead letters, notification outcomes and the HTTP server metrics.
func TestPipelineMetrics(t *testing.T) {
	logPath := filepath.Join(repo, "testdata", "apache_logs")
	lines := postLog(t, logPath, "apache_logs")
	require.Equal(t, 10000, lines)

	late := `[{"event_id":"issue8-late","type":"page_view","user_id":"issue8","page":"/late","event_time":"2015-05-01T00:00:00Z"}]`
	resp, err := st.Client().Post(st.CollectorURL()+"/v1/events", "application/json", strings.NewReader(late))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	kc, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	require.NoError(t, err)
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, kc.ProduceSync(ctx, &kgo.Record{Topic: "events.raw", Key: []byte("issue8"), Value: []byte("not a batch")}).FirstErr())
	waitQuiet(t)

	t.Run("collector", func(t *testing.T) {
		m := scrape(t, st.CollectorURL())
		published := m.sum("streamwatch_producer_events_total", "topic", "events.raw")
		require.GreaterOrEqual(t, published, 10001.0, "the log and the late event were published")
		require.Equal(t, published, m.sum("streamwatch_producer_batch_size_sum", "topic", "events.raw"), "events per record add up to the events")
		records := m.sum("streamwatch_producer_batch_size_count", "topic", "events.raw")
		require.Greater(t, records, 0.0)
		require.LessOrEqual(t, published/records, 500.0, "at most COLLECTOR_MAX_BATCH events per record")
		require.Equal(t, records, m.sum("streamwatch_producer_records_total", "topic", "events.raw"))
		require.GreaterOrEqual(t, m.sum("http_server_request_duration_seconds_count", "http_route", "/v1/logs"), 1.0)
	})

	t.Run("aggregator", func(t *testing.T) {
		m := scrape(t, st.AggregatorURL())
		ok := m.sum("streamwatch_consumer_records_total", "handler", "aggregator.windows", "outcome", "ok")
		require.Greater(t, ok, 0.0)
		require.GreaterOrEqual(t, m.sum("streamwatch_consumer_events_total", "handler", "aggregator.windows"), 10001.0)
		require.Equal(t, m.sum("streamwatch_consumer_process_duration_seconds_count", "handler", "aggregator.windows"),
			m.sum("streamwatch_consumer_records_total", "handler", "aggregator.windows"), "one latency sample per record")
		sum := m.sum("streamwatch_consumer_process_duration_seconds_sum", "handler", "aggregator.windows")
		require.Greater(t, sum, 0.0)
		require.Less(t, sum/ok, 5.0, "mean processing time per record below 5 s")
		lag := m.all("streamwatch_consumer_lag", "group", "aggregator.windows", "topic", "events.raw")
		require.Len(t, lag, stack.DefaultPartitions, "lag of every partition")
		for _, s := range lag {
			require.Zero(t, s.value, "lag of drained partition %s", s.labels["partition"])
		}
		require.Greater(t, m.sum("streamwatch_aggregator_windows_open"), 0.0)
		require.Greater(t, m.sum("streamwatch_aggregator_state_size_bytes"), 0.0)
		delays := m.all("streamwatch_aggregator_watermark_delay_seconds")
		require.NotEmpty(t, delays)
		for _, s := range delays {
			// The log is from May 2015: its watermarks trail now by years.
			require.Greater(t, s.value, 365*24*3600.0, "partition %s", s.labels["partition"])
		}
		require.GreaterOrEqual(t, m.sum("streamwatch_aggregator_late_events_total"), 1.0)
		require.Greater(t, m.sum("streamwatch_aggregator_outputs_total", "topic", "metrics.windows"), 0.0)
		require.GreaterOrEqual(t, m.sum("streamwatch_dead_letters_total", "topic", "events.raw"), 1.0, "the poison record")
	})

	t.Run("detector", func(t *testing.T) {
		m := scrape(t, st.DetectorURL())
		require.Greater(t, m.sum("streamwatch_consumer_records_total", "handler", "detector.thresholds"), 0.0)
		require.Greater(t, m.sum("streamwatch_consumer_records_total", "handler", "detector.events"), 0.0)
		require.NotEmpty(t, m.all("streamwatch_consumer_lag", "group", "detector.thresholds"))
	})

	t.Run("notifier", func(t *testing.T) {
		require.Eventually(t, func() bool { return webhook.count() > 0 }, time.Minute, 200*time.Millisecond, "no webhook delivery")
		var m metrics
		require.Eventually(t, func() bool {
			m = scrape(t, st.NotifierURL())
			return m.sum("streamwatch_notifier_outcomes_total", "kind", "sent") >= 1
		}, 30*time.Second, 200*time.Millisecond, "no sent outcome counted")
		require.Zero(t, m.sum("streamwatch_notifier_outcomes_total", "kind", "failed"), "the webhook sink accepts everything")
		require.NotEmpty(t, m.all("streamwatch_consumer_lag", "group", "notifier.dispatch"))
	})

	t.Run("query", func(t *testing.T) {
		m := scrape(t, st.QueryURL())
		require.GreaterOrEqual(t, m.sum("streamwatch_consumer_events_total", "topic", "events.raw"), 10001.0)
		require.Greater(t, m.sum("streamwatch_consumer_records_total", "topic", "metrics.windows", "outcome", "ok"), 0.0)
	})
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type metrics []sample

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape GETs base/metrics and parses the Prometheus text format.
func scrape(t *testing.T, base string) metrics {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	var out metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "line %q", line)
		s := sample{labels: map[string]string{}, value: v}
		head := line[:i]
		if j := strings.IndexByte(head, '{'); j >= 0 {
			s.name = head[:j]
			for _, m := range labelRE.FindAllStringSubmatch(head[j:], -1) {
				s.labels[m[1]] = m[2]
			}
		} else {
			s.name = head
		}
		out = append(out, s)
	}
	require.NoError(t, sc.Err())
	return out
}

// all returns the samples of name whose labels include the given
// key-value pairs.
func (m metrics) all(name string, kv ...string) []sample {
	var out []sample
next:
	for _, s := range m {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// sum adds the values of all(name, kv...).
func (m metrics) sum(name string, kv ...string) float64 {
	var total float64
	for _, s := range m.all(name, kv...) {
		total += s.value
	}
	return total
}
