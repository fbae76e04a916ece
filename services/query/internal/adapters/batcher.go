package adapters

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
)

var _ command.WindowQueue = (*Batcher[metrics.Result])(nil)

// ErrBatcherStopped is returned by Write once Run has returned.
var ErrBatcherStopped = errors.New("batcher stopped")

// BatcherConfig tunes a Batcher.
type BatcherConfig struct {
	// MaxRows flushes a batch when it holds this many items (>= 1); no
	// flush holds more.
	MaxRows int
	// MaxDelay flushes a batch this long after its first item (> 0).
	MaxDelay time.Duration
	// Idle flushes a batch when no item arrived for this long; 0 disables
	// the idle flush.
	Idle time.Duration
	// FlushTimeout bounds one flush; 0 means 30 s.
	FlushTimeout time.Duration
	// MaxPending is the most items the batcher holds besides the flush in
	// progress; Enqueue waits while it holds more (backpressure). 0 means
	// DefaultPendingFactor × MaxRows.
	MaxPending int

	_ struct{}
}

// Validate reports every invalid setting.
func (c BatcherConfig) Validate() error {
	var errs []error
	if c.MaxRows < 1 {
		errs = append(errs, fmt.Errorf("max rows %d < 1", c.MaxRows))
	}
	if c.MaxDelay <= 0 {
		errs = append(errs, errors.New("max delay must be positive"))
	}
	if c.Idle < 0 || c.FlushTimeout < 0 || c.MaxPending < 0 {
		errs = append(errs, errors.New("idle, flush timeout and max pending must not be negative"))
	}
	return errors.Join(errs...)
}

// DefaultPendingFactor × MaxRows is the default MaxPending: room for a
// burst of several flushes' worth while an insert is slow. Each minute
// boundary the aggregator emits the final results of every 1-minute window
// at once (~78,000 results at 20k events/s in the benchmark); with room
// for 2 × 20,000 the windows projector's Enqueue, and with it the live
// view, waited for two or three ClickHouse inserts of a loaded server:
// 3–7 s live-latency spikes once a minute in the 10-minute run of
// 2026-11-22 07:40. 8 × 20,000 results hold ~80 MB.
const DefaultPendingFactor = 8

// FlushFunc writes items durably, all or none.
type FlushFunc[T any] func(ctx context.Context, items []T) error

// Batcher groups items written by concurrent callers into one flush (group
// commit) and returns to each caller the outcome of the flush that held its
// items, so a caller can ack its input only once its items are durable.
//
// A batch is flushed as soon as no item arrived for Idle, after MaxDelay
// at the latest, or at MaxRows. Flushes run one at a time, in a goroutine
// of their own: while one runs (a ClickHouse insert may take seconds when
// the server is merging) the batcher keeps taking items, up to MaxPending,
// and flushes them together when it is done. So Enqueue returns at once
// unless MaxPending items are already waiting: a pipelined caller (the
// windows projector writes the live view, then enqueues the history rows)
// does not stall behind the insert. Before, the flush ran in Run's loop and
// every Enqueue during it waited for it; behind a 7 s insert the live view
// stopped for 7 s (benchmark of 2026-11-22).
//
// Write, WriteAll and Enqueue are safe for concurrent use; Run must be
// running for them to return.
type Batcher[T any] struct {
	cfg     BatcherConfig
	flush   FlushFunc[T]
	in      chan request[T]
	stopped chan struct{}
	started atomic.Bool
}

// request is up to MaxRows items of one Enqueue call.
type request[T any] struct {
	items []T
	at    time.Time  // when Run took it
	done  chan error // buffered: Run never blocks on a caller that left
	// span is the caller's span context: the flush links to it.
	span trace.SpanContext
}

// NewBatcher returns a Batcher that flushes with flush. It fails on an
// invalid cfg.
func NewBatcher[T any](cfg BatcherConfig, flush FlushFunc[T]) (*Batcher[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batcher config: %w", err)
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = 30 * time.Second
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultPendingFactor * cfg.MaxRows
	}
	return &Batcher[T]{cfg: cfg, flush: flush, in: make(chan request[T]), stopped: make(chan struct{})}, nil
}

// Write adds item to the next batch and waits for that batch's flush. It
// returns nil once the item is durable, the flush error if the flush
// failed, ctx's error if ctx ends first (the item may still be flushed;
// flushes must be idempotent), or ErrBatcherStopped if Run has returned.
func (b *Batcher[T]) Write(ctx context.Context, item T) error {
	return b.WriteAll(ctx, []T{item})
}

