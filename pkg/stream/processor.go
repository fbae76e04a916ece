// Package stream runs a stateful, partition-local operator on a Kafka topic
// with an exactly-once effect, following the invariants of ARCHITECTURE.md:
//
//  1. An input record is acked only after its effect on state is durable:
//     the operator's state, the record's offset and the record's outputs are
//     committed to Redis in one atomic step (package checkpoint) before the
//     handler returns.
//  2. A record at or below the committed offset (a replay after a crash or a
//     rebalance) has no effect.
//  3. Outputs are written to the checkpoint as an outbox first and published
//     after the commit, so a crash between the two re-publishes them on the
//     next load; operators give every output a deterministic id, so a
//     re-published output is harmless.
//
// State lives per partition and is loaded lazily on the first record of a
// partition. An instance whose commit loses the compare-and-set (another
// instance took the partition over) drops its copy and reloads, so two
// instances never both advance one partition's state.
//
// This is the transactional-outbox pattern (Richardson, "Microservices
// Patterns", ch. 3) applied to Kafka Streams-style partition state.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// Output is one record an operator emits.
type Output struct {
	// Topic is the destination topic.
	Topic string `json:"topic"`
	// Key is the Kafka record key (decides the partition).
	Key string `json:"key,omitempty"`
	// UUID is the Watermill message id; deterministic ids let consumers
	// deduplicate.
	UUID string `json:"uuid"`
	// Payload is the record value.
	Payload []byte `json:"payload"`
	// Metadata becomes Kafka headers.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Operator is the logic of one stateful consumer. Its methods are called for
// one partition at a time (never concurrently for the same state), so they
// need no locking of their own.
type Operator[S any] interface {
	// NewState returns the empty state of a partition never seen before.
	NewState(partition int32) S
	// Apply applies one input record to st and returns the records to emit.
	// An error wrapped with messaging.Permanent marks a poison record; any
	// other error is transient and the record is redelivered. On error the
	// processor discards st (it reloads the last committed state), so Apply
	// may leave it half-changed.
	Apply(ctx context.Context, st S, msg *message.Message, offset int64) ([]Output, error)
	// Tick advances processing-time logic (idle watermarks, timers) at now and
	// returns records to emit and whether st changed.
	Tick(ctx context.Context, st S, now time.Time) ([]Output, bool, error)
}

// Config configures a Processor.
type Config struct {
	// Group is the consumer group and the checkpoint namespace. Renaming it
	// starts from empty state.
	Group string
	// Topic is the input topic.
	Topic string
	// TickInterval is how often Tick runs for loaded partitions; 0 disables
	// ticking.
	TickInterval time.Duration
}

// Processor runs an Operator on the records of one topic. Use Handle as a
// Watermill NoPublishHandlerFunc and run Run for ticks.
type Processor[S any] struct {
	cfg    Config
	op     Operator[S]
	store  *checkpoint.Store
	deltas *DeltaStore
	pub    message.Publisher
	logger *slog.Logger

	mu    sync.Mutex
	parts map[int32]*partition[S]
}

type partition[S any] struct {
	mu sync.Mutex
	// ticking is set while a tick of Run is under way or waiting for mu:
	// Run skips the partition's next ticks until it is done.
	ticking atomic.Bool
	loaded  bool
	state   S
	version int64
	offset  int64
}

// envelope is what a checkpoint holds: the operator state and the outbox of
// the last commit.
type envelope[S any] struct {
	State  S        `json:"state"`
	Outbox []Output `json:"outbox,omitempty"`
}

// New returns a Processor. State is encoded as JSON, so S must marshal and
// unmarshal losslessly with encoding/json.
func New[S any](cfg Config, op Operator[S], store *checkpoint.Store, pub message.Publisher, logger *slog.Logger) (*Processor[S], error) {
	if cfg.Group == "" || cfg.Topic == "" {
		return nil, errors.New("stream processor: group and topic are required")
	}
	return &Processor[S]{cfg: cfg, op: op, store: store, pub: pub, logger: messaging.Logger(logger), parts: map[int32]*partition[S]{}}, nil
}

// UseDeltaStore makes the processor checkpoint incrementally through ds
// when the operator's state implements DeltaState (otherwise it keeps
// writing snapshots). Call it before the processor handles records. ds must
// use the same Redis and prefix as the checkpoint.Store: version and offset
// share the checkpoint key, so the compare-and-set fences both forms.
func (p *Processor[S]) UseDeltaStore(ds *DeltaStore) { p.deltas = ds }

func (p *Processor[S]) deltaState(st S) (DeltaState, bool) {
	if p.deltas == nil {
		return nil, false
	}
	ds, ok := any(st).(DeltaState)
	return ds, ok
}

func (p *Processor[S]) partition(n int32) *partition[S] {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps, ok := p.parts[n]
	if !ok {
		ps = &partition[S]{}
		p.parts[n] = ps
	}
	return ps
}

// Handle applies one input record (a Watermill handler). It returns nil
// after the record's effect and outputs are durable (or when the record is
// a replay), a messaging.Permanent error for poison, and a transient error
// when Redis or the broker failed or a rebalance raced it (the record is
// then redelivered).
func (p *Processor[S]) Handle(msg *message.Message) error {
	part, offset, ok := messaging.Position(msg)
	if !ok {
		return messaging.Permanent(errors.New("message has no Kafka partition/offset"))
	}
	ctx := msg.Context()
	ps := p.partition(part)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := p.ensureLoaded(ctx, part, ps); err != nil {
		return err
	}
	if offset <= ps.offset {
		return nil // replay: already applied
	}
	outs, err := p.op.Apply(ctx, ps.state, msg, offset)
	if err != nil {
		ps.loaded = false
		return err
	}
	traceOutputs(ctx, outs)
	return p.commitAndPublish(ctx, part, ps, offset, outs)
}

// traceOutputs writes the trace context of ctx (the consumer span of the
// input record) into the metadata of every output that has none, so the
// outputs continue the input's trace also when they are re-published from
// the outbox after a crash. Metadata maps are copied first: operators may
// share them between outputs. It does nothing when ctx has no span.
func traceOutputs(ctx context.Context, outs []Output) {
	if len(outs) == 0 || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for i := range outs {
		if _, ok := outs[i].Metadata["traceparent"]; ok {
			continue
		}
		md := make(map[string]string, len(outs[i].Metadata)+2)
		maps.Copy(md, outs[i].Metadata)
		telemetry.Inject(ctx, md)
		outs[i].Metadata = md
	}
}

// ensureLoaded loads the partition's checkpoint if it is not in memory and
// re-publishes the outbox of its last commit. Call with ps.mu held.
func (p *Processor[S]) ensureLoaded(ctx context.Context, part int32, ps *partition[S]) error {
	if ps.loaded {
		return nil
	}
	var env envelope[S]
	var snap checkpoint.Snapshot
	fresh := p.op.NewState(part)
	if ds, ok := p.deltaState(fresh); ok {
		dsnap, err := p.deltas.Load(ctx, p.cfg.Group, p.cfg.Topic, part)
		if err != nil {
			return err
		}
		snap = dsnap.Snapshot
		var legacy json.RawMessage // the state of a snapshot checkpoint
		if snap.Data != nil {
			var ob struct {
				State  json.RawMessage `json:"state,omitempty"`
				Outbox []Output        `json:"outbox,omitempty"`
			}
			if err := json.Unmarshal(snap.Data, &ob); err != nil {
				return fmt.Errorf("decode checkpoint outbox of %s/%d: %w", p.cfg.Topic, part, err)
			}
			env.Outbox, legacy = ob.Outbox, ob.State
		}
		sr, restorable := ds.(SnapshotRestorer)
		if len(dsnap.Entries) == 0 && len(legacy) > 0 && restorable {
			if err := sr.RestoreSnapshot(legacy); err != nil {
				return messaging.Permanent(fmt.Errorf("restore state of %s/%d from its snapshot: %w", p.cfg.Topic, part, err))
			}
		} else if err := ds.RestoreEntries(dsnap.Entries); err != nil {
			return messaging.Permanent(fmt.Errorf("restore state of %s/%d: %w", p.cfg.Topic, part, err))
		}
		env.State = fresh
	} else {
		var err error
		if snap, err = p.store.Load(ctx, p.cfg.Group, p.cfg.Topic, part); err != nil {
			return err
		}
		if snap.Data == nil {
			env.State = fresh
		} else if err := json.Unmarshal(snap.Data, &env); err != nil {
			return fmt.Errorf("decode checkpoint of %s/%d: %w", p.cfg.Topic, part, err)
		}
	}
	if err := p.publish(env.Outbox); err != nil {
		return err
	}
	ps.state, ps.version, ps.offset, ps.loaded = env.State, snap.Version, snap.Offset, true
	return nil
}

// commitAndPublish commits state, offset and outbox, then publishes the
// outbox. Call with ps.mu held.
func (p *Processor[S]) commitAndPublish(ctx context.Context, part int32, ps *partition[S], offset int64, outs []Output) error {
	var v int64
	if ds, ok := p.deltaState(ps.state); ok {
		set, del, err := ds.TakeDelta()
		if err != nil {
			ps.loaded = false
			return messaging.Permanent(fmt.Errorf("encode state delta of %s/%d: %w", p.cfg.Topic, part, err))
		}
		data, err := json.Marshal(struct {
			Outbox []Output `json:"outbox,omitempty"`
		}{outs})
		if err != nil {
			ps.loaded = false
			return messaging.Permanent(fmt.Errorf("encode outbox of %s/%d: %w", p.cfg.Topic, part, err))
		}
		v, err = p.deltas.Commit(ctx, p.cfg.Group, p.cfg.Topic, part, ps.version, offset, data, set, del)
		if err != nil {
			ps.loaded = false // conflict or Redis error: reload before the retry
			return err
		}
	} else {
		data, err := json.Marshal(envelope[S]{State: ps.state, Outbox: outs})
		if err != nil {
			ps.loaded = false
			return messaging.Permanent(fmt.Errorf("encode state of %s/%d: %w", p.cfg.Topic, part, err))
		}
		if v, err = p.store.Commit(ctx, p.cfg.Group, p.cfg.Topic, part, ps.version, offset, data); err != nil {
			ps.loaded = false // conflict or Redis error: reload before the retry
			return err
		}
	}
	ps.version, ps.offset = v, offset
	if err := p.publish(outs); err != nil {
		// The outbox is durable: reloading re-publishes it.
		ps.loaded = false
		return err
	}
	return nil
}

func (p *Processor[S]) publish(outs []Output) error {
	rp, batched := p.pub.(RoutedPublisher)
	var rs []messaging.Routed
	if batched {
		rs = make([]messaging.Routed, 0, len(outs))
	}
	for _, o := range outs {
		msg := message.NewMessage(o.UUID, o.Payload)
		if msg.UUID == "" {
			msg.UUID = watermill.NewUUID()
		}
		msg.Metadata = maps.Clone(o.Metadata)
		if msg.Metadata == nil {
			msg.Metadata = message.Metadata{}
		}
		if o.Key != "" {
			msg.Metadata.Set(messaging.MetaKey, o.Key)
		}
		if batched {
			rs = append(rs, messaging.Routed{Topic: o.Topic, Msg: msg})
			continue
		}
		if err := p.pub.Publish(o.Topic, msg); err != nil {
			return fmt.Errorf("publish to %s: %w", o.Topic, err)
		}
	}
	if len(rs) > 0 {
		if err := rp.PublishRouted(rs); err != nil {
			return fmt.Errorf("publish %d outputs: %w", len(rs), err)
		}
	}
	return nil
}

// Run calls Tick on every loaded partition each TickInterval until ctx is
// done, then waits for the ticks under way. Each partition ticks on its
// own, at the time it gets its lock (time.Now): a partition whose previous
// tick is still running, or waiting behind a record batch, skips the
// intervals that pass meanwhile, and the other partitions do not wait for
// it. (Until 2026-11-22 every interval ticked all partitions and waited
// for the slowest: a partition busy with a minute boundary's finals held
// back the early results of all the others, 0.4-0.8 s in the benchmark's
// probe traces.) A tick whose commit conflicts drops the partition from
// memory: another instance owns it now. Errors are logged, never fatal.
// Run returns nil.
func (p *Processor[S]) Run(ctx context.Context) error {
	if p.cfg.TickInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(p.cfg.TickInterval)
	defer t.Stop()
	var running sync.WaitGroup
	defer running.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for n, ps := range p.partsSnapshot() {
				if !ps.ticking.CompareAndSwap(false, true) {
					continue // its previous tick is still under way
				}
				running.Go(func() {
					defer ps.ticking.Store(false)
					p.tickLogged(ctx, n, ps, time.Now)
				})
			}
		}
	}
}

