package stream_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
)

// kvState counts records per key ("k=..."); it checkpoints only the keys a
// record touched and deletes the key "drop".
type kvState struct {
	counts  map[string]int64
	touched map[string]bool
	deleted []string
}

func (s *kvState) TakeDelta() (map[string][]byte, []string, error) {
	set := map[string][]byte{}
	for k := range s.touched {
		set[k] = []byte(strconv.FormatInt(s.counts[k], 10))
	}
	del := s.deleted
	s.touched, s.deleted = map[string]bool{}, nil
	return set, del, nil
}

func (s *kvState) RestoreEntries(entries map[string][]byte) error {
	for k, v := range entries {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return err
		}
		s.counts[k] = n
	}
	return nil
}

var _ stream.DeltaState = (*kvState)(nil)

type kvOp struct{}

func (kvOp) NewState(int32) *kvState {
	return &kvState{counts: map[string]int64{}, touched: map[string]bool{}}
}

func (kvOp) Apply(_ context.Context, st *kvState, msg *message.Message, offset int64) ([]stream.Output, error) {
	k := string(msg.Payload)
	if k == "drop" {
		for key := range st.counts {
			delete(st.counts, key)
			st.deleted = append(st.deleted, key)
		}
		return nil, nil
	}
	st.counts[k]++
	st.touched[k] = true
	return []stream.Output{{Topic: "out", UUID: k + "-" + strconv.FormatInt(offset, 10), Payload: []byte(strconv.FormatInt(st.counts[k], 10))}}, nil
}

func (kvOp) Tick(context.Context, *kvState, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}

func newKV(t *testing.T, rdb *redis.Client, pub message.Publisher) *stream.Processor[*kvState] {
	t.Helper()
	p, err := stream.New[*kvState](stream.Config{Group: "g", Topic: "in"}, kvOp{}, checkpoint.New(rdb, "t:"), pub, nil)
	require.NoError(t, err)
	p.UseDeltaStore(stream.NewDeltaStore(rdb, "t:"))
	return p
}

func TestDeltaCheckpointWritesOnlyTouchedEntries(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	ctx := context.Background()
	pub := &recorder{}
	p := newKV(t, rdb, pub)
	for off, k := range []string{"a", "b", "a"} {
		require.NoError(t, p.Handle(record(0, int64(off), k)))
	}
	entries, err := rdb.HGetAll(ctx, "t:ckpt:g:in:0:entries").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "2", "b": "1"}, entries)
	// Version and offset live where checkpoint.Store reads them.
	snap, err := checkpoint.New(rdb, "t:").Load(ctx, "g", "in", 0)
	require.NoError(t, err)
	require.EqualValues(t, 2, snap.Offset)
	require.EqualValues(t, 3, snap.Version)

	// Restart: the state is restored from the entries, replays are skipped,
	// the last outbox is re-published once.
	pub2 := &recorder{}
	p2 := newKV(t, rdb, pub2)
	require.NoError(t, p2.Handle(record(0, 2, "a")))
	require.NoError(t, p2.Handle(record(0, 3, "a")))
	require.Equal(t, []string{"a-2=2", "a-3=3"}, pub2.payloads())

	require.NoError(t, p2.Handle(record(0, 4, "drop")))
	n, err := rdb.HLen(ctx, "t:ckpt:g:in:0:entries").Result()
	require.NoError(t, err)
	require.Zero(t, n, "deleted entries are removed")
}

func TestDeltaCheckpointFencesStaleInstance(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	a, b := newKV(t, rdb, &recorder{}), newKV(t, rdb, &recorder{})
	require.NoError(t, a.Handle(record(0, 0, "x")))
	require.NoError(t, b.Handle(record(0, 1, "x"))) // b took the partition over
	err := a.Handle(record(0, 2, "x"))
	require.ErrorIs(t, err, checkpoint.ErrConflict)
	require.NoError(t, a.Handle(record(0, 2, "x")))
	v, err := rdb.HGet(context.Background(), "t:ckpt:g:in:0:entries", "x").Result()
	require.NoError(t, err)
	require.Equal(t, "3", v, "a reloaded b's state before applying")
}

