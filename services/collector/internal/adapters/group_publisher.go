package adapters

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
)

// PartitionPublisher writes the events of one partition as batch records
// and returns once the broker acknowledged them (messaging.BatchPublisher).
type PartitionPublisher interface {
	// Partitions returns the partition count of topic.
	Partitions(topic string) (int32, error)
	// PublishPartition publishes evs, all of partition part, in order.
	PublishPartition(ctx context.Context, topic string, part int32, evs []events.Event) error
}

// tracerName is the instrumentation scope of the group spans.
const tracerName = "github.com/streamwatch/streamwatch/services/collector/internal/adapters"

// DefaultLinger is GroupConfig.Linger's usual value: long enough for the
// requests being parsed at the same time to join a record, short next to
// the latency targets (seconds).
const DefaultLinger = 2 * time.Millisecond

// GroupConfig tunes a GroupPublisher.
type GroupConfig struct {
	// MaxEvents is the most events per record (COLLECTOR_MAX_BATCH).
	MaxEvents int
	// MaxBytes bounds the estimated encoded size of one record (see
	// estimateBytes); 0 means messaging.MaxRecordBytes. The partition
	// publisher still splits a record that encodes larger.
	MaxBytes int
	// Linger is how long the events of a partition may wait for more
	// (from other requests) before their record is written, counted from
	// the arrival of the first; a partition holding MaxEvents events is
	// written at once. 0 writes as soon as the partition's previous
	// record was acknowledged (COLLECTOR_LINGER).
	Linger time.Duration

	_ struct{}
}

// GroupPublisher coalesces the events of concurrent requests that go to the
// same partition into shared events.raw records (group commit, as a
// database flushes the log records of concurrent transactions at once):
// per partition, one record is in flight at a time; the events that arrive
// meanwhile, or within Linger of the first of them, form the next records
// (at most MaxEvents events and MaxBytes bytes each).
//
// Why: a request of 1000 events spread over 6 partitions made records of
// ~170 events (~75 in the benchmark's mix of three request kinds), and
// every consumer pays a cost per record (a Redis checkpoint commit, a
// ClickHouse part, a span).
//
// PublishEvents returns only after the broker acknowledged every record
// holding the call's events; if a record of a group fails, every member of
// the group gets the error (some of their events may have been written:
// clients retry, consumers deduplicate by event id). The events of one
// call keep their order within a partition. After a nil return nothing
// refers to the call's events (its caller may reuse the slice); after an
// error, records of its other partitions may still be reading them.
//
// Tracing: a record of one request carries that request's trace context; a
// record of several is written under a span "group <topic>", a child of
// the first request's span linked to the others', so that the consumers'
// spans continue one trace and every request's trace reaches the record.
//
// Safe for concurrent use.
type GroupPublisher struct {
	pub    PartitionPublisher
	cfg    GroupConfig
	tracer trace.Tracer

	wg     sync.WaitGroup // running flushers
	mu     sync.Mutex
	queues map[partition]*queue
	closed bool
}

var _ app.EventPublisher = (*GroupPublisher)(nil)

type partition struct {
	topic string
	part  int32
}

// queue holds the members waiting for a partition's next record; guarded by
// GroupPublisher.mu except buf, which only its flusher uses.
type queue struct {
	partition
	pending []*member
	events  int           // in pending
	first   time.Time     // arrival of pending[0]
	running bool          // a flusher goroutine serves the queue
	full    chan struct{} // signalled when events reaches MaxEvents (buffered 1)
	buf     []events.Event
}

// member is one call's events of one partition: evs[idx[0]], evs[idx[1]],
// ..., or all of evs when idx is nil.
type member struct {
	ctx  context.Context
	evs  []events.Event
	idx  []int32
	done chan error // buffered 1
}

// count returns the member's number of events.
func (m *member) count() int {
	if m.idx == nil {
		return len(m.evs)
	}
	return len(m.idx)
}

// NewGroupPublisher returns a GroupPublisher writing through pub.
// cfg.MaxEvents must be at least 1. Close waits for records being written.
func NewGroupPublisher(pub PartitionPublisher, cfg GroupConfig) (*GroupPublisher, error) {
	if cfg.MaxEvents < 1 {
		return nil, fmt.Errorf("group publisher: MaxEvents %d < 1", cfg.MaxEvents)
	}
	if cfg.Linger < 0 {
		return nil, fmt.Errorf("group publisher: negative Linger %s", cfg.Linger)
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = messaging.MaxRecordBytes
	}
	return &GroupPublisher{pub: pub, cfg: cfg, tracer: otel.Tracer(tracerName), queues: map[partition]*queue{}}, nil
}

// PublishEvents implements app.EventPublisher: it splits evs by partition
// (messaging.PartitionFor of their keys, order kept), queues each part for
// its partition's next record and waits until every part was acknowledged,
// a record failed (its error), or ctx is done (ctx.Err(); the events may
// still be written).
func (g *GroupPublisher) PublishEvents(ctx context.Context, topic string, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	n, err := g.pub.Partitions(topic)
	if err != nil {
		return err
	}
	members := g.split(ctx, evs, n)
	now := time.Now()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return fmt.Errorf("publish to %s: publisher closed", topic)
	}
	for part := range members {
		if members[part].evs != nil {
			g.enqueue(partition{topic, int32(part)}, &members[part], now)
		}
	}
	g.mu.Unlock()
	for _, m := range members {
		if m.evs == nil {
			continue
		}
		select {
		case err := <-m.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("wait for the broker: %w", ctx.Err())
		}
	}
	return nil
}

