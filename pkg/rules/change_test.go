package rules_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/rules"
)

func TestChangeRoundTripAndMerge(t *testing.T) {
	t.Parallel()
	file, err := rules.Parse("f", []byte(rules.DefaultRules))
	require.NoError(t, err)
	up := rules.Rule{Name: "high_request_rate_client", Metric: "requests_by_client", Op: ">", Threshold: 500, For: rules.Duration(2 * 60e9)}
	b, err := rules.EncodeChange(rules.Change{Op: rules.OpUpsert, ID: up.Name, Rule: &up})
	require.NoError(t, err)
	c, err := rules.DecodeChange(b)
	require.NoError(t, err)
	require.InDelta(t, 500, c.Rule.Threshold, 0)
	require.Equal(t, rules.Duration(2*60e9), c.Rule.For)

	del, err := rules.DecodeChange([]byte(`{"v":1,"op":"delete","id":"high_event_rate_user"}`))
	require.NoError(t, err)
	added, err := rules.DecodeChange([]byte(`{"v":1,"op":"upsert","id":"abandoned","rule":{"name":"abandoned","kind":"negation","events":[{"type":"add_cart"},{"type":"purchase"}],"within":"30m"}}`))
	require.NoError(t, err)

	merged := rules.Merge(file, map[string]*rules.Rule{c.ID: c.Rule, del.ID: nil, added.ID: added.Rule})
	require.Len(t, merged, 2)
	require.InDelta(t, 500, merged[0].Threshold, 0)
	require.Equal(t, "abandoned", merged[1].Name)
	s, err := rules.NewSet(merged)
	require.NoError(t, err)
	require.Equal(t, 2, s.Len())

	for _, bad := range []string{
		`{"v":2,"op":"delete","id":"a"}`, `{"v":1,"op":"upsert","id":"a"}`, `{"v":1,"op":"drop","id":"a"}`,
		`{"v":1,"op":"upsert","id":"a","rule":{"name":"b","metric":"m","op":">"}}`,
		`{"v":1,"op":"upsert","id":"a","rule":{"name":"a","metric":"m","op":"=>"}}`, `not json`,
	} {
		_, err := rules.DecodeChange([]byte(bad))
		require.ErrorIs(t, err, rules.ErrBadChange, bad)
	}
}
