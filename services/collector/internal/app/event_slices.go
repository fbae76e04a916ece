package app

import (
	"sync"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// maxPooledEvents bounds the capacity of a result slice kept for reuse.
const maxPooledEvents = 1 << 14

// eventSlices recycles the result slices of the ingest handlers: a request
// of 1000 events needs ~370 KB of Events, which a new slice must zero and
// the GC scan. A slice is put back only after it was published (an
// EventPublisher keeps no reference after a nil return), cleared, so that
// it holds no request's strings. The zero value is ready; safe for
// concurrent use.
type eventSlices struct {
	pool sync.Pool // *[]events.Event
}

// get returns an empty slice, with capacity for about n events when new.
func (p *eventSlices) get(n int) []events.Event {
	if s, ok := p.pool.Get().(*[]events.Event); ok {
		return *s
	}
	return make([]events.Event, 0, n)
}

// put clears s and keeps it for a later get.
func (p *eventSlices) put(s []events.Event) {
	if cap(s) == 0 || cap(s) > maxPooledEvents {
		return
	}
	clear(s)
	s = s[:0]
	p.pool.Put(&s)
}
