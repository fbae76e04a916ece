package dispatch_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// TestDeltaHoldsWhatOneAlertChanged: with many alerts in the state, one
// more alert writes its own entries, its group's and meta, not the state.
func TestDeltaHoldsWhatOneAlertChanged(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	for i := range 50 {
		r.alert(alert("cpu", "svc"+string(rune('a'+i%26))+string(rune('a'+i/26)), "warning", alerts.StateFiring, 0, 0))
	}
	r.until(time.Minute)
	require.Greater(t, len(r.entries), 100)

	r.d.Alert(r.st, alert("disk", "db", "critical", alerts.StateFiring, 2*time.Minute, 0))
	set, del, err := r.st.TakeDelta()
	require.NoError(t, err)
	require.Empty(t, del)
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n[:min(2, len(n))])
	}
	require.ElementsMatch(t, []string{"l|", "a|", "g|", "me"}, names, "latest, alert, its new group, meta")
}

func TestRestoreSnapshotWritesEveryEntryOnce(t *testing.T) {
	t.Parallel()
	r := newRun(t, baseConfig(t))
	r.alert(alert("cpu", "web", "warning", alerts.StateFiring, 0, 0))
	r.alert(alert("cpu", "db", "warning", alerts.StateFiring, 0, 0))
	r.until(time.Minute)
	snapshot, err := json.Marshal(r.st) // what a snapshot checkpoint held
	require.NoError(t, err)

	st := dispatch.NewState()
	st.TrackChanges()
	require.NoError(t, st.RestoreSnapshot(snapshot))
	set, del, err := st.TakeDelta()
	require.NoError(t, err)
	require.Empty(t, del)
	require.Len(t, set, len(r.entries))
	restored := dispatch.NewState()
	require.NoError(t, restored.RestoreEntries(set))
	got, err := json.Marshal(restored)
	require.NoError(t, err)
	require.JSONEq(t, string(snapshot), string(got))
	set, _, err = st.TakeDelta()
	require.NoError(t, err)
	require.Len(t, set, 1, "meta only: the whole state is written once")
}

func TestRestoreEntriesNamesBadEntries(t *testing.T) {
	t.Parallel()
	err := dispatch.NewState().RestoreEntries(map[string][]byte{
		"meta": []byte(`{"v":2}`),
		"g|x":  []byte(`[`),
		"zz|y": []byte(`{}`),
		"a|ok": []byte(`{"v":1}`),
		"x":    []byte(`1`),
	})
	require.ErrorContains(t, err, `entry "meta": format version 2, this build reads 1`)
	require.ErrorContains(t, err, `entry "g|x"`)
	require.ErrorContains(t, err, `entry "zz|y": unknown kind`)
	require.ErrorContains(t, err, `entry "x": unknown kind`)
	require.NotContains(t, err.Error(), `"a|ok"`)
}
