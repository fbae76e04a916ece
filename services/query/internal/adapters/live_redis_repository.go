package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

var (
	_ command.LiveUpdater = (*RedisLiveRepository)(nil)
	_ query.LiveReader    = (*RedisLiveRepository)(nil)
	_ query.TopReader     = (*RedisLiveRepository)(nil)
)

// updateLatest stores, in hash KEYS[1], for each group of four ARGV
// (field, window start ms, revision, value) the value under the field
// unless the stored value is at least as new: a later window start, or the
// same window start and a revision >= the given one. A value is
// "<window start>:<revision>:<window end>|<Result as JSON>" (livePayload), so the
// comparison reads the prefix instead of decoding the JSON; a stored value
// of the form before it (bare JSON, which has no prefix) is decoded with
// cjson, and one that decodes neither way is replaced. Returns how many
// values were stored. Times and revisions are compared as Lua numbers
// (doubles): exact for ms timestamps and revisions below 2^53.
//
// One call carries many updates (up to liveChunk): a script call per
// result cost Redis ~50 µs of CPU per result (call overhead, and cjson
// decoding stored results of up to 20 KB with their sketches), 42 % of a
// core at 48k events/s (INFO commandstats, benchmark of 2026-11-22).
var updateLatest = redis.NewScript(`
local stored = 0
for i = 1, #ARGV, 4 do
  local ws, rev = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local newer = true
  if cur then
    local ows, orev = string.match(cur, '^(%-?%d+):(%d+)[:|]')
    if not ows then
      local ok, old = pcall(cjson.decode, cur)
      if ok and type(old) == 'table' then
        ows, orev = old['window_start'], old['revision']
      end
    end
    ows, orev = tonumber(ows), tonumber(orev)
    if ows and orev and (ws < ows or (ws == ows and rev <= orev)) then
      newer = false
    end
  end
  if newer then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 3])
    stored = stored + 1
  end
end
return stored
`)

// updateTop keeps the per-window top-N sorted set KEYS[1] (members: labels
// keys, scores: values summed over shards) from the per-window hash KEYS[2]
// of "<revision>:<value>" per labels key and shard. ARGV[1] is the keys'
// TTL in seconds, then groups of four: hash field (labels key and shard),
// revision, labels key, value. An update with a revision above the stored
// one adds (value - previous value of that shard) to its member's score,
// so shards add and revisions replace. Returns how many updates applied;
// the TTL is renewed when one did.
var updateTop = redis.NewScript(`
local applied = 0
for i = 2, #ARGV, 4 do
  local prev = redis.call('HGET', KEYS[2], ARGV[i])
  local prevRev, prevVal = 0, 0
  if prev then
    local j = string.find(prev, ':', 1, true)
    if j then
      prevRev = tonumber(string.sub(prev, 1, j - 1)) or 0
      prevVal = tonumber(string.sub(prev, j + 1)) or 0
    end
  end
  local rev = tonumber(ARGV[i + 1])
  if rev > prevRev then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 3])
    redis.call('ZINCRBY', KEYS[1], tonumber(ARGV[i + 3]) - prevVal, ARGV[i + 2])
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return applied
`)

// liveChunk is the most updates one script call carries: a script blocks
// Redis while it runs (~2 µs per update), so a burst of final results is
// cut into calls of at most ~1 ms.
const liveChunk = 500

// TopTTL is how long a window's top-N sorted set is kept after its last
// update.
const TopTTL = 48 * time.Hour

// RedisLiveRepository keeps the latest window result per metric, label set
// and shard in Redis: hash <prefix>live:<metric>, field
// <metrics.LabelsKey>|<shard>, value "<window start>:<revision>:<window
// end>|<Result JSON>". Label sets that stop reporting are removed by
// SweepLive. It remembers what it stored (liveMarks) so that results the
// live hash already holds something newer for are not sent at all. Safe
// for concurrent use.
type RedisLiveRepository struct {
	client  redis.UniversalClient
	prefix  string
	marks   *liveMarks
	decoded *liveDecoded
}

