package command

import (
	"context"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// WindowWriter stores window result emissions.
type WindowWriter interface {
	// WriteAll stores rs and returns nil once all are durable. Storing the
	// same result again must be harmless; of the rows of one window,
	// readers see the highest revision.
	WriteAll(ctx context.Context, rs []metrics.Result) error
}

// WindowQueue is a WindowWriter that can also take results without
// waiting for them to be durable.
type WindowQueue interface {
	WindowWriter
	Queue[metrics.Result]
}

// LiveUpdater keeps the latest result per metric, label set and shard.
type LiveUpdater interface {
	// UpdateLiveAll stores each result of rs, in order, as the latest
	// result of its metric, label set and shard unless the stored one has a
	// later window start, or the same start and a revision >= its own, in as
	// few round trips as the store allows; nil means every result is stored
	// or something newer is. Each result's update must be atomic, so replays
	// and out-of-order arrivals are safe.
	UpdateLiveAll(ctx context.Context, rs []metrics.Result) error
}

// WindowNotifier learns of window results once the window history holds
// them (the live stream: the dashboard reads the history when told). It
// must not block.
type WindowNotifier interface {
	WindowsStored(rs []metrics.Result)
}

// ProjectWindowHandler projects one metrics.windows result into the
// metric_windows table and the live view. Safe for concurrent use.
type ProjectWindowHandler struct {
	windows  WindowWriter
	live     LiveUpdater
	notifier WindowNotifier
}

// NewProjectWindowHandler returns a handler writing to windows and live
// and then telling notifier (may be nil).
func NewProjectWindowHandler(windows WindowWriter, live LiveUpdater, notifier WindowNotifier) ProjectWindowHandler {
	return ProjectWindowHandler{windows: windows, live: live, notifier: notifier}
}

// Handle validates rs (the results of one metrics.windows record) and
// stores them in both projections. An invalid result returns an error
// wrapping metrics.ErrInvalidResult (permanent: the record is poison) and
// nothing is written; any other error is transient and the record must be
// retried; nil means both projections hold every result or something newer.
func (h ProjectWindowHandler) Handle(ctx context.Context, rs []metrics.Result) error {
	wait, err := h.Apply(ctx, rs)
	if err != nil || wait == nil {
		return err
	}
	return wait(ctx)
}

// Apply is Handle without waiting for the window history: it validates rs
// once, updates the live view (as UpdateLive) and hands rs to the window
// writer (as ApplyHistory), then returns that wait. The live view is
// updated first so that it never waits for a history insert; both
// projections keep the latest revision, so the order and repeats are
// harmless. Errors as Handle.
func (h ProjectWindowHandler) Apply(ctx context.Context, rs []metrics.Result) (wait func(context.Context) error, err error) {
	if err := validateAll("result", rs); err != nil {
		return nil, err
	}
	if err := h.updateLive(ctx, rs); err != nil {
		return nil, err
	}
	return h.queueHistory(ctx, rs)
}

// UpdateLive validates rs and stores them in the live view alone: the
// query service's live projector, a consumer group of its own, so that the
// live view never waits behind the window history's work (the history
// projector decodes, coalesces and queues every result of a minute
// boundary's burst of finals, ~10 µs each, where the live view needs only
// the results that changed). An invalid result returns an error wrapping
// metrics.ErrInvalidResult and nothing is written; any other error is
// transient; nil means the live view holds every result or something
// newer.
func (h ProjectWindowHandler) UpdateLive(ctx context.Context, rs []metrics.Result) error {
	if err := validateAll("result", rs); err != nil {
		return err
	}
	return h.updateLive(ctx, rs)
}

// updateLive is UpdateLive for validated results.
func (h ProjectWindowHandler) updateLive(ctx context.Context, rs []metrics.Result) error {
	if len(rs) == 0 {
		return nil
	}
	if err := h.live.UpdateLiveAll(ctx, rs); err != nil {
		return fmt.Errorf("update live view for %d results (first %s rev %d): %w", len(rs), rs[0].ID(), rs[0].Revision, err)
	}
	return nil
}

// ApplyHistory validates rs and hands them to the window writer alone (the
// metric_windows table), then returns. When the writer is a WindowQueue,
// wait (nil otherwise) returns nil once the history holds every result (or
// something newer) and the notifier was told, else a transient error:
// apply rs again; the insert may be grouped over a second
// (QUERY_WINDOWS_BATCH_MAX_DELAY). Errors as UpdateLive.
func (h ProjectWindowHandler) ApplyHistory(ctx context.Context, rs []metrics.Result) (wait func(context.Context) error, err error) {
	if err := validateAll("result", rs); err != nil {
		return nil, err
	}
	return h.queueHistory(ctx, rs)
}

// queueHistory is ApplyHistory for validated results.
func (h ProjectWindowHandler) queueHistory(ctx context.Context, rs []metrics.Result) (wait func(context.Context) error, err error) {
	if len(rs) == 0 {
		return nil, nil
	}
	q, ok := h.windows.(WindowQueue)
	if !ok {
		if err := h.windows.WriteAll(ctx, rs); err != nil {
			return nil, fmt.Errorf("store %d windows (first %s rev %d): %w", len(rs), rs[0].ID(), rs[0].Revision, err)
		}
		h.stored(rs)
		return nil, nil
	}
	w, err := q.Enqueue(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("queue %d windows (first %s rev %d): %w", len(rs), rs[0].ID(), rs[0].Revision, err)
	}
	first, rev := rs[0].ID(), rs[0].Revision
	return func(ctx context.Context) error {
		if err := w(ctx); err != nil {
			return fmt.Errorf("store %d windows (first %s rev %d): %w", len(rs), first, rev, err)
		}
		h.stored(rs)
		return nil
	}, nil
}

// stored tells the notifier (the SSE stream) of rs once the history holds
// them: its clients (the dashboard) read the history in answer.
func (h ProjectWindowHandler) stored(rs []metrics.Result) {
	if h.notifier != nil {
		h.notifier.WindowsStored(rs)
	}
}
