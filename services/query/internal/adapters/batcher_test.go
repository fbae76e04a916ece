package adapters_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
)

// recorder is a FlushFunc that records batches and returns err.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	err     error
}

func (r *recorder) flush(_ context.Context, items []int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, append([]int(nil), items...))
	return r.err
}

func (r *recorder) snapshot() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int(nil), r.batches...)
}

// start runs b until the test ends and waits for Run to return.
func start(t *testing.T, b *adapters.Batcher[int]) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return cancel
}

func newBatcher(t *testing.T, cfg adapters.BatcherConfig, r *recorder) *adapters.Batcher[int] {
	t.Helper()
	b, err := adapters.NewBatcher(cfg, r.flush)
	require.NoError(t, err)
	return b
}

func TestBatcherGroupsConcurrentWritersIntoOneFlush(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 10, MaxDelay: time.Minute}, r)
	start(t, b)

	errs := make(chan error, 10)
	for i := range 10 {
		go func() { errs <- b.Write(context.Background(), i) }()
	}
	for range 10 {
		require.NoError(t, <-errs)
	}
	batches := r.snapshot()
	require.Len(t, batches, 1, "MaxRows reached: one flush for all ten writers")
	require.ElementsMatch(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, batches[0])
}

func TestBatcherFlushesAfterMaxDelay(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 100, MaxDelay: 50 * time.Millisecond}, r)
	start(t, b)

	began := time.Now()
	require.NoError(t, b.Write(context.Background(), 1))
	require.GreaterOrEqual(t, time.Since(began), 50*time.Millisecond)
	require.Equal(t, [][]int{{1}}, r.snapshot())
}

func TestBatcherFlushesWhenIdle(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 100, MaxDelay: time.Hour, Idle: 5 * time.Millisecond}, r)
	start(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.Write(ctx, 1), "idle flush, long before MaxDelay")
	require.NoError(t, b.Write(ctx, 2))
	require.Equal(t, [][]int{{1}, {2}}, r.snapshot())
}

func TestBatcherReturnsFlushErrorToEveryWriter(t *testing.T) {
	t.Parallel()
	boom := errors.New("clickhouse down")
	r := &recorder{err: boom}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 3, MaxDelay: time.Minute}, r)
	start(t, b)

	errs := make(chan error, 3)
	for i := range 3 {
		go func() { errs <- b.Write(context.Background(), i) }()
	}
	for range 3 {
		require.ErrorIs(t, <-errs, boom)
	}
}

func TestBatcherFlushesPendingOnShutdown(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 100, MaxDelay: time.Hour}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	written := make(chan error, 1)
	go func() { written <- b.Write(context.Background(), 7) }()
	time.Sleep(50 * time.Millisecond) // let Run take the item
	cancel()
	require.NoError(t, <-written)
	require.NoError(t, <-done)
	require.Equal(t, [][]int{{7}}, r.snapshot())

	require.ErrorIs(t, b.Write(context.Background(), 8), adapters.ErrBatcherStopped)
	require.Error(t, b.Run(context.Background()), "Run twice")
}

func TestBatcherWriteHonoursContext(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 100, MaxDelay: time.Hour}, r)
	// Not running: Write can only end through its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Write(ctx, 1), context.DeadlineExceeded)
}

func TestBatcherConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := adapters.NewBatcher(adapters.BatcherConfig{}, (&recorder{}).flush)
	require.ErrorContains(t, err, "max rows")
	require.ErrorContains(t, err, "max delay")
}

func TestBatcherWriteAllFlushesTogether(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 100, MaxDelay: time.Hour, Idle: 50 * time.Millisecond}, r)
	start(t, b)

	require.NoError(t, b.WriteAll(context.Background(), []int{1, 2, 3}))
	require.Equal(t, [][]int{{1, 2, 3}}, r.snapshot(), "one record's results in one insert")
}

// blockingFlush is a FlushFunc that records batches and waits for release
// before it returns; started gets a value when a flush begins.
type blockingFlush struct {
	recorder
	started chan struct{}
	release chan struct{}
}

func (f *blockingFlush) flush(ctx context.Context, items []int) error {
	f.started <- struct{}{}
	<-f.release
	return f.recorder.flush(ctx, items)
}

func TestBatcherTakesItemsWhileAFlushRuns(t *testing.T) {
	t.Parallel()
	f := &blockingFlush{started: make(chan struct{}, 10), release: make(chan struct{})}
	b, err := adapters.NewBatcher(adapters.BatcherConfig{MaxRows: 2, MaxDelay: time.Hour, Idle: time.Millisecond}, f.flush)
	require.NoError(t, err)
	start(t, b)

	first, err := b.Enqueue(context.Background(), []int{1})
	require.NoError(t, err)
	<-f.started // the idle flush of {1} runs and blocks

	// The insert in progress must not hold the next caller up: this is
	// the live view's path in the windows projector.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	second, err := b.Enqueue(ctx, []int{2})
	require.NoError(t, err, "Enqueue waited for the flush in progress")
	third, err := b.Enqueue(ctx, []int{3})
	require.NoError(t, err)

	close(f.release)
	require.NoError(t, first(ctx))
	require.NoError(t, second(ctx))
	require.NoError(t, third(ctx))
	require.Equal(t, [][]int{{1}, {2, 3}}, f.snapshot(), "what arrived during a flush goes into the next one")
}

func TestBatcherPushesBackAtMaxPending(t *testing.T) {
	t.Parallel()
	f := &blockingFlush{started: make(chan struct{}, 10), release: make(chan struct{})}
	b, err := adapters.NewBatcher(adapters.BatcherConfig{MaxRows: 1, MaxDelay: time.Hour, MaxPending: 2}, f.flush)
	require.NoError(t, err)
	start(t, b)

	_, err = b.Enqueue(context.Background(), []int{1})
	require.NoError(t, err)
	<-f.started
	_, err = b.Enqueue(context.Background(), []int{2, 3})
	require.NoError(t, err, "two items may wait besides the flush")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.Enqueue(ctx, []int{4})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a third waiting item is refused until a flush frees room")

	close(f.release)
	require.NoError(t, b.Write(context.Background(), 5))
	require.Equal(t, [][]int{{1}, {2}, {3}, {5}}, f.snapshot())
}

func TestBatcherNeverFlushesMoreThanMaxRows(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := newBatcher(t, adapters.BatcherConfig{MaxRows: 2, MaxDelay: time.Hour, Idle: 20 * time.Millisecond}, r)
	start(t, b)

	require.NoError(t, b.WriteAll(context.Background(), []int{1, 2, 3, 4, 5}))
	require.Equal(t, [][]int{{1, 2}, {3, 4}, {5}}, r.snapshot())
}