// NewRedisLiveRepository returns a repository on client whose keys start
// with prefix (config.Redis.KeyPrefix, e.g. "sw:").
func NewRedisLiveRepository(client redis.UniversalClient, prefix string) *RedisLiveRepository {
	return &RedisLiveRepository{client: client, prefix: prefix, marks: newLiveMarks(maxLiveMarks), decoded: &liveDecoded{}}
}

// maxLiveMarks bounds the fields liveMarks remembers (~150 bytes each):
// past it they are all forgotten, which costs only the updates they saved.
const maxLiveMarks = 2_000_000

// liveMark is the newest (window start, revision) of one live hash field
// known to be stored, and that window's end (ms), for SweepLive.
type liveMark struct {
	start, rev, end int64
}

// holds reports whether a field stored at m holds res or something newer:
// a later window start, or the same start and a revision >= res's (the
// order updateLatest keeps).
func (m liveMark) holds(res *metrics.Result) bool {
	return res.WindowStart < m.start || res.WindowStart == m.start && res.Revision <= m.rev
}

// liveMarkKey names a live hash field: the metric and LiveField.
type liveMarkKey struct {
	metric, field string
}

// liveMarks remembers per live hash field the newest (window start,
// revision) an update of this process stored. The stored value of a field
// only ever gets newer (updateLatest), whoever writes it, so a mark is a
// lower bound of what Redis holds and a result not newer than its mark
// would be refused: UpdateLiveAll does not send it. Most final results are
// such: 5 s after a minute boundary (the out-of-orderness) an active label
// set's early results of the new minute are already stored, and its final
// of the old minute only costs a script update that changes nothing. Marks
// are dropped by SweepLive with the fields (all of a metric's when its hash
// is empty: an operator's FLUSHALL keeps the scripts, so the next minute's
// sweep is what notices it), all at once past max, and on NOSCRIPT (Redis
// restarted and may have lost data). Until then a lost field comes back
// with its label set's next window. Safe for concurrent use.
type liveMarks struct {
	mu  sync.Mutex
	m   map[liveMarkKey]liveMark
	max int
}

func newLiveMarks(max int) *liveMarks {
	return &liveMarks{m: map[liveMarkKey]liveMark{}, max: max}
}

// stale reports whether the live hash holds res's field at res's window
// start and revision or newer.
func (l *liveMarks) stale(k liveMarkKey, res *metrics.Result) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.m[k]
	return ok && m.holds(res)
}

// stored records that the live hash holds res or something newer.
func (l *liveMarks) stored(k liveMarkKey, res *metrics.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.m[k]
	if ok && m.holds(res) {
		return
	}
	if !ok && len(l.m) >= l.max {
		clear(l.m)
	}
	l.m[k] = liveMark{start: res.WindowStart, rev: res.Revision, end: res.WindowEnd}
}

// sweep forgets the fields whose window ended before their metric's
// cutoff (ms), in one pass over the marks.
func (l *liveMarks) sweep(cutoffs map[string]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, m := range l.m {
		if c, ok := cutoffs[k.metric]; ok && m.end < c {
			delete(l.m, k)
		}
	}
}

// reset forgets every mark.
func (l *liveMarks) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.m)
}

// Key returns the hash holding metric's live results.
func (r *RedisLiveRepository) Key(metric string) string { return r.prefix + "live:" + metric }

// LiveField returns the hash field of res: its labels key and shard.
func LiveField(res metrics.Result) string {
	return metrics.LabelsKey(res.Labels) + "|" + strconv.FormatInt(int64(res.Shard), 10)
}

// TopKey returns the sorted set of metric's window starting at ws (ms):
// <prefix>top:{<metric>:<ws>}, members labels keys, scores values summed
// over shards. The hash tag keeps it in one Redis Cluster slot with its
// per-shard hash <prefix>topshards:{<metric>:<ws>}.
func (r *RedisLiveRepository) TopKey(metric string, ws int64) string {
	return r.prefix + "top:{" + metric + ":" + strconv.FormatInt(ws, 10) + "}"
}

