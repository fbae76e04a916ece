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
	// MaxRows flushes a batch when it holds this many items (>= 1).
	MaxRows int
	// MaxDelay flushes a batch this long after its first item (> 0).
	MaxDelay time.Duration
	// Idle flushes a batch when no item arrived for this long; 0 disables
	// the idle flush.
	Idle time.Duration
	// FlushTimeout bounds one flush; 0 means 30 s.
	FlushTimeout time.Duration

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
	if c.Idle < 0 || c.FlushTimeout < 0 {
		errs = append(errs, errors.New("idle and flush timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// FlushFunc writes items durably, all or none.
type FlushFunc[T any] func(ctx context.Context, items []T) error

// Batcher groups items written by concurrent callers into one flush (group
// commit) and returns to each caller the outcome of the flush that held its
// item, so a caller can ack its input only once its item is durable.
//
// Why it exists and what it can do: the Kafka subscriber hands each
// partition's handler one message at a time and waits for its ack, so with
// ack-after-write a batch can never hold more than one item per partition
// in flight. A fixed "flush every 200 ms" would then cap throughput at
// partitions/200 ms. Instead a batch is flushed as soon as no item arrived
// for Idle (every partition is waiting), after MaxDelay at the latest, or
// at MaxRows. Flushes run one at a time; items written during a flush go
// into the next one. The result is at most one insert per round of
// partitions instead of one per message, with a few ms of added latency.
//
// Write is safe for concurrent use; Run must be running for Write to
// return.
type Batcher[T any] struct {
	cfg     BatcherConfig
	flush   FlushFunc[T]
	in      chan request[T]
	stopped chan struct{}
	started atomic.Bool
}

type request[T any] struct {
	item T
	done chan error // buffered: Run never blocks on a caller that left
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
	return &Batcher[T]{cfg: cfg, flush: flush, in: make(chan request[T]), stopped: make(chan struct{})}, nil
}

// Write adds item to the next batch and waits for that batch's flush. It
// returns nil once the item is durable, the flush error if the flush
// failed, ctx's error if ctx ends first (the item may still be flushed;
// flushes must be idempotent), or ErrBatcherStopped if Run has returned.
func (b *Batcher[T]) Write(ctx context.Context, item T) error {
	req := request[T]{item: item, done: make(chan error, 1), span: trace.SpanContextFromContext(ctx)}
	select {
	case b.in <- req:
	case <-b.stopped:
		return ErrBatcherStopped
	case <-ctx.Done():
		return fmt.Errorf("wait for batcher: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wait for flush: %w", ctx.Err())
	}
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
// soon as the batcher holds them: wait (never nil) then waits for the
// flushes holding them and returns nil once all are durable, else the first
// flush error, or its ctx's error if that ends first. Enqueue itself fails
// with ErrBatcherStopped once Run has returned, or with ctx's error (items
// added before may still be flushed).
func (b *Batcher[T]) Enqueue(ctx context.Context, items []T) (wait func(context.Context) error, err error) {
	reqs := make([]request[T], len(items))
	sc := trace.SpanContextFromContext(ctx)
	for i, item := range items {
		reqs[i] = request[T]{item: item, done: make(chan error, 1), span: sc}
		select {
		case b.in <- reqs[i]:
		case <-b.stopped:
			return nil, ErrBatcherStopped
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for batcher: %w", ctx.Err())
		}
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

// Run collects and flushes batches until ctx is done, then flushes what is
// pending and returns nil. Flushes are not cancelled with ctx (each is
// bounded by FlushTimeout), so an insert in progress at shutdown completes.
// Run may be called once; later calls return an error.
func (b *Batcher[T]) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("batcher already running")
	}
	defer close(b.stopped)
	flushCtx := context.WithoutCancel(ctx)

	var pending []request[T]
	deadline := time.NewTimer(time.Hour)
	deadline.Stop()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer deadline.Stop()
	defer idle.Stop()

	flush := func() {
		deadline.Stop()
		idle.Stop()
		b.flushBatch(flushCtx, pending)
		pending = nil
	}
	add := func(req request[T]) {
		if len(pending) == 0 {
			deadline.Reset(b.cfg.MaxDelay)
		}
		pending = append(pending, req)
		if len(pending) >= b.cfg.MaxRows {
			flush()
			return
		}
		if b.cfg.Idle > 0 {
			idle.Reset(b.cfg.Idle)
		}
	}
	for {
		select {
		case req := <-b.in:
			add(req)
		case <-idle.C:
			flush()
		case <-deadline.C:
			flush()
		case <-ctx.Done():
			if len(pending) > 0 {
				flush()
			}
			return nil
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
	items := make([]T, len(reqs))
	var spans []trace.SpanContext
	for i, r := range reqs {
		items[i] = r.item
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
