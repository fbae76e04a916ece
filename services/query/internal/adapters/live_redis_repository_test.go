package adapters_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// liveResults returns n results of one metric over a few label sets,
// shards and windows, with revisions that go back and forth and repeats,
// as replays and out-of-order records deliver them.
func liveResults(rng *rand.Rand, n int) []metrics.Result {
	rs := make([]metrics.Result, n)
	for i := range rs {
		ws := int64(rng.IntN(3)) * 60_000
		r := metrics.Result{V: 1, Metric: "requests_by_status", WindowStart: ws, WindowEnd: ws + 60_000,
			Shard: int32(rng.IntN(3)), Kind: metrics.KindEarly, Revision: int64(rng.IntN(5)),
			Count: int64(rng.IntN(1000)), Value: float64(rng.IntN(1000))}
		if rng.IntN(4) > 0 { // a quarter without labels: no top-N update
			r.Labels = map[string]string{"status": strconv.Itoa(200 + rng.IntN(4))}
		}
		rs[i] = r
	}
	return rs
}

// liveModel is what the live view must hold after rs, computed without
// Redis: per label set and shard the first result with the greatest
// (window start, revision); per window, per labels key the sum over shards
// of the value of the first result with the greatest revision above 0
// (a top-N entry starts at revision 0, so revision 0 never applies).
func liveModel(rs []metrics.Result) (map[string]metrics.Result, map[int64]map[string]float64) {
	latest := map[string]metrics.Result{}
	type shardTop struct {
		labels string
		rev    int64
		value  float64
	}
	perShard := map[int64]map[string]shardTop{}
	for _, r := range rs {
		f := adapters.LiveField(r)
		if cur, ok := latest[f]; !ok || r.WindowStart > cur.WindowStart || (r.WindowStart == cur.WindowStart && r.Revision > cur.Revision) {
			latest[f] = r
		}
		if len(r.Labels) == 0 {
			continue
		}
		if perShard[r.WindowStart] == nil {
			perShard[r.WindowStart] = map[string]shardTop{}
		}
		if cur := perShard[r.WindowStart][f]; r.Revision > cur.rev {
			perShard[r.WindowStart][f] = shardTop{labels: metrics.LabelsKey(r.Labels), rev: r.Revision, value: r.Value}
		}
	}
	top := map[int64]map[string]float64{}
	for ws, shards := range perShard {
		top[ws] = map[string]float64{}
		for _, e := range shards {
			top[ws][e.labels] += e.value
		}
	}
	return latest, top
}

// TestUpdateLiveAllEqualsOneByOne: the pipelined update leaves the live
// hash and the per-window top-N sets exactly as the same results sent one
// by one do, also after Redis lost its script cache.
func TestUpdateLiveAllEqualsOneByOne(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	one := adapters.NewRedisLiveRepository(client, "one:")
	all := adapters.NewRedisLiveRepository(client, "all:")
	rng := rand.New(rand.NewPCG(7, 11))
	var sent []metrics.Result
	for round := range 20 {
		rs := liveResults(rng, 1+rng.IntN(200))
		sent = append(sent, rs...)
		for _, r := range rs {
			require.NoError(t, one.UpdateLiveAll(ctx, []metrics.Result{r}))
		}
		if round%5 == 4 {
			require.NoError(t, client.ScriptFlush(ctx).Err(), "a Redis restart forgets the scripts")
		}
		require.NoError(t, all.UpdateLiveAll(ctx, rs), "round %d", round)
	}

	want, err := one.LiveResults(ctx, "requests_by_status", nil)
	require.NoError(t, err)
	got, err := all.LiveResults(ctx, "requests_by_status", nil)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	byField := func(rs []metrics.Result) []metrics.Result {
		sort.Slice(rs, func(i, j int) bool { return adapters.LiveField(rs[i]) < adapters.LiveField(rs[j]) })
		return rs
	}
	require.Equal(t, byField(want), byField(got))
	modelLatest, modelTop := liveModel(sent)
	require.Len(t, got, len(modelLatest))
	for _, r := range got {
		m := modelLatest[adapters.LiveField(r)]
		require.Equal(t, [3]any{m.WindowStart, m.Revision, m.Value}, [3]any{r.WindowStart, r.Revision, r.Value}, "live %s", adapters.LiveField(r))
	}
	for ws := int64(0); ws < 3*60_000; ws += 60_000 {
		wantTop, err := one.TopScores(ctx, "requests_by_status", ws)
		require.NoError(t, err)
		gotTop, err := all.TopScores(ctx, "requests_by_status", ws)
		require.NoError(t, err)
		require.NotEmpty(t, wantTop)
		require.Equal(t, wantTop, gotTop, "top-N of window %d", ws)
		scores := map[string]float64{}
		for _, e := range gotTop {
			scores[e.LabelsKey] = e.Value
		}
		require.Equal(t, modelTop[ws], scores, "top-N of window %d against the model", ws)
	}
	require.NoError(t, all.UpdateLiveAll(ctx, nil))
}