func (r *RedisLiveRepository) topShardsKey(metric string, ws int64) string {
	return r.prefix + "topshards:{" + metric + ":" + strconv.FormatInt(ws, 10) + "}"
}

// UpdateLiveAll stores every result of rs (in order) unless the stored
// result of its label set and shard is at least as new (see
// command.LiveUpdater), in one pipelined round trip to Redis: one
// updateLatest call per metric and one updateTop call per metric and
// window (each of at most liveChunk updates, in rs's order), so the stored
// view is the same as with the results sent one by one. What cannot change
// the stored view is not sent (see liveUpdates): results that rs itself
// supersedes (a record often carries several windows of one label set and
// shard, the open windows of a hopping or session metric, of which the
// live hash keeps only the newest), results older than what this
// repository stored before (liveMarks), and Unchanged results, whose
// values the live hash already holds under an earlier revision. The live hash stores results without their serialized sketches
// (DistinctSketch, QuantileSketch: the live view reads values and counts;
// the history keeps the sketches). The scripts are sent by SHA1; when
// Redis does not know them (a restart flushed its script cache, and maybe
// its data) the marks are forgotten, the scripts loaded and the whole
// pipeline sent once more, which is safe because every update is
// idempotent (latest window and revision win). Errors name the first
// failed call; updates before it may be stored.
func (r *RedisLiveRepository) UpdateLiveAll(ctx context.Context, rs []metrics.Result) error {
	if len(rs) == 0 {
		return nil
	}
	latest, top, keys := liveUpdates(rs)
	payloads := make([][]byte, len(rs))
	prepare := func() error {
		for i := range rs {
			if !latest[i] || payloads[i] != nil || r.marks.stale(keys[i], &rs[i]) {
				continue
			}
			p, err := livePayload(rs[i])
			if err != nil {
				return err
			}
			payloads[i] = p
		}
		return nil
	}
	if err := prepare(); err != nil {
		return err
	}
	err := r.updateAll(ctx, rs, payloads, keys, top)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		r.marks.reset()
		if err := prepare(); err != nil { // without the marks, maybe more to send
			return err
		}
		for _, s := range []*redis.Script{updateLatest, updateTop} {
			if err := s.Load(ctx, r.client).Err(); err != nil {
				return fmt.Errorf("load live scripts: %w", err)
			}
		}
		err = r.updateAll(ctx, rs, payloads, keys, top)
	}
	if err != nil {
		return err
	}
	for i := range rs {
		if payloads[i] != nil {
			r.marks.stored(keys[i], &rs[i])
		}
	}
	return nil
}

// livePayload returns res as the live hash stores it:
// "<window start>:<revision>:<window end>|" and res as JSON without its
// sketches.
func livePayload(res metrics.Result) ([]byte, error) {
	res.DistinctSketch, res.QuantileSketch = nil, nil
	b := strconv.AppendInt(nil, res.WindowStart, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, res.Revision, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, res.WindowEnd, 10)
	b = append(b, '|')
	j, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode live result %s: %w", res.ID(), err)
	}
	return append(b, j...), nil
}

// DecodeLiveValue decodes a value of the live hash: the Result JSON after
// the "<window start>:<revision>:<window end>|" prefix, or all of the value for one of
// the form before the prefix (bare JSON). It fails when the JSON does not
// decode.
func DecodeLiveValue(v string) (metrics.Result, error) {
	j := v
	if !strings.HasPrefix(v, "{") {
		if _, rest, ok := strings.Cut(v, "|"); ok {
			j = rest
		}
	}
	var res metrics.Result
	if err := json.Unmarshal([]byte(j), &res); err != nil {
		return metrics.Result{}, fmt.Errorf("decode live value: %w", err)
	}
	return res, nil
}

