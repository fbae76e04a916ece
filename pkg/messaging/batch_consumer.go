package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// BatchHandler handles records of one partition that were waiting
// together, in offset order. It returns nil once the effect of every
// record is durable (it dead-letters poison records itself); any error is
// transient, and the same records are handed to it again. ctx ends when
// the partition is revoked (a rebalance or shutdown).
type BatchHandler func(ctx context.Context, msgs []*message.Message) error

// Pending waits until the effect of a batch that a PipelinedBatchHandler
// applied is durable: nil once it is, an error when it cannot be (the
// consumer then applies the batch again), ctx's error when ctx ends first.
type Pending = func(ctx context.Context) error

// PipelinedBatchHandler applies records of one partition that were waiting
// together, in offset order, and returns without waiting for the part of
// their effect that takes long to become durable (a grouped ClickHouse
// insert): the returned Pending (nil: already durable) waits for it. An
// error means nothing needs waiting for: the same records are handed to it
// again. Applying a batch again, also after later batches, must be
// harmless (idempotent, order-insensitive projections). ctx ends when the
// partition is revoked.
type PipelinedBatchHandler func(ctx context.Context, msgs []*message.Message) (Pending, error)

// BatchConsumerConfig configures a BatchConsumer.
type BatchConsumerConfig struct {
	// Brokers are the Kafka bootstrap brokers (host:port).
	Brokers []string
	// Group is the consumer group (and client id); renaming it re-consumes
	// Topic from the oldest offset.
	Group string
	// Topic is the topic consumed.
	Topic string
	// MaxRecords is the most records handed to the handler at once (>= 1).
	MaxRecords int
	// RetryInitial and RetryMax bound the backoff between attempts of a
	// failed batch (doubling, > 0).
	RetryInitial, RetryMax time.Duration
	// MaxInFlight is the most batches of a partition applied and not yet
	// durable (PipelinedBatchHandler); 0 means 1. A BatchHandler's batches
	// are durable when it returns, so it never has more than one.
	MaxInFlight int
	// CommitInterval is the least time between the starts of two batches
	// of a partition; 0 hands records on as soon as the handler is free.
	// A record that arrives sooner waits, with the records that follow it,
	// until the interval has passed since the last batch started or
	// MaxRecords are waiting. Under a steady trickle (a consumer that keeps
	// up) one handler call, and so one state commit, then serves the
	// records of an interval instead of one each; a record that arrives
	// after a quiet interval, or behind a backlog, does not wait. It adds
	// at most this much latency. Kafka Streams' commit.interval.ms (100 ms
	// under exactly-once) bounds commits the same way.
	CommitInterval time.Duration

	_ struct{}
}

// Validate reports every invalid setting.
func (c BatchConsumerConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 || c.Group == "" || c.Topic == "" {
		errs = append(errs, errors.New("brokers, group and topic are required"))
	}
	if c.MaxRecords < 1 {
		errs = append(errs, fmt.Errorf("max records %d < 1", c.MaxRecords))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight %d < 0", c.MaxInFlight))
	}
	if c.CommitInterval < 0 {
		errs = append(errs, fmt.Errorf("commit interval %s < 0", c.CommitInterval))
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry backoff %s..%s: must be positive and ordered", c.RetryInitial, c.RetryMax))
	}
	return errors.Join(errs...)
}

// BatchConsumer consumes a topic in a Kafka consumer group and hands each
// partition's waiting records to a BatchHandler together, up to
// MaxRecords: when a consumer falls behind (a burst), one state commit and
// one produce round serve many records, so it catches up instead of
// paying a round of writes per record, as behind a Watermill subscriber
// (which hands one message per partition and waits for its ack). With no
// backlog a batch is the one record that arrived, so latency is as with
// Watermill, unless CommitInterval has the records of an interval wait
// for each other. (The query service's windows projector introduced this
// consumer; this is its shared form.)
//
// Exactly-once effect as with the Watermill router: a batch's offsets are
// marked for commit only after the handler returned nil (its effect is
// durable), so a crash or a rebalance redelivers at most the batch in
// progress, which the handler absorbs (pkg/stream skips records at or
// below its checkpoint). Records are converted with Marshaler (metadata
// and trace context from the headers) and carry their position (Position)
// and the group as consumer name (DeadLetter records it); a batch is one
// consumer span linked to the records' producer spans, and every record is
// counted in the consumer metrics the router keeps (streamwatch.consumer.*,
// handler = the group). Run it once.
//
// With a PipelinedBatchHandler (NewPipelinedBatchConsumer) the next batch
// is applied while earlier ones are still becoming durable, up to
// MaxInFlight per partition, and offsets are marked in order as the
// batches become durable: the fast part of a projection (the query
// service's live view) does not wait for the slow one (a ClickHouse insert
// grouped over a second).
type BatchConsumer struct {
	cfg     BatchConsumerConfig
	handler PipelinedBatchHandler
	logger  *slog.Logger
	metrics *ConsumerMetrics
	ready   chan struct{}
}

