package window_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

const testDefs = `
metrics:
  - name: requests
    types: [http_request]
    window: {size: 1m}
  - name: bytes
    types: [http_request]
    value: bytes
    aggregations: [sum, count, min, max, avg]
    window: {size: 1m}
  - name: requests_by_client
    types: [http_request]
    group_by: [client_ip]
    window: {size: 1m}
  - name: errors
    types: [http_request]
    where: [{field: status, gte: 500}]
    window: {size: 1m}
  - name: hop
    types: [http_request]
    window: {kind: hopping, size: 3m, slide: 1m}
  - name: sessions
    types: [http_request]
    group_by: [client_ip]
    window: {kind: session, gap: 30s}
`

func mustDefs(t testing.TB, y string) []metrics.Definition {
	t.Helper()
	defs, err := metrics.ParseDefinitions("test.yaml", []byte(y))
	require.NoError(t, err)
	return defs
}

var cfg = window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000}

const t0 = int64(1_431_857_100_000) // 2015-05-17T10:05:00Z, a minute boundary

func ev(id string, t int64, ip string, bytes int64) events.Event {
	return events.Event{V: 1, ID: id, Type: events.TypeHTTPRequest, Time: t, Key: ip, ClientIP: ip, Method: "GET", Status: 200, Bytes: bytes}
}

func find(rs []metrics.Result, metric string, start int64) *metrics.Result {
	for i := range rs {
		if rs[i].Metric == metric && rs[i].WindowStart == start && len(rs[i].Labels) == 0 {
			return &rs[i]
		}
	}
	return nil
}

func TestTumblingAssignmentAndFinal(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(3)
	out := e.Add(s, []events.Event{
		ev("a", t0, "1.1.1.1", 10),
		ev("b", t0+59_999, "1.1.1.1", 20), // last ms of the first window
		ev("c", t0+60_000, "2.2.2.2", 5),  // first ms of the second window
	}, 1)
	require.Equal(t, 3, out.Accepted)
	// Watermark = t0+60000-5000: the first window has not ended yet.
	require.Nil(t, find(e.Emit(s, 1, false), "requests", t0))

	e.Add(s, []events.Event{ev("d", t0+65_000, "2.2.2.2", 1)}, 2) // wm = t0+60000
	rs := e.Emit(s, 2, false)
	r := find(rs, "requests", t0)
	require.NotNil(t, r)
	require.Equal(t, metrics.KindFinal, r.Kind)
	require.EqualValues(t, 2, r.Count)
	require.EqualValues(t, 1, r.Revision)
	require.Equal(t, t0+60_000, r.WindowEnd)
	require.EqualValues(t, 3, r.Shard)
	require.False(t, r.Complete)
	require.Equal(t, metrics.AggCount, r.Agg)
	b := find(rs, "bytes", t0)
	require.NotNil(t, b)
	require.InDelta(t, 30.0, b.Value, 0)
	require.Equal(t, metrics.AggSum, b.Agg)
	require.InDelta(t, 10.0, b.Min, 0)
	require.InDelta(t, 20.0, b.Max, 0)
	require.Nil(t, find(rs, "requests", t0+60_000), "second window still open")
	require.Nil(t, find(rs, "errors", t0), "no event passed the status filter")
	for _, r := range rs {
		if r.Metric == "requests_by_client" {
			require.True(t, r.Complete, "grouped by the entity key")
		}
	}
}

func TestHoppingAssignsToEveryOverlappingWindow(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0+90_000, "1.1.1.1", 1)}, 1) // in [t0-60s, t0+120s), [t0, t0+180s), [t0+60s, t0+240s)
	e.Add(s, []events.Event{ev("z", t0+600_000, "1.1.1.1", 1)}, 2)
	var starts []int64
	for _, r := range e.Emit(s, 2, false) {
		if r.Metric == "hop" && r.Kind == metrics.KindFinal {
			require.EqualValues(t, 1, r.Count)
			require.Equal(t, r.WindowStart+180_000, r.WindowEnd)
			starts = append(starts, r.WindowStart)
		}
	}
	require.Equal(t, []int64{t0 - 60_000, t0, t0 + 60_000}, starts)
}

func TestSessionsMergeAndClose(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	// Two sessions 10 s and 50 s apart; then an event bridging them.
	e.Add(s, []events.Event{ev("a", t0, "1.1.1.1", 1), ev("b", t0+10_000, "1.1.1.1", 1), ev("c", t0+70_000, "1.1.1.1", 1)}, 1)
	require.Equal(t, 6, sessionWindows(e, s, 1), "two sessions so far (checked via early results)")
	e.Add(s, []events.Event{ev("d", t0+40_000, "1.1.1.1", 1)}, 2) // [t0+40s, t0+70s) touches both
	e.Add(s, []events.Event{ev("z", t0+300_000, "9.9.9.9", 1)}, 3)
	var got []metrics.Result
	for _, r := range e.Emit(s, 3, false) {
		if r.Metric == "sessions" && r.Labels["client_ip"] == "1.1.1.1" {
			got = append(got, r)
		}
	}
	require.Len(t, got, 1)
	require.Equal(t, t0, got[0].WindowStart)
	require.Equal(t, t0+100_000, got[0].WindowEnd, "last event + gap")
	require.EqualValues(t, 4, got[0].Count)
	require.Equal(t, metrics.KindFinal, got[0].Kind)
}

// sessionWindows returns 3 × the number of open sessions (count of results
// of an early emission, sessions metric only, times three for readability).
func sessionWindows(e *window.Engine, s *window.State, now int64) int {
	n := 0
	for _, r := range e.Emit(s, now, true) {
		if r.Metric == "sessions" {
			n += 3
		}
	}
	return n
}

func TestEarlyResultsOnlyWhenAskedAndAfterInterval(t *testing.T) {
	t.Parallel()
	c := cfg
	c.EarlyInterval = 1_000
	e := window.NewEngine(mustDefs(t, testDefs), c)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0, "1.1.1.1", 1)}, 1)
	require.Empty(t, e.Emit(s, 1, false))
	r := find(e.Emit(s, 5_000, true), "requests", t0)
	require.NotNil(t, r)
	require.Equal(t, metrics.KindEarly, r.Kind)
	require.EqualValues(t, 1, r.Revision)
	require.Empty(t, e.Emit(s, 6_000, true), "nothing changed since")
	e.Add(s, []events.Event{ev("b", t0+1, "1.1.1.1", 1)}, 5_500)
	require.Nil(t, find(e.Emit(s, 5_500, true), "requests", t0), "within the early interval")
	r = find(e.Emit(s, 6_000, true), "requests", t0)
	require.EqualValues(t, 2, r.Revision)
	require.EqualValues(t, 2, r.Count)
}

