package adapters

import (
	"context"
	"sync"
	"time"
)

// GroupCommitConfig tunes a groupCommit.
type GroupCommitConfig struct {
	// MaxRows closes a group once it holds this many rows (a caller's rows
	// are never split: one call larger than MaxRows is written alone).
	MaxRows int
	// Idle flushes a group when no caller joined it for this long; 0
	// disables grouping (every call is its own write).
	Idle time.Duration
	// MaxDelay flushes a group this long after it was opened at the
	// latest.
	MaxDelay time.Duration
	// FlushTimeout bounds one write; 0 means 30 s.
	FlushTimeout time.Duration

	_ struct{}
}

// DefaultEventsGroupCommit is the events repository's grouping: as the
// windows batcher's defaults (2 ms idle, 200 ms at most), blocks of up to
// 100,000 rows.
var DefaultEventsGroupCommit = GroupCommitConfig{MaxRows: 100_000, Idle: 2 * time.Millisecond, MaxDelay: 200 * time.Millisecond}

// groupCommit merges the rows of concurrent Write calls into one write
// (group commit, as databases batch concurrent transactions into one log
// flush) without a background goroutine: the first caller of a group leads
// it, waits until no one joined for Idle (every concurrent caller is in),
// MaxDelay passed or MaxRows is reached, writes every member's rows at
// once and hands each member the outcome. Callers arriving during a write
// form the next group, whose write may overlap this one.
//
// Why: the Kafka subscriber hands each partition's handler one record at a
// time and waits for its ack, so with ack-after-write each insert would hold
// one record (500 events from the collector). ClickHouse writes one part
// per insert, and its cost per row falls steeply with the block size.
//
// Safe for concurrent use.
type groupCommit[T any] struct {
	cfg   GroupCommitConfig
	write func(ctx context.Context, rows [][]T) error

	mu   sync.Mutex
	open *commitGroup[T] // the group callers join, nil if none
}

type commitGroup[T any] struct {
	rows   [][]T
	n      int
	joined chan struct{} // a member joined (buffered 1)
	closed chan struct{} // closed when the group takes no more members
	done   chan struct{} // closed when err is set
	err    error
}

func newGroupCommit[T any](cfg GroupCommitConfig, write func(ctx context.Context, rows [][]T) error) *groupCommit[T] {
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 30 * time.Second
	}
	return &groupCommit[T]{cfg: cfg, write: write}
}

// Write writes the rows of every slice of parts in one write, possibly
// together with the rows of concurrent calls, and returns once that write
// is done: nil means the rows are durable. A call's parts are never split
// between writes. A caller whose ctx ends while it waits for another
// caller's write gets ctx's error; its rows may still be written by that
// write (writes must be idempotent). The caller leading a group writes it
// in any case (the others wait for it) and returns the write's outcome.
func (g *groupCommit[T]) Write(ctx context.Context, parts ...[]T) error {
	n := 0
	for _, rows := range parts {
		n += len(rows)
	}
	if n == 0 {
		return nil
	}
	if g.cfg.Idle <= 0 || n >= g.cfg.MaxRows {
		return g.write(ctx, parts)
	}
	g.mu.Lock()
	grp := g.open
	if grp != nil && grp.n+n > g.cfg.MaxRows {
		g.closeLocked(grp)
		grp = nil
	}
	leader := grp == nil
	if leader {
		grp = &commitGroup[T]{joined: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
		g.open = grp
	}
	for _, rows := range parts {
		if len(rows) > 0 {
			grp.rows = append(grp.rows, rows)
		}
	}
	grp.n += n
	if !leader {
		select {
		case grp.joined <- struct{}{}:
		default:
		}
	}
	if grp.n >= g.cfg.MaxRows {
		g.closeLocked(grp)
	}
	g.mu.Unlock()

	if leader {
		g.lead(ctx, grp) // returns after the write, also when ctx ended: the rows were written
		return grp.err
	}
	select {
	case <-grp.done:
		return grp.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeLocked stops grp from taking members; g.mu is held and grp is open.
func (g *groupCommit[T]) closeLocked(grp *commitGroup[T]) {
	g.open = nil
	close(grp.closed)
}

// lead waits for grp's members, then writes grp. The write does not end
// with the leader's ctx: the other members wait for it.
func (g *groupCommit[T]) lead(ctx context.Context, grp *commitGroup[T]) {
	idle := time.NewTimer(g.cfg.Idle)
	deadline := time.NewTimer(g.cfg.MaxDelay)
	defer idle.Stop()
	defer deadline.Stop()
wait:
	for {
		select {
		case <-grp.joined:
			idle.Reset(g.cfg.Idle)
		case <-idle.C:
			break wait
		case <-deadline.C:
			break wait
		case <-grp.closed:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	g.mu.Lock()
	if g.open == grp {
		g.closeLocked(grp)
	}
	g.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.FlushTimeout)
	grp.err = g.write(wctx, grp.rows)
	cancel()
	close(grp.done)
}
