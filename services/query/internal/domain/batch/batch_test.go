package batch_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
)

func def(t *testing.T, name string) *metrics.Definition {
	t.Helper()
	for _, d := range metrics.DefaultDefinitions() {
		if d.Name == name {
			return &d
		}
	}
	t.Fatalf("no built-in metric %s", name)
	return nil
}

func TestSpanKeepsWholeWindows(t *testing.T) {
	t.Parallel()
	min := int64(60_000)
	start, end, ok := batch.Span(def(t, "requests"), 30_000, 10*min+5)
	require.True(t, ok)
	require.Equal(t, min, start, "the window starting before from is not whole")
	require.Equal(t, 10*min, end)
	// Hopping 5m/1m: starts on the minute grid, the last window ends by to.
	start, end, ok = batch.Span(def(t, "requests_5m"), 0, 10*min)
	require.True(t, ok)
	require.Equal(t, int64(0), start)
	require.Equal(t, 10*min, end)
	_, _, ok = batch.Span(def(t, "requests_5m"), 0, 4*min)
	require.False(t, ok, "no whole 5m window in 4 minutes")
}

func TestCompile(t *testing.T) {
	t.Parallel()
	q, err := batch.Compile(def(t, "requests_errors"), "db.events", 0, 3_600_000)
	require.NoError(t, err)
	require.Contains(t, q.SQL, "FROM db.events FINAL")
	require.Contains(t, q.SQL, "type IN (?, ?)")
	require.Contains(t, q.SQL, "toFloat64(status) >= ?")
	require.NotContains(t, q.SQL, "500", "values are bound, not pasted")
	require.Equal(t, strings(q.SQL, "?"), len(q.Args))

	_, err = batch.Compile(def(t, "user_sessions"), "db.events", 0, 3_600_000)
	require.ErrorIs(t, err, batch.ErrNotCompilable)

	d := metrics.Definition{Name: "by_prefix", Where: []metrics.Predicate{{Field: "path", Prefix: ptr("/api'--")}},
		GroupBy: []string{"status_class"}, Aggregations: []string{metrics.AggCount}, Window: metrics.WindowSpec{Size: time.Minute}}
	require.NoError(t, d.Compile())
	q, err = batch.Compile(&d, "db.events", 0, 3_600_000)
	require.NoError(t, err)
	require.NotContains(t, q.SQL, "/api")
	require.Contains(t, q.Args, "/api'--")
	require.Equal(t, []string{"status_class"}, q.GroupBy)
}

func TestDiverge(t *testing.T) {
	t.Parallel()
	w := func(labels string, start int64, v float64) batch.Window {
		return batch.Window{Metric: "m", LabelsKey: labels, Start: start, End: start + 60_000, Value: v}
	}
	speed := []batch.Window{w("a", 0, 10), w("a", 60_000, 5), w("b", 0, 1e12+1e-4), w("c", 0, 3)}
	bat := []batch.Window{w("a", 0, 10), w("a", 60_000, 6), w("b", 0, 1e12), w("d", 0, 2)}
	got := batch.Diverge(speed, bat, 0)
	require.Len(t, got, 3, "a@0 equal, b@0 within rounding")
	var diff, speedOnly, batchOnly int
	for _, d := range got {
		switch {
		case d.SpeedOnly:
			speedOnly++
			require.InDelta(t, 3, d.Diff, 0)
		case d.BatchOnly:
			batchOnly++
			require.InDelta(t, -2, d.Diff, 0)
		default:
			diff++
			require.Equal(t, int64(60_000), d.Start)
			require.InDelta(t, -1, d.Diff, 0)
			require.InDelta(t, 1.0/6, d.RelDiff, 1e-12)
		}
	}
	require.Equal(t, [3]int{1, 1, 1}, [3]int{diff, speedOnly, batchOnly})
	require.Len(t, batch.Diverge(speed, bat, 0.5), 2, "the 5 vs 6 window is within 50%")
}

func ptr[T any](v T) *T { return &v }

func strings(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}

func TestPlanChunksOnChunkMultiples(t *testing.T) {
	t.Parallel()
	day := int64(24 * 3_600_000)
	from, to := 10*day+3_600_000, 12*day+7_200_000 // 01:00 of day 10 to 02:00 of day 12
	qs, err := batch.Plan(def(t, "requests_5m"), "db.events", from, to, day)
	require.NoError(t, err)
	require.Len(t, qs, 3, "the rest of day 10, day 11, the start of day 12")
	require.Equal(t, from, qs[0].ReadFromMs)
	require.Equal(t, 11*day, qs[1].ReadFromMs, "chunks start on day boundaries")
	require.Equal(t, 12*day+4*60_000, qs[1].ReadToMs, "a hopping window starting on day 11 reads into day 12")
	for _, q := range qs {
		require.Equal(t, from, q.SpanFromMs)
		require.Equal(t, to, q.SpanToMs)
		require.Contains(t, q.SQL, "FROM db.events FINAL WHERE")
		require.Contains(t, q.MergedSQL, "FROM db.events WHERE")
		require.Equal(t, strings(q.MergedSQL, "?"), len(q.Args))
	}
	one, err := batch.Plan(def(t, "requests_5m"), "db.events", from, to, 0)
	require.NoError(t, err)
	require.Len(t, one, 1)
	require.Equal(t, from, one[0].ReadFromMs)
	require.Equal(t, to, one[0].ReadToMs)
}

func TestDeduplicated(t *testing.T) {
	t.Parallel()
	merged := func(name string, level uint32, minT, maxT int64) batch.Part {
		return batch.Part{Name: name, Level: level, MinTime: minT, MaxTime: maxT}
	}
	require.True(t, batch.Deduplicated(nil))
	require.True(t, batch.Deduplicated([]batch.Part{merged("b", 1, 200, 299), merged("a", 3, 100, 199)}),
		"merged parts with disjoint times")
	require.False(t, batch.Deduplicated([]batch.Part{merged("a", 1, 100, 199), merged("b", 0, 200, 299)}),
		"an insert's part may hold a key twice")
	require.False(t, batch.Deduplicated([]batch.Part{merged("a", 1, 100, 200), merged("b", 1, 200, 299)}),
		"parts sharing a second may share a key")
	require.False(t, batch.Deduplicated([]batch.Part{merged("a", 1, 0, 0)}), "a part of unknown time range")

	a := []batch.Part{merged("a", 1, 0, 1), merged("b", 1, 2, 3)}
	require.True(t, batch.SameParts(a, []batch.Part{a[1], a[0]}))
	require.False(t, batch.SameParts(a, a[:1]), "a part merged away")
	require.False(t, batch.SameParts(a, append(a[:1:1], merged("c", 2, 2, 3))), "a new part")
}