func TestLatenessRevisionAndDrop(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0, "1.1.1.1", 1), ev("b", t0+70_000, "1.1.1.1", 1)}, 1) // wm = t0+65000
	r := find(e.Emit(s, 1, false), "requests", t0)
	require.Equal(t, metrics.KindFinal, r.Kind)

	// Within lateness (end + 60 s > wm): revises the fired window.
	out := e.Add(s, []events.Event{ev("late1", t0+30_000, "1.1.1.1", 1)}, 2)
	require.Equal(t, 1, out.Accepted)
	r = find(e.Emit(s, 2, false), "requests", t0)
	require.Equal(t, metrics.KindRevised, r.Kind)
	require.EqualValues(t, 2, r.Revision)
	require.EqualValues(t, 2, r.Count)

	// Move the watermark past every window holding t0 (the 3-minute hopping
	// windows last longest): an event for them is late.
	e.Add(s, []events.Event{ev("c", t0+305_000, "1.1.1.1", 1)}, 3) // wm = t0+300000
	e.Emit(s, 3, false)
	out = e.Add(s, []events.Event{ev("late2", t0+1, "1.1.1.1", 1)}, 4)
	require.Len(t, out.Late, 1)
	require.Equal(t, "late2", out.Late[0].ID)
	require.Zero(t, out.Accepted)
}

func TestWatermarkIsMaxEventTimeMinusOutOfOrderness(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0+20_000, "1.1.1.1", 1)}, 1)
	require.Equal(t, t0+15_000, e.Watermark(s))
	e.Add(s, []events.Event{ev("b", t0+1_000, "1.1.1.1", 1)}, 2) // out of order: watermark stays
	require.Equal(t, t0+15_000, e.Watermark(s))
}

func TestDuplicatesHaveNoEffect(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	batch := []events.Event{ev("a", t0, "1.1.1.1", 1), ev("b", t0+1, "1.1.1.1", 1)}
	require.Equal(t, 2, e.Add(s, batch, 1).Accepted)
	out := e.Add(s, batch, 2)
	require.Equal(t, 2, out.Duplicates)
	require.Zero(t, out.Accepted)
	r := find(e.Emit(s, 2, true), "requests", t0)
	require.EqualValues(t, 2, r.Count)
}

func TestIdlePartitionAdvancesWithProcessingTime(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0+30_000, "1.1.1.1", 1)}, 1_000)
	require.False(t, e.AdvanceIdle(s, 1_000+9_999), "not idle yet")
	require.True(t, e.AdvanceIdle(s, 1_000+10_000+35_000))
	require.Equal(t, t0+60_000, e.Watermark(s))
	r := find(e.Emit(s, 1, false), "requests", t0)
	require.Equal(t, metrics.KindFinal, r.Kind)
}

func TestPurgeBoundsState(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	for i := range 60 { // an hour of events, one a minute, from 5 clients
		e.Add(s, []events.Event{ev(fmt.Sprint(i), t0+int64(i)*60_000, fmt.Sprintf("10.0.0.%d", i%5), 1)}, int64(i))
		e.Emit(s, int64(i), false)
	}
	// Open or within lateness: at most ~3 minutes of 1m windows, 5 of the
	// hopping metric, the sessions of the last minute or two.
	require.Less(t, s.ActiveWindows(), 30)
	require.Less(t, s.SeenIDs(), 10)
	require.Positive(t, s.MemoryBytes())
}

// TestCheckpointRoundTrip restores a state from its delta entries at random
// points and checks that it continues exactly as the original.
func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, testDefs+`
  - name: dist
    types: [http_request]
    distinct: client_ip
    value: bytes
    aggregations: [distinct, p95, topk]
    topk: {field: client_ip, n: 2}
    window: {size: 1m}
  - name: dist99
    types: [http_request]
    value: bytes
    aggregations: [p99, p50]
    window: {size: 1m}
`)
	e := window.NewEngine(defs, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	orig := window.NewState(1)
	entries := map[string][]byte{}
	var copyState *window.State
	for step := range 300 {
		batch := []events.Event{}
		for j := range 5 {
			id := fmt.Sprintf("e%d-%d", step, j)
			batch = append(batch, ev(id, t0+int64(step)*2_000+rng.Int64N(20_000), fmt.Sprintf("10.0.0.%d", rng.IntN(7)), rng.Int64N(1000)))
		}
		e.Add(orig, batch, int64(step))
		want := e.Emit(orig, int64(step), step%7 == 0)
		if copyState != nil {
			e.Add(copyState, batch, int64(step))
			require.Equal(t, want, e.Emit(copyState, int64(step), step%7 == 0), "step %d", step)
		}
		takeDelta(t, orig, entries)
		if step%25 == 0 {
			copyState = window.NewState(1)
			require.NoError(t, copyState.RestoreEntries(entries))
			_, _, err := copyState.TakeDelta()
			require.NoError(t, err)
			require.Equal(t, orig.ActiveWindows(), copyState.ActiveWindows())
			require.Equal(t, orig.SeenIDs(), copyState.SeenIDs())
		}
	}
	require.Less(t, len(entries), 200, "purged windows and id buckets are deleted from the checkpoint")
}

// TestSharedSketch checks that metrics computing the same DDSketch (same
// types, filter, window and value) share it: their quantiles agree, only
// the first one's checkpoint entry carries the sketch, and a restore links
// them again. A metric with another filter keeps its own.
func TestSharedSketch(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, `
metrics:
  - name: lat_avg
    types: [http_request]
    value: bytes
    aggregations: [avg]
    window: {size: 1m}
  - name: lat_p95
    types: [http_request]
    value: bytes
    aggregations: [p95, p50]
    window: {size: 1m}
  - name: lat_p99
    types: [http_request]
    value: bytes
    aggregations: [p99]
    window: {size: 1m}
  - name: lat_p99_errors
    types: [http_request]
    where: [{field: status, gte: 500}]
    value: bytes
    aggregations: [p99]
    window: {size: 1m}
`)
	e := window.NewEngine(defs, cfg)
	s := window.NewState(0)
	var batch []events.Event
	for i := range 1000 {
		x := ev(fmt.Sprint(i), t0+int64(i), "1.1.1.1", int64(1+i%500))
		if i%10 == 0 {
			x.Status = 500
			x.Bytes = int64(1_000 * (i + 1))
		}
		batch = append(batch, x)
	}
	e.Add(s, batch, 1)
	set, _, err := s.TakeDelta()
	require.NoError(t, err)
	entry := func(metric string) []byte {
		for k, v := range set {
			if strings.HasPrefix(k, "w|"+metric+"|") {
				return v
			}
		}
		t.Fatalf("no entry of %s", metric)
		return nil
	}
	require.Greater(t, len(entry("lat_p95")), len(entry("lat_p99"))+200, "the sharing metric's entry has no sketch")
	require.Greater(t, len(entry("lat_p99_errors")), 200, "another filter: its own sketch")

	restored := window.NewState(0)
	require.NoError(t, restored.RestoreEntries(set))
	more := []events.Event{ev("x", t0+2_000, "1.1.1.1", 7), ev("y", t0+3_000, "1.1.1.1", 9)}
	e.Add(s, more, 2)
	e.Add(restored, more, 2)
	want := e.Emit(s, 2, true)
	require.Equal(t, want, e.Emit(restored, 2, true))
	q := map[string]metrics.Result{}
	for _, r := range want {
		q[r.Metric] = r
	}
	require.NotEmpty(t, q["lat_p99"].QuantileSketch)
	require.Equal(t, q["lat_p95"].QuantileSketch, q["lat_p99"].QuantileSketch)
	require.Greater(t, q["lat_p99_errors"].Quantiles["p99"], 900_000.0)
}

