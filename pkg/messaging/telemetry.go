package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// MetaCount is the number of events a batch record holds (decimal), set by
// BatchPublisher so that consumers count events without decoding.
const MetaCount = "count"

// InstrumentationName names this package's tracer and meter.
const InstrumentationName = "github.com/streamwatch/streamwatch/pkg/messaging"

// durationBuckets are the bounds, in seconds, of the processing-latency
// histogram: 0.5 ms to 10 s.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// sizeBuckets are the bounds of the events-per-record histograms (the
// collector packs at most DefaultMaxBatch events into a record).
var sizeBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}

// instruments are the pipeline metrics of this package, created from the
// global meter provider (telemetry.Setup installs it; instruments made
// earlier are forwarded to it by the OpenTelemetry API).
type instruments struct {
	consumed      metric.Int64Counter     // records handled, by handler, topic, outcome
	consumedEvts  metric.Int64Counter     // events in those records
	duration      metric.Float64Histogram // handling time, s
	consumedBatch metric.Int64Histogram   // events per consumed record
	produced      metric.Int64Counter     // records handed to the producer, by topic
	producedEvts  metric.Int64Counter     // events published by BatchPublisher
	producedBatch metric.Int64Histogram   // events per published batch record
	deadLetters   metric.Int64Counter     // records sent to a dead-letter topic
}

func newInstruments() (*instruments, error) {
	m := otel.Meter(InstrumentationName)
	var i instruments
	var errs [8]error
	i.consumed, errs[0] = m.Int64Counter("streamwatch.consumer.records", metric.WithUnit("{record}"),
		metric.WithDescription("Kafka records handled by a consumer handler, by outcome (ok, error: nacked for redelivery after retries)"))
	i.consumedEvts, errs[1] = m.Int64Counter("streamwatch.consumer.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events in the records handled (the record's count metadata, 1 for single-item records)"))
	i.duration, errs[2] = m.Float64Histogram("streamwatch.consumer.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to handle one record, retries included"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	i.consumedBatch, errs[3] = m.Int64Histogram("streamwatch.consumer.batch.size", metric.WithUnit("{event}"),
		metric.WithDescription("Events per handled record"), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	i.produced, errs[4] = m.Int64Counter("streamwatch.producer.records", metric.WithUnit("{record}"),
		metric.WithDescription("Records handed to the Kafka producer, by topic"))
	i.producedEvts, errs[5] = m.Int64Counter("streamwatch.producer.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events published in batch records, by topic"))
	i.producedBatch, errs[6] = m.Int64Histogram("streamwatch.producer.batch.size", metric.WithUnit("{event}"),
		metric.WithDescription("Events per published batch record"), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	i.deadLetters, errs[7] = m.Int64Counter("streamwatch.dead_letters", metric.WithUnit("{record}"),
		metric.WithDescription("Poison records sent to a dead-letter topic, by source topic"))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("messaging metrics: %w", err)
	}
	return &i, nil
}

// handlerAttrs are the attribute sets of one handler, computed on its first
// message.
type handlerAttrs struct {
	ok, failed, base metric.MeasurementOption
	handler, topic   string
}

func newHandlerAttrs(handler, topic string) *handlerAttrs {
	base := []attribute.KeyValue{attribute.String("handler", handler), attribute.String("topic", topic)}
	return &handlerAttrs{
		handler: handler, topic: topic,
		base:   metric.WithAttributeSet(attribute.NewSet(base...)),
		ok:     metric.WithAttributeSet(attribute.NewSet(append(base, attribute.String("outcome", "ok"))...)),
		failed: metric.WithAttributeSet(attribute.NewSet(append(base, attribute.String("outcome", "error"))...)),
	}
}

// instrument is the router middleware that traces and measures every
// handled message. It continues the trace of the record (the W3C trace
// context its producer put into the metadata) with a consumer span
// "process <topic>" that the handler sees in msg.Context(), so spans the
// handler starts, and the trace context the stream processor writes into
// its outputs, are children of it. It counts records and events, and
// records the handling time and events per record.
func instrument(ins *instruments) message.HandlerMiddleware {
	tracer := otel.Tracer(InstrumentationName)
	return func(h message.HandlerFunc) message.HandlerFunc {
		var attrs atomic.Pointer[handlerAttrs]
		return func(msg *message.Message) ([]*message.Message, error) {
			a := attrs.Load()
			if a == nil {
				a = newHandlerAttrs(message.HandlerNameFromCtx(msg.Context()), message.SubscribeTopicFromCtx(msg.Context()))
				attrs.Store(a)
			}
			ctx := telemetry.Extract(msg.Context(), msg.Metadata)
			ctx, span := tracer.Start(ctx, "process "+a.topic, trace.WithSpanKind(trace.SpanKindConsumer))
			if span.IsRecording() {
				span.SetAttributes(
					attribute.String("messaging.system", "kafka"),
					attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", a.topic),
					attribute.String("messaging.consumer.group.name", a.handler),
					attribute.String("messaging.message.id", msg.UUID),
				)
				if p, o, ok := Position(msg); ok {
					span.SetAttributes(attribute.String("messaging.destination.partition.id", strconv.Itoa(int(p))),
						attribute.Int64("messaging.kafka.offset", o))
				}
			}
			msg.SetContext(ctx)
			start := time.Now()
			out, err := h(msg)
			ins.record(ctx, a, msg, time.Since(start), err)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
			return out, err
		}
	}
}

