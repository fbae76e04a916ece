package alertsearch_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/query/internal/domain/alertsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

func TestStateRankOrdersAnEpisode(t *testing.T) {
	t.Parallel()
	require.Less(t, alertsearch.StateRank("pending"), alertsearch.StateRank("firing"))
	require.Less(t, alertsearch.StateRank("firing"), alertsearch.StateRank("resolved"))
	require.Zero(t, alertsearch.StateRank("exploded"))
}

func TestNewQuery(t *testing.T) {
	t.Parallel()
	q, err := alertsearch.NewQuery([]string{"firing", "firing"}, nil, []window.Filter{{Label: "service", Values: []string{"a"}}}, 0, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"firing"}, q.States())
	require.Equal(t, window.MaxTimeMs, q.To(), "no upper bound")
	_, err = alertsearch.NewQuery([]string{"x"}, []string{"loud"}, []window.Filter{{Label: "Bad-Label", Values: []string{"a"}}}, 10, 5, 0)
	for _, want := range []string{"state", "severity", "filter", "to", "limit"} {
		require.ErrorContains(t, err, "parameter "+want)
	}
}