// TestRestoresOlderEntries checks that window entries written by earlier
// codec versions (v4: metric and group in the entry, fixed fields; v3: as
// v4, the HyperLogLog in the window entry; v2: as v3, labels in the
// header; v1: as v2, without shared or incremental sketches) still restore to a state that emits the same results, so a
// deployment continues from the checkpoints the last build wrote, and
// that an unknown version is refused.
func TestRestoresOlderEntries(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, testDefs+`
  - name: dist
    types: [http_request]
    distinct: client_ip
    value: bytes
    aggregations: [distinct, p95, topk]
    topk: {field: client_ip, n: 2}
    window: {size: 1m}
`)
	e := window.NewEngine(defs, cfg)
	s := window.NewState(0)
	var batch []events.Event
	for i := range 200 {
		batch = append(batch, ev(fmt.Sprint(i), t0+int64(i)*100, fmt.Sprintf("10.0.0.%d", i%9), int64(i)))
	}
	e.Add(s, batch, 1)
	set, _, err := s.TakeDelta() // first encoding of every window: no flag 16 or 32
	require.NoError(t, err)
	// v3 entries have the HyperLogLog's base entry (the first commit
	// writes no logs) in the window entry; v4 entries flag 128 instead.
	v3, v4 := map[string][]byte{}, map[string][]byte{}
	for k, v := range set {
		switch {
		case strings.HasPrefix(k, "x|"):
			v4[k] = bytes.Clone(v)
		case strings.HasPrefix(k, "w|"):
			v3[k] = downgrade(t, k, v, set["x"+k[1:]], 3)
			v4[k] = downgrade(t, k, v, nil, 4)
		default:
			v3[k], v4[k] = bytes.Clone(v), bytes.Clone(v)
		}
	}
	// v1 and v2 entries are v3 ones with a label section after the group:
	// a count and name/value strings, which the restore skips (labels
	// derive from the group key), so any labels do.
	older := func(version byte) map[string][]byte {
		out := map[string][]byte{}
		if version == 4 {
			return v4
		}
		for k, v := range v3 {
			if version == 3 {
				out[k] = bytes.Clone(v)
				continue
			}
			if strings.HasPrefix(k, "w|") {
				require.Equal(t, byte(3), v[0])
				at := 1
				for range 2 { // metric, group
					n, w := binary.Uvarint(v[at:])
					at += w + int(n)
				}
				old := append([]byte{version}, v[1:at]...)
				old = append(old, 1, 4, 'n', 'a', 'm', 'e', 5, 'v', 'a', 'l', 'u', 'e')
				v = append(old, v[at:]...)
			}
			out[k] = bytes.Clone(v)
		}
		return out
	}
	more := []events.Event{ev("x", t0+30_000, "10.0.0.1", 7)}
	restored := map[byte]*window.State{1: window.NewState(0), 2: window.NewState(0), 3: window.NewState(0), 4: window.NewState(0)}
	for version, st := range restored {
		require.NoError(t, st.RestoreEntries(older(version)), "version %d", version)
		e.Add(st, more, 2)
	}
	e.Add(s, more, 2)
	want := e.Emit(s, 2, true)
	require.NotEmpty(t, want)
	for version, st := range restored {
		require.Equal(t, want, e.Emit(st, 2, true), "restored from version %d", version)
	}

	bad := map[string][]byte{}
	for k, v := range set {
		if strings.HasPrefix(k, "w|") {
			v = append([]byte{6}, v[1:]...)
		}
		bad[k] = v
	}
	require.ErrorContains(t, window.NewState(0).RestoreEntries(bad), "version 6")
}

// downgrade returns window entry v (version 5) named name in the layout
// of version 4 or 3 (encodeWindow's comment): metric and group in the
// entry, end and last early as they are, the values always, a flags byte,
// and HyperLogLog bytes: none with flag 128 (v4), or base, the sketch's
// encoding, without it (v3).
func downgrade(t *testing.T, name string, v, base []byte, version byte) []byte {
	t.Helper()
	require.Equal(t, byte(5), v[0])
	at := 1
	uvarint := func() int {
		x, w := binary.Uvarint(v[at:])
		require.Positive(t, w)
		at += w
		return int(x)
	}
	varint := func() int64 {
		x, w := binary.Varint(v[at:])
		require.Positive(t, w)
		at += w
		return x
	}
	flags := uvarint()
	start := varint()
	end, count, revision, last := start+varint(), varint(), varint(), start+varint()
	values := make([]byte, 24)
	if flags&256 != 0 {
		copy(values, v[at:at+24])
		at += 24
	}
	rest := strings.TrimPrefix(name, "w|")
	metric, group := rest[:strings.IndexByte(rest, '|')], rest[strings.IndexByte(rest, '|')+1:strings.LastIndexByte(rest, '|')]
	out := []byte{version}
	for _, s := range []string{metric, group} {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	for _, x := range []int64{start, end, count, revision, last} {
		out = binary.AppendVarint(out, x)
	}
	out = append(out, values...)
	flagsV4 := byte(flags &^ 256)
	if flags&4 != 0 && version == 4 {
		flagsV4 |= 128 // v4: the HyperLogLog in entries of its own
	}
	out = append(out, flagsV4)
	if flags&16 != 0 { // the shared DDSketch's owner
		n := uvarint()
		out = binary.AppendUvarint(out, uint64(n))
		out = append(out, v[at:at+n]...)
		at += n
	}
	if flags&4 != 0 && version == 3 {
		require.NotNil(t, base, "a window with a distinct aggregation has a base entry")
		out = binary.AppendUvarint(out, uint64(len(base)))
		out = append(out, base...)
	} else {
		out = append(out, 0)
	}
	if flags&(8|16) == 8 { // its own DDSketch
		n := uvarint()
		out = binary.AppendUvarint(out, uint64(n))
		out = append(out, v[at:at+n]...)
		at += n
	} else {
		out = append(out, 0)
	}
	return append(out, v[at:]...) // pending values and top-k: as in v5
}

// TestRestoreRenamesForeignEntries checks that a window entry restored
// under a name other than its own (w|<metric>|<group>|<start>: a window
// keeps no name, it derives one) moves to its own name with the next delta,
// which deletes the old one, so no entry is left behind when the window
// is purged. Such names come from builds that wrote entries of version 2
// or older, which hold the window's metric and group key (version 5
// takes them from the name); the test uses version 4.
func TestRestoreRenamesForeignEntries(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0+1_000, "10.0.0.1", 5)}, 1)
	set, _, err := s.TakeDelta()
	require.NoError(t, err)
	const own = "w|requests_by_client|10.0.0.1\x00|1431857100000" // the group key ends in NUL
	require.Contains(t, set, own)
	require.Less(t, len(set[own]), 24, "a counting metric's window: no metric, group or zero values in its entry")
	entries := map[string][]byte{}
	for k, v := range set {
		if k == own {
			k = "w|requests_by_client|client_ip=10.0.0.1|1431857100000" // another build's name
			v = downgrade(t, own, v, nil, 4)
		}
		entries[k] = bytes.Clone(v)
	}
	want := bytes.Clone(set[own])
	restored := window.NewState(0)
	require.NoError(t, restored.RestoreEntries(entries))
	set, del, err := restored.TakeDelta()
	require.NoError(t, err)
	require.Contains(t, set, own)
	require.Equal(t, want, set[own])
	require.Contains(t, del, "w|requests_by_client|client_ip=10.0.0.1|1431857100000")
	set, del, err = restored.TakeDelta()
	require.NoError(t, err)
	require.NotContains(t, set, own, "renamed once")
	require.Empty(t, del)
}

