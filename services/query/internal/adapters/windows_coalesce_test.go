package adapters_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
)

func TestLatestRevisions(t *testing.T) {
	t.Parallel()
	res := func(status string, ws int64, shard int32, rev, count int64) metrics.Result {
		return metrics.Result{V: 1, Metric: "requests_by_status", Labels: map[string]string{"status": status},
			WindowStart: ws, WindowEnd: ws + 60_000, Shard: shard, Kind: metrics.KindEarly, Revision: rev, Count: count}
	}
	two := func(client, service string, rev int64) metrics.Result {
		return metrics.Result{V: 1, Metric: "requests_by_client", Labels: map[string]string{"client": client, "service": service},
			WindowStart: 0, WindowEnd: 60_000, Kind: metrics.KindEarly, Revision: rev, Count: rev}
	}
	tests := []struct {
		name string
		in   []metrics.Result
		want []metrics.Result
	}{
		{"empty", nil, nil},
		{"nothing superseded", []metrics.Result{res("200", 0, 0, 1, 1), res("500", 0, 0, 1, 1), res("200", 60_000, 0, 1, 1), res("200", 0, 1, 1, 1)},
			[]metrics.Result{res("200", 0, 0, 1, 1), res("500", 0, 0, 1, 1), res("200", 60_000, 0, 1, 1), res("200", 0, 1, 1, 1)}},
		{"older revisions dropped, order kept", []metrics.Result{res("200", 0, 0, 1, 5), res("500", 0, 0, 1, 1), res("200", 0, 0, 3, 9), res("200", 0, 0, 2, 7)},
			[]metrics.Result{res("500", 0, 0, 1, 1), res("200", 0, 0, 3, 9)}},
		{"equal revisions: the first stays", []metrics.Result{res("200", 0, 0, 2, 5), res("200", 0, 0, 2, 6)},
			[]metrics.Result{res("200", 0, 0, 2, 5)}},
		{"label sets with the same pairs differently split are different windows",
			[]metrics.Result{two("a", "b", 1), two("b", "a", 2), two("a", "b", 3)},
			[]metrics.Result{two("b", "a", 2), two("a", "b", 3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, adapters.LatestRevisions(tt.in))
		})
	}
}

// BenchmarkLatestRevisions: a batch of 512 results, 128 windows of two
// labels with 4 revisions each, as a busy metric's early results arrive.
func BenchmarkLatestRevisions(b *testing.B) {
	rs := make([]metrics.Result, 0, 512)
	for rev := int64(1); rev <= 4; rev++ {
		for c := range 128 {
			rs = append(rs, metrics.Result{V: 1, Metric: "requests_by_client",
				Labels:      map[string]string{"client": fmt.Sprintf("10.0.%d.%d", c/256, c%256), "service": "checkout"},
				WindowStart: 1_700_000_040_000, WindowEnd: 1_700_000_100_000, Kind: metrics.KindEarly, Revision: rev, Count: rev})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if out := adapters.LatestRevisions(rs); len(out) != 128 {
			b.Fatalf("%d results, want 128", len(out))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rs)), "ns/result")
}
