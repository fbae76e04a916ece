package command

import "context"

// Queue stores items without waiting for them to be durable: a writer that
// groups inserts over time (adapters.Batcher). The projections that
// ClickHouse writes in groups (window results, alerts) take one.
type Queue[T any] interface {
	// Enqueue hands items to the writer and returns once it holds them;
	// wait (not nil) returns nil once all are durable, else an error (store
	// them again). An error from Enqueue means items may not all be held.
	Enqueue(ctx context.Context, items []T) (wait func(context.Context) error, err error)
}