// BenchmarkUpdateLive compares the live view update of one metrics.windows
// record (500 results with labels) one round trip per result and one
// pipeline for the record, on a real redis-server over loopback, in
// results/s.
func BenchmarkUpdateLive(b *testing.B) {
	ctx := context.Background()
	client := redistest.Start(b)
	repo := adapters.NewRedisLiveRepository(client, "bench:")
	rs := liveResults(rand.New(rand.NewPCG(1, 2)), 500)
	for i := range rs {
		rs[i].Labels = map[string]string{"status": strconv.Itoa(i)}
	}
	// A tenth carry a HyperLogLog sketch, as partial distinct results do.
	hll := metrics.NewDistinct()
	for i := range 5000 {
		hll.Add(strconv.Itoa(i))
	}
	sketch, err := hll.MarshalBinary()
	require.NoError(b, err)
	for i := 0; i < len(rs); i += 10 {
		rs[i].DistinctSketch = sketch
	}
	run := func(b *testing.B, update func([]metrics.Result) error) {
		n := 0
		cpu0 := redisCPU(b, client)
		for b.Loop() {
			for i := range rs {
				rs[i].Revision++
			}
			require.NoError(b, update(rs))
			n += len(rs)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "results/s")
		b.ReportMetric((redisCPU(b, client)-cpu0)*1e6/float64(n), "redis-µs/result")
	}
	b.Run("one-by-one", func(b *testing.B) {
		run(b, func(rs []metrics.Result) error {
			for _, r := range rs {
				if err := repo.UpdateLiveAll(ctx, []metrics.Result{r}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("pipelined", func(b *testing.B) {
		run(b, func(rs []metrics.Result) error { return repo.UpdateLiveAll(ctx, rs) })
	})
	// The finals of a minute boundary: every label set already has an
	// early result of the next minute stored, and the finals repeat their
	// last early result's values (Unchanged).
	b.Run("boundary-finals", func(b *testing.B) {
		finals := make([]metrics.Result, len(rs))
		next := make([]metrics.Result, len(rs))
		for i := range rs {
			finals[i], next[i] = rs[i], rs[i]
			finals[i].WindowStart, finals[i].WindowEnd, finals[i].Kind, finals[i].Unchanged = 0, 60_000, metrics.KindFinal, true
			next[i].WindowStart, next[i].WindowEnd = 60_000, 120_000
		}
		require.NoError(b, repo.UpdateLiveAll(ctx, next))
		run(b, func([]metrics.Result) error {
			for i := range finals {
				finals[i].Revision++
			}
			return repo.UpdateLiveAll(ctx, finals)
		})
	})
	// The finals of label sets quiet in the minute's last second: no
	// next-minute result is stored, and each final repeats the values of
	// its window's last early result (Unchanged), which is.
	b.Run("quiet-finals", func(b *testing.B) {
		finals := make([]metrics.Result, len(rs))
		for i := range rs {
			finals[i] = rs[i]
			finals[i].WindowStart, finals[i].WindowEnd = 240_000, 300_000
		}
		require.NoError(b, repo.UpdateLiveAll(ctx, finals))
		for i := range finals {
			finals[i].Kind, finals[i].Unchanged = metrics.KindFinal, true
		}
		run(b, func([]metrics.Result) error {
			for i := range finals {
				finals[i].Revision++
			}
			return repo.UpdateLiveAll(ctx, finals)
		})
	})
}

// redisCPU returns the CPU seconds (user + system) redis-server has used,
// from INFO cpu.
func redisCPU(b *testing.B, client redis.UniversalClient) float64 {
	b.Helper()
	info, err := client.Info(context.Background(), "cpu").Result()
	require.NoError(b, err)
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(b, err)
			total += f
		}
	}
	return total
}

// TestLiveViewReadsValuesOfTheFormBeforeThePrefix: a live hash written by
// the version that stored bare JSON keeps working: an older result does
// not replace such a value, a newer one does, and both forms are read.
// The stored form has no sketches.
func TestLiveViewReadsValuesOfTheFormBeforeThePrefix(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	repo := adapters.NewRedisLiveRepository(client, "p:")
	old := metrics.Result{V: 1, Metric: "requests_by_status", Labels: map[string]string{"status": "200"},
		WindowStart: 60_000, WindowEnd: 120_000, Kind: metrics.KindEarly, Revision: 3, Count: 7, Value: 7}
	bare, err := json.Marshal(old)
	require.NoError(t, err)
	require.NoError(t, client.HSet(ctx, repo.Key(old.Metric), adapters.LiveField(old), bare).Err())
	other := old
	other.Labels = map[string]string{"status": "500"}
	require.NoError(t, client.HSet(ctx, repo.Key(old.Metric), adapters.LiveField(other), mustJSON(t, other)).Err())

	stale := old
	stale.Revision, stale.Value = 2, 99
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{stale}))
	got, err := repo.LiveResults(ctx, old.Metric, nil)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, r := range got {
		require.Equal(t, int64(3), r.Revision, "revision 2 must not replace a stored revision 3")
	}

	newer := old
	newer.Revision, newer.Value, newer.DistinctSketch = 4, 9, []byte("sketch")
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{newer}))
	raw, err := client.HGet(ctx, repo.Key(old.Metric), adapters.LiveField(old)).Result()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(raw, "60000:4:120000|{"), "stored as %q", raw)
	stored, err := adapters.DecodeLiveValue(raw)
	require.NoError(t, err)
	require.Equal(t, 9.0, stored.Value)
	require.Nil(t, stored.DistinctSketch, "the live hash keeps no sketches")
	_, err = adapters.DecodeLiveValue("60000:4:120000|{not json")
	require.Error(t, err)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestSweepLiveRemovesLabelSetsThatStoppedReporting: label sets whose
