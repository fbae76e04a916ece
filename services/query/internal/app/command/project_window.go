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

// WindowNotifier learns of window results once they are stored (the live
// stream). It must not block.
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
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			return fmt.Errorf("result %d: %w", i, err)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	if err := h.windows.WriteAll(ctx, rs); err != nil {
		return fmt.Errorf("store %d windows (first %s rev %d): %w", len(rs), rs[0].ID(), rs[0].Revision, err)
	}
	if err := h.live.UpdateLiveAll(ctx, rs); err != nil {
		return fmt.Errorf("update live view for %d results (first %s rev %d): %w", len(rs), rs[0].ID(), rs[0].Revision, err)
	}
	if h.notifier != nil {
		h.notifier.WindowsStored(rs)
	}
	return nil
}