// liveUpdates decides which results of rs need which update, leaving out
// what rs itself supersedes, and returns each result's live hash field
// (keys; the zero key for an Unchanged result, which gets no update). latest[i]: rs[i] is not Unchanged and is the first result of its
// metric, label set and shard with the greatest (window start, revision)
// of those in rs (updateLatest would refuse the others once it is stored,
// or store them only to be overwritten by it). top[i]: rs[i] has labels,
// is not Unchanged, and is the first such result of its metric, window,
// label set and shard with the greatest revision in rs (updateTop refuses
// a revision <= the stored one).
//
// An Unchanged result (metrics.Result.Unchanged) repeats the values of its
// window's previous revision from the same shard, which came before it on
// the same metrics.windows partition: it is either in rs (and sent, or
// superseded by something newer) or was sent with an earlier call, so the
// live hash holds those values or something newer, and a top-N update
// would add 0. It is not sent at all; the live view does not show a
// result's kind, and the revision the hash keeps for the window is the
// last changed one. These are the finals of the label sets that were
// quiet in the last second of a minute: most of a boundary's finals that
// the marks do not already leave out. (A projection that starts between
// the two revisions, on a topic whose retention dropped the earlier one,
// shows such a label set only from its next changed result.)
func liveUpdates(rs []metrics.Result) (latest, top []bool, keys []liveMarkKey) {
	latest, top, keys = make([]bool, len(rs)), make([]bool, len(rs)), make([]liveMarkKey, len(rs))
	type topKey struct {
		field liveMarkKey
		ws    int64
	}
	bestLatest := make(map[liveMarkKey]int, len(rs))
	bestTop := make(map[topKey]int, len(rs))
	for i := range rs {
		res := &rs[i]
		if res.Unchanged {
			continue // no update: no field to name (metrics.LabelsKey allocates)
		}
		field := liveMarkKey{res.Metric, LiveField(*res)}
		keys[i] = field
		if j, ok := bestLatest[field]; !ok {
			bestLatest[field] = i
		} else if o := &rs[j]; res.WindowStart > o.WindowStart || res.WindowStart == o.WindowStart && res.Revision > o.Revision {
			bestLatest[field] = i
		}
		if len(res.Labels) == 0 {
			continue
		}
		k := topKey{field, res.WindowStart}
		if j, ok := bestTop[k]; !ok || res.Revision > rs[j].Revision {
			bestTop[k] = i
		}
	}
	for _, i := range bestLatest {
		latest[i] = true
	}
	for _, i := range bestTop {
		top[i] = true
	}
	return latest, top, keys
}

// updateAll sends the updates of rs in one pipeline by script SHA1: the
// live hash update of every rs[i] with payloads[i] (nil: superseded, not
// sent) under field keys[i], grouped per metric, and the top-N update of
// every rs[i] with top[i], grouped per metric and window; a group's
// updates keep rs's order and go in calls of at most liveChunk.
func (r *RedisLiveRepository) updateAll(ctx context.Context, rs []metrics.Result, payloads [][]byte, keys []liveMarkKey, top []bool) error {
	type topGroup struct {
		metric string
		ws     int64
	}
	latestArgs := map[string][]any{}
	var latestOrder []string
	topArgs := map[topGroup][]any{}
	var topOrder []topGroup
	for i, res := range rs {
		if payloads[i] != nil {
			if _, ok := latestArgs[res.Metric]; !ok {
				latestOrder = append(latestOrder, res.Metric)
			}
			latestArgs[res.Metric] = append(latestArgs[res.Metric], keys[i].field, res.WindowStart, res.Revision, payloads[i])
		}
		if top[i] {
			// Top-N per window, for every window (also late revisions
			// of windows the live hash has moved past).
			g := topGroup{res.Metric, res.WindowStart}
			if _, ok := topArgs[g]; !ok {
				topOrder = append(topOrder, g)
			}
			labels := keys[i].field[:strings.LastIndexByte(keys[i].field, '|')] // LiveField: labels key|shard
			topArgs[g] = append(topArgs[g], keys[i].field, res.Revision, labels, strconv.FormatFloat(res.Value, 'g', -1, 64))
		}
	}
	pipe := r.client.Pipeline()
	for _, m := range latestOrder {
		args := latestArgs[m]
		for len(args) > 0 {
			n := min(len(args), 4*liveChunk)
			updateLatest.EvalSha(ctx, pipe, []string{r.Key(m)}, args[:n]...)
			args = args[n:]
		}
	}
	ttl := int64(TopTTL / time.Second)
	for _, g := range topOrder {
		args := topArgs[g]
		for len(args) > 0 {
			n := min(len(args), 4*liveChunk)
			updateTop.EvalSha(ctx, pipe, []string{r.TopKey(g.metric, g.ws), r.topShardsKey(g.metric, g.ws)}, append([]any{ttl}, args[:n]...)...)
			args = args[n:]
		}
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return fmt.Errorf("update live view (%d results): %s: %w", len(rs), c.Args()[3], c.Err())
		}
	}
	return fmt.Errorf("update live view (%d results): %w", len(rs), err)
}

// TopScores implements query.TopReader: every member of the window's
// top-N set with its score, largest first.
func (r *RedisLiveRepository) TopScores(ctx context.Context, metric string, ws int64) ([]window.LabelScore, error) {
	zs, err := r.client.ZRevRangeWithScores(ctx, r.TopKey(metric, ws), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.TopKey(metric, ws), err)
	}
	out := make([]window.LabelScore, 0, len(zs))
	for _, z := range zs {
		if key, ok := z.Member.(string); ok {
			out = append(out, window.LabelScore{LabelsKey: key, Value: z.Score})
		}
	}
	return out, nil
}

// sweepLive deletes from hash KEYS[1] each field of ARGV[2..] whose
// stored window end is still below ARGV[1] (ms): a field updated since
// the caller read it stays. Returns how many fields it deleted.
var sweepLive = redis.NewScript(`
local n = 0
local cutoff = tonumber(ARGV[1])
for i = 2, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur then
    local we = tonumber(string.match(cur, '^%-?%d+:%d+:(%-?%d+)|'))
    if not we then
      local ok, old = pcall(cjson.decode, string.match(cur, '^%-?%d+:%d+|(.*)$') or cur)
      if ok and type(old) == 'table' then
        we = tonumber(old['window_end'])
      end
    end
    if we and we < cutoff then
      redis.call('HDEL', KEYS[1], ARGV[i])
      n = n + 1
    end
  end
end
return n
`)

// SweepLive removes from the live hash of each metric of names the label
// sets and shards whose latest window ended more than retention before the
// newest window end stored for that metric, and returns how many it
// removed. Window ends, not starts: a long session window that started
// long ago but is still open stays. Event time, not the wall clock, decides, so a replay of old
// events is not swept away as it is written. Without it a metric grouped
// by a churning label (client IPs, users, the benchmark's probes) grows
// its hash, and every /api/v1/live read of it, forever. It reads each hash
// with HSCAN (1,000 fields a round trip) and deletes in script calls of at
// most liveChunk fields that re-check each field's window end, so a field
// written meanwhile stays. retention must be positive.
func (r *RedisLiveRepository) SweepLive(ctx context.Context, names []string, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, fmt.Errorf("sweep live view: retention %s must be positive", retention)
	}
	total := 0
	cutoffs := make(map[string]int64, len(names))
	defer func() { r.marks.sweep(cutoffs) }()
	for _, m := range names {
		n, cutoff, err := r.sweepKey(ctx, r.Key(m), retention.Milliseconds())
		total += n
		if err != nil {
			return total, err
		}
		cutoffs[m] = cutoff
	}
	return total, nil
}