// latest window ended more than the retention before the metric's newest
// window end leave the live hash, in every value form; the others stay,
// also a long window that started long ago but ends recently (a session).
func TestSweepLiveRemovesLabelSetsThatStoppedReporting(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	repo := adapters.NewRedisLiveRepository(client, "s:")
	const hour = int64(time.Hour / time.Millisecond)
	res := func(status string, ws int64) metrics.Result {
		return metrics.Result{V: 1, Metric: "requests_by_status", Labels: map[string]string{"status": status},
			WindowStart: ws, WindowEnd: ws + 60_000, Kind: metrics.KindFinal, Revision: 1, Count: 1, Value: 1}
	}
	var rs []metrics.Result
	for i := range 1500 { // more than one HSCAN page and one script call
		rs = append(rs, res("gone-"+strconv.Itoa(i), 0))
	}
	session := res("session", 0)
	session.WindowEnd = 2 * hour
	rs = append(rs, res("200", 2*hour), res("404", 2*hour-30*60_000), res("500", hour), session)
	require.NoError(t, repo.UpdateLiveAll(ctx, rs))
	bare := res("bare", 10)
	require.NoError(t, client.HSet(ctx, repo.Key(bare.Metric), adapters.LiveField(bare), mustJSON(t, bare)).Err())
	short := res("short-prefix", 20) // "<start>:<revision>|": no end in the prefix
	require.NoError(t, client.HSet(ctx, repo.Key(short.Metric), adapters.LiveField(short),
		append([]byte("20:1|"), mustJSON(t, short)...)).Err())

	_, err := repo.SweepLive(ctx, []string{"requests_by_status"}, 0)
	require.Error(t, err, "a retention of 0 would sweep everything but the newest")

	n, err := repo.SweepLive(ctx, []string{"requests_by_status", "no_such_metric"}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, 1502, n)
	got, err := repo.LiveResults(ctx, "requests_by_status", nil)
	require.NoError(t, err)
	var left []string
	for _, r := range got {
		left = append(left, r.Labels["status"])
	}
	sort.Strings(left)
	require.Equal(t, []string{"200", "404", "500", "session"}, left, "a window ending exactly one hour before the newest stays")
}