// split groups evs by partition, keeping their order; members[p].evs is
// nil for a partition without events. The events are not copied: a member
// lists the indexes of its events (write copies them once, into the
// record's buffer).
func (g *GroupPublisher) split(ctx context.Context, evs []events.Event, n int32) []member {
	members := make([]member, n)
	first := messaging.PartitionFor(evs[0].Key, n)
	parts := make([]int32, len(evs))
	counts := make([]int32, n)
	for i := range evs {
		p := messaging.PartitionFor(evs[i].Key, n)
		parts[i] = p
		counts[p]++
	}
	if int(counts[first]) == len(evs) {
		members[first] = member{ctx: ctx, evs: evs, done: make(chan error, 1)}
		return members
	}
	idx := make([]int32, len(evs))
	next := make([]int32, n)
	var off int32
	for p, c := range counts {
		next[p] = off
		if c > 0 {
			members[p] = member{ctx: ctx, evs: evs, idx: idx[off : off : off+c], done: make(chan error, 1)}
		}
		off += c
	}
	for i, p := range parts {
		members[p].idx = append(members[p].idx, int32(i))
	}
	return members
}

// enqueue adds m to the queue of p and starts its flusher if none runs.
// g.mu is held.
func (g *GroupPublisher) enqueue(p partition, m *member, now time.Time) {
	q := g.queues[p]
	if q == nil {
		q = &queue{partition: p, full: make(chan struct{}, 1)}
		g.queues[p] = q
	}
	if len(q.pending) == 0 {
		q.first = now
	}
	q.pending = append(q.pending, m)
	q.events += m.count()
	if q.events >= g.cfg.MaxEvents {
		select {
		case q.full <- struct{}{}:
		default:
		}
	}
	if !q.running {
		q.running = true
		g.wg.Add(1)
		go g.flusher(q)
	}
}

// flusher writes the queue's records until it is empty, lingering before
// each group as configured.
func (g *GroupPublisher) flusher(q *queue) {
	defer g.wg.Done()
	for {
		g.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			g.mu.Unlock()
			return
		}
		wait := g.cfg.Linger - time.Since(q.first)
		full := q.events >= g.cfg.MaxEvents
		g.mu.Unlock()
		if wait > 0 && !full {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.full:
			}
			t.Stop()
		}
		g.mu.Lock()
		group := q.pending
		q.pending, q.events = nil, 0
		select {
		case <-q.full:
		default:
		}
		g.mu.Unlock()
		err := g.write(q, group)
		for _, m := range group {
			m.done <- err
		}
	}
}

// write publishes the events of a group's members in order, as records of
// at most MaxEvents events and MaxBytes estimated bytes, one after the
// other; it stops at the first error. The records carry the trace context
// of the first member (without its cancellation: the other members wait
// for the same records).
func (g *GroupPublisher) write(q *queue, group []*member) (err error) {
	ctx := context.WithoutCancel(group[0].ctx)
	if len(group) > 1 {
		var span trace.Span
		ctx, span = g.groupSpan(ctx, q, group)
		defer func() {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	evs := group[0].evs
	if len(group) > 1 || group[0].idx != nil {
		n := 0
		for _, m := range group {
			n += m.count()
		}
		q.buf = slices.Grow(q.buf[:0], n)
		for _, m := range group {
			if m.idx == nil {
				q.buf = append(q.buf, m.evs...)
				continue
			}
			for _, i := range m.idx {
				q.buf = append(q.buf, m.evs[i])
			}
		}
		evs = q.buf
		defer func() {
			clear(q.buf) // drop the strings of the requests
			q.buf = q.buf[:0]
		}()
	}
	for start := 0; start < len(evs); {
		end, size := start, 0
		for end < len(evs) && end-start < g.cfg.MaxEvents {
			b := estimateBytes(&evs[end])
			if end > start && size+b > g.cfg.MaxBytes {
				break
			}
			size += b
			end++
		}
		if err := g.pub.PublishPartition(ctx, q.topic, q.part, evs[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// groupSpan starts the span of a group's records when its members are
// traced: a child of the first member's span (ctx), linked to the spans of
// the others, so that the consumers' spans continue one request's trace and
// every other request's trace finds the record through its link.
func (g *GroupPublisher) groupSpan(ctx context.Context, q *queue, group []*member) (context.Context, trace.Span) {
	links := make([]trace.Link, 0, len(group)-1)
	for _, m := range group[1:] {
		if sc := trace.SpanContextFromContext(m.ctx); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return g.tracer.Start(ctx, "group "+q.topic, trace.WithSpanKind(trace.SpanKindInternal), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("messaging.destination.partition.id", int(q.part)), attribute.Int("streamwatch.group.requests", len(group))))
}

// Close waits for the records being written and refuses later calls. Safe
// to call more than once.
func (g *GroupPublisher) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}

// estimateBytes is an upper estimate of the encoded size of e in a batch
// record (events.batch.v2: a tag and a length per field, varints of at
// most 10 bytes, the bytes of every string).
func estimateBytes(e *events.Event) int {
	n := 120 + len(e.ID) + len(e.Type) + len(e.Key) + len(e.Source) + len(e.UserID) + len(e.SessionID) +
		len(e.Page) + len(e.ProductID) + len(e.Query) + len(e.Service) + len(e.Endpoint) + len(e.ClientIP) +
		len(e.Method) + len(e.Path) + len(e.Protocol) + len(e.Referrer) + len(e.UserAgent) + len(e.Series)
	for k, v := range e.Properties {
		n += len(k) + len(v) + 8
	}
	for k, v := range e.Labels {
		n += len(k) + len(v) + 8
	}
	return n
}