// NewBatchConsumer returns a consumer that hands records to handler. It
// fails on an invalid cfg.
func NewBatchConsumer(cfg BatchConsumerConfig, handler BatchHandler, logger *slog.Logger) (*BatchConsumer, error) {
	return NewPipelinedBatchConsumer(cfg, func(ctx context.Context, msgs []*message.Message) (Pending, error) {
		return nil, handler(ctx, msgs)
	}, logger)
}

// NewPipelinedBatchConsumer returns a consumer that hands records to
// handler and marks a batch's offsets once its Pending returned nil, in
// offset order. It fails on an invalid cfg.
func NewPipelinedBatchConsumer(cfg BatchConsumerConfig, handler PipelinedBatchHandler, logger *slog.Logger) (*BatchConsumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batch consumer %s: %w", cfg.Group, err)
	}
	m, err := NewConsumerMetrics(cfg.Group, cfg.Topic)
	if err != nil {
		return nil, err
	}
	return &BatchConsumer{cfg: cfg, handler: handler, logger: Logger(logger), metrics: m, ready: make(chan struct{})}, nil
}

// Running is closed once Run has created the consumer group (for
// readiness checks).
func (c *BatchConsumer) Running() <-chan struct{} { return c.ready }

// Run consumes until ctx is done, then leaves the group (committing the
// marked offsets) and returns nil. It returns an error when the group
// cannot be created at all.
func (c *BatchConsumer) Run(ctx context.Context) error {
	scfg := SaramaConfig(c.cfg.Group)
	// Fetched records wait here while the handler works on a batch: up to
	// this many records per partition make the next batch.
	scfg.ChannelBufferSize = max(c.cfg.MaxRecords, 256)
	group, err := sarama.NewConsumerGroup(c.cfg.Brokers, c.cfg.Group, scfg)
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", c.cfg.Group, err)
	}
	defer func() {
		if err := group.Close(); err != nil {
			c.logger.Warn("close consumer group", "group", c.cfg.Group, "error", err.Error())
		}
	}()
	go func() {
		for err := range group.Errors() {
			c.logger.Warn("consumer group error", "group", c.cfg.Group, "error", err.Error())
		}
	}()
	close(c.ready)
	h := batchClaimHandler{c: c}
	for ctx.Err() == nil {
		// Consume returns at every rebalance; join again.
		if err := group.Consume(ctx, []string{c.cfg.Topic}, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				break
			}
			c.logger.Warn("consume", "group", c.cfg.Group, "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(c.cfg.RetryInitial):
			}
		}
	}
	return nil
}

type batchClaimHandler struct{ c *BatchConsumer }

