package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrafficRestartsWithNewIDsAndFollowingEventTime(t *testing.T) {
	t.Parallel()
	const start = 1_800_000_000_000
	tr, err := newTraffic(1, start, 1000)
	require.NoError(t, err)
	ids := map[string]bool{}
	last := int64(start)
	gen := func(n int) {
		for range n {
			it := tr.g.Next()
			if id, ok := it.Event["event_id"].(string); ok {
				require.False(t, ids[id], "id %s repeats", id)
				ids[id] = true
			}
		}
		require.GreaterOrEqual(t, tr.eventTime(), last)
		last = tr.eventTime()
	}
	gen(5000)
	require.InDelta(t, start+5000, tr.eventTime(), 100, "1000 events per second of event time: ~5 s for 5000 items")
	require.NoError(t, tr.restart(100))
	require.Equal(t, last+1, tr.segStart)
	gen(500)
	require.InDelta(t, tr.segStart+5000, tr.eventTime(), 200, "now 100 events per second (a few items are samples)")
	require.EqualValues(t, 5500, tr.total())
}
