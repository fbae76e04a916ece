package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
)

var (
	_ command.LiveUpdater = (*RedisLiveRepository)(nil)
	_ query.LiveReader    = (*RedisLiveRepository)(nil)
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

// UpdateLive stores res unless the stored result of its label set and
// shard is at least as new (see command.LiveUpdater), atomically in one
// Lua script call. It reports whether res was stored.
func (r *RedisLiveRepository) UpdateLive(ctx context.Context, res metrics.Result) (bool, error) {
	payload, err := json.Marshal(res)
	if err != nil {
		return false, fmt.Errorf("encode live result: %w", err)
	}
	n, err := updateLatest.Run(ctx, r.client, []string{r.Key(res.Metric)},
		LiveField(res), res.WindowStart, res.Revision, payload).Int()
	if err != nil {
		return false, fmt.Errorf("update live %s: %w", r.Key(res.Metric), err)
	}
	return n == 1, nil
}

// LiveResults returns every stored result of metric, one per label set and
// shard, in no particular order. Values that do not decode are skipped
// (only UpdateLive writes these keys).
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