func (batchClaimHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (batchClaimHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim hands the partition's records to the handler in batches of
// what is already fetched, and marks a batch's last offset once it is
// durable (after the handler succeeded and its Pending returned nil), in
// order.
func (h batchClaimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	c := h.c
	ctx := ContextWithConsumer(sess.Context(), c.cfg.Group)
	// Applied batches wait here, in offset order, until they are durable;
	// the settling goroutine marks them.
	inflight := make(chan flight, max(c.cfg.MaxInFlight, 1))
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		for f := range inflight {
			if !c.settle(ctx, f) {
				for range inflight { // revoked: the next owner redoes them
				}
				return
			}
			sess.MarkMessage(f.last, "")
		}
	}()
	defer func() {
		close(inflight)
		<-settled
	}()
	var lastStart time.Time // when the previous batch was handed on
	for {
		var batch []*sarama.ConsumerMessage
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batch = append(batch, m)
		}
		if c.cfg.CommitInterval > 0 {
			if wait := c.cfg.CommitInterval - time.Since(lastStart); wait > 0 && len(batch) < c.cfg.MaxRecords {
				if batch = gather(ctx, claim.Messages(), batch, c.cfg.MaxRecords, wait); ctx.Err() != nil {
					return nil
				}
			}
			lastStart = time.Now() // before the drain: a batch starts when its wait ends
		}
	drain:
		for len(batch) < c.cfg.MaxRecords {
			select {
			case m, ok := <-claim.Messages():
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		msgs, links := convertBatch(ctx, batch)
		// One consumer span per batch, linked to the records' producer
		// spans (OpenTelemetry's batch-receiving convention) and a child of
		// the first one.
		parent := ctx
		if len(links) > 0 {
			parent = trace.ContextWithRemoteSpanContext(ctx, links[0].SpanContext)
		}
		bctx, span := otel.Tracer(InstrumentationName).Start(parent, "receive "+c.cfg.Topic,
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
			trace.WithAttributes(attribute.String("messaging.consumer.group.name", c.cfg.Group),
				attribute.Int("messaging.batch.message_count", len(batch)),
				attribute.Int("messaging.destination.partition.id", int(claim.Partition()))))
		pending, err := c.handle(bctx, msgs)
		span.End()
		if err != nil {
			return nil //nolint:nilerr // only a revoked partition ends the retries; the next owner redoes the batch
		}
		select {
		case inflight <- flight{last: batch[len(batch)-1], msgs: msgs, pending: pending}:
		case <-ctx.Done():
			return nil
		}
	}
}

// gather adds the records of in to batch until it holds maxRecords
// records, wait has passed (CommitInterval), in is closed or ctx ends,
// and returns it.
func gather(ctx context.Context, in <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage, maxRecords int, wait time.Duration) []*sarama.ConsumerMessage {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(batch) < maxRecords {
		select {
		case <-ctx.Done():
			return batch
		case <-timer.C:
			return batch
		case m, ok := <-in:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		}
	}
	return batch
}

// flight is a batch applied and waiting to be durable.
type flight struct {
	last    *sarama.ConsumerMessage
	msgs    []*message.Message
	pending Pending
}

// settle waits until f is durable, applying its batch again (with the
// retry backoff) whenever its Pending fails. It returns false when ctx ends
// first.
func (c *BatchConsumer) settle(ctx context.Context, f flight) bool {
	wait := c.cfg.RetryInitial
	for f.pending != nil {
		err := f.pending(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.logger.Warn("batch not durable, applying it again", "group", c.cfg.Group, "records", len(f.msgs), "retry_in", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, c.cfg.RetryMax)
		if f.pending, err = c.handle(ctx, f.msgs); err != nil {
			return false
		}
	}
	return ctx.Err() == nil
}

// convertBatch turns Kafka records into Watermill messages carrying their
// position and ctx's values, and collects the trace contexts they carry as
// span links.
func convertBatch(ctx context.Context, batch []*sarama.ConsumerMessage) ([]*message.Message, []trace.Link) {
	msgs := make([]*message.Message, 0, len(batch))
	var spans []trace.SpanContext
	var um Marshaler
	for _, km := range batch {
		msg, err := um.Unmarshal(km)
		if err != nil { // headers that do not decode: hand the payload on without them
			msg = message.NewMessage("", km.Value)
		}
		if sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), msg.Metadata)); sc.IsValid() {
			spans = append(spans, sc)
		}
		msg.SetContext(ContextWithPosition(ctx, km.Partition, km.Offset))
		msgs = append(msgs, msg)
	}
	return msgs, telemetry.LinksOf(spans)
}

// handle calls the handler until it succeeds, backing off between
// attempts, and returns its Pending; it returns ctx's error when the
// partition is revoked first.
// Every record of the batch is counted per attempt, with the attempt's
// time.
func (c *BatchConsumer) handle(ctx context.Context, msgs []*message.Message) (Pending, error) {
	wait := c.cfg.RetryInitial
	for {
		start := time.Now()
		pending, err := c.handler(ctx, msgs)
		d := time.Since(start)
		for _, m := range msgs {
			c.metrics.Record(ctx, m, d, err)
		}
		if err == nil {
			return pending, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.logger.Warn("batch failed, retrying", "group", c.cfg.Group, "records", len(msgs), "retry_in", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, c.cfg.RetryMax)
	}
}
