// Package app holds the aggregator's use case: apply batches of raw events
// to the windowing state of their partition and emit window results and late
// events.
package app

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

// Settings are what the aggregator's wiring gives the use case.
type Settings struct {
	// Definitions are the compiled metrics to compute.
	Definitions []metrics.Definition
	// Window holds out-of-orderness, lateness, idle timeout and early
	// interval.
	Window window.Config
	// Clock returns processing time; nil means time.Now.
	Clock func() time.Time
	// Join enriches events from the profiles table before windowing
	// (docs/join.md); nil disables the join.
	Join *join.Joiner
}

// Aggregate is the stream.Operator of the aggregator: one events.raw batch
// record in, window results (metrics.windows) and late events
// (events.late) out. Early results go out on ticks, final and revised ones
// as soon as the watermark or a late event makes them due.
type Aggregate struct {
	s      Settings
	engine *window.Engine

	mu     sync.Mutex
	gauges map[int32]PartitionGauge

	// evBufs holds *[]events.Event buffers, zeroed up to their capacity,
	// that Apply decodes records into (one partition's Apply at a time
	// each; nothing keeps a pointer into them after Apply).
	evBufs sync.Pool
}

// PartitionGauge is the size of one partition's window state after its
// last Apply or Tick.
type PartitionGauge struct {
	// Windows is the number of active window keys (metric, labels, window).
	Windows int
	// SeenIDs is the number of event ids remembered for deduplication.
	SeenIDs int
	// Bytes estimates the state's heap in bytes (window.State.MemoryBytes),
	// recomputed at most every 10 s (memoryGaugeEvery).
	Bytes int64
	// Watermark is the partition's watermark, ms.
	Watermark int64
	bytesAt   time.Time // when Bytes was computed
}

var _ stream.Operator[*window.State] = (*Aggregate)(nil)

// NewAggregate returns the operator.
func NewAggregate(s Settings) *Aggregate {
	if s.Clock == nil {
		s.Clock = time.Now
	}
	return &Aggregate{s: s, engine: window.NewEngine(s.Definitions, s.Window), gauges: map[int32]PartitionGauge{}}
}

// Gauges returns the state size per partition this instance processed
// last (a partition moved away keeps its last values until it comes back).
// Safe for concurrent use; it is the function behind the active-window and
// memory gauges (bytes per active window key = Bytes / Windows).
func (a *Aggregate) Gauges() map[int32]PartitionGauge {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[int32]PartitionGauge, len(a.gauges))
	for k, v := range a.gauges {
		out[k] = v
	}
	return out
}

// memoryGaugeEvery is how often a partition's Bytes gauge is recomputed
// (on a Tick): State.MemoryBytes visits every window and serializes its
// sketches, which on every one-second tick cost more than the tick's own
// work on a large state.
const memoryGaugeEvery = 10 * time.Second

// observe records st's gauges; Bytes is recomputed when memoryAt (a Tick's
// processing time) is at least memoryGaugeEvery after the last time, and
// kept otherwise (a zero memoryAt keeps it).
func (a *Aggregate) observe(st *window.State, memoryAt time.Time) {
	g := PartitionGauge{Windows: st.ActiveWindows(), SeenIDs: st.SeenIDs(), Watermark: a.engine.Watermark(st)}
	a.mu.Lock()
	defer a.mu.Unlock()
	last := a.gauges[st.Partition]
	g.Bytes, g.bytesAt = last.Bytes, last.bytesAt
	if !memoryAt.IsZero() && (g.bytesAt.IsZero() || memoryAt.Sub(g.bytesAt) >= memoryGaugeEvery) {
		g.Bytes, g.bytesAt = st.MemoryBytes(), memoryAt
	}
	a.gauges[st.Partition] = g
}

// NewState implements stream.Operator.
func (a *Aggregate) NewState(partition int32) *window.State {
	if a.s.Join != nil {
		a.s.Join.Loaded(partition) // join: catch-up barrier before its next Apply
	}
	return window.NewState(partition)
}

