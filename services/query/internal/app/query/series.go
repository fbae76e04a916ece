// Package query holds the use cases that read the query service's
// projections for the REST API.
package query

import (
	"context"
	"fmt"

	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// SeriesReader reads the speed layer's stored windows.
type SeriesReader interface {
	// SeriesRows returns, per group and step bucket, the sum of the value
	// of the latest revision of every window of q's metric that starts in
	// [q.From, q.To) and passes q's filters, over all shards.
	SeriesRows(ctx context.Context, q window.SeriesQuery) ([]window.Row, error)
	// SeriesWindows returns the same per window instead of per bucket.
	SeriesWindows(ctx context.Context, q window.SeriesQuery) ([]window.WindowRow, error)
}

// BatchReader reads the batch layer.
type BatchReader interface {
	// DoneRuns returns the done runs of metric overlapping [from, to),
	// the latest finished first.
	DoneRuns(ctx context.Context, metric string, from, to int64) ([]batch.Run, error)
	// SeriesWindows returns the batch view's windows of q from the given
	// runs, per window, run and group.
	SeriesWindows(ctx context.Context, q window.SeriesQuery, runIDs []string) ([]window.WindowRow, error)
}

// SeriesHandler answers series queries from the serving layer: the batch
// view where a done batch run covers the window (the latest such run), the
// speed layer elsewhere, each point saying which. Safe for concurrent use.
type SeriesHandler struct {
	reader SeriesReader
	batch  BatchReader
}

// NewSeriesHandler returns a handler reading from reader and, when not
// nil, batchReader.
func NewSeriesHandler(reader SeriesReader, batchReader BatchReader) SeriesHandler {
	return SeriesHandler{reader: reader, batch: batchReader}
}

// Handle returns the series of q (see window.BuildSeries). Errors come from
// storage.
func (h SeriesHandler) Handle(ctx context.Context, q window.SeriesQuery) ([]window.Series, error) {
	var runs []batch.Run
	if h.batch != nil {
		var err error
		if runs, err = h.batch.DoneRuns(ctx, q.Metric(), q.From(), q.To()); err != nil {
			return nil, fmt.Errorf("series %s: %w", q, err)
		}
	}
	if len(runs) == 0 {
		// Speed layer only: one aggregate in ClickHouse.
		rows, err := h.reader.SeriesRows(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", q, err)
		}
		for i := range rows {
			rows[i].Layer = batch.LayerSpeed
		}
		return window.BuildSeries(q, rows), nil
	}
	speed, err := h.reader.SeriesWindows(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", q, err)
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	batchRows, err := h.batch.SeriesWindows(ctx, q, ids)
	if err != nil {
		return nil, fmt.Errorf("series %s (batch): %w", q, err)
	}
	covering := func(start, end int64) (string, bool) {
		for _, r := range runs {
			if r.Covers(q.Metric(), start, end) {
				return r.ID, true
			}
		}
		return "", false
	}
	rows := window.LayerRows(q, speed, batchRows, covering, batch.LayerSpeed, batch.LayerBatch)
	return window.BuildSeries(q, rows), nil
}
