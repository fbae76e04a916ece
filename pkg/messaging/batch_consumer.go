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
// Watermill. (The query service's windows projector introduced this
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
type BatchConsumer struct {
	cfg     BatchConsumerConfig
	handler BatchHandler
	logger  *slog.Logger
	metrics *ConsumerMetrics
	ready   chan struct{}
}

// NewBatchConsumer returns a consumer that hands records to handler. It
// fails on an invalid cfg.
func NewBatchConsumer(cfg BatchConsumerConfig, handler BatchHandler, logger *slog.Logger) (*BatchConsumer, error) {
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
// what is already fetched, and marks a batch's last offset after the
// handler succeeded.
func (h batchClaimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	c := h.c
	ctx := ContextWithConsumer(sess.Context(), c.cfg.Group)
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
		err := c.handle(bctx, msgs)
		span.End()
		if err != nil {
			return nil //nolint:nilerr // only a revoked partition ends the retries; the next owner redoes the batch
		}
		sess.MarkMessage(batch[len(batch)-1], "")
	}
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
// attempts; it returns ctx's error when the partition is revoked first.
// Every record of the batch is counted per attempt, with the attempt's
// time.
func (c *BatchConsumer) handle(ctx context.Context, msgs []*message.Message) error {
	wait := c.cfg.RetryInitial
	for {
		start := time.Now()
		err := c.handler(ctx, msgs)
		d := time.Since(start)
		for _, m := range msgs {
			c.metrics.Record(ctx, m, d, err)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.logger.Warn("batch failed, retrying", "group", c.cfg.Group, "records", len(msgs), "retry_in", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, c.cfg.RetryMax)
	}
}
