package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// DefaultMaxBatch is the most events packed into one batch record.
const DefaultMaxBatch = 500

// MaxRecordBytes bounds the encoded size of one batch record, below Kafka's
// default message.max.bytes (1,048,588 bytes) with room for headers.
const MaxRecordBytes = 900_000

// BatchPublisher packs events into batch records, one or more per target
// partition, so that a synchronous Watermill publisher carries many events
// per broker round trip (ARCHITECTURE.md, "Measured constraints"). Events of
// one entity key go to one partition in the order given. Safe for concurrent
// use.
type BatchPublisher struct {
	pub      message.Publisher
	client   sarama.Client
	maxBatch int

	ins *instruments

	mu         sync.Mutex
	partitions map[string]int32
}

// NewBatchPublisher returns a BatchPublisher that publishes through pub and
// reads partition counts from the brokers in cfg. maxBatch <= 0 means
// DefaultMaxBatch. Close releases the metadata client, not pub.
func NewBatchPublisher(cfg config.Kafka, pub message.Publisher, maxBatch int) (*BatchPublisher, error) {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	ins, err := newInstruments()
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Brokers, SaramaConfig("streamwatch-metadata"))
	if err != nil {
		return nil, fmt.Errorf("kafka metadata client: %w", err)
	}
	return &BatchPublisher{pub: pub, client: client, maxBatch: maxBatch, ins: ins, partitions: map[string]int32{}}, nil
}

// Close releases the metadata client.
func (p *BatchPublisher) Close() error { return p.client.Close() }

// Partitions returns the partition count of topic, cached after the first
// successful lookup.
func (p *BatchPublisher) Partitions(topic string) (int32, error) {
	p.mu.Lock()
	n, ok := p.partitions[topic]
	p.mu.Unlock()
	if ok {
		return n, nil
	}
	ps, err := p.client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	if len(ps) == 0 {
		return 0, fmt.Errorf("topic %s has no partitions", topic)
	}
	n = int32(len(ps))
	p.mu.Lock()
	p.partitions[topic] = n
	p.mu.Unlock()
	return n, nil
}

// PublishEvents publishes evs to topic as batch records (schema
// events.batch.v1) and returns once the broker acknowledged all of them.
// Partitions are written concurrently; within a partition records go out in
// order. On error some records may have been written: the caller retries the
// whole call, and consumers deduplicate by event id. Every record carries
// its event count (MetaCount) and the trace context of ctx, so the spans of
// its consumers continue the caller's trace; published events and events
// per record are counted by topic.
func (p *BatchPublisher) PublishEvents(ctx context.Context, topic string, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	n, err := p.Partitions(topic)
	if err != nil {
		return err
	}
	byPart := make(map[int32][]events.Event)
	for _, e := range evs {
		part := PartitionFor(e.Key, n)
		byPart[part] = append(byPart[part], e)
	}
	g, ctx := errgroup.WithContext(ctx)
	for part, pevs := range byPart {
		g.Go(func() error { return p.PublishPartition(ctx, topic, part, pevs) })
	}
	return g.Wait()
}

// PublishPartition publishes evs, which all belong to partition part of
// topic (PartitionFor of their keys), as batch records of at most maxBatch
// events and MaxRecordBytes bytes, in order, and returns once the broker
// acknowledged all of them; on error some may have been written. It is
// PublishEvents for callers that group events by partition themselves
// (the collector's group commit).
func (p *BatchPublisher) PublishPartition(ctx context.Context, topic string, part int32, evs []events.Event) error {
	for start := 0; start < len(evs); start += p.maxBatch {
		if err := p.publishChunk(ctx, topic, part, evs[start:min(start+p.maxBatch, len(evs))]); err != nil {
			return err
		}
	}
	return nil
}

// publishChunk publishes events as one record, or, when the encoding is
// larger than MaxRecordBytes, as two halves (recursively), in order.
func (p *BatchPublisher) publishChunk(ctx context.Context, topic string, part int32, chunk []events.Event) error {
	payload, err := events.EncodeBatch(chunk)
	if err != nil {
		return err
	}
	if len(payload) > MaxRecordBytes {
		if len(chunk) == 1 {
			return fmt.Errorf("event %s encodes to %d bytes, more than the %d a record may hold", chunk[0].ID, len(payload), MaxRecordBytes)
		}
		half := len(chunk) / 2
		if err := p.publishChunk(ctx, topic, part, chunk[:half]); err != nil {
			return err
		}
		return p.publishChunk(ctx, topic, part, chunk[half:])
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.SetContext(ctx)
	msg.Metadata.Set(MetaSchema, events.BatchSchema)
	msg.Metadata.Set(MetaKey, chunk[0].Key)
	msg.Metadata.Set(MetaPartition, strconv.Itoa(int(part)))
	msg.Metadata.Set(MetaCount, strconv.Itoa(len(chunk)))
	if err := p.pub.Publish(topic, msg); err != nil {
		return fmt.Errorf("publish batch of %d events to %s/%d: %w", len(chunk), topic, part, err)
	}
	attrs := metric.WithAttributes(attribute.String("topic", topic))
	p.ins.producedEvts.Add(ctx, int64(len(chunk)), attrs)
	p.ins.producedBatch.Record(ctx, int64(len(chunk)), attrs)
	return nil
}

// Logger returns a no-op-safe logger: l, or a discarding logger when nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