// Apply implements stream.Operator: it decodes the batch (a decoding error is
// permanent: the record goes to events.raw.dlq), adds its events to the
// windows and returns the due final/revised results, plus one events.late
// record with the events too late for their windows.
func (a *Aggregate) Apply(ctx context.Context, st *window.State, msg *message.Message, offset int64) ([]stream.Output, error) {
	bufp, _ := a.evBufs.Get().(*[]events.Event)
	if bufp == nil {
		bufp = new([]events.Event)
	}
	evs, err := decodeBatch(msg.Payload, *bufp)
	defer func() {
		*bufp = evs[:cap(evs)]
		clear(*bufp) // drop the strings, and decode into zero values next time
		*bufp = (*bufp)[:0]
		a.evBufs.Put(bufp)
	}()
	if err != nil {
		return nil, messaging.Permanent(err)
	}
	if a.s.Join != nil { // stream-table join before windowing (docs/join.md)
		if err := a.s.Join.Enrich(ctx, st.Partition, evs); err != nil {
			return nil, err // transient: the record is redelivered
		}
	}
	now := a.s.Clock().UnixMilli()
	out := a.engine.Add(st, evs, now)
	outs, err := resultOutputs(a.engine.Emit(st, now, false))
	if err != nil {
		return nil, err
	}
	if len(out.Late) > 0 {
		payload, err := events.EncodeBatch(out.Late)
		if err != nil {
			return nil, messaging.Permanent(err)
		}
		outs = append(outs, stream.Output{
			Topic:   messaging.TopicEventsLate,
			UUID:    fmt.Sprintf("late-%d-%d", st.Partition, offset),
			Payload: payload,
			Metadata: map[string]string{
				messaging.MetaSchema:    events.BatchSchema,
				messaging.MetaPartition: strconv.Itoa(int(st.Partition)),
			},
		})
	}
	a.observe(st, time.Time{})
	return outs, nil
}

// Tick implements stream.Operator: it advances an idle partition's watermark
// with processing time and emits early results of changed open windows plus
// any final results now due.
func (a *Aggregate) Tick(_ context.Context, st *window.State, now time.Time) ([]stream.Output, bool, error) {
	moved := a.engine.AdvanceIdle(st, now.UnixMilli())
	outs, err := resultOutputs(a.engine.Emit(st, now.UnixMilli(), true))
	a.observe(st, now)
	return outs, moved || len(outs) > 0, err
}

// maxResultsPerRecord bounds the results in one metrics.windows batch
// record; records are also split in halves while their encoding exceeds
// messaging.MaxRecordBytes (sketch-carrying partials are large).
const maxResultsPerRecord = 500

// resultOutputs encodes results as metrics.windows batch records (schema
// metrics.BatchSchemaV2, binary): the results of one metric, from this shard, in
// chunks of at most maxResultsPerRecord, keyed by the metric name so every
// series of a metric stays in one metrics.windows partition. The record id
// is deterministic (metric, shard, first and last result id and revision,
// count), so a re-published outbox carries the same id; consumers upsert
// each result by its own id and revision. rs must be sorted by metric (as
// Engine.Emit returns them).
func resultOutputs(rs []metrics.Result) ([]stream.Output, error) {
	var outs []stream.Output
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && j-i < maxResultsPerRecord && rs[j].Metric == rs[i].Metric {
			j++
		}
		var err error
		if outs, err = appendBatch(outs, rs[i:j]); err != nil {
			return nil, err
		}
		i = j
	}
	return outs, nil
}

func appendBatch(outs []stream.Output, rs []metrics.Result) ([]stream.Output, error) {
	b, err := metrics.EncodeBatchBinary(rs)
	if err != nil {
		return nil, messaging.Permanent(err)
	}
	if len(b) > messaging.MaxRecordBytes && len(rs) > 1 {
		half := len(rs) / 2
		if outs, err = appendBatch(outs, rs[:half]); err != nil {
			return nil, err
		}
		return appendBatch(outs, rs[half:])
	}
	first, last := &rs[0], &rs[len(rs)-1]
	return append(outs, stream.Output{
		Topic:    messaging.TopicMetricsWindows,
		Key:      first.Metric,
		UUID:     fmt.Sprintf("%s|r%d..%s|r%d|n%d", first.ID(), first.Revision, last.ID(), last.Revision, len(rs)),
		Payload:  b,
		Metadata: map[string]string{messaging.MetaSchema: metrics.BatchSchemaV2},
	}), nil
}
