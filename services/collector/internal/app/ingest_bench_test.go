package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// nopPublisher accepts every event.
type nopPublisher struct{}

func (nopPublisher) PublishEvents(context.Context, string, []events.Event) error { return nil }

// BenchmarkHandleEvents is the parse path alone (no HTTP, no broker): one
// op is a JSON array of 1000 client events shaped like streamwatch-gen's,
// through IngestEventsHandler.Handle with the service's default limits, on
// the fast path and (path=std) on the encoding/json path it replaced, for
// a JSON array body and an NDJSON one.
func BenchmarkHandleEvents(b *testing.B) {
	evs := make([]map[string]any, 1000)
	for i := range evs {
		evs[i] = map[string]any{"event_id": fmt.Sprintf("gen-1-%d", i), "type": "service_request", "event_time": 1_763_719_200_000 + i,
			"service": "checkout", "endpoint": "/api/checkout", "status": 200, "latency_ms": float64(i%997) / 3}
		if i%2 == 1 {
			evs[i] = map[string]any{"event_id": fmt.Sprintf("gen-1-%d", i), "type": "page_view", "event_time": 1_763_719_200_000 + i,
				"user_id": fmt.Sprintf("u%d", i*7919%5000), "session_id": fmt.Sprintf("s%x", i/10), "page": fmt.Sprintf("/page/%d", i%211)}
		}
	}
	body, err := json.Marshal(evs)
	if err != nil {
		b.Fatal(err)
	}
	var ndjson []byte
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		ndjson = append(append(ndjson, line...), '\n')
	}
	receive := time.UnixMilli(1_763_719_200_000)
	limits := Limits{MaxEventBytes: 65536, MaxJSONDepth: 8, MaxJSONFields: 128, MaxEventSkew: time.Hour}
	for _, run := range []struct {
		name   string
		body   []byte
		ndjson bool
	}{{"array", body, false}, {"ndjson", ndjson, true}} {
		for _, path := range []string{"fast", "std"} {
			b.Run("body="+run.name+"/path="+path, func(b *testing.B) {
				benchmarkHandle(b, &IngestEventsHandler{pub: nopPublisher{}, now: func() time.Time { return receive }, limits: limits, stdOnly: path == "std"},
					IngestEvents{NDJSON: run.ndjson}, run.body, len(evs))
			})
		}
	}
}

// benchmarkHandle runs h on body as cmd and reports ns/event.
func benchmarkHandle(b *testing.B, h *IngestEventsHandler, cmd IngestEvents, body []byte, n int) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		cmd.Body, cmd.Size = bytes.NewReader(body), int64(len(body))
		res, err := h.Handle(b.Context(), cmd)
		if err != nil || res.Accepted != n {
			b.Fatalf("accepted %d, %v", res.Accepted, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

// BenchmarkHandleLogs is the access-log path alone: one op is 1000
// combined-format lines as streamwatch-gen writes them, through
// IngestLogsHandler.Handle with a no-op publisher.
func BenchmarkHandleLogs(b *testing.B) {
	var body []byte
	t := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	for i := range 1000 {
		body = fmt.Appendf(body, "10.1.%d.%d - - [%s] \"GET /page/%d HTTP/1.1\" 200 %d \"-\" \"streamwatch-gen/1\"\n",
			i/256, i%256, t.Add(time.Duration(i)*time.Millisecond).Format("02/Jan/2006:15:04:05 -0700"), i%211, 500+i*37%50000)
	}
	h := &IngestLogsHandler{pub: nopPublisher{}, now: func() time.Time { return t }, limits: Limits{MaxEventSkew: time.Hour}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		res, err := h.Handle(b.Context(), IngestLogs{Body: bytes.NewReader(body), Size: int64(len(body)), Source: "bench", FirstLine: 1})
		if err != nil || res.Accepted != 1000 {
			b.Fatalf("accepted %d, %v", res.Accepted, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
}
