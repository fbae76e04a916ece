package command

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
)

// BatchStore runs compiled batch queries and records runs. Recompute may
// be called concurrently.
type BatchStore interface {
	// EventsTable is the qualified raw events table queries read.
	EventsTable() string
	// SaveRun records a run state; a higher version replaces a lower.
	SaveRun(ctx context.Context, run batch.Run, version uint64) error
	// Recompute runs q and stores its windows tagged with runID, returning
	// how many it wrote.
	Recompute(ctx context.Context, runID string, q batch.Query) (uint64, error)
}

// RunBatchHandler is the Lambda batch job: it recomputes metric
// definitions over the raw events of a range into the batch view, as one
// run. Safe for concurrent use (runs are independent).
type RunBatchHandler struct {
	store       BatchStore
	defs        []metrics.Definition
	now         func() time.Time
	chunk       time.Duration
	parallelism int
}

// Default batch plan: one query per day of window starts (the events
// table is partitioned by day), two at a time.
const (
	DefaultBatchChunk       = 24 * time.Hour
	DefaultBatchParallelism = 2
)

// NewRunBatchHandler returns a job computing defs (compiled definitions,
// the aggregator's) into store, with the default plan.
func NewRunBatchHandler(store BatchStore, defs []metrics.Definition) RunBatchHandler {
	return RunBatchHandler{store: store, defs: defs, now: time.Now, chunk: DefaultBatchChunk, parallelism: DefaultBatchParallelism}
}

// WithPlan returns h splitting each metric's windows into chunks of
// window starts of about chunk (<= 0: one query per metric) and running
// up to parallelism (>= 1) queries at once.
func (h RunBatchHandler) WithPlan(chunk time.Duration, parallelism int) RunBatchHandler {
	h.chunk, h.parallelism = chunk, max(parallelism, 1)
	return h
}

// Handle runs the batch job over the whole windows inside [fromMs, toMs)
// of every definition (or of those named in only, when not empty) and
// returns the run. The run is recorded as running, then done or failed.
// Definitions without a batch form (session windows, no whole window in
// the range) are listed in Run.Skipped. A failed run is returned with its
// error; its partial rows stay in the batch view but are never served
// (only done runs are).
func (h RunBatchHandler) Handle(ctx context.Context, id string, fromMs, toMs int64, only []string) (batch.Run, error) {
	if fromMs >= toMs {
		return batch.Run{}, fmt.Errorf("%w: batch range [%d, %d) is empty", ErrInvalidInput, fromMs, toMs)
	}
	run := batch.Run{ID: id, FromMs: fromMs, ToMs: toMs, Status: batch.StatusRunning, StartedMs: h.now().UnixMilli()}
	var queries []batch.Query
	for i := range h.defs {
		d := &h.defs[i]
		if len(only) > 0 && !contains(only, d.Name) {
			continue
		}
		qs, err := batch.Plan(d, h.store.EventsTable(), fromMs, toMs, h.chunk.Milliseconds())
		if errors.Is(err, batch.ErrNotCompilable) {
			run.Skipped = append(run.Skipped, d.Name)
			continue
		}
		if err != nil {
			return run, err
		}
		queries = append(queries, qs...)
		run.Metrics = append(run.Metrics, d.Name)
	}
	for _, name := range only {
		if !contains(run.Metrics, name) && !contains(run.Skipped, name) {
			return run, fmt.Errorf("%w: metric %q: no such definition", ErrInvalidInput, name)
		}
	}
	if err := h.store.SaveRun(ctx, run, 1); err != nil {
		return run, err
	}
	var windows atomic.Uint64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.parallelism)
	for _, q := range queries {
		g.Go(func() error {
			n, err := h.store.Recompute(gctx, id, q)
			windows.Add(n)
			if err != nil {
				return fmt.Errorf("recompute %s: %w", q.Metric, err)
			}
			return nil
		})
	}
	runErr := g.Wait()
	run.Windows = windows.Load()
	run.FinishedMs = h.now().UnixMilli()
	run.Status = batch.StatusDone
	if runErr != nil {
		run.Status, run.Error = batch.StatusFailed, runErr.Error()
	}
	if err := h.store.SaveRun(context.WithoutCancel(ctx), run, 2); err != nil {
		return run, errors.Join(runErr, err)
	}
	return run, runErr
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
