package adapters

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// BenchmarkEventNativeBlock measures the client's side of a Native insert
// without a server: filling a reused block with 100,000 access-log events
// and encoding it, in ns per row and allocations per insert once the
// block has grown (the benchmark rows of BenchmarkProjectorInsertEvents,
// one property each).
func BenchmarkEventNativeBlock(b *testing.B) {
	const n = 100_000
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{ID: "bench:" + strconv.Itoa(i), V: 1, Type: events.TypeHTTPRequest, Time: 1431820800000 + int64(i)*10,
			ReceiveTime: 1431820800000, Key: "10.0.0.1", Source: "bench", ClientIP: fmt.Sprintf("10.0.%d.%d", i/256%256, i%256),
			Method: "GET", Path: "/presentations/logstash-monitorama-2013/images/kibana-search.png", Protocol: "HTTP/1.1", Status: 200,
			Bytes: 7697, Referrer: "http://semicomplete.com/presentations/logstash-monitorama-2013/", UserAgent: "Mozilla/5.0 (Macintosh)",
			Properties: map[string]string{"tenant": "t1"}}
	}
	blk := newEventNativeBlock()
	fill := func() int {
		blk.reset()
		for i := range evs {
			blk.append(&evs[i])
		}
		data, err := blk.encode()
		if err != nil {
			b.Fatal(err)
		}
		return len(data)
	}
	fill() // grow the reused buffers first: measure the steady state
	size := 0
	b.ReportAllocs()
	for b.Loop() {
		size = fill()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
	b.ReportMetric(float64(size)/n, "bytes/row")
}
