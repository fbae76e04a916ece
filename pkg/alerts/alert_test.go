package alerts_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
)

func TestFingerprintIDAndValidate(t *testing.T) {
	t.Parallel()
	a := alerts.Fingerprint("r", map[string]string{"a": "1", "b": "2"})
	require.Len(t, a, 16)
	require.Equal(t, a, alerts.Fingerprint("r", map[string]string{"b": "2", "a": "1"}), "label order does not matter")
	require.NotEqual(t, a, alerts.Fingerprint("r2", map[string]string{"a": "1", "b": "2"}))
	require.NotEqual(t, alerts.Fingerprint("r", map[string]string{"a": "1b"}), alerts.Fingerprint("r", map[string]string{"a": "1", "b": ""}),
		"separators keep names and values apart")

	al := alerts.Alert{V: 1, Fingerprint: a, State: alerts.StateFiring, StartsAt: 60_000}
	require.Equal(t, a+"|60000|firing", al.ID())
	require.NoError(t, al.Validate())
	al.State = "loud"
	require.ErrorIs(t, al.Validate(), alerts.ErrInvalid)
	al.State, al.V = alerts.StatePending, 2
	require.ErrorIs(t, al.Validate(), alerts.ErrInvalid)

	// Absurd times (they would move the notifier's event-time clock).
	al.V = 1
	for _, tc := range []struct {
		starts, ends int64
		want         string
	}{
		{0, 0, "starts_at 0 outside"},
		{253402300799000, 0, "starts_at 253402300799000 outside 1..4102444800000"},
		{120_000, 60_000, "ends_at 60000 before starts_at 120000"},
	} {
		al.StartsAt, al.EndsAt = tc.starts, tc.ends
		err := al.Validate()
		require.ErrorIs(t, err, alerts.ErrInvalid)
		require.ErrorContains(t, err, tc.want)
	}
	al.StartsAt, al.EndsAt = 60_000, 60_000 // resolved in the window it started: valid
	require.NoError(t, al.Validate())
}
