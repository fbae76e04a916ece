package adapters_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
)

func TestHubFansOutWithoutBlocking(t *testing.T) {
	t.Parallel()
	h := adapters.NewHub()
	all, stopAll := h.Subscribe(nil, 1)
	some, stopSome := h.Subscribe([]string{"b"}, 10)
	h.WindowsStored([]metrics.Result{{Metric: "a"}, {Metric: "b"}, {Metric: "c"}})
	require.Equal(t, "a", (<-all).Metric)
	require.Equal(t, "b", (<-some).Metric)
	require.Equal(t, int64(2), h.Dropped(), "the full subscriber lost b and c; the projector did not wait")
	stopAll()
	stopAll() // twice is safe
	h.WindowsStored([]metrics.Result{{Metric: "b"}})
	require.Len(t, all, 0)
	require.Len(t, some, 1)
	stopSome()
	require.Zero(t, h.Subscribers())
}
