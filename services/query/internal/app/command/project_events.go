// Package command holds the use cases that change the query service's
// projections. A handler returns nil only once its effect is durable, so
// the port may ack the record; every effect is idempotent, so a replayed
// record changes nothing.
package command

import (
	"context"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// EventWriter stores raw events.
type EventWriter interface {
	// InsertEvents stores the events of every slice of parts in one insert
	// and returns nil once they are durable. Storing an event again (same
	// event_id, type and time) must be harmless: readers that need
	// exactness deduplicate.
	InsertEvents(ctx context.Context, parts ...[]events.Event) error
}

// ProjectEventsHandler projects one events.raw batch into the events table.
// Safe for concurrent use.
type ProjectEventsHandler struct {
	store EventWriter
}

// NewProjectEventsHandler returns a handler writing to store.
func NewProjectEventsHandler(store EventWriter) ProjectEventsHandler {
	return ProjectEventsHandler{store: store}
}

// Handle stores the events of every slice of parts (one per events.raw
// record, as decoded: they are not copied into one) with one insert. An
// error is transient (the store failed): the caller retries the records;
// nil means durable.
func (h ProjectEventsHandler) Handle(ctx context.Context, parts ...[]events.Event) error {
	n := 0
	for _, evs := range parts {
		n += len(evs)
	}
	if n == 0 {
		return nil
	}
	if err := h.store.InsertEvents(ctx, parts...); err != nil {
		return fmt.Errorf("project batch of %d events: %w", n, err)
	}
	return nil
}
