package loadgen

import (
	"testing"
	"time"
)

// BenchmarkNextRequests measures what the generator costs the benchmark
// process per batch of 1,000 items: generating them and encoding the
// requests (b.N batches; ns/op per batch, allocs per batch).
func BenchmarkNextRequests(b *testing.B) {
	g, err := New(DefaultConfig(1, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var bytes int
	line := int64(1)
	for b.Loop() {
		reqs, next, err := nextRequests(g, 1000, "bench", line)
		if err != nil {
			b.Fatal(err)
		}
		line = next
		for _, r := range reqs {
			bytes += len(r.body)
		}
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "B/batch")
}