// statusResult is an early result of requests_by_status for one status
// label, window [ws, ws+1m), with revision rev and value.
func statusResult(status string, ws, rev int64, value float64) metrics.Result {
	return metrics.Result{V: 1, Metric: "requests_by_status", Labels: map[string]string{"status": status},
		WindowStart: ws, WindowEnd: ws + 60_000, Kind: metrics.KindEarly, Revision: rev, Count: 1, Value: value}
}

// TestUpdateLiveAllSendsOnlyWhatCanChangeTheView: a result older than what
// the repository stored before is not sent (seen by deleting the field
// behind its back: the older result does not bring it back), until
// SweepLive removed the field, or found the metric's hash empty (after a
// FLUSHALL), or a NOSCRIPT (Redis restarted) made the repository forget
// what it stored; an Unchanged final is not sent at all (neither to the
// live hash nor to the top-N): both keep the values of its window's
// earlier revision, whether that came in an earlier call or in the same
// one.
func TestUpdateLiveAllSendsOnlyWhatCanChangeTheView(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	repo := adapters.NewRedisLiveRepository(client, "m:")
	key := repo.Key("requests_by_status")
	field := adapters.LiveField(statusResult("200", 0, 1, 1))
	stored := func() (int64, int64, bool) {
		v, err := client.HGet(ctx, key, field).Result()
		if err == redis.Nil {
			return 0, 0, false
		}
		require.NoError(t, err)
		r, err := adapters.DecodeLiveValue(v)
		require.NoError(t, err)
		return r.WindowStart, r.Revision, true
	}

	newer, older := statusResult("200", 60_000, 3, 7), statusResult("200", 0, 2, 5)
	older.Kind = metrics.KindFinal
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{newer}))
	require.NoError(t, client.HDel(ctx, key, field).Err())
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{older}))
	_, _, ok := stored()
	require.False(t, ok, "the final of an older window is not sent once a newer window is stored")

	// A restart (scripts and data gone): the repository forgets its marks
	// on NOSCRIPT, and the older result is stored again.
	require.NoError(t, client.ScriptFlush(ctx).Err())
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{statusResult("404", 0, 1, 1), older}))
	ws, rev, ok := stored()
	require.True(t, ok)
	require.Equal(t, [2]int64{0, 2}, [2]int64{ws, rev})

	// The sweep removes the field and its mark: a result of that window
	// is stored again after it.
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{statusResult("500", 3*3_600_000, 1, 1)}))
	_, err := repo.SweepLive(ctx, []string{"requests_by_status"}, time.Hour)
	require.NoError(t, err)
	_, _, ok = stored()
	require.False(t, ok, "swept")
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{older}))
	_, _, ok = stored()
	require.True(t, ok, "stored again after the sweep")

	// FLUSHALL keeps the scripts: the next sweep finds the hash empty and
	// drops the metric's marks.
	require.NoError(t, client.FlushAll(ctx).Err())
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{older}))
	_, _, ok = stored()
	require.False(t, ok, "not sent: the mark says it is stored")
	_, err = repo.SweepLive(ctx, []string{"requests_by_status"}, time.Hour)
	require.NoError(t, err)
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{older}))
	_, _, ok = stored()
	require.True(t, ok, "stored after the sweep found the hash empty")

	// Top-N: the Unchanged final of a window keeps the value of its early
	// result, sent in an earlier call or in the same one.
	const ws2 = 10 * 60_000
	early, final := statusResult("200", ws2, 1, 9), statusResult("200", ws2, 2, 9)
	final.Kind, final.Unchanged = metrics.KindFinal, true
	other := statusResult("503", ws2, 1, 4)
	otherFinal := other
	otherFinal.Kind, otherFinal.Revision, otherFinal.Unchanged = metrics.KindFinal, 2, true
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{early}))
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{final, other, otherFinal}))
	top, err := repo.TopScores(ctx, "requests_by_status", ws2)
	require.NoError(t, err)
	scores := map[string]float64{}
	for _, e := range top {
		scores[e.LabelsKey] = e.Value
	}
	require.Equal(t, map[string]float64{"status=200": 9, "status=503": 4}, scores)
	shards, err := client.HGetAll(ctx, "m:topshards:{requests_by_status:"+strconv.Itoa(ws2)+"}").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"status=200|0": "1:9", "status=503|0": "1:4"}, shards,
		"the Unchanged finals sent no top-N update")
	// The live hash keeps the earlier revisions, whose values the finals
	// repeat.
	live, err := repo.LiveResults(ctx, "requests_by_status", nil)
	require.NoError(t, err)
	revs := map[string][2]float64{}
	for _, r := range live {
		if r.WindowStart == ws2 {
			revs[r.Labels["status"]] = [2]float64{float64(r.Revision), r.Value}
		}
	}
	require.Equal(t, map[string][2]float64{"200": {1, 9}, "503": {1, 4}}, revs)
}