// record counts one handled record msg that took d, with outcome ok when
// err is nil.
func (ins *instruments) record(ctx context.Context, a *handlerAttrs, msg *message.Message, d time.Duration, err error) {
	ins.duration.Record(ctx, d.Seconds(), a.base)
	n := int64(1)
	if c := msg.Metadata.Get(MetaCount); c != "" {
		if v, perr := strconv.ParseInt(c, 10, 64); perr == nil && v >= 0 {
			n = v
		}
	}
	ins.consumedEvts.Add(ctx, n, a.base)
	ins.consumedBatch.Record(ctx, n, a.base)
	if err != nil {
		ins.consumed.Add(ctx, 1, a.failed)
	} else {
		ins.consumed.Add(ctx, 1, a.ok)
	}
}

// ConsumerMetrics records, for a consumer that runs outside a Watermill
// router (a batch consumer), what the router's middleware records per
// handled record: streamwatch.consumer.records by outcome,
// streamwatch.consumer.events, streamwatch.consumer.batch.size and
// streamwatch.consumer.process.duration, under a handler (the consumer
// group) and topic. Safe for concurrent use.
type ConsumerMetrics struct {
	ins   *instruments
	attrs *handlerAttrs
}

// NewConsumerMetrics returns the metrics of handler (the consumer group)
// on topic. It fails when the instruments cannot be created.
func NewConsumerMetrics(handler, topic string) (*ConsumerMetrics, error) {
	ins, err := newInstruments()
	if err != nil {
		return nil, err
	}
	return &ConsumerMetrics{ins: ins, attrs: newHandlerAttrs(handler, topic)}, nil
}

// Record counts one handled record msg whose handling took d (for a batch:
// the batch's time, which each of its records waited), with outcome ok
// when err is nil and error otherwise.
func (c *ConsumerMetrics) Record(ctx context.Context, msg *message.Message, d time.Duration, err error) {
	c.ins.record(ctx, c.attrs, msg, d, err)
}

// injectHeaders appends the trace context of msg's context to pm's headers
// (unless the metadata already carries one, as outputs of the stream
// processor do) and counts the record. It allocates nothing for a message
// without a span.
func injectHeaders(msg *message.Message, pm *sarama.ProducerMessage, ins *instruments) {
	if ins != nil {
		ins.produced.Add(msg.Context(), 1, metric.WithAttributes(attribute.String("topic", pm.Topic)))
	}
	if _, ok := msg.Metadata["traceparent"]; ok {
		return
	}
	ctx := msg.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	md := make(map[string]string, 2)
	telemetry.Inject(ctx, md)
	for k, v := range md {
		pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
}

// lagObserver reports consumer lag per group, topic and partition: the
// newest offset of the partition minus the group's committed offset, read
// from the brokers on every collection (scrape).
type lagObserver struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	reg    metric.Registration
}

// ObserveLag registers the gauge streamwatch.consumer.lag (records behind,
// Prometheus streamwatch_consumer_lag{group,topic,partition}) for the
// consumer groups groups, read from the brokers of cfg when metrics are
// collected (a scrape of /metrics asks the brokers; each answer is bounded
// by 5 s). Partitions a group has not committed yet are not reported. The
// returned function releases the Kafka client and the registration.
func ObserveLag(brokers []string, groups []string) (func() error, error) {
	sc := SaramaConfig("streamwatch-lag")
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka lag client: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka lag admin: %w", err)
	}
	lo := &lagObserver{client: client, admin: admin}
	m := otel.Meter(InstrumentationName)
	gauge, err := m.Int64ObservableGauge("streamwatch.consumer.lag", metric.WithUnit("{record}"),
		metric.WithDescription("Records between the newest offset of a partition and the consumer group's committed offset"))
	if err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("lag gauge: %w", err)
	}
	lo.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return lo.observe(groups, func(group, topic string, part int32, lag int64) {
			o.ObserveInt64(gauge, lag, metric.WithAttributes(attribute.String("group", group),
				attribute.String("topic", topic), attribute.String("partition", strconv.Itoa(int(part)))))
		})
	}, gauge)
	if err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("lag callback: %w", err)
	}
	return func() error { return errors.Join(lo.reg.Unregister(), lo.admin.Close()) }, nil
}

func (lo *lagObserver) observe(groups []string, report func(group, topic string, part int32, lag int64)) error {
	var errs []error
	for _, g := range groups {
		resp, err := lo.admin.ListConsumerGroupOffsets(g, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("offsets of group %s: %w", g, err))
			continue
		}
		for topic, parts := range resp.Blocks {
			for part, b := range parts {
				if b == nil || b.Err != sarama.ErrNoError || b.Offset < 0 {
					continue
				}
				newest, err := lo.client.GetOffset(topic, part, sarama.OffsetNewest)
				if err != nil {
					errs = append(errs, fmt.Errorf("newest offset of %s/%d: %w", topic, part, err))
					continue
				}
				report(g, topic, part, max(0, newest-b.Offset))
			}
		}
	}
	return errors.Join(errs...)
}
