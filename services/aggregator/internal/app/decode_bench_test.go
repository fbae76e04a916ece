package app

import (
	"strconv"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// BenchmarkDecodeBatch decodes one events.raw record of 500 access-log
// events into a reused buffer, as Apply does, in the binary format this
// build writes and in the JSON format of earlier builds; it reports ns per
// event.
func BenchmarkDecodeBatch(b *testing.B) {
	for _, f := range []struct {
		name   string
		encode func([]events.Event) ([]byte, error)
	}{{"binary", events.EncodeBatch}, {"json", events.EncodeBatchJSON}} {
		b.Run(f.name, func(b *testing.B) { benchDecodeBatch(b, f.encode) })
	}
}

func benchDecodeBatch(b *testing.B, encode func([]events.Event) ([]byte, error)) {
	evs := make([]events.Event, 500)
	for i := range evs {
		evs[i] = events.Event{V: 1, ID: "web1.log:" + strconv.Itoa(i), Type: events.TypeHTTPRequest, Time: 1_795_255_200_000 + int64(i),
			ReceiveTime: 1_795_255_260_000, Key: "10.0.0.1", ClientIP: "10.0.0.1", Method: "GET", Path: "/page/" + strconv.Itoa(i%50),
			Protocol: "HTTP/1.1", Status: 200, Bytes: 5120, UserAgent: "streamwatch-gen/1"}
	}
	payload, err := encode(evs)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]events.Event, 0, 500)
	for b.Loop() {
		got, err := decodeBatch(payload, buf)
		if err != nil {
			b.Fatal(err)
		}
		clear(got)
		buf = got[:0]
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