// TestRestoreGroupWithSeparator checks that a window whose label value
// holds the entry name's separator "|" restores under its own metric and
// group key (version 5 entries take both from the entry name).
func TestRestoreGroupWithSeparator(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	batch := []events.Event{ev("a", t0+1_000, "a|b|1", 5), ev("b", t0+2_000, "a|b|1", 7), ev("c", t0+3_000, "|", 1)}
	e.Add(s, batch, 1)
	entries := map[string][]byte{}
	takeDelta(t, s, entries)
	restored := window.NewState(0)
	require.NoError(t, restored.RestoreEntries(entries))
	_, del, err := restored.TakeDelta()
	require.NoError(t, err)
	require.Empty(t, del, "every entry restored under its own name")
	more := []events.Event{ev("d", t0+4_000, "a|b|1", 1)}
	e.Add(s, more, 2)
	e.Add(restored, more, 2)
	want := e.Emit(s, 2, true)
	require.Equal(t, want, e.Emit(restored, 2, true))
	clients := map[string]int64{}
	for _, r := range want {
		if r.Metric == "requests_by_client" {
			clients[r.Labels["client_ip"]] = r.Count
		}
	}
	require.Equal(t, map[string]int64{"a|b|1": 3, "|": 1}, clients)
}

// TestFinalsNeedNoEntryRewrite checks the checkpoint of a minute
// boundary: the finals of a scan that visited every window do not rewrite
// their windows' entries (the meta entry's fired marks stand for them), a
// state restored from those entries goes on exactly as the original (late
// revisions get the same revision numbers), and a window a late event
// opens below the marks (lateOpen) is not taken for fired by a restore.
func TestFinalsNeedNoEntryRewrite(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	orig := window.NewState(0)
	entries := map[string][]byte{}
	commit := func() []string {
		written, _ := takeDelta(t, orig, entries)
		return written
	}
	restored := func() *window.State {
		st := window.NewState(0)
		require.NoError(t, st.RestoreEntries(entries))
		return st
	}
	var evs []events.Event
	for i := range 5 {
		evs = append(evs, ev(fmt.Sprint(i), t0+int64(i)*1_000, fmt.Sprintf("10.0.0.%d", i), 10))
	}
	e.Add(orig, evs, 1)
	require.NotEmpty(t, e.Emit(orig, 1, true))
	commit()

	// The boundary: every minute-0 window fires; only the new minute's
	// window and the meta entry are written.
	e.Add(orig, []events.Event{ev("n", t0+66_000, "10.0.0.9", 1)}, 2)
	rs := e.Emit(orig, 2, false)
	finals := 0
	for _, r := range rs {
		if r.Kind == metrics.KindFinal {
			finals++
		}
	}
	require.Greater(t, finals, 5)
	for _, name := range commit() { // the 1-minute tumbling windows of minute 0
		for _, m := range []string{"requests", "bytes", "errors", "requests_by_client"} {
			require.False(t, strings.HasPrefix(name, "w|"+m+"|") && strings.HasSuffix(name, "|1431857100000"), "a final rewrote %s", name)
		}
	}

	// Restored, it revises a minute-0 window as the original does.
	copyState := restored()
	late := []events.Event{ev("late", t0+30_000, "10.0.0.1", 5)}
	e.Add(orig, late, 3)
	e.Add(copyState, late, 3)
	want := e.Emit(orig, 3, false)
	require.NotEmpty(t, want)
	require.Equal(t, want, e.Emit(copyState, 3, false))
	commit()

	// A late event of a label set new to minute 0 opens a window below the
	// marks; checkpointed before it fires, the restore still fires it.
	opened := []events.Event{ev("late2", t0+40_000, "10.0.0.77", 5)}
	e.Add(orig, opened, 4)
	commit()
	copyState = restored()
	want = e.Emit(orig, 4, false)
	got := e.Emit(copyState, 4, false)
	require.Equal(t, want, got)
	var lateFinal bool
	for _, r := range got {
		lateFinal = lateFinal || r.Kind == metrics.KindFinal && r.Labels["client_ip"] == "10.0.0.77"
	}
	require.True(t, lateFinal, "the window opened below the marks fires after the restore")
}

// TestFiredMarksNeverGoBack: restored under a larger out-of-orderness,
// the engine's next complete scan keeps the marks, so the entries they
// stand for (finals emitted without a rewrite) stay fired through the
// next restore instead of firing again.
func TestFiredMarksNeverGoBack(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, testDefs)
	e := window.NewEngine(defs, cfg)
	later := cfg
	later.OutOfOrderness = 20_000
	e2 := window.NewEngine(defs, later)
	s := window.NewState(0)
	entries := map[string][]byte{}
	var evs []events.Event
	for i := range 5 {
		evs = append(evs, ev(fmt.Sprint(i), t0+int64(i)*1_000, fmt.Sprintf("10.0.0.%d", i), 10))
	}
	e.Add(s, evs, 1)
	e.Emit(s, 1, false)
	takeDelta(t, s, entries)
	e.Add(s, []events.Event{ev("n", t0+66_000, "10.0.0.9", 1)}, 2)
	require.NotNil(t, find(e.Emit(s, 2, false), "requests", t0), "the minute-0 final")
	written, _ := takeDelta(t, s, entries)
	require.NotContains(t, written, "w|requests||1431857100000", "the final left its entry")

	s2 := window.NewState(0)
	require.NoError(t, s2.RestoreEntries(entries))
	e2.Add(s2, []events.Event{ev("m", t0+67_000, "10.0.0.9", 1)}, 3) // wm 47 s: below minute 0's end
	e2.Emit(s2, 3, false)
	takeDelta(t, s2, entries)

	s3 := window.NewState(0)
	require.NoError(t, s3.RestoreEntries(entries))
	e2.Add(s3, []events.Event{ev("o", t0+85_000, "10.0.0.9", 1)}, 4) // wm 65 s: past it
	for _, r := range e2.Emit(s3, 4, false) {
		require.False(t, r.WindowStart == t0 && r.Kind == metrics.KindFinal, "minute 0 fired again: %s %v", r.Metric, r.Labels)
	}
}

