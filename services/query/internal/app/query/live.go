package query

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// LiveReader reads the live view.
type LiveReader interface {
	// LiveResults returns the latest result per label set and shard of
	// metric (a window.ValidName) whose labels pass filters (see
	// window.Matches; nil or empty: every label set); none is not an
	// error. The results' maps and slices may be shared with other calls:
	// read them only.
	LiveResults(ctx context.Context, metric string, filters []window.Filter) ([]metrics.Result, error)
}

// LiveHandler answers live queries. Safe for concurrent use.
type LiveHandler struct {
	reader LiveReader
}

// NewLiveHandler returns a handler reading from reader.
func NewLiveHandler(reader LiveReader) LiveHandler {
	return LiveHandler{reader: reader}
}

// Handle returns the latest value per label set of each metric (see
// window.Latest), metrics in the order given (repeats removed), keeping the
// label sets that pass filters (window.Matches; filters on one label are
// merged, at most window.MaxFilters values in all). A dashboard showing
// a few label sets of a metric with thousands asks for those: the read
// then costs the matching label sets, not the whole metric. Invalid names
// or filters return *window.ParamError values wrapping
// window.ErrInvalidParam, joined; other errors come from storage.
func (h LiveHandler) Handle(ctx context.Context, metricNames []string, filters []window.Filter) ([]window.LiveValue, error) {
	names, err := window.LiveMetrics(metricNames)
	merged, ferr := window.MergeFilters(filters)
	if err = errors.Join(err, ferr); err != nil {
		return nil, err
	}
	out := []window.LiveValue{}
	for _, m := range names {
		results, err := h.reader.LiveResults(ctx, m, merged)
		if err != nil {
			return nil, fmt.Errorf("live %s: %w", m, err)
		}
		out = append(out, window.Latest(m, results)...)
	}
	return out, nil
}

// TopReader reads the per-window top-N sets of the live view.
type TopReader interface {
	// TopScores returns every labels key of metric's window starting at
	// ws with its value summed over shards.
	TopScores(ctx context.Context, metric string, ws int64) ([]window.LabelScore, error)
}

// LiveTopHandler ranks the label values of a metric's window from Redis
// (no ClickHouse). Safe for concurrent use.
type LiveTopHandler struct {
	live LiveReader
	top  TopReader
}

// NewLiveTopHandler returns a handler over live and top.
func NewLiveTopHandler(live LiveReader, top TopReader) LiveTopHandler {
	return LiveTopHandler{live: live, top: top}
}

// Handle returns the n largest values of label by in metric's window
// starting at ws, or, when ws < 0, in the latest window the live view
// holds (returned as the second value; -1 when there is none).
func (h LiveTopHandler) Handle(ctx context.Context, metric, by string, ws int64, n int) ([]window.TopKEntry, int64, error) {
	if ws < 0 {
		results, err := h.live.LiveResults(ctx, metric, nil)
		if err != nil {
			return nil, -1, fmt.Errorf("live top %s: %w", metric, err)
		}
		for _, r := range results {
			ws = max(ws, r.WindowStart)
		}
		if ws < 0 {
			return []window.TopKEntry{}, -1, nil
		}
	}
	scores, err := h.top.TopScores(ctx, metric, ws)
	if err != nil {
		return nil, ws, fmt.Errorf("live top %s: %w", metric, err)
	}
	return window.RankBy(scores, by, n), ws, nil
}
