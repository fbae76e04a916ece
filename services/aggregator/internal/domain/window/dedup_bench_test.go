package window_test

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

// dedupStream returns minutes of events at perSecond events/s of event time
// from t0, in batches of 500, up to 2 s out of order, in the traffic mix of
// the end-to-end benchmark: 60% access-log requests (2,000 clients), 20%
// service requests (20 services), 20% behaviour events (5,000 users).
func dedupStream(minutes, perSecond int) [][]events.Event {
	n := minutes * 60 * perSecond
	var batches [][]events.Event
	batch := make([]events.Event, 0, 500)
	for i := range n {
		tm := t0 + int64(i)*1000/int64(perSecond) - int64(i*7919%2000)
		x := events.Event{V: 1, ID: "ev-" + strconv.Itoa(i), Time: tm, ReceiveTime: tm, Status: 200}
		switch r := i * 31 % 10; {
		case r < 6:
			x.Type, x.ClientIP, x.Method, x.Path = events.TypeHTTPRequest, "10.0."+strconv.Itoa(i%2000), "GET", "/p"
			x.Key = x.ClientIP
		case r < 8:
			x.Type, x.Service, x.Endpoint, x.LatencyMs = events.TypeServiceRequest, "svc-"+strconv.Itoa(i%20), "/api", float64(i%97)
			x.Key = x.Service
		default:
			x.Type, x.UserID, x.Page = []events.Type{events.TypePageView, events.TypeClick}[i%2], "u"+strconv.Itoa(i%5000), "/p/"+strconv.Itoa(i%200)
			x.Key = x.UserID
		}
		batch = append(batch, x)
		if len(batch) == cap(batch) {
			batches = append(batches, batch)
			batch = make([]events.Event, 0, 500)
		}
	}
	return batches
}

// takeDeltaB takes the state's checkpoint delta, as the service does after
// every record, so the ids it holds until then are not counted.
func takeDeltaB(b *testing.B, s *window.State) {
	if _, _, err := s.TakeDelta(); err != nil {
		b.Fatal(err)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDedupRetention runs 40 minutes of event time at 500 events/s
// with the built-in metric set through Add and Emit (the service's
// settings: 5 s out-of-orderness, 1 m lateness) and reports how many event
// ids the state remembers at the end (seen-ids), that count in seconds of
// traffic (seen-s: how long an average id is kept), and the state's heap
// (windows and ids; the checkpoint delta is taken after every batch).
func BenchmarkDedupRetention(b *testing.B) {
	defs, err := metrics.Defaults()
	if err != nil {
		b.Fatal(err)
	}
	e := window.NewEngine(defs, window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000})
	const perSecond = 500
	batches := dedupStream(40, perSecond)
	for b.Loop() {
		base := heapAfterGC()
		s := window.NewState(0)
		for _, batch := range batches {
			e.Add(s, batch, 0)
			e.Emit(s, 0, false)
			takeDeltaB(b, s)
		}
		heap := heapAfterGC() - base
		b.ReportMetric(float64(s.SeenIDs()), "seen-ids")
		b.ReportMetric(float64(s.SeenIDs())/perSecond, "seen-s")
		b.ReportMetric(float64(heap)/(1<<20), "state-heap-MiB")
		runtime.KeepAlive(s)
	}
}

// BenchmarkSeenBytesPerID measures the heap per remembered event id: 30
// minutes of event time at 1,000 events/s of one type whose only metric is
// an ungrouped 30-minute session, so the few windows weigh nothing next to
// the 1.8 M ids. Reports heap bytes per id (runtime, after GC) and the
// gauge's estimate (State.MemoryBytes / SeenIDs).
func BenchmarkSeenBytesPerID(b *testing.B) {
	defs := mustDefs(b, `
metrics:
  - name: sessions
    types: [http_request]
    window: {kind: session, gap: 30m}
`)
	e := window.NewEngine(defs, window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000})
	const perSecond = 1_000
	var batches [][]events.Event
	for m := range 30 * 60 * perSecond / 500 {
		batch := make([]events.Event, 500)
		for j := range batch {
			i := m*500 + j
			tm := t0 + int64(i)*1000/perSecond - int64(i*7919%2000)
			batch[j] = ev("ev-"+strconv.Itoa(i), tm, "1.1.1.1", 1)
		}
		batches = append(batches, batch)
	}
	for b.Loop() {
		base := heapAfterGC()
		s := window.NewState(0)
		for _, batch := range batches {
			e.Add(s, batch, 0)
			takeDeltaB(b, s)
		}
		heap := heapAfterGC() - base
		ids := float64(s.SeenIDs())
		b.ReportMetric(ids, "seen-ids")
		b.ReportMetric(float64(heap)/ids, "heap-B/id")
		b.ReportMetric(float64(s.MemoryBytes())/ids, "gauge-B/id")
		runtime.KeepAlive(s)
	}
}