// TestCappedScanCheckpointsItsFinals: a scan the cap stops does not move
// the fired marks, so it writes the entries of the finals it emitted; a
// state restored between two capped Emits of a boundary emits the rest
// exactly as the original does, none of the finals again.
func TestCappedScanCheckpointsItsFinals(t *testing.T) {
	t.Parallel()
	capped := cfg
	capped.MaxScanResults = 10
	e := window.NewEngine(mustDefs(t, testDefs), capped)
	orig := window.NewState(0)
	entries := map[string][]byte{}
	commit := func() { takeDelta(t, orig, entries) }
	var evs []events.Event
	for i := range 40 {
		evs = append(evs, ev(fmt.Sprintf("e%d", i), t0+int64(i)*1_000, fmt.Sprintf("10.0.0.%d", i), 1))
	}
	e.Add(orig, evs, 1)
	for range 20 {
		n := len(e.Emit(orig, 1, true))
		commit()
		if n == 0 {
			break
		}
	}
	e.Add(orig, []events.Event{ev("n1", t0+66_000, "10.0.0.1", 1)}, 2)
	first := e.Emit(orig, 2, false)
	require.NotEmpty(t, first)
	commit()
	copyState := window.NewState(0)
	require.NoError(t, copyState.RestoreEntries(entries))
	// A capped scan takes the label sets in map order: compare what the
	// Emits after the restore add up to.
	rest := func(st *window.State) map[string]bool {
		out := map[string]bool{}
		for now := int64(3); now < 50; now++ {
			rs := e.Emit(st, now, false)
			if len(rs) == 0 {
				break
			}
			for _, r := range rs {
				k := fmt.Sprintf("%s|%s|%d|%s|%d", r.Metric, metrics.LabelsKey(r.Labels), r.WindowStart, r.Kind, r.Revision)
				require.False(t, out[k], "emitted twice: %s", k)
				out[k] = true
			}
		}
		return out
	}
	want := rest(orig)
	require.NotEmpty(t, want, "the cap left finals for later Emits")
	require.Equal(t, want, rest(copyState))
}

// dedupMetrics are two metrics of types with different dedup horizons
// (with cfg's 5 s out-of-orderness and 1 m lateness): service_request only
// feeds 1-minute tumbling windows (horizon 0 + 60 s + 5 s), page_view
// sessions of gap GAP (GAP + 60 s + 5 s).
const dedupMetrics = `
  - name: svc
    types: [service_request]
    window: {size: 1m}
  - name: visits
    types: [page_view]
    group_by: [user_id]
    window: {kind: session, gap: GAP}
`

// dedupDefs are dedupMetrics with 30-minute sessions.
var dedupDefs = "\nmetrics:" + strings.ReplaceAll(dedupMetrics, "GAP", "30m")

func svcEv(id string, t int64) events.Event {
	return events.Event{V: 1, ID: id, Type: events.TypeServiceRequest, Time: t, Key: "api", Service: "api", Endpoint: "/x", Status: 200, LatencyMs: 3}
}

func pageEv(id string, t int64, user string) events.Event {
	return events.Event{V: 1, ID: id, Type: events.TypePageView, Time: t, Key: user, UserID: user, Page: "/"}
}

// advanceClock moves the clock of s to clock (ms) as an idle partition's
// would move, and lets Add prune the id sets.
func advanceClock(t *testing.T, e *window.Engine, s *window.State, clock int64) {
	t.Helper()
	now := s.LastInput + cfg.IdleTimeout + clock - s.MaxEventTime
	require.True(t, e.AdvanceIdle(s, now))
	e.Add(s, nil, now)
	require.Equal(t, clock, s.Clock)
}

// TestDedupHorizonPerType checks that an event id is remembered for the
// horizon of its type, not of the longest window of any metric: a
// service_request id is forgotten once its 1-minute window is past its
// lateness while a page_view id of the same minute (30-minute sessions) is
// still remembered. The horizon is tight for the 1-minute window: one ms
// before it a new event still changes the window (so a duplicate must be
// and is dropped), at it a duplicate is late and changes nothing.
func TestDedupHorizonPerType(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, dedupDefs), cfg)
	s := window.NewState(0)
	svc, page := svcEv("a", t0+1_000), pageEv("b", t0+1_000, "u1")
	out := e.Add(s, []events.Event{svc, page, pageEv("a", t0+2_000, "u2")}, 1)
	require.Equal(t, 3, out.Accepted, "the same id with a type of another horizon is another event")
	require.Equal(t, 3, s.SeenIDs())
	advanceClock(t, e, s, t0+65_000) // the svc window's final result
	results := e.Emit(s, s.LastInput, false)

	// The svc window [t0, t0+60s) takes events until end + lateness >
	// Clock − ooo: the id of minute t0 goes at Clock = t0+60s + 65s.
	forget := t0 + 60_000 + 65_000
	advanceClock(t, e, s, forget-1)
	out = e.Add(s, []events.Event{svc, page, svcEv("c", t0+1_000)}, s.LastInput)
	require.Equal(t, 2, out.Duplicates, "just inside the horizon")
	require.Equal(t, 1, out.Accepted, "a new event still revises the window: a duplicate would have")
	require.Equal(t, 4, s.SeenIDs())
	results = append(results, e.Emit(s, s.LastInput, false)...)

	advanceClock(t, e, s, forget)
	require.Equal(t, 2, s.SeenIDs(), "the service_request ids are forgotten, the page_view ids are not")
	out = e.Add(s, []events.Event{svc, page, pageEv("a", t0+2_000, "u2")}, s.LastInput)
	require.Equal(t, 2, out.Duplicates, "page_view ids are still remembered")
	require.Len(t, out.Late, 1, "the forgotten duplicate is late for every window")
	require.Equal(t, svc, out.Late[0])
	require.Zero(t, out.Accepted)
	require.Equal(t, 2, s.SeenIDs(), "a late event is not remembered")
	results = append(results, e.Emit(s, s.LastInput, false)...)

	var svcCounts []int64
	for _, r := range results {
		if r.Metric == "svc" {
			svcCounts = append(svcCounts, r.Count)
		}
	}
	require.Equal(t, []int64{1, 2}, svcCounts, "final, then one revision by c: no duplicate counted")

	// The page_view ids go after the session horizon (30 m + 65 s).
	advanceClock(t, e, s, t0+60_000+1_865_000-1)
	require.Equal(t, 2, s.SeenIDs())
	advanceClock(t, e, s, t0+60_000+1_865_000)
	require.Zero(t, s.SeenIDs())
}

// oldSeenEntry is an id entry as builds before the per-type horizons wrote
// it: name s|<minute bucket>|<seq>, value the FNV-1a 64 hashes of the ids,
// 8 bytes little endian each.
func oldSeenEntry(bucket, seq int64, ids ...string) (string, []byte) {
	var b []byte
	for _, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(id))
		b = binary.LittleEndian.AppendUint64(b, h.Sum64())
	}
	return fmt.Sprintf("s|%d|%d", bucket, seq), b
}

// takeDelta applies s's delta to entries, copying the values (the next
// TakeDelta reuses them), and returns the names it wrote (sorted) and
// deleted.
func takeDelta(t *testing.T, s *window.State, entries map[string][]byte) (written, deleted []string) {
	t.Helper()
	set, del, err := s.TakeDelta()
	require.NoError(t, err)
	for k, v := range set {
		entries[k] = bytes.Clone(v)
	}
	for _, k := range del {
		delete(entries, k)
	}
	return slices.Sorted(maps.Keys(set)), del
}