// TestLiveResultsDecodesOnlyChangedValues: a read after an update returns
// the updated values and the unchanged ones, a field removed behind the
// repository's back is gone from the next read, and a value that does not
// decode is skipped without hiding the others; a second repository (no
// cache) reads the same.
func TestLiveResultsDecodesOnlyChangedValues(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	repo := adapters.NewRedisLiveRepository(client, "d:")
	values := func(r *adapters.RedisLiveRepository) map[string]float64 {
		got, err := r.LiveResults(ctx, "requests_by_status", nil)
		require.NoError(t, err)
		out := map[string]float64{}
		for _, g := range got {
			out[g.Labels["status"]+"@"+strconv.FormatInt(g.Revision, 10)] = g.Value
		}
		return out
	}
	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{statusResult("200", 0, 1, 1), statusResult("404", 0, 1, 2), statusResult("500", 0, 1, 3)}))
	require.Equal(t, map[string]float64{"200@1": 1, "404@1": 2, "500@1": 3}, values(repo))

	require.NoError(t, repo.UpdateLiveAll(ctx, []metrics.Result{statusResult("200", 0, 2, 10)}))
	key := repo.Key("requests_by_status")
	require.NoError(t, client.HDel(ctx, key, adapters.LiveField(statusResult("404", 0, 1, 0))).Err())
	require.NoError(t, client.HSet(ctx, key, adapters.LiveField(statusResult("500", 0, 1, 0)), "0:9:60000|{not json").Err())
	want := map[string]float64{"200@2": 10}
	require.Equal(t, want, values(repo))
	require.Equal(t, want, values(adapters.NewRedisLiveRepository(client, "d:")))
	require.Equal(t, want, values(repo), "the undecodable value stays skipped")
}

// BenchmarkLiveResults reads a live hash of 1,000 or 2,000 label sets, as
// GET /api/v1/live does for a metric grouped by a churning label (the
// benchmark's probes add two a second), with a tenth of the values
// changed between two reads: all of them (whole), or the one label set a
// filter names (one).
func BenchmarkLiveResults(b *testing.B) {
	for _, n := range []int{1000, 2000} {
		for _, read := range []string{"whole", "one"} {
			b.Run(strconv.Itoa(n)+"/"+read, func(b *testing.B) {
				benchmarkLiveResults(b, n, read == "one")
			})
		}
	}
}

func benchmarkLiveResults(b *testing.B, sets int, one bool) {
	ctx := context.Background()
	client := redistest.Start(b)
	repo := adapters.NewRedisLiveRepository(client, "bench:")
	rs := make([]metrics.Result, sets)
	for i := range rs {
		rs[i] = metrics.Result{V: 1, Metric: "latency_by_service", Labels: map[string]string{"service": "probe-" + strconv.Itoa(i)},
			WindowStart: 60_000, WindowEnd: 120_000, Shard: int32(i % 6), Kind: metrics.KindEarly, Revision: 1,
			Count: 12, Sum: 345, Min: 1, Max: 99, Value: 28.75, Agg: metrics.AggAvg, Unit: "ms"}
	}
	require.NoError(b, repo.UpdateLiveAll(ctx, rs))
	var filters []window.Filter
	want := len(rs)
	if one {
		filters, want = []window.Filter{{Label: "service", Values: []string{"probe-" + strconv.Itoa(sets/2)}}}, 1
	}
	n := 0
	for b.Loop() {
		b.StopTimer()
		for i := n % 10; i < len(rs); i += 10 {
			rs[i].Revision++
		}
		require.NoError(b, repo.UpdateLiveAll(ctx, rs))
		n++
		b.StartTimer()
		got, err := repo.LiveResults(ctx, "latency_by_service", filters)
		require.NoError(b, err)
		require.Len(b, got, want)
	}
}

