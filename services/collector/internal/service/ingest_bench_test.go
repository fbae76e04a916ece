package service_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamwatch/streamwatch/pkg/auth"
	swconfig "github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/collector/internal/adapters"
	"github.com/streamwatch/streamwatch/services/collector/internal/config"
	"github.com/streamwatch/streamwatch/services/collector/internal/service"
)

// benchItems is the number of events per request, as streamwatch-gen sends.
const benchItems = 1000

// benchEvents returns a JSON array of n client events shaped like the load
// generator's (devstack/loadgen): service requests and clickstream events
// with client-given ids, event time in ms, a few string fields.
func benchEvents(seed, n int) []byte {
	evs := make([]map[string]any, n)
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC).UnixMilli()
	for i := range evs {
		id := fmt.Sprintf("gen-%d-%d", seed, i)
		t := t0 + int64(i)
		if i%2 == 0 {
			svc := []string{"checkout", "search", "catalog", "auth"}[i%4/2+2*(i%3%2)]
			evs[i] = map[string]any{
				"event_id": id, "type": "service_request", "event_time": t,
				"service": svc, "endpoint": "/api/" + svc, "status": 200 + 300*(i%7/6), "latency_ms": float64(i%997) / 3,
			}
			continue
		}
		ev := map[string]any{
			"event_id": id, "event_time": t, "user_id": fmt.Sprintf("u%d", i*7919%5000),
			"session_id": fmt.Sprintf("s%x", i/10), "page": fmt.Sprintf("/page/%d", i%211), "type": "page_view",
		}
		switch i % 5 {
		case 1:
			ev["type"], ev["product_id"] = "click", fmt.Sprintf("p%d", i%97)
		case 3:
			ev["type"], ev["query"] = "search", fmt.Sprintf("q%d", i%100)
		}
		evs[i] = ev
	}
	b, err := json.Marshal(evs)
	if err != nil {
		panic(err)
	}
	return b
}

// cpuTime returns the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestEvents drives the collector's real HTTP handler (behind an
// httptest server, publishing to an in-process kfake broker with 6
// partitions) with 4 concurrent clients posting JSON arrays of 1000 events,
// as streamwatch-gen does. One op is one request. Besides ns/op it reports
// ns/event (wall), cpu-ns/event (CPU time of the whole process: server,
// clients and the in-process broker), allocs/event and events/record (the
// events per events.raw record the broker holds at the end).
func BenchmarkIngestEvents(b *testing.B) {
	bodies := make([]benchRequest, 8)
	for i := range bodies {
		bodies[i] = benchRequest{path: "/v1/events", body: benchEvents(i, benchItems), items: benchItems}
	}
	benchmarkIngest(b, bodies, adapters.DefaultLinger)
}

// BenchmarkIngestMix is BenchmarkIngestEvents with streamwatch-gen's mix
// (devstack/loadgen defaults): each 1000 generated items become three
// requests, 700 JSON events (service requests and clickstream), 300
// access-log lines and ~30 metric samples, so each request is smaller and
// so are the records made of one request.
func BenchmarkIngestMix(b *testing.B) { benchmarkIngest(b, mixRequests(), adapters.DefaultLinger) }

// mixRequests returns the requests of BenchmarkIngestMix.
func mixRequests() []benchRequest {
	var reqs []benchRequest
	for i := range 8 {
		reqs = append(reqs,
			benchRequest{path: "/v1/events", body: benchEvents(i, 700), items: 700},
			benchRequest{path: "/v1/logs?format=combined&source=bench&first_line=" + fmt.Sprint(1+300*i), body: benchLogs(i, 300), items: 300},
			benchRequest{path: "/v1/samples", body: benchSamples(i, 30), items: 30})
	}
	return reqs
}

