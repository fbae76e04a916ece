package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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

// updateLatest stores ARGV[4] (a Result as JSON) in hash KEYS[1] under
// field ARGV[1] unless the stored Result is at least as new: a later
// window_start, or the same window_start and a revision >= ARGV[3]. A stored
// value that does not decode is replaced. Returns 1 if stored, 0 if not.
// Times and revisions are compared as Lua numbers (doubles): exact for ms
// timestamps and revisions below 2^53.
var updateLatest = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' then
    local ows = tonumber(old['window_start']) or 0
    local orev = tonumber(old['revision']) or 0
    local ws = tonumber(ARGV[2])
    local rev = tonumber(ARGV[3])
    if ws < ows or (ws == ows and rev <= orev) then
      return 0
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1
`)

// updateTop keeps the per-window top-N sorted set KEYS[1] (member: the
// labels key ARGV[3], score: the value summed over shards) from the
// per-window hash KEYS[2] of "<revision>:<value>" per labels key and shard
// (field ARGV[1]): a result with a revision above the stored one adds
// (value - previous value of that shard) to its member's score, so shards
// add and revisions replace. ARGV[2] is the revision, ARGV[4] the value,
// ARGV[5] the keys' TTL in seconds. Returns 1 if applied.
var updateTop = redis.NewScript(`
local prev = redis.call('HGET', KEYS[2], ARGV[1])
local prevRev, prevVal = 0, 0
if prev then
  local i = string.find(prev, ':', 1, true)
  if i then
    prevRev = tonumber(string.sub(prev, 1, i - 1)) or 0
    prevVal = tonumber(string.sub(prev, i + 1)) or 0
  end
end
local rev = tonumber(ARGV[2])
if rev <= prevRev then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. ARGV[4])
redis.call('ZINCRBY', KEYS[1], tonumber(ARGV[4]) - prevVal, ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
`)

// TopTTL is how long a window's top-N sorted set is kept after its last
// update.
const TopTTL = 48 * time.Hour

// RedisLiveRepository keeps the latest window result per metric, label set
// and shard in Redis: hash <prefix>live:<metric>, field
// <metrics.LabelsKey>|<shard>, value the Result as JSON. Safe for
// concurrent use.
//
// TODO: fields of label sets that stop reporting stay forever; expire them
// (e.g. a sorted set of last-update times swept periodically) once the live
// view has many short-lived label sets.
type RedisLiveRepository struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisLiveRepository returns a repository on client whose keys start
// with prefix (config.Redis.KeyPrefix, e.g. "sw:").
func NewRedisLiveRepository(client redis.UniversalClient, prefix string) *RedisLiveRepository {
	return &RedisLiveRepository{client: client, prefix: prefix}
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
// command.LiveUpdater), in one pipelined round trip to Redis: each result's
// update is one atomic script call (updateLatest, and updateTop for results
// with labels), so the stored view is the same as with the results sent one
// by one. Results that rs itself supersedes are not sent (see liveUpdates):
// a record often carries several windows of one label set and shard (the
// open windows of a hopping or session metric), of which the live hash
// keeps only the newest. The scripts are sent by SHA1;
// when Redis does not know them (a restart flushed its script cache) they
// are loaded and the whole pipeline is sent once more, which is safe
// because every update is idempotent (latest window and revision win).
// Errors name the first failed update; results before it may be stored.
func (r *RedisLiveRepository) UpdateLiveAll(ctx context.Context, rs []metrics.Result) error {
	if len(rs) == 0 {
		return nil
	}
	latest, top := liveUpdates(rs)
	payloads := make([][]byte, len(rs))
	for i := range rs {
		if !latest[i] {
			continue
		}
		p, err := json.Marshal(rs[i])
		if err != nil {
			return fmt.Errorf("encode live result %s: %w", rs[i].ID(), err)
		}
		payloads[i] = p
	}
	err := r.updateAll(ctx, rs, payloads, top)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		for _, s := range []*redis.Script{updateLatest, updateTop} {
			if err := s.Load(ctx, r.client).Err(); err != nil {
				return fmt.Errorf("load live scripts: %w", err)
			}
		}
		err = r.updateAll(ctx, rs, payloads, top)
	}
	return err
}

// liveUpdates decides which results of rs need which update, leaving out
// what rs itself supersedes. latest[i]: rs[i] is the first result of its
// metric, label set and shard with the greatest (window start, revision)
// in rs (updateLatest would refuse the others once it is stored, or store
// them only to be overwritten by it). top[i]: rs[i] has labels and is the
// first result of its metric, window, label set and shard with the
// greatest revision in rs (updateTop refuses a revision <= the stored one).
func liveUpdates(rs []metrics.Result) (latest, top []bool) {
	latest, top = make([]bool, len(rs)), make([]bool, len(rs))
	type topKey struct {
		field string
		ws    int64
	}
	bestLatest := make(map[string]int, len(rs))
	bestTop := make(map[topKey]int, len(rs))
	for i := range rs {
		res := &rs[i]
		field := res.Metric + "\xff" + LiveField(*res)
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
	return latest, top
}

// updateAll sends the updates of rs in one pipeline by script SHA1: the
// live hash update of every rs[i] with payloads[i] (rs[i] as JSON; nil:
// superseded, not sent) and the top-N update of every rs[i] with top[i].
func (r *RedisLiveRepository) updateAll(ctx context.Context, rs []metrics.Result, payloads [][]byte, top []bool) error {
	pipe := r.client.Pipeline()
	ttl := int64(TopTTL / time.Second)
	for i, res := range rs {
		if payloads[i] != nil {
			updateLatest.EvalSha(ctx, pipe, []string{r.Key(res.Metric)}, LiveField(res), res.WindowStart, res.Revision, payloads[i])
		}
		if top[i] {
			// Top-N per window, for every window (also late revisions
			// of windows the live hash has moved past).
			updateTop.EvalSha(ctx, pipe, []string{r.TopKey(res.Metric, res.WindowStart), r.topShardsKey(res.Metric, res.WindowStart)},
				LiveField(res), res.Revision, metrics.LabelsKey(res.Labels), strconv.FormatFloat(res.Value, 'g', -1, 64), ttl)
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

// LiveResults returns every stored result of metric, one per label set and
// shard, in no particular order. Values that do not decode are skipped
// (only UpdateLiveAll writes these keys).
func (r *RedisLiveRepository) LiveResults(ctx context.Context, metric string) ([]metrics.Result, error) {
	all, err := r.client.HGetAll(ctx, r.Key(metric)).Result()
	if err != nil {
		return nil, fmt.Errorf("read live %s: %w", r.Key(metric), err)
	}
	out := make([]metrics.Result, 0, len(all))
	for _, v := range all {
		var res metrics.Result
		if err := json.Unmarshal([]byte(v), &res); err != nil {
			continue
		}
		out = append(out, res)
	}
	return out, nil
}
