package query

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
)

// ErrRunNotFound is returned for an unknown batch run id.
var ErrRunNotFound = errors.New("batch run not found")

// RunReader reads a batch run and the windows of both layers it covers.
type RunReader interface {
	Run(ctx context.Context, id string) (batch.Run, bool, error)
	RunWindows(ctx context.Context, run batch.Run) ([]batch.Window, error)
	SpeedWindows(ctx context.Context, run batch.Run) ([]batch.Window, error)
}

// BatchReportHandler compares a batch run with the speed layer. Safe for
// concurrent use.
type BatchReportHandler struct {
	reader RunReader
}

// NewBatchReportHandler returns a handler over reader.
func NewBatchReportHandler(reader RunReader) BatchReportHandler {
	return BatchReportHandler{reader: reader}
}

// BatchReport is a run and the windows where the layers differ.
type BatchReport struct {
	Run batch.Run
	// Compared is the number of windows compared (union of both layers).
	Compared    int
	Divergences []batch.Divergence
}

// Handle returns the report of run id: every window of the run's metrics
// inside its range where the speed layer (latest revisions summed over
// shards) and the batch view differ by more than relTol (relative; 0: any
// difference beyond float rounding). ErrRunNotFound for an unknown id.
func (h BatchReportHandler) Handle(ctx context.Context, id string, relTol float64) (BatchReport, error) {
	run, ok, err := h.reader.Run(ctx, id)
	if err != nil {
		return BatchReport{}, fmt.Errorf("batch run %s: %w", id, err)
	}
	if !ok {
		return BatchReport{}, fmt.Errorf("%w: %s", ErrRunNotFound, id)
	}
	bw, err := h.reader.RunWindows(ctx, run)
	if err != nil {
		return BatchReport{}, fmt.Errorf("batch run %s: %w", id, err)
	}
	sw, err := h.reader.SpeedWindows(ctx, run)
	if err != nil {
		return BatchReport{}, fmt.Errorf("batch run %s: %w", id, err)
	}
	keys := map[string]bool{}
	for _, w := range append(append([]batch.Window{}, bw...), sw...) {
		keys[fmt.Sprint(w.Metric, "|", w.LabelsKey, "|", w.Start, "|", w.End)] = true
	}
	return BatchReport{Run: run, Compared: len(keys), Divergences: batch.Diverge(sw, bw, relTol)}, nil
}