func TestDeltaCheckpointManyEntriesInOneCommit(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	ds := stream.NewDeltaStore(rdb, "t:")
	ctx := context.Background()
	set := map[string][]byte{}
	for i := range 5000 { // beyond Lua's unpack limit in one call
		set["k"+strconv.Itoa(i)] = []byte("v")
	}
	v, err := ds.Commit(ctx, "g", "in", 0, 0, 1, nil, set, nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, v)
	del := make([]string, 0, 4000)
	for i := range 4000 {
		del = append(del, "k"+strconv.Itoa(i))
	}
	_, err = ds.Commit(ctx, "g", "in", 0, 1, 2, nil, nil, del)
	require.NoError(t, err)
	snap, err := ds.Load(ctx, "g", "in", 0)
	require.NoError(t, err)
	require.Len(t, snap.Entries, 1000)
	require.EqualValues(t, 2, snap.Offset)
	_, err = ds.Commit(ctx, "g", "in", 0, 1, 3, nil, nil, nil)
	require.ErrorIs(t, err, checkpoint.ErrConflict)
}

// upgState is kvState with exported counts (so a snapshot checkpoint holds
// them) and SnapshotRestorer.
type upgState struct {
	Counts  map[string]int64 `json:"counts"`
	touched map[string]bool
	all     bool
}

func (s *upgState) TakeDelta() (map[string][]byte, []string, error) {
	set := map[string][]byte{}
	for k, n := range s.Counts {
		if s.all || s.touched[k] {
			set[k] = []byte(strconv.FormatInt(n, 10))
		}
	}
	s.touched, s.all = map[string]bool{}, false
	return set, nil, nil
}

func (s *upgState) RestoreEntries(entries map[string][]byte) error {
	for k, v := range entries {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return err
		}
		s.Counts[k] = n
	}
	return nil
}

func (s *upgState) RestoreSnapshot(state []byte) error {
	s.all = true
	return json.Unmarshal(state, s)
}

var _ stream.SnapshotRestorer = (*upgState)(nil)

type upgOp struct{}

func (upgOp) NewState(int32) *upgState {
	return &upgState{Counts: map[string]int64{}, touched: map[string]bool{}}
}

func (upgOp) Apply(_ context.Context, st *upgState, msg *message.Message, offset int64) ([]stream.Output, error) {
	k := string(msg.Payload)
	st.Counts[k]++
	st.touched[k] = true
	return []stream.Output{{Topic: "out", UUID: k + "-" + strconv.FormatInt(offset, 10), Payload: []byte(strconv.FormatInt(st.Counts[k], 10))}}, nil
}

func (upgOp) Tick(context.Context, *upgState, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}

func TestDeltaCheckpointUpgradesSnapshotCheckpoint(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	ctx := context.Background()
	newUpg := func(delta bool, pub message.Publisher) *stream.Processor[*upgState] {
		p, err := stream.New[*upgState](stream.Config{Group: "g", Topic: "in"}, upgOp{}, checkpoint.New(rdb, "t:"), pub, nil)
		require.NoError(t, err)
		if delta {
			p.UseDeltaStore(stream.NewDeltaStore(rdb, "t:"))
		}
		return p
	}
	old := newUpg(false, &recorder{})
	for off, k := range []string{"a", "b", "a"} {
		require.NoError(t, old.Handle(record(0, int64(off), k)))
	}

	// The upgraded build restores the snapshot, re-publishes its outbox,
	// and its first commit writes the whole state as entries.
	pub := &recorder{}
	upg := newUpg(true, pub)
	require.NoError(t, upg.Handle(record(0, 2, "a")), "a replay")
	require.NoError(t, upg.Handle(record(0, 3, "a")))
	require.Equal(t, []string{"a-2=2", "a-3=3"}, pub.payloads())
	entries, err := rdb.HGetAll(ctx, "t:ckpt:g:in:0:entries").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "3", "b": "1"}, entries)

	// From then on the entries are the state.
	pub2 := &recorder{}
	again := newUpg(true, pub2)
	require.NoError(t, again.Handle(record(0, 4, "b")))
	require.Equal(t, []string{"a-3=3", "b-4=2"}, pub2.payloads())
}