// BenchmarkIngestMixLinger is BenchmarkIngestMix with other values of
// COLLECTOR_LINGER (the default is adapters.DefaultLinger).
func BenchmarkIngestMixLinger(b *testing.B) {
	for _, l := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond} {
		b.Run("linger="+l.String(), func(b *testing.B) { benchmarkIngest(b, mixRequests(), l) })
	}
}

// benchRequest is one POST of a benchmark.
type benchRequest struct {
	path  string
	body  []byte
	items int
}

// benchLogs returns n combined-format access-log lines as streamwatch-gen
// writes them.
func benchLogs(seed, n int) []byte {
	var buf bytes.Buffer
	t := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	for i := range n {
		fmt.Fprintf(&buf, "10.%d.%d.%d - - [%s] \"GET /page/%d HTTP/1.1\" %d %d \"-\" \"streamwatch-gen/1\"\n",
			seed, i/256%256, i%256, t.Add(time.Duration(i)*time.Millisecond).Format("02/Jan/2006:15:04:05 -0700"), i%211, 200, 500+i*37%50000)
	}
	return buf.Bytes()
}

// benchSamples returns a JSON array of n metric samples.
func benchSamples(seed, n int) []byte {
	s := make([]map[string]any, n)
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC).UnixMilli()
	for i := range s {
		s[i] = map[string]any{"series": "cpu_percent", "labels": map[string]string{"host": fmt.Sprintf("h%d", i%10), "core": fmt.Sprint(seed)},
			"value": float64(i%100) / 3, "timestamp": t0 + int64(i)*1000}
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

func benchmarkIngest(b *testing.B, reqs []benchRequest, linger time.Duration) {
	if testing.Short() {
		b.Skip("runs an in-process Kafka broker (kfake); skipped with -short")
	}
	const parts, clients = 6, 4
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, messaging.TopicEventsRaw))
	require.NoError(b, err)
	defer cluster.Close()
	cfg := newConfig(cluster.ListenAddrs())
	cfg.Kafka.Partitions = parts
	cfg.MaxBatch = config.DefaultMaxBatch
	cfg.Linger = linger
	cfg.Auth = auth.Config{Mode: auth.ModeOff}
	cfg.HTTP = swconfig.HTTP{Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}
	svc, err := service.New(cfg, nil)
	require.NoError(b, err)
	defer svc.Close()
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}

	post := func(r benchRequest) error {
		resp, err := client.Post(srv.URL+r.path, "application/json", bytes.NewReader(r.body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("%s: status %d: %s", r.path, resp.StatusCode, out)
		}
		return nil
	}
	require.NoError(b, post(reqs[0])) // topic metadata, connections
	recordsBefore := records(b, cluster.ListenAddrs(), parts)

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	b.ResetTimer()
	var (
		wg     sync.WaitGroup
		errMu  sync.Mutex
		errOut error
	)
	next := make(chan int)
	for range clients {
		wg.Go(func() {
			for i := range next {
				if err := post(reqs[i%len(reqs)]); err != nil {
					errMu.Lock()
					errOut = err
					errMu.Unlock()
				}
			}
		})
	}
	items := 0
	for i := 0; i < b.N; i++ {
		next <- i
		items += reqs[i%len(reqs)].items
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	require.NoError(b, errOut)
	evs := float64(items)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/evs, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/evs, "cpu-ns/event")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/evs, "allocs/event")
	if n := records(b, cluster.ListenAddrs(), parts) - recordsBefore; n > 0 {
		b.ReportMetric(evs/float64(n), "events/record")
	}
}

// records returns the number of records in events.raw (sum of the newest
// offsets of its partitions).
func records(b *testing.B, brokers []string, parts int32) int64 {
	b.Helper()
	cl, err := sarama.NewClient(brokers, messaging.SaramaConfig("bench-offsets"))
	require.NoError(b, err)
	defer cl.Close()
	var n int64
	for p := range parts {
		off, err := cl.GetOffset(messaging.TopicEventsRaw, p, sarama.OffsetNewest)
		require.NoError(b, err)
		n += off
	}
	return n
}
