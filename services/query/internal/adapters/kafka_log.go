package adapters

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// KafkaLog reads a topic's partitions between explicit offsets, for the
// Kappa replay: unlike a consumer-group subscriber it knows where the log
// ends, so a replay can tell when it has caught up. Safe for sequential
// use; Close it.
type KafkaLog struct {
	client   sarama.Client
	consumer sarama.Consumer
}

// NewKafkaLog connects to cfg.Brokers as clientID.
func NewKafkaLog(cfg config.Kafka, clientID string) (*KafkaLog, error) {
	client, err := sarama.NewClient(cfg.Brokers, messaging.SaramaConfig(clientID))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return &KafkaLog{client: client, consumer: consumer}, nil
}

// Close releases the consumer and the client.
func (l *KafkaLog) Close() error {
	return errors.Join(l.consumer.Close(), l.client.Close())
}

// Offsets returns, per partition of topic, the first offset with a
// timestamp >= atMs (atMs < 0: the oldest offset; no such record: the end).
func (l *KafkaLog) Offsets(topic string, atMs int64) (map[int32]int64, error) {
	return l.offsets(topic, func(p int32) (int64, error) {
		if atMs < 0 {
			return l.client.GetOffset(topic, p, sarama.OffsetOldest)
		}
		off, err := l.client.GetOffset(topic, p, atMs)
		if err == nil && off < 0 { // no record at or after atMs
			return l.client.GetOffset(topic, p, sarama.OffsetNewest)
		}
		return off, err
	})
}

// Ends returns, per partition of topic, the offset the next record will
// get (the high watermark).
func (l *KafkaLog) Ends(topic string) (map[int32]int64, error) {
	return l.offsets(topic, func(p int32) (int64, error) { return l.client.GetOffset(topic, p, sarama.OffsetNewest) })
}

func (l *KafkaLog) offsets(topic string, get func(int32) (int64, error)) (map[int32]int64, error) {
	if err := l.client.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	parts, err := l.client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		off, err := get(p)
		if err != nil {
			return nil, fmt.Errorf("offset of %s/%d: %w", topic, p, err)
		}
		out[p] = off
	}
	return out, nil
}

// Read calls fn, in order, with every record of topic/partition whose
// offset is in [from, to), as a Watermill message (metadata from the
// headers; its context carries ctx and the position, see
// messaging.Position). It stops at the first error of fn.
func (l *KafkaLog) Read(ctx context.Context, topic string, partition int32, from, to int64, fn func(*message.Message) error) error {
	if from >= to {
		return nil
	}
	pc, err := l.consumer.ConsumePartition(topic, partition, from)
	if err != nil {
		return fmt.Errorf("consume %s/%d from %d: %w", topic, partition, from, err)
	}
	defer pc.AsyncClose()
	var unmarshal messaging.Marshaler
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-pc.Errors():
			return fmt.Errorf("read %s/%d: %w", topic, partition, err)
		case rec := <-pc.Messages():
			msg, err := unmarshal.Unmarshal(rec)
			if err != nil {
				return fmt.Errorf("unmarshal %s/%d@%d: %w", topic, partition, rec.Offset, err)
			}
			msg.SetContext(messaging.ContextWithPosition(ctx, partition, rec.Offset))
			if err := fn(msg); err != nil {
				return err
			}
			if rec.Offset >= to-1 {
				return nil
			}
		}
	}
}

// CommitGroup records offsets (the next offset to read, per partition of
// topic) as the committed offsets of consumer group group, so the replay's
// group shows in the broker's group listing where it stopped.
func (l *KafkaLog) CommitGroup(group, topic string, offsets map[int32]int64) error {
	om, err := sarama.NewOffsetManagerFromClient(group, l.client)
	if err != nil {
		return fmt.Errorf("offset manager %s: %w", group, err)
	}
	for p, off := range offsets {
		pom, err := om.ManagePartition(topic, p)
		if err != nil {
			_ = om.Close()
			return fmt.Errorf("offsets of %s/%d: %w", topic, p, err)
		}
		pom.MarkOffset(off, "")
		_ = pom.Close()
	}
	om.Commit()
	if err := om.Close(); err != nil {
		return fmt.Errorf("commit offsets of %s: %w", group, err)
	}
	return nil
}
