package window_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

// usersDefs has one metric with a HyperLogLog: the distinct users of the
// requests of each minute.
const usersDefs = `
metrics:
  - name: users
    types: [http_request]
    distinct: user_id
    aggregations: [distinct, count]
    window: {size: 1m}
`

// TestHLLLogEntries checks how a window's HyperLogLog is checkpointed. The
// window entry holds none of it. A commit that added values writes their
// hashes alone, 8 bytes each, as a log entry, while the logs stay smaller
// than the sketch's base entry and fewer than 32; then a commit writes a
// new base and deletes the logs. A state restored from the entries after
// any commit goes on emitting exactly what the original emits, and the
// purge of the window deletes every entry of its sketch.
func TestHLLLogEntries(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, usersDefs), cfg)
	user := func(i int) events.Event {
		x := ev(fmt.Sprint("e", i), t0+int64(i), "10.0.0.1", 1)
		x.UserID = fmt.Sprint("u", i)
		return x
	}
	orig := window.NewState(0)
	var batch []events.Event
	for i := range 3_000 { // a dense sketch: a 16 KiB base
		batch = append(batch, user(i))
	}
	e.Add(orig, batch, 1)
	require.NotEmpty(t, e.Emit(orig, 1, true))
	entries := map[string][]byte{}
	written, _ := takeDelta(t, orig, entries)
	kinds := func(names []string) map[string][]string {
		out := map[string][]string{}
		for _, n := range names {
			out[n[:1]] = append(out[n[:1]], n)
		}
		return out
	}
	k := kinds(written)
	require.Len(t, k["x"], 1, "the first commit writes a base")
	require.Empty(t, k["h"])
	base := k["x"][0]
	require.Greater(t, len(entries[base]), 16_000)
	require.Less(t, len(entries[k["w"][0]]), 200, "the window entry holds no sketch")

	var copyState *window.State
	logs, bases := 0, 0
	for step := range 100 {
		batch = batch[:0]
		for j := range 10 {
			batch = append(batch, user(3_000+10*step+j))
		}
		now := int64(2 + step)
		e.Add(orig, batch, now)
		want := e.Emit(orig, now, true)
		require.Len(t, want, 1)
		if copyState != nil {
			e.Add(copyState, batch, now)
			require.Equal(t, want, e.Emit(copyState, now, true), "step %d", step)
		}
		written, deleted := takeDelta(t, orig, entries)
		k := kinds(written)
		if len(k["x"]) == 0 {
			logs++
			require.Len(t, k["h"], 1, "step %d", step)
			require.Len(t, entries[k["h"][0]], 80, "ten hashes of 8 bytes")
			require.Equal(t, fmt.Sprintf("h%s|%d", base[1:], logs), k["h"][0])
			require.Empty(t, deleted)
		} else {
			bases++
			require.Equal(t, 32, logs, "a new base after 32 logs (2,560 bytes < the 16 KiB base)")
			require.Empty(t, k["h"])
			require.Len(t, deleted, logs, "the logs go with the new base")
			for _, n := range deleted {
				require.True(t, strings.HasPrefix(n, "h"+base[1:]+"|"), n)
			}
			logs = 0
		}
		copyState = window.NewState(0)
		require.NoError(t, copyState.RestoreEntries(entries))
	}
	require.Equal(t, 3, bases)

	advanceClock(t, e, orig, t0+10*60_000)
	for now := int64(1 << 40); len(e.Emit(orig, now, true)) > 0; now++ {
	}
	takeDelta(t, orig, entries)
	for n := range entries {
		require.False(t, strings.HasPrefix(n, "x|") || strings.HasPrefix(n, "h|") || strings.HasPrefix(n, "w|"), "entry %q left after the purge", n)
	}
}

// TestHLLRestoreFaults checks restores of HyperLogLog entries that do not
// fit together: a window whose base entry is missing is an error that
// names both entries, a malformed log is an error, and entries no window
// takes are deleted with the next delta.
func TestHLLRestoreFaults(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, usersDefs), cfg)
	s := window.NewState(0)
	x := ev("a", t0, "10.0.0.1", 1)
	x.UserID = "u1"
	e.Add(s, []events.Event{x}, 1)
	entries := map[string][]byte{}
	takeDelta(t, s, entries)
	var base string
	for n := range entries {
		if strings.HasPrefix(n, "x|") {
			base = n
		}
	}
	require.NotEmpty(t, base)

	missing := map[string][]byte{}
	for n, v := range entries {
		if n != base {
			missing[n] = v
		}
	}
	err := window.NewState(0).RestoreEntries(missing)
	require.ErrorContains(t, err, "HyperLogLog entry")
	require.ErrorContains(t, err, base)

	bad := map[string][]byte{"h" + base[1:] + "|x": make([]byte, 8)}
	for n, v := range entries {
		bad[n] = v
	}
	require.ErrorContains(t, window.NewState(0).RestoreEntries(bad), "malformed HyperLogLog log")

	orphans := map[string][]byte{"x|gone||1": {1}, "h|gone||1|1": make([]byte, 8)}
	for n, v := range entries {
		orphans[n] = v
	}
	restored := window.NewState(0)
	require.NoError(t, restored.RestoreEntries(orphans))
	_, del, err := restored.TakeDelta()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"x|gone||1", "h|gone||1|1"}, del)
}