// WriteAll adds every item to the next batches (all in one batch unless
// MaxRows or a deadline splits them) and waits for the flushes holding
// them. It returns nil once all are durable, else the first error (the
// items of other flushes may still be durable; flushes must be idempotent).
func (b *Batcher[T]) WriteAll(ctx context.Context, items []T) error {
	wait, err := b.Enqueue(ctx, items)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// Enqueue adds every item to the next batches, as WriteAll, but returns as
// soon as the batcher holds them (at once, unless MaxPending items are
// waiting for a flush): wait (never nil) then waits for the flushes holding
// them and returns nil once all are durable, else the first flush error,
// or its ctx's error if that ends first. Enqueue itself fails with
// ErrBatcherStopped once Run has returned, or with ctx's error (items
// added before may still be flushed). The batcher keeps items until their
// flush: the caller must not change them.
func (b *Batcher[T]) Enqueue(ctx context.Context, items []T) (wait func(context.Context) error, err error) {
	sc := trace.SpanContextFromContext(ctx)
	var reqs []request[T]
	for len(items) > 0 {
		n := min(len(items), b.cfg.MaxRows)
		req := request[T]{items: items[:n:n], done: make(chan error, 1), span: sc}
		items = items[n:]
		select {
		case b.in <- req:
		case <-b.stopped:
			return nil, ErrBatcherStopped
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for batcher: %w", ctx.Err())
		}
		reqs = append(reqs, req)
	}
	return func(ctx context.Context) error {
		var first error
		for _, req := range reqs {
			select {
			case err := <-req.done:
				if err != nil && first == nil {
					first = err
				}
			case <-ctx.Done():
				return fmt.Errorf("wait for flush: %w", ctx.Err())
			}
		}
		return first
	}, nil
}

// Run collects and flushes batches until ctx is done, then waits for the
// flush in progress, flushes what is pending and returns nil. Flushes are
// not cancelled with ctx (each is bounded by FlushTimeout), so an insert in
// progress at shutdown completes. Run may be called once; later calls
// return an error.
func (b *Batcher[T]) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("batcher already running")
	}
	defer close(b.stopped)
	flushCtx := context.WithoutCancel(ctx)

	var (
		pending  []request[T]
		rows     int  // items in pending
		due      bool // pending is to be flushed as soon as no flush runs
		flushing bool
	)
	flushed := make(chan struct{}, 1)
	deadline := time.NewTimer(time.Hour)
	deadline.Stop()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer deadline.Stop()
	defer idle.Stop()

	// take removes the first batch from pending: whole requests, at most
	// MaxRows items (each request holds at most MaxRows).
	take := func() []request[T] {
		k, n := 0, 0
		for k < len(pending) && (k == 0 || n+len(pending[k].items) <= b.cfg.MaxRows) {
			n += len(pending[k].items)
			k++
		}
		batch := pending[:k:k]
		pending = append([]request[T](nil), pending[k:]...)
		rows -= n
		return batch
	}
	startFlush := func(now time.Time) {
		batch := take()
		flushing = true
		go func() {
			b.flushBatch(flushCtx, batch)
			flushed <- struct{}{}
		}()
		deadline.Stop()
		idle.Stop()
		due = rows >= b.cfg.MaxRows
		if len(pending) > 0 && !due {
			deadline.Reset(max(pending[0].at.Add(b.cfg.MaxDelay).Sub(now), 0))
			if b.cfg.Idle > 0 {
				idle.Reset(max(pending[len(pending)-1].at.Add(b.cfg.Idle).Sub(now), 0))
			}
		}
	}
	for {
		in := b.in
		if rows >= b.cfg.MaxPending {
			in = nil // backpressure: take nothing until a flush frees room
		}
		select {
		case req := <-in:
			req.at = time.Now()
			if len(pending) == 0 {
				deadline.Reset(b.cfg.MaxDelay)
			}
			pending = append(pending, req)
			rows += len(req.items)
			if rows >= b.cfg.MaxRows {
				due = true
			} else if b.cfg.Idle > 0 {
				idle.Reset(b.cfg.Idle)
			}
		case <-idle.C:
			due = true
		case <-deadline.C:
			due = true
		case <-flushed:
			flushing = false
		case <-ctx.Done():
			if flushing {
				<-flushed
			}
			for len(pending) > 0 {
				b.flushBatch(flushCtx, take())
			}
			return nil
		}
		if due && !flushing && len(pending) > 0 {
			startFlush(time.Now())
		}
	}
}

// flushBatch flushes the items of reqs and tells every caller the outcome.
// The flush context carries links to the callers' spans
// (telemetry.WithLinks), so the insert span links to every record whose
// items it holds.
func (b *Batcher[T]) flushBatch(ctx context.Context, reqs []request[T]) {
	if len(reqs) == 0 {
		return
	}
	n := 0
	for _, r := range reqs {
		n += len(r.items)
	}
	items := make([]T, 0, n)
	var spans []trace.SpanContext
	for _, r := range reqs {
		items = append(items, r.items...)
		if r.span.IsValid() {
			spans = append(spans, r.span)
		}
	}
	ctx = telemetry.WithLinks(ctx, telemetry.LinksOf(spans))
	ctx, cancel := context.WithTimeout(ctx, b.cfg.FlushTimeout)
	err := b.flush(ctx, items)
	cancel()
	if err != nil {
		err = fmt.Errorf("flush batch of %d: %w", len(items), err)
	}
	for _, r := range reqs {
		r.done <- err
	}
}
