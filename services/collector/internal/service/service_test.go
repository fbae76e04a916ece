package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/auth"
	swconfig "github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/collector/internal/config"
	"github.com/streamwatch/streamwatch/services/collector/internal/service"
)

const (
	apacheLogs = "../../../../testdata/apache_logs"
	partitions = 3
)

// skipShort skips tests that run an in-process broker under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs an in-process Kafka broker (kfake); skipped with -short")
	}
}

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, messaging.TopicEventsRaw))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func newConfig(brokers []string) config.Config {
	return config.Config{
		HTTP:         swconfig.HTTP{Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second},
		Kafka:        swconfig.Kafka{Brokers: brokers, Partitions: partitions},
		Log:          swconfig.Log{Level: "info"},
		MaxBodyBytes: config.DefaultMaxBodyBytes,
		MaxBatch:     100,
		Auth:         auth.Config{Mode: auth.ModeOff},
	}
}

// consume reads every events.raw record and decodes its batch.
func consume(t *testing.T, brokers []string, want int) map[int32][]events.Event {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(messaging.TopicEventsRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[int32][]events.Event{}
	n := 0
	for n < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d events", n, want)
		fs.EachError(func(_ string, _ int32, err error) { require.NoError(t, err) })
		fs.EachRecord(func(r *kgo.Record) {
			evs, err := events.DecodeBatch(r.Value)
			require.NoError(t, err)
			require.LessOrEqual(t, len(evs), 100, "MaxBatch")
			got[r.Partition] = append(got[r.Partition], evs...)
			n += len(evs)
		})
	}
	require.Equal(t, want, n)
	return got
}

// TestIngestApacheLogsThroughKafka posts the real sample to the wired
// service and reads it back from the broker: every line arrives once, in
// the partition of its client IP, in line order per client IP.
func TestIngestApacheLogsThroughKafka(t *testing.T) {
	t.Parallel()
	skipShort(t)
	cluster := newCluster(t)
	svc, err := service.New(newConfig(cluster.ListenAddrs()), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	data, err := os.ReadFile(apacheLogs)
	require.NoError(t, err)
	resp, err = http.Post(srv.URL+"/v1/logs?source=apache_logs", "text/plain", bytes.NewReader(data))
	require.NoError(t, err)
	var body struct {
		Accepted int `json:"accepted"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, 10000, body.Accepted)

	byPart := consume(t, cluster.ListenAddrs(), 10000)
	ids := map[string]bool{}
	for part, evs := range byPart {
		lastLine := map[string]int{}
		for _, ev := range evs {
			require.Equal(t, messaging.PartitionFor(ev.Key, partitions), part, "event %s", ev.ID)
			line, err := strconv.Atoi(ev.ID[len("apache_logs:"):])
			require.NoError(t, err)
			require.Greater(t, line, lastLine[ev.Key], "order of %s", ev.Key)
			lastLine[ev.Key] = line
			ids[ev.ID] = true
		}
	}
	require.Len(t, ids, 10000)
	require.True(t, ids["apache_logs:1"] && ids["apache_logs:10000"])
}

// TestRunLifecycle starts Run on a real port, checks it serves, cancels it
// and checks the port is closed; Close is safe twice.
func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	skipShort(t)
	cluster := newCluster(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	cfg := newConfig(cluster.ListenAddrs())
	cfg.HTTP.Addr = addr
	svc, err := service.New(cfg, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	url := fmt.Sprintf("http://%s/healthz", addr)
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	http.DefaultClient.CloseIdleConnections()
	_, err = http.Get(url)
	require.Error(t, err, "still serving after Run returned")

	require.NoError(t, svc.Close())
	require.NoError(t, svc.Close())
}

// TestReadinessFollowsTheBroker checks that /readyz turns 503 when the
// broker goes away, and that ingesting then answers 503.
func TestReadinessFollowsTheBroker(t *testing.T) {
	t.Parallel()
	skipShort(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, messaging.TopicEventsRaw))
	require.NoError(t, err)
	svc, err := service.New(newConfig(cluster.ListenAddrs()), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	status := func() int {
		resp, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, status())
	cluster.Close()
	require.Eventually(t, func() bool { return status() == http.StatusServiceUnavailable }, 15*time.Second, 100*time.Millisecond)

	// Publishing fails too: 503, nothing accepted.
	start := time.Now()
	resp, err := http.Post(srv.URL+"/v1/events", "application/json",
		bytes.NewReader([]byte(`[{"type":"click","event_time":1,"user_id":"u"}]`)))
	require.NoError(t, err)
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "unavailable", body.Code)
	t.Logf("503 after %v: %s", time.Since(start), body.Message)
}

func TestNewFailsFastWithoutBroker(t *testing.T) {
	t.Parallel()
	skipShort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	_, err = service.New(newConfig([]string{addr}), nil)
	require.Error(t, err)
}

// TestKeysNeverReachTheLog runs the wired service with API keys and a
// debug log: wrong keys, a right key and a key without the scope are sent,
// and neither the answers nor the log contain any of them.
func TestKeysNeverReachTheLog(t *testing.T) {
	t.Parallel()
	skipShort(t)
	cluster := newCluster(t)
	good, err := auth.Generate()
	require.NoError(t, err)
	reader, err := auth.Generate()
	require.NoError(t, err)
	wrong := good[:len(good)-4] + "AAAA"
	cfg := newConfig(cluster.ListenAddrs())
	cfg.Log.Level = "debug"
	cfg.Auth = auth.Config{Mode: auth.ModeKeys, Keys: auth.Line("web", good, "", auth.ScopeIngest) + ";" + auth.Line("dash", reader, "", auth.ScopeRead), RateLimit: 100, RateBurst: 100}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := service.New(cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	var answers bytes.Buffer
	for _, h := range []map[string]string{
		{"Authorization": "Bearer " + wrong}, {"X-API-Key": wrong}, {"Authorization": wrong},
		{"X-API-Key": reader}, {"Authorization": "Bearer " + good},
	} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader([]byte(`{"type":"click","user_id":"u","event_time":1}`)))
		require.NoError(t, err)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = answers.ReadFrom(resp.Body)
		for k, vs := range resp.Header {
			answers.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		resp.Body.Close()
	}
	require.Contains(t, answers.String(), `"accepted":1`)
	require.Contains(t, logs.String(), "API keys loaded")
	for _, secret := range []string{good, wrong, reader} {
		require.NotContains(t, answers.String(), secret)
		require.NotContains(t, logs.String(), secret)
	}
}
