// Package profilestream feeds the aggregator's profiles table
// (domain/join) from the compacted profiles topic: every instance reads
// every partition from the oldest offset, outside any consumer group, as
// Kafka Streams restores a GlobalKTable. It also answers the topic's end
// offsets for the join's catch-up barrier.
//
// The loader reads with Sarama's partition consumer (the client
// Watermill-Kafka wraps) rather than a Watermill subscriber: restoring a
// table is a bulk read that commits nothing, and Watermill's one message
// at a time with an ack each rebuilt a 400,000-profile table at ~8,000
// records/s on the shared machine. Records that are no valid profile are
// still dead-lettered through Watermill (profiles.dlq).
package profilestream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
)

// Loader applies every record of the profiles topic to a join.Table. Create
// it with New, run it with Run, release it with Close.
type Loader struct {
	table    *join.Table
	client   sarama.Client
	consumer sarama.Consumer
	pub      *kafka.Publisher
	logger   *slog.Logger
}

var _ join.HighWatermarks = (*Loader)(nil)

// New connects to cfg's brokers, with a Watermill publisher of its own for
// dead letters. A nil logger discards. The caller calls Close.
func New(cfg config.Kafka, table *join.Table, logger *slog.Logger) (*Loader, error) {
	logger = messaging.Logger(logger)
	client, err := sarama.NewClient(cfg.Brokers, messaging.SaramaConfig("streamwatch-aggregator-profiles"))
	if err != nil {
		return nil, fmt.Errorf("profiles client: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("profiles consumer: %w", err)
	}
	pub, err := messaging.NewPublisher(cfg, "streamwatch-aggregator-profiles-dlq", logger)
	if err != nil {
		_ = consumer.Close()
		_ = client.Close()
		return nil, err
	}
	return &Loader{table: table, client: client, consumer: consumer, pub: pub, logger: logger}, nil
}

// Run reads every partition of the profiles topic from the oldest offset
// into the table until ctx is done (partitions added later are not read
// until the next start). It logs once when the table has caught up with
// the end offsets of the start, with its size and the time it took.
// Invalid records are dead-lettered and skipped; consumer errors are
// logged (Sarama retries). It returns nil after ctx is done, or the error
// that kept it from starting.
func (l *Loader) Run(ctx context.Context) error {
	parts, err := l.client.Partitions(messaging.TopicProfiles)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", messaging.TopicProfiles, err)
	}
	var pcs []sarama.PartitionConsumer
	defer func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
	}()
	for _, p := range parts {
		pc, err := l.consumer.ConsumePartition(messaging.TopicProfiles, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", messaging.TopicProfiles, p, err)
		}
		pcs = append(pcs, pc)
	}
	go l.logCatchUp(ctx)
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Go(func() { l.consume(ctx, pc) })
	}
	wg.Wait()
	return nil
}

func (l *Loader) consume(ctx context.Context, pc sarama.PartitionConsumer) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-pc.Messages():
			if !ok {
				return
			}
			if err := l.table.Apply(m.Partition, m.Offset, string(m.Key), m.Value); err != nil {
				l.deadLetter(ctx, m, err)
			}
		case err, ok := <-pc.Errors():
			if ok {
				l.logger.Warn("profiles consumer", "error", err.Error())
			}
		}
	}
}

// deadLetter publishes a record the table refused to profiles.dlq with the
// error and its position, as messaging.DeadLetter does for handlers. A
// failed publish is logged: the table has skipped the record either way.
func (l *Loader) deadLetter(ctx context.Context, m *sarama.ConsumerMessage, cause error) {
	msg := message.NewMessage(watermill.NewUUID(), m.Value)
	msg.SetContext(ctx)
	msg.Metadata.Set(messaging.MetaKey, string(m.Key))
	msg.Metadata.Set(messaging.MetaError, cause.Error())
	msg.Metadata.Set(messaging.MetaSourceTopic, messaging.TopicProfiles)
	msg.Metadata.Set(messaging.MetaSourcePartition, strconv.Itoa(int(m.Partition)))
	msg.Metadata.Set(messaging.MetaSourceOffset, strconv.FormatInt(m.Offset, 10))
	if err := l.pub.Publish(messaging.DLQ(messaging.TopicProfiles), msg); err != nil {
		l.logger.Error("profiles record not dead-lettered", "error", err.Error(), "cause", cause.Error())
		return
	}
	l.logger.Warn("record sent to dead-letter topic", "topic", messaging.TopicProfiles, "dlq", messaging.DLQ(messaging.TopicProfiles), "error", cause.Error())
}

func (l *Loader) logCatchUp(ctx context.Context) {
	start := time.Now()
	end, err := l.HighWatermarks(ctx)
	if err != nil {
		l.logger.Warn("profiles table: end offsets unknown", "error", err.Error())
		return
	}
	if err := l.table.WaitFor(ctx, end); err != nil {
		return
	}
	st := l.table.Stats()
	l.logger.Info("profiles table caught up", "entries", st.Entries, "users", st.Users, "products", st.Products,
		"services", st.Services, "bytes", st.Bytes, "overflow", st.Overflow, "records", st.Records,
		"duration", time.Since(start).String())
}

// HighWatermarks implements join.HighWatermarks: the end offset of every
// partition of the profiles topic, from the partition leaders. It fails
// when ctx is done first.
func (l *Loader) HighWatermarks(ctx context.Context) (map[int32]int64, error) {
	type result struct {
		end map[int32]int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		if err := l.client.RefreshMetadata(messaging.TopicProfiles); err != nil {
			done <- result{err: fmt.Errorf("metadata of %s: %w", messaging.TopicProfiles, err)}
			return
		}
		parts, err := l.client.Partitions(messaging.TopicProfiles)
		if err != nil {
			done <- result{err: fmt.Errorf("partitions of %s: %w", messaging.TopicProfiles, err)}
			return
		}
		end := make(map[int32]int64, len(parts))
		for _, p := range parts {
			if end[p], err = l.client.GetOffset(messaging.TopicProfiles, p, sarama.OffsetNewest); err != nil {
				done <- result{err: fmt.Errorf("end offset of %s/%d: %w", messaging.TopicProfiles, p, err)}
				return
			}
		}
		done <- result{end: end}
	}()
	select {
	case r := <-done:
		return r.end, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("end offsets of %s: %w", messaging.TopicProfiles, ctx.Err())
	}
}

// Close releases the Kafka clients. Call it after Run returned (or when
// Run was never called).
func (l *Loader) Close() error {
	return errors.Join(l.consumer.Close(), l.pub.Close(), l.client.Close())
}
