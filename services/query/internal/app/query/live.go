package query

import (
	"context"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// LiveReader reads the live view.
type LiveReader interface {
	// LiveResults returns the latest result per label set and shard of
	// metric (a window.ValidName); none is not an error.
	LiveResults(ctx context.Context, metric string) ([]metrics.Result, error)
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
// window.Latest), metrics in the order given (repeats removed). Invalid
// names return *window.ParamError values wrapping window.ErrInvalidParam;
// other errors come from storage.
func (h LiveHandler) Handle(ctx context.Context, metricNames []string) ([]window.LiveValue, error) {
	names, err := window.LiveMetrics(metricNames)
	if err != nil {
		return nil, err
	}
	out := []window.LiveValue{}
	for _, m := range names {
		results, err := h.reader.LiveResults(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("live %s: %w", m, err)
		}
		out = append(out, window.Latest(m, results)...)
	}
	return out, nil
}
