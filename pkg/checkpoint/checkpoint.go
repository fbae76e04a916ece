// Package checkpoint stores the state of a stateful consumer's Kafka
// partition together with the offset of the last input record applied to
// it, in Redis, with an atomic compare-and-set on a version number.
//
// This is how Streamwatch keeps the exactly-once invariants of
// ARCHITECTURE.md: a record's effect on state and its offset become durable
// in one step; a record at or below the stored offset has no effect; and two
// instances that both believe they own a partition (during a rebalance, or a
// paused "zombie") cannot overwrite each other, because the loser's
// compare-and-set fails and it must reload.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// ErrConflict is returned by Commit when the stored version is not the one
// the caller loaded: another instance committed in between. The caller must
// reload and re-apply.
var ErrConflict = errors.New("checkpoint version conflict")

// Snapshot is the durable state of one partition.
type Snapshot struct {
	// Version counts commits; 0 means nothing was ever committed.
	Version int64
	// Offset is the Kafka offset of the last applied input record, -1 if none.
	Offset int64
	// Data is the operator's encoded state; nil if none.
	Data []byte
}

// Store reads and writes partition snapshots in Redis under
// <prefix>ckpt:<group>:<topic>:<partition> (a hash with fields v, o, d).
// Safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Store on rdb; prefix is prepended to every key (e.g. "sw:").
func New(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

func (s *Store) key(group, topic string, partition int32) string {
	return fmt.Sprintf("%sckpt:%s:%s:%d", s.prefix, group, topic, partition)
}

// Load returns the partition's snapshot; a partition never committed gives
// Snapshot{Version: 0, Offset: -1}. Errors are Redis errors (transient).
func (s *Store) Load(ctx context.Context, group, topic string, partition int32) (Snapshot, error) {
	vals, err := s.rdb.HMGet(ctx, s.key(group, topic, partition), "v", "o", "d").Result()
	if err != nil {
		return Snapshot{}, fmt.Errorf("load checkpoint %s/%s/%d: %w", group, topic, partition, err)
	}
	snap := Snapshot{Offset: -1}
	if vals[0] == nil {
		return snap, nil
	}
	if snap.Version, err = strconv.ParseInt(vals[0].(string), 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("checkpoint %s/%s/%d: bad version: %w", group, topic, partition, err)
	}
	if snap.Offset, err = strconv.ParseInt(vals[1].(string), 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("checkpoint %s/%s/%d: bad offset: %w", group, topic, partition, err)
	}
	if d, ok := vals[2].(string); ok {
		snap.Data = []byte(d)
	}
	return snap, nil
}

// commitScript sets v, o and d only when the stored version equals ARGV[1]
// (absent counts as 0) and returns the new version, or -1 on conflict.
var commitScript = redis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'v', v + 1, 'o', ARGV[2], 'd', ARGV[3])
return v + 1
`)

// Commit atomically replaces the snapshot with (offset, data) if the stored
// version is still expectVersion, and returns the new version
// (expectVersion+1). It returns ErrConflict when another commit came in
// between, and a wrapped Redis error otherwise (transient). The offset may
// stay the same as before (a commit driven by processing time, not input).
func (s *Store) Commit(ctx context.Context, group, topic string, partition int32, expectVersion, offset int64, data []byte) (int64, error) {
	v, err := commitScript.Run(ctx, s.rdb, []string{s.key(group, topic, partition)}, expectVersion, offset, data).Int64()
	if err != nil {
		return 0, fmt.Errorf("commit checkpoint %s/%s/%d: %w", group, topic, partition, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("%w: %s/%s/%d expected version %d", ErrConflict, group, topic, partition, expectVersion)
	}
	return v, nil
}
