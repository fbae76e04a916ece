package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// RoutedPublisher is a publisher that sends messages of several topics in
// one round and returns when all were acknowledged (messaging.Producer).
// When the processor's publisher implements it, the outputs of a record,
// a batch or a tick are published with one call instead of one
// synchronous publish per output.
type RoutedPublisher interface {
	PublishRouted(rs []messaging.Routed) error
}

// tracerName names the tracer of HandleBatch's per-record spans.
const tracerName = "github.com/streamwatch/streamwatch/pkg/stream"

// HandleBatch applies records of one partition, in offset order, and
// commits them together: one checkpoint compare-and-set holds the state
// after the last record, its offset and the outputs of every record, and
// the outputs are published after it in one round when the publisher is a
// RoutedPublisher. It is a messaging.BatchHandler. Records at or below the
// committed offset are skipped (invariant 2); outputs carry the trace
// context of their input record.
//
// A record whose Apply returns a messaging.Permanent error is poison: the
// records before it are committed (the state is reloaded and they are
// applied again, since Apply may have left it half-changed), the poison
// record goes to the input's dead-letter topic, and the rest of the batch
// goes on. Any other error is returned (transient): the records after the
// last commit are handed again and re-applied from the committed state.
func (p *Processor[S]) HandleBatch(ctx context.Context, msgs []*message.Message) error {
	for len(msgs) > 0 {
		n, err := p.applyBatch(ctx, msgs)
		if err == nil {
			return nil
		}
		if !messaging.IsPermanent(err) {
			return err
		}
		if err := p.deadLetter(msgs[n], err); err != nil {
			return err
		}
		msgs = msgs[n+1:]
	}
	return nil
}

// applyBatch applies and commits msgs, or, when msgs[i] fails, commits
// msgs[:i] and returns i with the error.
func (p *Processor[S]) applyBatch(ctx context.Context, msgs []*message.Message) (int, error) {
	part, _, ok := messaging.Position(msgs[0])
	if !ok {
		return 0, messaging.Permanent(errors.New("message has no Kafka partition/offset"))
	}
	ps := p.partition(part)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := p.ensureLoaded(ctx, part, ps); err != nil {
		return 0, err
	}
	outs, last, failed, err := p.applyAll(part, ps, msgs)
	if err == nil {
		if last < 0 {
			return len(msgs), nil // every record was a replay
		}
		return len(msgs), p.commitAndPublish(ctx, part, ps, last, outs)
	}
	ps.loaded = false // Apply may have left the state half-changed
	if failed == 0 || !messaging.IsPermanent(err) {
		return failed, err
	}
	// Commit the records before the poison one: reload and apply them
	// again (Apply is deterministic on the same state).
	if lerr := p.ensureLoaded(ctx, part, ps); lerr != nil {
		return 0, lerr
	}
	outs, last, _, rerr := p.applyAll(part, ps, msgs[:failed])
	if rerr != nil {
		// Transient on purpose (the error is only quoted): a record that
		// applied before must not be dead-lettered now; retry the batch.
		ps.loaded = false
		return 0, fmt.Errorf("re-apply %d records before a poison record: %v", failed, rerr) //nolint:errorlint // see above
	}
	if last >= 0 {
		if cerr := p.commitAndPublish(ctx, part, ps, last, outs); cerr != nil {
			return 0, cerr
		}
	}
	return failed, err
}

// applyAll applies the records of msgs above the committed offset to
// ps.state and returns their outputs and the last offset applied (-1 if
// none), or the index of the record that failed and its error.
func (p *Processor[S]) applyAll(part int32, ps *partition[S], msgs []*message.Message) (outs []Output, last int64, failed int, err error) {
	last = -1
	for i, msg := range msgs {
		mp, offset, ok := messaging.Position(msg)
		if !ok || mp != part {
			return nil, -1, i, messaging.Permanent(fmt.Errorf("message of a batch of partition %d has no position in it", part))
		}
		if offset <= ps.offset {
			continue // replay: already applied
		}
		// A consumer span per record, as the router's middleware starts:
		// a child of the record's producer span, parent of the trace
		// context the outputs carry.
		mctx, span := otel.Tracer(tracerName).Start(telemetry.Extract(msg.Context(), msg.Metadata), "process "+p.cfg.Topic,
			trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.destination.name", p.cfg.Topic),
				attribute.String("messaging.consumer.group.name", p.cfg.Group),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.String("messaging.destination.partition.id", strconv.Itoa(int(part))),
				attribute.Int64("messaging.kafka.offset", offset))
		}
		o, err := p.op.Apply(mctx, ps.state, msg, offset)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.End()
			return nil, -1, i, err
		}
		traceOutputs(mctx, o)
		span.End()
		outs = append(outs, o...)
		last = offset
	}
	return outs, last, 0, nil
}

// deadLetter sends msg to the input topic's dead-letter topic with cause,
// as the router's messaging.DeadLetter middleware does for Handle.
func (p *Processor[S]) deadLetter(msg *message.Message, cause error) error {
	dl := messaging.DeadLetter(p.pub, p.cfg.Topic, p.logger)(func(*message.Message) ([]*message.Message, error) {
		return nil, cause
	})
	_, err := dl(msg)
	return err
}

// BatchSettings configure Processor.NewBatchConsumer.
type BatchSettings struct {
	// Kafka holds the brokers.
	Kafka config.Kafka
	// MaxRecords is the most records of a partition applied and committed
	// together (>= 1).
	MaxRecords int
	// CommitInterval is the least time between two batches of a
	// partition (messaging.BatchConsumerConfig.CommitInterval); 0: none.
	CommitInterval time.Duration
	// RetryInitial and RetryMax bound the backoff between attempts of a
	// batch that failed transiently (defaults 100 ms and 5 s, the router's
	// Retry).
	RetryInitial, RetryMax time.Duration
}

// NewBatchConsumer returns a messaging.BatchConsumer of the processor's
// group and topic that hands records to HandleBatch. Run it (and the
// processor's Run for ticks) until the service stops.
func (p *Processor[S]) NewBatchConsumer(s BatchSettings, logger *slog.Logger) (*messaging.BatchConsumer, error) {
	if s.RetryInitial <= 0 {
		s.RetryInitial = 100 * time.Millisecond
	}
	if s.RetryMax <= 0 {
		s.RetryMax = 5 * time.Second
	}
	return messaging.NewBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: s.Kafka.Brokers, Group: p.cfg.Group, Topic: p.cfg.Topic, MaxRecords: s.MaxRecords,
		CommitInterval: s.CommitInterval, RetryInitial: s.RetryInitial, RetryMax: s.RetryMax,
	}, p.HandleBatch, logger)
}
