package command

import (
	"context"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// WindowWriter stores window result emissions.
type WindowWriter interface {
	// Write stores r and returns nil once it is durable. Storing the same
	// result again must be harmless; of the rows of one window, readers
	// see the highest revision.
	Write(ctx context.Context, r metrics.Result) error
}

// LiveUpdater keeps the latest result per metric, label set and shard.
type LiveUpdater interface {
	// UpdateLive stores r as the latest result of its metric, label set
	// and shard unless the stored one has a later window start, or the
	// same start and a revision >= r's; it reports whether r was stored.
	// It must be atomic, so replays and out-of-order arrivals are safe.
	UpdateLive(ctx context.Context, r metrics.Result) (bool, error)
}

// ProjectWindowHandler projects one metrics.windows result into the
// metric_windows table and the live view. Safe for concurrent use.
type ProjectWindowHandler struct {
	windows WindowWriter
	live    LiveUpdater
}

// NewProjectWindowHandler returns a handler writing to windows and live.
func NewProjectWindowHandler(windows WindowWriter, live LiveUpdater) ProjectWindowHandler {
	return ProjectWindowHandler{windows: windows, live: live}
}

// Handle validates r and stores it in both projections. An invalid r
// returns an error wrapping metrics.ErrInvalidResult (permanent: the record
// is poison); any other error is transient and the record must be retried;
// nil means both projections hold r or something newer.
func (h ProjectWindowHandler) Handle(ctx context.Context, r metrics.Result) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if err := h.windows.Write(ctx, r); err != nil {
		return fmt.Errorf("store window %s rev %d: %w", r.ID(), r.Revision, err)
	}
	if _, err := h.live.UpdateLive(ctx, r); err != nil {
		return fmt.Errorf("update live view for %s rev %d: %w", r.ID(), r.Revision, err)
	}
	return nil
}