// sweepKey sweeps one metric's hash and returns how many fields it
// removed and the cutoff (ms) it used: fields whose window ended before it
// are gone (math.MaxInt64 when the hash holds none of ours).
func (r *RedisLiveRepository) sweepKey(ctx context.Context, key string, retentionMs int64) (int, int64, error) {
	type fieldEnd struct {
		field string
		end   int64
	}
	var fields []fieldEnd
	newest := int64(math.MinInt64)
	var cursor uint64
	for {
		kvs, next, err := r.client.HScan(ctx, key, cursor, "", 1000).Result()
		if err != nil {
			return 0, 0, fmt.Errorf("sweep live view: scan %s: %w", key, err)
		}
		for i := 0; i+1 < len(kvs); i += 2 {
			end, ok := liveWindowEnd(kvs[i+1])
			if !ok {
				continue // not ours to judge; UpdateLiveAll replaces it
			}
			fields = append(fields, fieldEnd{kvs[i], end})
			newest = max(newest, end)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(fields) == 0 {
		return 0, math.MaxInt64, nil // nothing stored: no mark holds
	}
	cutoff := newest - retentionMs
	var stale []any
	for _, f := range fields {
		if f.end < cutoff {
			stale = append(stale, f.field)
		}
	}
	if len(stale) == 0 {
		return 0, cutoff, nil
	}
	pipe := r.client.Pipeline()
	var calls []*redis.Cmd
	for len(stale) > 0 {
		n := min(len(stale), liveChunk)
		calls = append(calls, sweepLive.Eval(ctx, pipe, []string{key}, append([]any{cutoff}, stale[:n]...)...))
		stale = stale[n:]
	}
	_, err := pipe.Exec(ctx)
	removed := 0
	for _, c := range calls {
		if n, cerr := c.Int(); cerr == nil {
			removed += n
		}
	}
	if err != nil {
		return removed, cutoff, fmt.Errorf("sweep live view: delete from %s: %w", key, err)
	}
	return removed, cutoff, nil
}

// liveWindowEnd returns the window end (ms) of a live hash value, from
// its prefix, or from the JSON of a value without the end in its prefix.
func liveWindowEnd(v string) (int64, bool) {
	if head, _, ok := strings.Cut(v, "|"); ok && !strings.HasPrefix(v, "{") {
		if parts := strings.Split(head, ":"); len(parts) == 3 {
			end, err := strconv.ParseInt(parts[2], 10, 64)
			return end, err == nil
		}
	}
	res, err := DecodeLiveValue(v)
	return res.WindowEnd, err == nil
}

// LiveResults returns every stored result of metric, one per label set and
// shard, in no particular order. Values that do not decode are skipped
// (only UpdateLiveAll writes these keys).
//
// A value read before and unchanged since is not decoded again (liveDecoded):
// most fields of a hash do not change between two reads a dashboard makes
// a second apart, and decoding the JSON of each was most of a read's cost.
// The returned results' Labels and Quantiles maps and TopK slices are
// shared with other reads: callers must not modify them.
//
// With filters, only the results whose labels pass them (window.Matches)
// are returned. When a filter names one non-empty value, the hash is read
// with HSCAN and a MATCH pattern of that label and value
// (liveMatchPattern), so Redis sends only the fields that may match
// (liveScanCount a round trip) and only those are decoded: a dashboard
// (or the benchmark's probe) following one label set of a metric with a
// churning label no longer reads and decodes every label set of it
// (BenchmarkLiveResults, 2,000 label sets: whole 8.2–9.8 ms, one
// 2.1–2.5 ms, of which ~1 ms is Redis's: its HSCAN (7.0) copies every field
// it visits before matching, half the cost of HGETALL in Redis).
// Filtered reads bypass the cache of decoded values, which follows whole
// reads, and return a field the scan met twice once. Other filters read
// the whole hash and filter after decoding. Errors wrap Redis's and name
// the key.
func (r *RedisLiveRepository) LiveResults(ctx context.Context, metric string, filters []window.Filter) ([]metrics.Result, error) {
	key := r.Key(metric)
	pattern, narrow := liveMatchPattern(filters)
	if !narrow {
		all, err := r.client.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, fmt.Errorf("read live %s: %w", key, err)
		}
		return matching(r.decoded.decode(metric, all), filters), nil
	}
	var out []metrics.Result
	// SCAN may return an element more than once (its documented
	// guarantees: when the hash shrinks between two calls); Latest would
	// add such a value twice.
	seen := map[string]bool{}
	var cursor uint64
	for {
		kvs, next, err := r.client.HScan(ctx, key, cursor, pattern, liveScanCount).Result()
		if err != nil {
			return nil, fmt.Errorf("read live %s: scan %q: %w", key, pattern, err)
		}
		for i := 0; i+1 < len(kvs); i += 2 {
			if seen[kvs[i]] {
				continue
			}
			seen[kvs[i]] = true
			if res, err := DecodeLiveValue(kvs[i+1]); err == nil {
				out = append(out, res)
			}
		}
		if cursor = next; cursor == 0 {
			return matching(out, filters), nil // the pattern matches more than the filters
		}
	}
}

// liveScanCount is the COUNT hint of a filtered read's HSCAN calls: the
// fields Redis visits per round trip (it sends only those that match).
const liveScanCount = 1000

// liveMatchPattern returns an HSCAN MATCH pattern (Redis glob syntax) that
// every live hash field whose labels pass filters matches, and true; or
// false when no filter narrows the fields that way (no filter names
// exactly one non-empty value). A field is "<labels key>|<shard>" and a
// labels key lists "name=value" pairs (metrics.LabelsKey) separated by
// commas, so label L with value V appears as metrics.LabelsKey({L: V})
// followed by ',' or '|'. The pattern also matches some fields that do
// not pass (another label whose name ends in L, other filters): callers
// still check each result.
func liveMatchPattern(filters []window.Filter) (string, bool) {
	for _, f := range filters {
		if len(f.Values) != 1 || f.Values[0] == "" {
			continue
		}
		return "*" + globEscape(metrics.LabelsKey(map[string]string{f.Label: f.Values[0]})) + "[,|]*", true
	}
	return "", false
}

// globEscape escapes the characters special in Redis glob patterns
// (stringmatchlen: * ? [ ] and the backslash itself).
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// matching returns the results of rs whose labels pass filters, in place.
func matching(rs []metrics.Result, filters []window.Filter) []metrics.Result {
	return slices.DeleteFunc(rs, func(r metrics.Result) bool { return !window.Matches(filters, r.Labels) })
}

// liveDecoded keeps, per metric, the values of its live hash the last
// read decoded, with their decoded results, keyed by field: a read decodes
// only the values that differ from the last read's, and keeps only the
// fields it read (so the cache holds at most one copy of each hash, swept
// fields leaving with the next read). Safe for concurrent use.
type liveDecoded struct {
	mu       sync.Mutex
	byMetric map[string]map[string]decodedValue
}

type decodedValue struct {
	raw string
	res metrics.Result
	ok  bool // raw decoded
}

// decode returns the results of the values in all (field → value), in no
// particular order, skipping values that do not decode.
func (d *liveDecoded) decode(metric string, all map[string]string) []metrics.Result {
	d.mu.Lock()
	prev := d.byMetric[metric]
	d.mu.Unlock()
	next := make(map[string]decodedValue, len(all))
	out := make([]metrics.Result, 0, len(all))
	for field, v := range all {
		dv, hit := prev[field]
		if !hit || dv.raw != v {
			res, err := DecodeLiveValue(v)
			dv = decodedValue{raw: v, res: res, ok: err == nil}
		}
		next[field] = dv
		if dv.ok {
			out = append(out, dv.res)
		}
	}
	d.mu.Lock()
	if d.byMetric == nil {
		d.byMetric = map[string]map[string]decodedValue{}
	}
	d.byMetric[metric] = next
	d.mu.Unlock()
	return out
}
