package query

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/alertsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/eventsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// EventSearcher pages through raw events.
type EventSearcher interface {
	// SearchEvents returns one page of q in q's stable order, and the
	// cursor of the next page when there are more.
	SearchEvents(ctx context.Context, q eventsearch.Query) (eventsearch.Page, error)
}

// TopKReader ranks label values of a metric.
type TopKReader interface {
	// TopK returns at most q.N entries, the largest summed value first.
	TopK(ctx context.Context, q window.TopKQuery) ([]window.TopKEntry, error)
}

// AlertSearcher reads the alerts projection.
type AlertSearcher interface {
	// SearchAlerts returns the latest state of every matching episode,
	// newest start first.
	SearchAlerts(ctx context.Context, q alertsearch.Query) ([]alerts.Alert, error)
}

// RecentReader reads the latest alerts list kept by the notifier.
type RecentReader interface {
	// RecentAlerts returns at most n alerts as JSON, newest first.
	RecentAlerts(ctx context.Context, n int) ([]json.RawMessage, error)
}

// SearchHandler answers the event, top-k and alert searches. Safe for
// concurrent use.
type SearchHandler struct {
	events EventSearcher
	topk   TopKReader
	alerts AlertSearcher
	recent RecentReader
}

// NewSearchHandler returns a handler over the given readers.
func NewSearchHandler(ev EventSearcher, topk TopKReader, al AlertSearcher, recent RecentReader) SearchHandler {
	return SearchHandler{events: ev, topk: topk, alerts: al, recent: recent}
}

// Events returns one page of the event search q.
func (h SearchHandler) Events(ctx context.Context, q eventsearch.Query) (eventsearch.Page, error) {
	p, err := h.events.SearchEvents(ctx, q)
	if err != nil {
		return eventsearch.Page{}, fmt.Errorf("search events: %w", err)
	}
	return p, nil
}

// TopK returns the ranking q asks for.
func (h SearchHandler) TopK(ctx context.Context, q window.TopKQuery) ([]window.TopKEntry, error) {
	out, err := h.topk.TopK(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("top-k %s by %s: %w", q.Metric(), q.By(), err)
	}
	return out, nil
}

// Alerts returns the alerts q selects.
func (h SearchHandler) Alerts(ctx context.Context, q alertsearch.Query) ([]alerts.Alert, error) {
	out, err := h.alerts.SearchAlerts(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("search alerts: %w", err)
	}
	return out, nil
}

// Recent returns at most n of the latest alerts, newest first.
func (h SearchHandler) Recent(ctx context.Context, n int) ([]json.RawMessage, error) {
	out, err := h.recent.RecentAlerts(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("recent alerts: %w", err)
	}
	return out, nil
}
