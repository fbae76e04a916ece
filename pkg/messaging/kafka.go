package messaging

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/logging"
)

// explicitPartition marks a ProducerMessage whose Partition field is set.
type explicitPartition struct{}

// Marshaler is Watermill-Kafka's default marshaler (UUID and metadata as
// headers) plus the record key from MetaKey, an explicit partition from
// MetaPartition, and the W3C trace context of the message's context as
// headers (traceparent, tracestate) unless the metadata already has one.
// Consumers find those headers in the metadata (see the router's tracing
// middleware). The zero value counts nothing; NewPublisher's counts the
// records it marshals (streamwatch.producer.records).
type Marshaler struct {
	kafka.DefaultMarshaler
	ins *instruments
}

// Marshal implements kafka.Marshaler. It fails when MetaPartition is not a
// non-negative integer.
func (m Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	pm, err := m.DefaultMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	injectHeaders(msg, pm, m.ins)
	if k := msg.Metadata.Get(MetaKey); k != "" {
		pm.Key = sarama.StringEncoder(k)
	}
	if p := msg.Metadata.Get(MetaPartition); p != "" {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("metadata %s=%q: not a partition number", MetaPartition, p)
		}
		pm.Partition = int32(n)
		pm.Metadata = explicitPartition{}
	}
	return pm, nil
}

// partitioner uses the explicit partition when the marshaler set one, and
// otherwise PartitionFor(key).
type partitioner struct{}

func newPartitioner(string) sarama.Partitioner { return partitioner{} }

func (partitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if _, ok := m.Metadata.(explicitPartition); ok {
		if m.Partition >= n {
			return 0, fmt.Errorf("partition %d out of range: topic %s has %d", m.Partition, m.Topic, n)
		}
		return m.Partition, nil
	}
	if m.Key == nil {
		return 0, nil
	}
	k, err := m.Key.Encode()
	if err != nil {
		return 0, err
	}
	return PartitionFor(string(k), n), nil
}

func (partitioner) RequiresConsistency() bool { return true }

// PartitionFor maps a key to a partition in [0, n): FNV-1a 32-bit hash
// modulo n, the same function as Sarama's default hash partitioner.
func PartitionFor(key string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

// SaramaConfig returns the Sarama settings shared by publishers and
// subscribers: Kafka 2.1 protocol, acks from all in-sync replicas, our
// partitioner, oldest offset for new consumer groups.
func SaramaConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = sarama.V2_1_0_0
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Producer.MaxMessageBytes = 8 << 20
	c.Producer.Partitioner = newPartitioner
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	// The JoinGroup response may take up to the rebalance timeout, and
	// Sarama reads it under Net.ReadTimeout (30 s): with the default 60 s
	// rebalance timeout a rebalance that waits for a killed member times
	// out, rejoins and loops forever (IBM/sarama#2820; seen on the embedded
	// broker when an aggregator instance is killed while another runs).
	c.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	c.Consumer.Fetch.Default = 4 << 20
	return c
}

// NewPublisher returns a synchronous Watermill Kafka publisher: Publish
// returns after the broker acknowledged every message. Every record carries
// the trace context of its message's context (Marshaler) and is counted.
// Safe for concurrent use. The caller closes it.
func NewPublisher(cfg config.Kafka, clientID string, logger *slog.Logger) (*kafka.Publisher, error) {
	ins, err := newInstruments()
	if err != nil {
		return nil, err
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               cfg.Brokers,
		Marshaler:             Marshaler{ins: ins},
		OverwriteSaramaConfig: SaramaConfig(clientID),
	}, logging.Watermill(logger))
	if err != nil {
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	return pub, nil
}

// NewSubscriber returns a Watermill Kafka subscriber in consumer group
// group. It delivers one message at a time per partition and waits for its
// Ack; Ack marks the offset for commit, Nack redelivers after 100 ms. The
// message context carries the partition and offset (see Position).
//
// Warning: the group is the consumer group; renaming it re-consumes the
// topic from the oldest offset.
func NewSubscriber(cfg config.Kafka, group string, logger *slog.Logger) (*kafka.Subscriber, error) {
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           Marshaler{},
		OverwriteSaramaConfig: SaramaConfig(group),
		ConsumerGroup:         group,
		NackResendSleep:       100 * time.Millisecond,
		ReconnectRetrySleep:   time.Second,
	}, logging.Watermill(logger))
	if err != nil {
		return nil, fmt.Errorf("kafka subscriber %s: %w", group, err)
	}
	return sub, nil
}

// Position returns the Kafka partition and offset of a consumed message; ok
// is false for messages that did not come from the Kafka subscriber.
func Position(msg *message.Message) (partition int32, offset int64, ok bool) {
	if pos, ok := msg.Context().Value(positionKey{}).(position); ok {
		return pos.partition, pos.offset, true
	}
	p, ok1 := kafka.MessagePartitionFromCtx(msg.Context())
	o, ok2 := kafka.MessagePartitionOffsetFromCtx(msg.Context())
	return p, o, ok1 && ok2
}

type positionKey struct{}

type position struct {
	partition int32
	offset    int64
}

// ContextWithPosition returns ctx carrying a Kafka partition and offset that
// Position reports. It is for transports other than the Kafka subscriber and
// for tests that drive handlers directly.
func ContextWithPosition(ctx context.Context, partition int32, offset int64) context.Context {
	return context.WithValue(ctx, positionKey{}, position{partition, offset})
}
