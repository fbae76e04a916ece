package command

import (
	"context"
	"fmt"
)

// Queue stores items without waiting for them to be durable: a writer that
// groups inserts over time (adapters.Batcher). The projections that
// ClickHouse writes in groups (window results, alerts) take one.
type Queue[T any] interface {
	// Enqueue hands items to the writer and returns once it holds them;
	// wait (not nil) returns nil once all are durable, else an error (store
	// them again). An error from Enqueue means items may not all be held.
	Enqueue(ctx context.Context, items []T) (wait func(context.Context) error, err error)
}

// validateAll validates every item of items (a pointer-receiver Validate,
// as metrics.Result and alerts.Alert have) and returns the first error,
// prefixed with kind and the item's index ("result 3: ...").
func validateAll[T any, P interface {
	*T
	Validate() error
}](kind string, items []T) error {
	for i := range items {
		if err := P(&items[i]).Validate(); err != nil {
			return fmt.Errorf("%s %d: %w", kind, i, err)
		}
	}
	return nil
}
