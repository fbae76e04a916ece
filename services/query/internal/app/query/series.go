// Package query holds the use cases that read the query service's
// projections for the REST API.
package query

import (
	"context"
	"fmt"

	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// SeriesReader reads bucketed sums of stored windows.
type SeriesReader interface {
	// SeriesRows returns, per group and step bucket, the sum of the value
	// of the latest revision of every window of q's metric that starts in
	// [q.From, q.To) and passes q's filters, over all shards.
	SeriesRows(ctx context.Context, q window.SeriesQuery) ([]window.Row, error)
}

// SeriesHandler answers series queries. Safe for concurrent use.
type SeriesHandler struct {
	reader SeriesReader
}

// NewSeriesHandler returns a handler reading from reader.
func NewSeriesHandler(reader SeriesReader) SeriesHandler {
	return SeriesHandler{reader: reader}
}

// Handle returns the series of q (see window.BuildSeries). Errors come from
// storage.
func (h SeriesHandler) Handle(ctx context.Context, q window.SeriesQuery) ([]window.Series, error) {
	rows, err := h.reader.SeriesRows(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", q, err)
	}
	return window.BuildSeries(q, rows), nil
}