// TestRestoresOldIDEntries checks that id entries of the old form (ids of
// every type in one set per minute) still catch duplicates after a restore,
// for as long as the old, longest horizon, and that their names are deleted
// when they are forgotten; new entries are d|<bucket>|<horizon>|<seq> and
// deleted with their set.
func TestRestoresOldIDEntries(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, dedupDefs), cfg)
	b0 := t0 / 60_000
	entries := map[string][]byte{
		"meta": fmt.Appendf(nil, `{"p":0,"met":%d,"clock":%d,"li":1,"seq":7}`, t0+30_000, t0+30_000),
	}
	n1, v1 := oldSeenEntry(b0, 6, "a", "b")
	n2, v2 := oldSeenEntry(b0, 7, "c")
	n3, v3 := oldSeenEntry(b0+1, 5, "d")
	entries[n1], entries[n2], entries[n3] = v1, v2, v3
	s := window.NewState(0)
	require.NoError(t, s.RestoreEntries(entries))
	require.Equal(t, 4, s.SeenIDs())

	out := e.Add(s, []events.Event{svcEv("a", t0+1_000), pageEv("c", t0+2_000, "u1"), svcEv("e", t0+3_000), pageEv("d", t0+60_000, "u1")}, 1)
	require.Equal(t, 3, out.Duplicates, "old ids of any type are duplicates")
	require.Equal(t, 1, out.Accepted)
	_, del := takeDelta(t, s, entries)
	require.Empty(t, del)
	newName := fmt.Sprintf("d|%d|%d|8", b0, 65_000)
	require.Contains(t, entries, newName, "the new id, in its class's entry")

	// Past the svc horizon: the new svc id and its entry go; the old sets
	// (the longest horizon, 30 m + 60 s + 5 s) still catch duplicates.
	advanceClock(t, e, s, t0+60_000+65_000)
	_, del = takeDelta(t, s, entries)
	require.Equal(t, []string{newName}, del)
	out = e.Add(s, []events.Event{svcEv("b", t0+1_000)}, s.LastInput)
	require.Equal(t, 1, out.Duplicates)

	// A restore of the remaining entries still knows them.
	s = window.NewState(0)
	require.NoError(t, s.RestoreEntries(entries))
	out = e.Add(s, []events.Event{svcEv("b", t0+1_000)}, s.LastInput)
	require.Equal(t, 1, out.Duplicates)

	advanceClock(t, e, s, t0+60_000+1_865_000)
	_, del = takeDelta(t, s, entries)
	require.ElementsMatch(t, []string{n1, n2}, del, "the first minute's old entries, exactly")
	require.Equal(t, 1, s.SeenIDs())
	out = e.Add(s, []events.Event{svcEv("b", t0+1_000), svcEv("d", t0+60_000)}, s.LastInput)
	require.Len(t, out.Late, 1)
	require.Equal(t, 1, out.Duplicates, "the second minute's old set is still there")
	advanceClock(t, e, s, t0+120_000+1_865_000)
	e.Emit(s, s.LastInput, false) // purges the svc window
	_, del = takeDelta(t, s, entries)
	require.Equal(t, []string{n3, "w|svc||" + fmt.Sprint(t0)}, del)
	require.Zero(t, s.SeenIDs())
	require.Equal(t, []string{"meta"}, slices.Collect(maps.Keys(entries)))
}

// TestRestoresIDsOfAnotherHorizon checks that ids restored from d| entries
// of a horizon the engine no longer has (the definitions or settings
// changed) still catch duplicates, and that malformed id entries are
// refused with their name.
func TestRestoresIDsOfAnotherHorizon(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, dedupDefs), cfg)
	old := window.NewEngine(mustDefs(t, strings.ReplaceAll(dedupDefs, "size: 1m", "size: 2m")), cfg)
	s := window.NewState(0)
	require.Equal(t, 1, old.Add(s, []events.Event{svcEv("a", t0+1_000)}, 1).Accepted)
	entries := map[string][]byte{}
	takeDelta(t, s, entries)
	require.Contains(t, entries, fmt.Sprintf("d|%d|%d|1", t0/60_000, 120_000+65_000))

	s = window.NewState(0)
	require.NoError(t, s.RestoreEntries(entries))
	require.Equal(t, 1, e.Add(s, []events.Event{svcEv("a", t0+1_000)}, 2).Duplicates)

	for _, name := range []string{"d|x|65000|1", "d|1|65000", "d|1|-1|2", "d|1|65000|2|3", "s|1", "s|1|x"} {
		err := window.NewState(0).RestoreEntries(map[string][]byte{name: make([]byte, 8)})
		require.ErrorContains(t, err, fmt.Sprintf("entry %q: malformed id bucket", name))
	}
	err := window.NewState(0).RestoreEntries(map[string][]byte{"d|1|65000|2": make([]byte, 7)})
	require.ErrorContains(t, err, `entry "d|1|65000|2": malformed id bucket`)
}

// TestCompactedIDsStillDeduplicate checks that the id set of a minute that
// every watermark passed is compacted (less memory for the same ids) and
// still catches duplicates, of the compacted ids and of late ids added
// after the compaction.
func TestCompactedIDsStillDeduplicate(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, dedupDefs), cfg)
	s := window.NewState(0)
	var first []events.Event
	for i := range 100 {
		first = append(first, pageEv(fmt.Sprint("a", i), t0+int64(i)*500, "u1"))
	}
	first = append(first, pageEv("z", t0+60_000+4_999, "u1"))
	require.Equal(t, 101, e.Add(s, first, 1).Accepted)
	before := s.MemoryBytes()
	advanceClock(t, e, s, t0+60_000+5_000) // the first minute is behind every watermark
	require.Equal(t, 101, s.SeenIDs())
	require.Less(t, s.MemoryBytes(), before-100*16, "a compacted id takes 8 bytes instead of a map slot")

	out := e.Add(s, first, s.LastInput)
	require.Equal(t, 101, out.Duplicates)
	late := []events.Event{pageEv("c", t0+1_000, "u2"), pageEv("d", t0+2_000, "u2")}
	require.Equal(t, 2, e.Add(s, late, s.LastInput).Accepted, "a late event still takes its session")
	out = e.Add(s, slices.Concat(late, first[:3]), s.LastInput)
	require.Equal(t, 5, out.Duplicates, "ids added after the compaction and compacted ones")
	require.Equal(t, 103, s.SeenIDs())

	restored := window.NewState(0)
	entries := map[string][]byte{}
	takeDelta(t, s, entries)
	require.NoError(t, restored.RestoreEntries(entries))
	require.Equal(t, 103, restored.SeenIDs())
	require.Equal(t, 103, e.Add(restored, slices.Concat(first, late), s.LastInput).Duplicates)
}

