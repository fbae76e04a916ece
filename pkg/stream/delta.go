package stream

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
)

// DeltaState is an optional interface of an operator's state S. When a
// Processor has a DeltaStore (UseDeltaStore) and the state implements
// DeltaState, a commit writes only the entries the record changed instead of
// a snapshot of the whole state: O(change) per record instead of O(state).
// Version, offset and outbox keep the semantics of a snapshot checkpoint
// (the same compare-and-set, in the same Lua script as the entries).
type DeltaState interface {
	// TakeDelta returns the entries changed since the last TakeDelta or
	// RestoreEntries: set maps entry names to their new values, del lists
	// entries to delete. The state then forgets those changes. An error is
	// permanent for the record being applied. The processor is done with
	// set, del and the entries' bytes before it calls TakeDelta again, so
	// a state may reuse their memory in the next call.
	TakeDelta() (set map[string][]byte, del []string, err error)
	// RestoreEntries rebuilds the state from all entries of its checkpoint.
	// It is called on a state fresh from Operator.NewState.
	RestoreEntries(entries map[string][]byte) error
}

// SnapshotRestorer is an optional interface of a DeltaState. A partition
// whose checkpoint is still a snapshot (written before the operator's state
// implemented DeltaState, or before the processor used a DeltaStore) has no
// entries; the processor then hands the snapshot's JSON state to
// RestoreSnapshot instead of calling RestoreEntries, and the state must
// return all of itself from its next TakeDelta, so the upgrade keeps the
// state. States without it start such a partition empty.
type SnapshotRestorer interface {
	// RestoreSnapshot rebuilds the state from the JSON it had in a snapshot
	// checkpoint. It is called on a state fresh from Operator.NewState.
	RestoreSnapshot(state []byte) error
}

// DeltaStore keeps incremental partition state in Redis: the checkpoint
// hash <prefix>ckpt:<group>:<topic>:<partition> (fields v, o, d as
// checkpoint.Store writes them; d holds the outbox) plus the entry hash
// <prefix>ckpt:<group>:<topic>:<partition>:entries. Safe for concurrent use.
type DeltaStore struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewDeltaStore returns a DeltaStore on rdb; prefix is prepended to every key
// and must equal the checkpoint.Store's prefix.
func NewDeltaStore(rdb redis.UniversalClient, prefix string) *DeltaStore {
	return &DeltaStore{rdb: rdb, prefix: prefix}
}

func (s *DeltaStore) keys(group, topic string, partition int32) (string, string) {
	k := fmt.Sprintf("%sckpt:%s:%s:%d", s.prefix, group, topic, partition)
	return k, k + ":entries"
}

// DeltaSnapshot is what LoadDelta returns.
type DeltaSnapshot struct {
	checkpoint.Snapshot
	// Entries are the state's entries.
	Entries map[string][]byte
}

// Load reads version, offset, outbox data and every entry in one MULTI, so
// they are consistent with each other. A partition never committed gives
// Version 0 and Offset -1. Errors are Redis errors (transient).
func (s *DeltaStore) Load(ctx context.Context, group, topic string, partition int32) (DeltaSnapshot, error) {
	ck, ek := s.keys(group, topic, partition)
	var hm *redis.SliceCmd
	var all *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		hm = p.HMGet(ctx, ck, "v", "o", "d")
		all = p.HGetAll(ctx, ek)
		return nil
	})
	if err != nil {
		return DeltaSnapshot{}, fmt.Errorf("load delta checkpoint %s/%s/%d: %w", group, topic, partition, err)
	}
	snap := DeltaSnapshot{Snapshot: checkpoint.Snapshot{Offset: -1}, Entries: map[string][]byte{}}
	vals := hm.Val()
	if vals[0] == nil {
		return snap, nil
	}
	vs, _ := vals[0].(string)
	os, _ := vals[1].(string)
	if snap.Version, err = strconv.ParseInt(vs, 10, 64); err != nil {
		return DeltaSnapshot{}, fmt.Errorf("checkpoint %s/%s/%d: bad version: %w", group, topic, partition, err)
	}
	if snap.Offset, err = strconv.ParseInt(os, 10, 64); err != nil {
		return DeltaSnapshot{}, fmt.Errorf("checkpoint %s/%s/%d: bad offset: %w", group, topic, partition, err)
	}
	if d, ok := vals[2].(string); ok {
		snap.Data = []byte(d)
	}
	for k, v := range all.Val() {
		snap.Entries[k] = []byte(v)
	}
	return snap, nil
}

// deltaScript: KEYS[1] checkpoint hash, KEYS[2] entry hash; ARGV[1]
// expected version, ARGV[2] offset, ARGV[3] outbox data, ARGV[4] number of
// set pairs n, then n name/value pairs, then the names to delete. It
// applies everything only when the stored version equals ARGV[1] (absent
// counts as 0) and returns the new version, or -1 on conflict. HSET and
// HDEL go in chunks to stay below Lua's unpack limit.
var deltaScript = redis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'v', v + 1, 'o', ARGV[2], 'd', ARGV[3])
local n = tonumber(ARGV[4])
local i = 5
local last = 4 + 2 * n
while i <= last do
  local j = math.min(i + 999, last)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, j))
  i = j + 1
end
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, j))
  i = j + 1
end
return v + 1
`)

// Commit atomically applies set and del to the partition's entries and
// stores offset and data (the outbox) if the stored version is still
// expectVersion; it returns the new version. It returns an error wrapping
// checkpoint.ErrConflict when another commit came in between, and a wrapped
// Redis error otherwise (transient).
func (s *DeltaStore) Commit(ctx context.Context, group, topic string, partition int32, expectVersion, offset int64, data []byte, set map[string][]byte, del []string) (int64, error) {
	ck, ek := s.keys(group, topic, partition)
	args := make([]any, 0, 4+2*len(set)+len(del))
	args = append(args, expectVersion, offset, data, len(set))
	for k, v := range set {
		args = append(args, k, v)
	}
	for _, k := range del {
		args = append(args, k)
	}
	v, err := deltaScript.Run(ctx, s.rdb, []string{ck, ek}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("commit delta checkpoint %s/%s/%d: %w", group, topic, partition, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("%w: %s/%s/%d expected version %d", checkpoint.ErrConflict, group, topic, partition, expectVersion)
	}
	return v, nil
}