// TestLiveResultsFiltered: a filtered read returns exactly the label sets
// the filters pass, the same as filtering a whole read, whether the hash is
// scanned with a MATCH pattern (one value: several round trips over a hash
// larger than the scan count) or read whole (several values, the empty
// value). Values that look like other fields (a prefix of another value, a
// label whose name ends in the filtered one, glob characters, quoted
// values) do not leak in.
func TestLiveResultsFiltered(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t)
	repo := adapters.NewRedisLiveRepository(client, "f:")
	const metric = "latency_by_service"
	var rs []metrics.Result
	add := func(labels map[string]string, shard int32) {
		rs = append(rs, metrics.Result{V: 1, Metric: metric, Labels: labels, WindowStart: 60_000, WindowEnd: 120_000,
			Shard: shard, Kind: metrics.KindEarly, Revision: 1, Count: int64(len(rs) + 1), Value: float64(len(rs) + 1)})
	}
	for i := range 2500 {
		add(map[string]string{"service": "svc-" + strconv.Itoa(i)}, int32(i%6))
	}
	for _, v := range []string{"a", "ab", "a*", "a?", "[a]", `a\b`, "a,b", `a="b"`, "a|b", ""} {
		add(map[string]string{"service": v}, 0)
		add(map[string]string{"service": v}, 3)
		add(map[string]string{"service": v, "endpoint": "/x"}, 1)
		add(map[string]string{"xservice": v}, 2)
	}
	add(map[string]string{"endpoint": "/x"}, 4)
	require.NoError(t, repo.UpdateLiveAll(ctx, rs))
	all, err := repo.LiveResults(ctx, metric, nil)
	require.NoError(t, err)
	require.Len(t, all, len(rs))

	keys := func(rs []metrics.Result) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = adapters.LiveField(r)
		}
		sort.Strings(out)
		return out
	}
	for _, filters := range [][]window.Filter{
		{{Label: "service", Values: []string{"svc-1"}}},
		{{Label: "service", Values: []string{"svc-2499"}}},
		{{Label: "service", Values: []string{"a"}}},
		{{Label: "service", Values: []string{"a*"}}},
		{{Label: "service", Values: []string{"a?"}}},
		{{Label: "service", Values: []string{"[a]"}}},
		{{Label: "service", Values: []string{`a\b`}}},
		{{Label: "service", Values: []string{"a,b"}}},
		{{Label: "service", Values: []string{`a="b"`}}},
		{{Label: "service", Values: []string{"a|b"}}},
		{{Label: "service", Values: []string{"a"}}, {Label: "endpoint", Values: []string{"/x"}}},
		{{Label: "endpoint", Values: []string{"/x"}}, {Label: "service", Values: []string{"ab", "a"}}},
		{{Label: "service", Values: []string{""}}},
		{{Label: "service", Values: []string{"svc-7", "ab"}}},
		{{Label: "service", Values: []string{"nobody"}}},
	} {
		var want []metrics.Result
		for _, r := range all {
			if window.Matches(filters, r.Labels) {
				want = append(want, r)
			}
		}
		got, err := repo.LiveResults(ctx, metric, filters)
		require.NoError(t, err)
		require.Equal(t, keys(want), keys(got), "%+v", filters)
		for _, g := range got {
			require.True(t, window.Matches(filters, g.Labels), "%+v: %v", filters, g.Labels)
		}
	}
	one, err := repo.LiveResults(ctx, metric, []window.Filter{{Label: "service", Values: []string{"a"}}})
	require.NoError(t, err)
	require.Len(t, one, 3, "service=a on shards 0 and 3 and with an endpoint; not ab, a*, a?, [a] or the xservice set")
}