// TestEmitOrderIsDeterministic: the results of one Emit come sorted by
// metric, then label set, then window start, whatever order the events
// (and so the state's maps) came in, so two states fed the same events in
// different orders emit the same sequence; a label set's windows are
// adjacent and ascending.
func TestEmitOrderIsDeterministic(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	var evs []events.Event
	for i := range 300 {
		evs = append(evs, ev(fmt.Sprintf("e%d", i), t0+int64(i)*700, fmt.Sprintf("10.0.%d.%d", i%7, i%5), int64(i)))
	}
	key := func(r metrics.Result) string {
		return fmt.Sprintf("%s|%s|%d|%d|%s", r.Metric, metrics.LabelsKey(r.Labels), r.WindowStart, r.WindowEnd, r.Kind)
	}
	emitAll := func(order []events.Event) []string {
		s := window.NewState(0)
		e.Add(s, order, 1)
		// Past every window's end + out-of-orderness: all final.
		e.Add(s, []events.Event{ev("last", t0+30*60_000, "9.9.9.9", 1)}, 2)
		var keys []string
		for _, r := range e.Emit(s, 2, false) {
			keys = append(keys, key(r))
		}
		return keys
	}
	want := emitAll(evs)
	require.Greater(t, len(want), 50)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		shuffled := slices.Clone(evs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		require.Equal(t, want, emitAll(shuffled))
	}
	// Metrics ascending; within a metric each label set's results adjacent,
	// their windows ascending.
	seen := map[string]bool{}
	prevMetric, prevSeries, prevStart := "", "", int64(0)
	for _, k := range want {
		f := strings.Split(k, "|")
		metric, series := f[0], f[0]+"|"+f[1]
		var start int64
		fmt.Sscan(f[2], &start)
		require.GreaterOrEqual(t, metric, prevMetric, "metrics out of order at %s", k)
		if series != prevSeries {
			require.False(t, seen[series], "label set %s not adjacent", series)
			seen[series] = true
		} else {
			require.Greater(t, start, prevStart, "windows of %s out of order", series)
		}
		prevMetric, prevSeries, prevStart = metric, series, start
	}
}

// TestUnchangedMarksRepeatedValues: a result is Unchanged exactly when its
// window was emitted before and took no event since: the final after an
// early result with nothing new in between, not a first emission, not a
// final after new events, not a revision; and it survives a checkpoint
// restore (the dirty flag is part of the entry).
func TestUnchangedMarksRepeatedValues(t *testing.T) {
	t.Parallel()
	e := window.NewEngine(mustDefs(t, testDefs), cfg)
	s := window.NewState(0)
	e.Add(s, []events.Event{ev("a", t0+1_000, "1.1.1.1", 1), ev("b", t0+2_000, "2.2.2.2", 1)}, 1)
	rs := e.Emit(s, 1, true)
	require.NotEmpty(t, rs)
	for _, r := range rs { // early results
		require.False(t, r.Unchanged, "first emission of %s", r.ID())
	}
	// A new event for 2.2.2.2 only, then a checkpoint round trip before
	// the finals.
	e.Add(s, []events.Event{ev("c", t0+3_000, "2.2.2.2", 1)}, 2)
	set, _, err := s.TakeDelta()
	require.NoError(t, err)
	restored := window.NewState(0)
	require.NoError(t, restored.RestoreEntries(maps.Clone(set)))

	e.Add(restored, []events.Event{ev("z", t0+66_000, "9.9.9.9", 1)}, 3) // the first minute is due
	byClient := func(rs []metrics.Result, ip string) *metrics.Result {
		for i := range rs {
			if rs[i].Metric == "requests_by_client" && rs[i].Labels["client_ip"] == ip && rs[i].WindowStart == t0 {
				return &rs[i]
			}
		}
		return nil
	}
	rs = e.Emit(restored, 3, false)
	quiet, busy, total := byClient(rs, "1.1.1.1"), byClient(rs, "2.2.2.2"), find(rs, "requests", t0)
	require.NotNil(t, quiet)
	require.NotNil(t, busy)
	require.NotNil(t, total)
	require.Equal(t, metrics.KindFinal, quiet.Kind)
	require.True(t, quiet.Unchanged, "final after an early result, nothing new")
	require.EqualValues(t, 2, quiet.Revision)
	require.Equal(t, metrics.KindFinal, busy.Kind)
	require.False(t, busy.Unchanged, "an event came after the early result")
	require.EqualValues(t, 2, busy.Count)
	require.False(t, total.Unchanged, "the unlabelled window took the event too")

	// A late event revises the quiet window: changed, not Unchanged.
	e.Add(restored, []events.Event{ev("late", t0+4_000, "1.1.1.1", 1)}, 4)
	revised := byClient(e.Emit(restored, 4, false), "1.1.1.1")
	require.NotNil(t, revised)
	require.Equal(t, metrics.KindRevised, revised.Kind)
	require.False(t, revised.Unchanged)
}

// boundaryState returns a state of e with 40 events of minute 0, one per
// second and client, all emitted, and two events of minute 1 that
// make minute 0 due and minute 1's windows open, with early results due.
func boundaryState(e *window.Engine) *window.State {
	s := window.NewState(0)
	var evs []events.Event
	for i := range 40 {
		evs = append(evs, ev(fmt.Sprintf("e%d", i), t0+int64(i)*1_000, fmt.Sprintf("10.0.0.%d", i), 1))
	}
	e.Add(s, evs, 1)
	// Early results of everything (and the finals of the first sessions),
	// over as many Emits as a cap or steps 100 ms apart need.
	for now := int64(1); now < 2_000; now += 100 {
		if len(e.Emit(s, now, true)) == 0 {
			break
		}
	}
	e.Add(s, []events.Event{ev("n1", t0+66_000, "10.0.0.1", 1), ev("n2", t0+66_500, "10.0.0.2", 1)}, 2)
	return s
}

// drainEmits calls e.Emit(s, now, true) at now, now+1 ms, ... (at most 50
// times) until it returns nothing, checks each return with check and that
// no result comes twice, and returns the results by resultKey and the
// number of Emits that returned some.
func drainEmits(t *testing.T, e *window.Engine, s *window.State, now int64, check func([]metrics.Result)) (map[string]bool, int) {
	t.Helper()
	got := map[string]bool{}
	emits := 0
	for ; emits < 50; now++ {
		rs := e.Emit(s, now, true)
		if len(rs) == 0 {
			break
		}
		emits++
		check(rs)
		for _, r := range rs {
			require.False(t, got[resultKey(r)], "emitted twice: %s", resultKey(r))
			got[resultKey(r)] = true
		}
	}
	return got, emits
}

// resultKey names a result's window, kind and revision.
func resultKey(r metrics.Result) string {
	return fmt.Sprintf("%s|%s|%d|%s|%d", r.Metric, metrics.LabelsKey(r.Labels), r.WindowStart, r.Kind, r.Revision)
}

// TestMaxScanResultsSpreadsABoundary: with a cap on the results of one
// scanning Emit, a boundary's finals come over several Emits, none twice
// and none lost, and together they equal one uncapped Emit; early
// results of open windows and revisions are not lost either.
func TestMaxScanResultsSpreadsABoundary(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, testDefs)
	all := window.NewEngine(defs, cfg)
	want := map[string]bool{}
	for _, r := range all.Emit(boundaryState(all), 3_000, true) {
		want[resultKey(r)] = true
	}
	capped := cfg
	capped.MaxScanResults = 10
	e := window.NewEngine(defs, capped)
	s := boundaryState(e)
	got, emits := drainEmits(t, e, s, 3_000, func(rs []metrics.Result) {
		require.Less(t, len(rs), 10+5, "the cap stops after the label set that reaches it")
	})
	require.Greater(t, emits, 2)
	require.Equal(t, want, got)

	// A late event for a window the capped scans already fired is revised.
	e.Add(s, []events.Event{ev("late", t0+5_000, "10.0.0.5", 1)}, 4)
	var revised int
	for _, r := range e.Emit(s, 10_000, true) {
		if r.Kind == metrics.KindRevised {
			revised++
		}
	}
	require.Positive(t, revised)
}

