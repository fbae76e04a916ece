package adapters_test

import (
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, adapters.LatestRevisions(tt.in))
		})
	}
}