// TickAll runs one tick at now on every loaded partition, the partitions
// concurrently, and returns when all are done. A tick is a state commit
// (a Redis round trip, ~100 ms when Redis is busy) and a produce round:
// one after the other, six partitions' ticks took over a second, so an
// early result waited up to that long for its partition's turn (benchmark
// of 2026-11-22). A partition's tick and its record batches still exclude
// each other (the partition's lock).
func (p *Processor[S]) TickAll(ctx context.Context, now time.Time) {
	var wg sync.WaitGroup
	for n, ps := range p.partsSnapshot() {
		wg.Go(func() { p.tickLogged(ctx, n, ps, func() time.Time { return now }) })
	}
	wg.Wait()
}

// partsSnapshot returns a copy of the partitions map: every partition
// seen, loaded or not (tick skips those that are not).
func (p *Processor[S]) partsSnapshot() map[int32]*partition[S] {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.parts)
}

// tickLogged is tick with its error logged.
func (p *Processor[S]) tickLogged(ctx context.Context, part int32, ps *partition[S], clock func() time.Time) {
	if err := p.tick(ctx, part, ps, clock); err != nil {
		p.logger.Warn("tick failed", "group", p.cfg.Group, "partition", part, "error", err.Error())
	}
}

// tick runs the operator's Tick on the partition at clock's time, read once
// the partition's lock is held, and commits and publishes what it changed.
func (p *Processor[S]) tick(ctx context.Context, part int32, ps *partition[S], clock func() time.Time) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.loaded {
		return nil
	}
	outs, changed, err := p.op.Tick(ctx, ps.state, clock())
	if err != nil {
		ps.loaded = false
		return err
	}
	if !changed && len(outs) == 0 {
		return nil
	}
	err = p.commitAndPublish(ctx, part, ps, ps.offset, outs)
	if errors.Is(err, checkpoint.ErrConflict) {
		p.mu.Lock()
		delete(p.parts, part)
		p.mu.Unlock()
		return nil
	}
	return err
}

// Register adds the processor's handler to router: it consumes cfg.Topic
// from sub in consumer group cfg.Group, and sends poison records to the
// topic's dead-letter topic through pub. The handler name is the group:
// renaming it re-consumes the topic from the start.
func (p *Processor[S]) Register(router *message.Router, sub message.Subscriber) {
	h := router.AddConsumerHandler(p.cfg.Group, p.cfg.Topic, sub, p.Handle)
	h.AddMiddleware(messaging.DeadLetter(p.pub, p.cfg.Topic, p.logger))
}
