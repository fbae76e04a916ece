package stream_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
)

// sumState adds the integers of the records it sees.
type sumState struct {
	Sum   int64 `json:"sum"`
	Ticks int   `json:"ticks"`
}

type summer struct{}

func (summer) NewState(int32) *sumState { return &sumState{} }

func (summer) Apply(_ context.Context, st *sumState, msg *message.Message, offset int64) ([]stream.Output, error) {
	n, err := strconv.ParseInt(string(msg.Payload), 10, 64)
	if err != nil {
		return nil, messaging.Permanent(err)
	}
	st.Sum += n
	return []stream.Output{{Topic: "out", UUID: "sum-" + strconv.FormatInt(offset, 10), Payload: []byte(strconv.FormatInt(st.Sum, 10))}}, nil
}

func (summer) Tick(_ context.Context, st *sumState, _ time.Time) ([]stream.Output, bool, error) {
	st.Ticks++
	return nil, true, nil
}

// recorder is a message.Publisher that records messages and can fail.
type recorder struct {
	mu   sync.Mutex
	msgs []*message.Message
	fail error
}

func (r *recorder) Publish(_ string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) payloads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p []string
	for _, m := range r.msgs {
		p = append(p, m.UUID+"="+string(m.Payload))
	}
	return p
}

func record(part int32, offset int64, payload string) *message.Message {
	m := message.NewMessage("x", []byte(payload))
	m.SetContext(messaging.ContextWithPosition(context.Background(), part, offset))
	return m
}

func newProc(t *testing.T, store *checkpoint.Store, pub message.Publisher) *stream.Processor[*sumState] {
	t.Helper()
	p, err := stream.New[*sumState](stream.Config{Group: "g", Topic: "in"}, summer{}, store, pub, nil)
	require.NoError(t, err)
	return p
}

func TestReplayHasNoEffect(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &recorder{}
	p := newProc(t, store, pub)
	for off, v := range []string{"1", "2", "3"} {
		require.NoError(t, p.Handle(record(0, int64(off), v)))
	}
	// A new instance (restart) sees the same records again: no effect.
	pub2 := &recorder{}
	p2 := newProc(t, store, pub2)
	for off, v := range []string{"1", "2", "3"} {
		require.NoError(t, p2.Handle(record(0, int64(off), v)))
	}
	require.NoError(t, p2.Handle(record(0, 3, "4")))
	snap, err := store.Load(context.Background(), "g", "in", 0)
	require.NoError(t, err)
	require.EqualValues(t, 3, snap.Offset)
	require.Contains(t, string(snap.Data), `"sum":10`)
	require.Equal(t, []string{"sum-0=1", "sum-1=3", "sum-2=6"}, pub.payloads())
	// The restarted instance re-publishes the last outbox (same id) once on load.
	require.Equal(t, []string{"sum-2=6", "sum-3=10"}, pub2.payloads())
}

func TestPublishFailureRepublishesOutbox(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &recorder{fail: errors.New("broker down")}
	p := newProc(t, store, pub)
	require.Error(t, p.Handle(record(1, 0, "5")))
	pub.fail = nil
	// Redelivery of the same record: already committed, so only the outbox goes out.
	require.NoError(t, p.Handle(record(1, 0, "5")))
	require.Equal(t, []string{"sum-0=5"}, pub.payloads())
}

func TestPoisonLeavesStateUntouched(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	pub := &recorder{}
	p := newProc(t, store, pub)
	require.NoError(t, p.Handle(record(0, 0, "5")))
	err := p.Handle(record(0, 1, "not a number"))
	require.True(t, messaging.IsPermanent(err))
	require.NoError(t, p.Handle(record(0, 2, "1")))
	// The poison record made the processor drop its copy; the reload
	// re-publishes the last outbox under the same id (harmless by design).
	require.Equal(t, []string{"sum-0=5", "sum-0=5", "sum-2=6"}, pub.payloads())
}

func TestStaleInstanceCannotOverwrite(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	a, b := newProc(t, store, &recorder{}), newProc(t, store, &recorder{})
	require.NoError(t, a.Handle(record(0, 0, "1")))
	require.NoError(t, b.Handle(record(0, 1, "10"))) // b took the partition over
	// a still holds version 1 in memory: its commit must fail, then succeed
	// after reloading, on top of b's state.
	err := a.Handle(record(0, 2, "100"))
	require.ErrorIs(t, err, checkpoint.ErrConflict)
	require.NoError(t, a.Handle(record(0, 2, "100")))
	snap, err := store.Load(context.Background(), "g", "in", 0)
	require.NoError(t, err)
	require.Contains(t, string(snap.Data), `"sum":111`)
	require.EqualValues(t, 2, snap.Offset)
}

