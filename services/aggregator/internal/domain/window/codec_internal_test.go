package window

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWindowCodecRoundTrip checks that every field of a window without
// sketches survives encodeWindow and decodeWindow, with values the
// engine's tests do not reach: a zero sum with non-zero min and max, a
// negative zero, a last early result before the start or never sent (0),
// a session's long span, and a group key holding the name's separator.
// A name that is not a window entry's is an error.
func TestWindowCodecRoundTrip(t *testing.T) {
	t.Parallel()
	const start = int64(1_431_857_100_000)
	cases := map[string]Window{
		"counting":          {Start: start, End: start + 60_000, Count: 7, Revision: 2, LastEarly: start + 61_000},
		"never early":       {Start: start, End: start + 60_000, Count: 1, Dirty: true},
		"zero sum":          {Start: start, End: start + 60_000, Count: 2, Sum: 0, Min: -5, Max: 5, LastEarly: start - 3_000},
		"negative zero":     {Start: start, End: start + 60_000, Count: 1, Sum: math.Copysign(0, -1)},
		"fired":             {Start: start, End: start + 60_000, Count: 3, Revision: 9, Sum: 1.5, Min: 0.5, Max: 1, Fired: true},
		"late open":         {Start: start, End: start + 60_000, Count: 1, lateOpen: true, Dirty: true},
		"session":           {Start: start + 17, End: start + 5*3_600_000 + 3, Count: 1 << 40, LastEarly: 1},
		"before the epoch":  {Start: -120_000, End: -60_000, Count: 1, LastEarly: 5},
		"group with a pipe": {Start: start, End: start + 60_000, Count: 1},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			group := "10.0.0.1\x00"
			if name == "group with a pipe" {
				group = "a|b\x00|\x00"
			}
			sr := &series{metric: "m_1", group: group}
			w := want
			w.series = sr
			b := encodeWindow(nil, &w)
			entry := entryName(sr, w.Start)
			got, metric, g, err := decodeWindow(entry, b)
			require.NoError(t, err)
			require.Equal(t, "m_1", metric)
			require.Equal(t, group, g)
			require.Equal(t, want.Start, got.Start)
			require.Equal(t, want.End, got.End)
			require.Equal(t, want.Count, got.Count)
			require.Equal(t, want.Revision, got.Revision)
			require.Equal(t, want.LastEarly, got.LastEarly)
			for i, f := range [][2]float64{{want.Sum, got.Sum}, {want.Min, got.Min}, {want.Max, got.Max}} {
				require.Equal(t, math.Float64bits(f[0]), math.Float64bits(f[1]), "sum, min, max [%d]", i)
			}
			require.Equal(t, want.Fired, got.Fired)
			require.Equal(t, want.Dirty, got.Dirty)
			require.Equal(t, want.lateOpen && !want.Fired, got.lateOpen)
			require.Nil(t, got.sk, "no sketches")

			_, _, _, err = decodeWindow("w|m_1", b)
			require.ErrorIs(t, err, errCorrupt)
			_, _, _, err = decodeWindow(entry, b[:len(b)-1])
			require.ErrorIs(t, err, errCorrupt, "truncated")
		})
	}
}
