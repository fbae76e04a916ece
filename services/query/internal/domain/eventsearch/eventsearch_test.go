package eventsearch_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/query/internal/domain/eventsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := eventsearch.Cursor{TimeMs: 1431856800123, Type: "http_request", ID: "apache_logs:42'; DROP"}
	got, err := eventsearch.DecodeCursor(c.Encode())
	require.NoError(t, err)
	require.Equal(t, c, got)
	for _, bad := range []string{"", "!!", "e30", "bm90IGpzb24"} { // "", invalid, {}, "not json"
		_, err := eventsearch.DecodeCursor(bad)
		require.ErrorIs(t, err, window.ErrInvalidParam, bad)
	}
}

func TestNewQuery(t *testing.T) {
	t.Parallel()
	q, err := eventsearch.NewQuery(0, 1000, []string{"click", "click", "http_request"},
		[]string{"status=404", "path=/a", "properties.plan=pro", "path=/b"}, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{"click", "http_request"}, q.Types(), "deduplicated")
	fields := []string{}
	for _, f := range q.Filters() {
		fields = append(fields, f.Field)
	}
	require.Equal(t, []string{"path", "path", "properties.plan", "status"}, fields, "sorted by field, so one field's filters are adjacent")
	require.Equal(t, "plan", q.Filters()[2].Property)
	require.Nil(t, q.After())

	_, err = eventsearch.NewQuery(5, 5, []string{"nope"}, []string{"nosuch=1", "status=4x", "noequals", "properties.a b=1"}, 0, "??")
	var pe *window.ParamError
	require.True(t, errors.As(err, &pe))
	for _, want := range []string{"parameter to", "parameter type", `"nosuch"`, "integer", "FIELD=VALUE", "property name", "parameter limit", "parameter cursor"} {
		require.ErrorContains(t, err, want)
	}
	_, err = eventsearch.NewQuery(0, 1, nil, nil, eventsearch.MaxLimit+1, "")
	require.ErrorContains(t, err, "limit")
}
