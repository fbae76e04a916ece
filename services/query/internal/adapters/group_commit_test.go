package adapters

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writes records the writes of a groupCommit.
type writes struct {
	mu     sync.Mutex
	blocks [][]int
	err    error
	delay  time.Duration
}

func (w *writes) write(_ context.Context, rows [][]int) error {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	var block []int
	for _, r := range rows {
		block = append(block, r...)
	}
	w.blocks = append(w.blocks, block)
	return w.err
}

func (w *writes) snapshot() [][]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.blocks)
}

// writeConcurrently makes n callers write {i*10, i*10+1} at once and
// returns their errors.
func writeConcurrently(ctx context.Context, g *groupCommit[int], n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = g.Write(ctx, []int{i * 10, i*10 + 1}) })
	}
	wg.Wait()
	return errs
}

func TestGroupCommitMergesConcurrentCallersIntoOneWrite(t *testing.T) {
	t.Parallel()
	w := &writes{}
	g := newGroupCommit(GroupCommitConfig{MaxRows: 1000, Idle: 200 * time.Millisecond, MaxDelay: time.Minute}, w.write)
	for _, err := range writeConcurrently(context.Background(), g, 8) {
		require.NoError(t, err)
	}
	blocks := w.snapshot()
	require.Len(t, blocks, 1, "one write for 8 concurrent callers")
	got := slices.Sorted(slices.Values(blocks[0]))
	want := []int{0, 1, 10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71}
	require.Equal(t, want, got, "every caller's rows once")
}

func TestGroupCommitNeverSplitsACallerAndBoundsTheBlock(t *testing.T) {
	t.Parallel()
	w := &writes{}
	g := newGroupCommit(GroupCommitConfig{MaxRows: 5, Idle: 100 * time.Millisecond, MaxDelay: time.Minute}, w.write)
	for _, err := range writeConcurrently(context.Background(), g, 6) {
		require.NoError(t, err)
	}
	total := 0
	for _, b := range w.snapshot() {
		require.LessOrEqual(t, len(b), 5)
		require.Zero(t, len(b)%2, "callers' pairs are not split: %v", b)
		total += len(b)
	}
	require.Equal(t, 12, total)
	require.NoError(t, g.Write(context.Background(), []int{1, 2, 3, 4, 5, 6, 7}))
	blocks := w.snapshot()
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, blocks[len(blocks)-1], "a call above MaxRows is written alone and whole")
}

// TestGroupCommitCountsACallsParts: a call's parts (one per record) count
// together against MaxRows, are written in the same write in their order,
// and are not split between writes.
func TestGroupCommitCountsACallsParts(t *testing.T) {
	t.Parallel()
	w := &writes{}
	g := newGroupCommit(GroupCommitConfig{MaxRows: 5, Idle: 50 * time.Millisecond, MaxDelay: time.Minute}, w.write)
	require.NoError(t, g.Write(context.Background(), []int{1, 2}, nil, []int{3}))
	require.NoError(t, g.Write(context.Background(), []int{4, 5, 6}, []int{7, 8, 9}))
	require.NoError(t, g.Write(context.Background()))
	require.Equal(t, [][]int{{1, 2, 3}, {4, 5, 6, 7, 8, 9}}, w.snapshot(), "3 rows in 3 parts grouped; 6 rows in 2 parts over MaxRows written alone and whole")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() { errs[i] = g.Write(context.Background(), []int{10 * i}, []int{10*i + 1}) })
	}
	wg.Wait()
	total := 0
	for _, b := range w.snapshot()[2:] {
		require.LessOrEqual(t, len(b), 5, "the parts of the callers count against MaxRows: %v", b)
		require.Zero(t, len(b)%2, "a caller's parts are not split: %v", b)
		total += len(b)
	}
	require.Equal(t, 6, total)
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func TestGroupCommitHandsTheWriteErrorToEveryMember(t *testing.T) {
	t.Parallel()
	boom := errors.New("clickhouse down")
	w := &writes{err: boom}
	g := newGroupCommit(GroupCommitConfig{MaxRows: 1000, Idle: 100 * time.Millisecond, MaxDelay: time.Minute}, w.write)
	for _, err := range writeConcurrently(context.Background(), g, 4) {
		require.ErrorIs(t, err, boom)
	}
}

func TestGroupCommitWritesWhenTheLeadersContextEnds(t *testing.T) {
	t.Parallel()
	w := &writes{delay: 50 * time.Millisecond}
	g := newGroupCommit(GroupCommitConfig{MaxRows: 1000, Idle: time.Second, MaxDelay: time.Minute}, w.write)
	ctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() { leaderDone <- g.Write(ctx, []int{1}) }()
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.open != nil }, time.Second, time.Millisecond)
	memberDone := make(chan error, 1)
	go func() { memberDone <- g.Write(context.Background(), []int{2}) }()
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.open != nil && g.open.n == 2 }, time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-leaderDone, "the leader stops waiting and writes")
	require.NoError(t, <-memberDone, "the member's rows are written although the leader's context ended")
	require.Equal(t, [][]int{{1, 2}}, w.snapshot())
}

func TestGroupCommitDisabled(t *testing.T) {
	t.Parallel()
	w := &writes{}
	g := newGroupCommit(GroupCommitConfig{MaxRows: 1000}, w.write)
	for _, err := range writeConcurrently(context.Background(), g, 3) {
		require.NoError(t, err)
	}
	require.Len(t, w.snapshot(), 3)
}