// TestScanStepsSpreadABoundary: with steps (Config.ScanStep), a
// boundary's finals come over several Emits a pause apart, four steps of
// each size and then twice the size, in metric name
// and group-key order, a metric with more label sets than a step split
// over several, none twice and none lost; early results of every metric
// go out in the first one; a due window gets no early result while it
// waits for its step, and its final takes what came meanwhile. The stepped
// finals write no window entries, and a state restored after any step
// emits the rest as the original does.
func TestScanStepsSpreadABoundary(t *testing.T) {
	t.Parallel()
	defs := mustDefs(t, testDefs)
	finalsOf := map[string]int{} // metric → finals of one unstepped Emit
	want := map[string]bool{}
	var early []string
	all := window.NewEngine(defs, cfg)
	for _, r := range all.Emit(boundaryState(all), 3_000, true) {
		want[resultKey(r)] = true
		switch r.Kind {
		case metrics.KindFinal:
			finalsOf[r.Metric]++
		case metrics.KindEarly:
			early = append(early, resultKey(r))
		}
	}
	require.NotEmpty(t, early)
	require.Equal(t, 40, finalsOf["requests_by_client"])

	const step, pause = 5, 100
	stepped := cfg
	stepped.ScanStep, stepped.ScanPause = step, pause
	e := window.NewEngine(defs, stepped)
	s := boundaryState(e)
	entries := map[string][]byte{}
	takeDelta(t, s, entries)
	minute0 := func(written []string) (n int) { // entries of the due 1-minute tumbling windows
		for _, name := range written {
			for _, m := range []string{"requests", "bytes", "errors", "requests_by_client"} {
				if strings.HasPrefix(name, "w|"+m+"|") && strings.HasSuffix(name, fmt.Sprintf("|%d", t0)) {
					n++
				}
			}
		}
		return n
	}
	got := map[string]bool{}
	var order []string // metric|group key of each final, as emitted
	fired := map[string]int{}
	size, taken := step, 0 // of the next step; steps taken
	take := func(rs []metrics.Result) (finals int) {
		for _, r := range rs {
			require.False(t, got[resultKey(r)], "emitted twice: %s", resultKey(r))
			got[resultKey(r)] = true
			if r.Kind == metrics.KindFinal {
				finals++
				fired[r.Metric]++
				order = append(order, r.Metric+"|"+metrics.LabelsKey(r.Labels))
			}
		}
		require.LessOrEqual(t, finals, size+2, "a step stops before the label set after the one that filled it")
		if taken++; taken%4 == 0 {
			size *= 2
		}
		written, _ := takeDelta(t, s, entries)
		require.Zero(t, minute0(written), "stepped finals rewrote entries: %v", written)
		return finals
	}

	require.Positive(t, take(e.Emit(s, 3_000, true)))
	for _, k := range early {
		require.True(t, got[k], "early result held back by the step: %s", k)
	}
	require.Zero(t, fired["requests"]+fired["requests_by_client"], "the first step fired %v", fired)

	// Paused: events for due minute-0 windows not fired yet get no early
	// result, and nothing fires.
	e.Add(s, []events.Event{ev("paused", t0+3_500, "10.0.0.39", 1)}, 3_050)
	wm := t0 + 66_500 - cfg.OutOfOrderness
	for _, r := range e.Emit(s, 3_050, true) {
		if r.WindowEnd <= wm { // due: only the revision of a metric fired in the first step
			require.Equal(t, metrics.KindRevised, r.Kind, "a due window emitted during the pause: %s", resultKey(r))
			require.Positive(t, fired[r.Metric], resultKey(r))
		}
		got[resultKey(r)] = true
	}
	takeDelta(t, s, entries)

	// The rest, step by step, with a copy of the checkpoint after each.
	var snapshots []map[string][]byte
	var steps [][]metrics.Result
	short := false // a step stops only once it holds its size: each one but the last is full
	split := false
	for now := int64(3_100); len(steps) < 50; now += pause {
		rs := e.Emit(s, now, false)
		if len(rs) == 0 {
			break
		}
		require.False(t, short, "a step that did not fill its size was not the last: %v", rs)
		short = len(rs) < size
		take(rs)
		steps = append(steps, rs)
		snapshots = append(snapshots, maps.Clone(entries))
		split = split || fired["requests_by_client"] > 0 && fired["requests_by_client"] < 40
	}
	require.True(t, split, "requests_by_client's 40 finals came over several steps")
	require.True(t, slices.IsSortedFunc(order, func(a, b string) int {
		return strings.Compare(strings.SplitN(a, "|", 2)[0], strings.SplitN(b, "|", 2)[0])
	}), "metrics fire in name order: %v", order)
	var byClient []string
	for _, o := range order {
		if strings.HasPrefix(o, "requests_by_client|") {
			byClient = append(byClient, o)
		}
	}
	require.True(t, slices.IsSorted(byClient), "label sets fire in group-key order: %v", byClient)
	for k := range want {
		require.True(t, got[k], "lost: %s", k)
	}
	for _, rs := range steps {
		for _, r := range rs {
			if r.Kind == metrics.KindFinal && r.Labels["client_ip"] == "10.0.0.39" && r.WindowStart == t0 {
				require.EqualValues(t, 2, r.Count, "the final took the event of the pause")
			}
		}
	}

	for k, snap := range snapshots[:len(snapshots)-1] {
		copyState := window.NewState(0)
		require.NoError(t, copyState.RestoreEntries(snap))
		wantRest := map[string]metrics.Result{}
		for _, rs := range steps[k+1:] {
			for _, r := range rs {
				wantRest[resultKey(r)] = r
			}
		}
		gotRest := map[string]metrics.Result{}
		for now := int64(10_000); now < 20_000; now += pause {
			rs := e.Emit(copyState, now, false)
			if len(rs) == 0 {
				break
			}
			for _, r := range rs {
				_, twice := gotRest[resultKey(r)]
				require.False(t, twice, "restored after step %d: emitted twice: %s", k+1, resultKey(r))
				gotRest[resultKey(r)] = r
			}
		}
		require.Equal(t, wantRest, gotRest, "restored after step %d", k+1)
	}
}

// TestEarlyResultsKeepTheCap: early results of the dirty list stop at
// Config.MaxScanResults too, the rest coming with the next Emits, none
// lost and none twice.
func TestEarlyResultsKeepTheCap(t *testing.T) {
	t.Parallel()
	capped := cfg
	capped.MaxScanResults = 10
	e := window.NewEngine(mustDefs(t, testDefs), capped)
	s := window.NewState(0)
	var evs []events.Event
	for i := range 30 {
		evs = append(evs, ev(fmt.Sprintf("e%d", i), t0+int64(i)*100, fmt.Sprintf("10.0.0.%d", i), 1))
	}
	e.Add(s, evs, 1)
	got, emits := drainEmits(t, e, s, 1, func(rs []metrics.Result) {
		require.LessOrEqual(t, len(rs), 10)
		for _, r := range rs {
			require.Equal(t, metrics.KindEarly, r.Kind)
		}
	})
	// requests, bytes, hop (three windows) and one requests_by_client and
	// one session per client.
	require.Len(t, got, 3+2+2*30)
	require.Greater(t, emits, 6)
}
