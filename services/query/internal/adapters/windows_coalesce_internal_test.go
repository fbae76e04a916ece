package adapters

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// TestLatestByReportsKeyCollisions: when two results share a key but not
// their labels (a hash collision, forced here by a key without labels),
// latestBy gives up instead of dropping one of two different windows, and
// LatestRevisions then decides by Result.ID.
func TestLatestByReportsKeyCollisions(t *testing.T) {
	t.Parallel()
	rs := []metrics.Result{
		{V: 1, Metric: "m", Labels: map[string]string{"a": "1"}, WindowEnd: 60_000, Revision: 1},
		{V: 1, Metric: "m", Labels: map[string]string{"a": "2"}, WindowEnd: 60_000, Revision: 2},
	}
	metricOnly := func(r *metrics.Result) string { return r.Metric }
	sameLabels := func(a, b *metrics.Result) bool { return maps.Equal(a.Labels, b.Labels) }
	_, ok := latestBy(rs, metricOnly, sameLabels)
	require.False(t, ok, "a collision must be reported")
	out, ok := latestBy(rs, (*metrics.Result).ID, nil)
	require.True(t, ok)
	require.Equal(t, rs, out, "two windows, both kept")
	require.Equal(t, rs, LatestRevisions(rs))
}