func TestTickCommitsWithoutMovingOffset(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	p := newProc(t, store, &recorder{})
	require.NoError(t, p.Handle(record(2, 7, "1")))
	p.TickAll(context.Background(), time.Now())
	snap, err := store.Load(context.Background(), "g", "in", 2)
	require.NoError(t, err)
	require.EqualValues(t, 7, snap.Offset)
	require.EqualValues(t, 2, snap.Version)
	require.Contains(t, string(snap.Data), `"ticks":1`)
}

// barrierSummer is a summer whose Tick waits until the ticks of n
// partitions have all begun (or ten seconds have passed): it completes only
// if TickAll runs the partitions' ticks concurrently.
type barrierSummer struct {
	summer
	arrive  chan struct{}
	n       int
	timeout *int32
	mu      *sync.Mutex
}

func (b barrierSummer) Tick(ctx context.Context, st *sumState, now time.Time) ([]stream.Output, bool, error) {
	b.arrive <- struct{}{}
	deadline := time.After(10 * time.Second)
	for len(b.arrive) < b.n {
		select {
		case <-deadline:
			b.mu.Lock()
			*b.timeout++
			b.mu.Unlock()
			return b.summer.Tick(ctx, st, now)
		case <-time.After(time.Millisecond):
		}
	}
	return b.summer.Tick(ctx, st, now)
}

func TestTickAllTicksPartitionsConcurrently(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	const parts = 4
	var timeouts int32
	op := barrierSummer{arrive: make(chan struct{}, parts), n: parts, timeout: &timeouts, mu: &sync.Mutex{}}
	p, err := stream.New[*sumState](stream.Config{Group: "g", Topic: "in"}, op, store, &recorder{}, nil)
	require.NoError(t, err)
	for part := range int32(parts) {
		require.NoError(t, p.Handle(record(part, 0, "1")))
	}
	p.TickAll(context.Background(), time.Now())
	require.Zero(t, timeouts, "a partition's tick waited for another's: ticks ran one after the other")
	for part := range int32(parts) {
		snap, err := store.Load(context.Background(), "g", "in", part)
		require.NoError(t, err)
		require.Contains(t, string(snap.Data), `"ticks":1`, "partition %d ticked once", part)
	}
}

// stuckTicker is a summer whose ticks of partition 0 wait until release
// is closed; it counts the ticks begun per partition.
type stuckTicker struct {
	summer
	parts   *sync.Map // *sumState -> partition
	release chan struct{}
	begun   *[2]atomic.Int32
}

func (s stuckTicker) NewState(part int32) *sumState {
	st := &sumState{}
	s.parts.Store(st, part)
	return st
}

func (s stuckTicker) Tick(ctx context.Context, st *sumState, now time.Time) ([]stream.Output, bool, error) {
	part, _ := s.parts.Load(st)
	s.begun[part.(int32)].Add(1)
	if part.(int32) == 0 {
		<-s.release
	}
	return s.summer.Tick(ctx, st, now)
}

// TestRunTicksPartitionsIndependently: while one partition's tick is stuck,
// Run goes on ticking the others every interval and skips the stuck one
// instead of starting a second tick of it; Run returns after its context
// ends, once the stuck tick is done.
func TestRunTicksPartitionsIndependently(t *testing.T) {
	t.Parallel()
	store := checkpoint.New(redistest.Start(t), "t:")
	op := stuckTicker{parts: &sync.Map{}, release: make(chan struct{}), begun: &[2]atomic.Int32{}}
	p, err := stream.New[*sumState](stream.Config{Group: "g", Topic: "in", TickInterval: 5 * time.Millisecond}, op, store, &recorder{}, nil)
	require.NoError(t, err)
	require.NoError(t, p.Handle(record(0, 0, "1")))
	require.NoError(t, p.Handle(record(1, 0, "1")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	require.Eventually(t, func() bool { return op.begun[1].Load() >= 10 }, 10*time.Second, 5*time.Millisecond,
		"partition 1 kept ticking while partition 0 was stuck")
	require.EqualValues(t, 1, op.begun[0].Load(), "no second tick of the stuck partition")
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned with a tick under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(op.release)
	require.NoError(t, <-done)
}
