package adapters

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
)

var _ command.WindowNotifier = (*Hub)(nil)

// Hub fans window results out to live subscribers (the SSE stream) after
// the windows projector stored them. It never blocks the projector: each
// subscriber has a bounded buffer and a result that does not fit is dropped
// for that subscriber (counted in Dropped); a live dashboard prefers the
// next result to a stalled projection. Safe for concurrent use.
type Hub struct {
	mu      sync.RWMutex
	subs    map[*subscription]struct{}
	dropped atomic.Int64
}

// NewHub returns a hub without subscribers.
func NewHub() *Hub { return &Hub{subs: map[*subscription]struct{}{}} }

// subscription receives the results of the metrics it asked for on c.
type subscription struct {
	c       chan metrics.Result
	metrics []string
}

// Subscribe returns a channel of the results of metricNames (every metric
// when empty), buffered for size results (>= 1), and the function that
// unsubscribes (safe to call twice; the channel is not closed, it just
// gets no more results).
func (h *Hub) Subscribe(metricNames []string, size int) (<-chan metrics.Result, func()) {
	s := &subscription{c: make(chan metrics.Result, max(size, 1)), metrics: slices.Clone(metricNames)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return s.c, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, s)
			h.mu.Unlock()
		})
	}
}

// WindowsStored implements command.WindowNotifier: it offers each result
// to every subscriber that wants its metric, without blocking.
func (h *Hub) WindowsStored(rs []metrics.Result) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		for _, r := range rs {
			if len(s.metrics) > 0 && !slices.Contains(s.metrics, r.Metric) {
				continue
			}
			select {
			case s.c <- r:
			default:
				h.dropped.Add(1)
			}
		}
	}
}

// Subscribers returns the number of open subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

// Dropped returns how many results were dropped for slow subscribers.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }
