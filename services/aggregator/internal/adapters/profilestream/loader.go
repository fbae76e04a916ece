// Package profilestream feeds the aggregator's profiles table
// (domain/join) from the compacted profiles topic: every instance reads
// every partition from the oldest offset, outside any consumer group, as
// Kafka Streams restores a GlobalKTable. It also answers the topic's end
// offsets for the join's catch-up barrier.
package profilestream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/logging"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
)

// HandlerName names the loader's Watermill handler (in logs, metrics and
// the dead-letter metadata). It is no consumer group: the loader commits
// no offsets and re-reads the whole topic on every start.
const HandlerName = "aggregator.profiles"

// Loader applies every record of the profiles topic to a join.Table. Create
// it with New, run it with Run, release it with Close.
type Loader struct {
	table  *join.Table
	sub    *kafka.Subscriber
	client sarama.Client
	pub    *kafka.Publisher
	logger *slog.Logger
}

var _ join.HighWatermarks = (*Loader)(nil)

// New connects to cfg's brokers, with a publisher of its own for dead
// letters (records that are no valid profile go to profiles.dlq). A nil
// logger discards. The caller calls Close.
func New(cfg config.Kafka, table *join.Table, logger *slog.Logger) (*Loader, error) {
	logger = messaging.Logger(logger)
	pub, err := messaging.NewPublisher(cfg, "streamwatch-aggregator-profiles", logger)
	if err != nil {
		return nil, err
	}
	sc := messaging.SaramaConfig("streamwatch-aggregator-profiles")
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           messaging.Marshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         "", // every partition, from the oldest offset
		NackResendSleep:       100 * time.Millisecond,
		ReconnectRetrySleep:   time.Second,
	}, logging.Watermill(logger))
	if err != nil {
		_ = pub.Close()
		return nil, fmt.Errorf("profiles subscriber: %w", err)
	}
	client, err := sarama.NewClient(cfg.Brokers, messaging.SaramaConfig("streamwatch-aggregator-profiles-offsets"))
	if err != nil {
		_ = sub.Close()
		_ = pub.Close()
		return nil, fmt.Errorf("profiles offsets client: %w", err)
	}
	return &Loader{table: table, sub: sub, client: client, pub: pub, logger: logger}, nil
}

// Run consumes the profiles topic into the table until ctx is done; it
// logs once when the table has caught up with the end offsets of the start
// (with its size). Invalid records are dead-lettered and skipped. It
// returns nil after ctx is done, or the error that stopped the router.
func (l *Loader) Run(ctx context.Context) error {
	router, err := messaging.NewRouter(l.logger)
	if err != nil {
		return err
	}
	h := router.AddConsumerHandler(HandlerName, messaging.TopicProfiles, l.sub, l.handle)
	h.AddMiddleware(messaging.DeadLetter(l.pub, messaging.TopicProfiles, l.logger))

	go l.logCatchUp(ctx)
	if err := router.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("profiles loader: %w", err)
	}
	return nil
}

func (l *Loader) handle(msg *message.Message) error {
	part, offset, ok := messaging.Position(msg)
	if !ok {
		return messaging.Permanent(errors.New("profiles record without a Kafka position"))
	}
	key := msg.Metadata.Get(messaging.MetaKey)
	if k, ok := kafka.MessageKeyFromCtx(msg.Context()); ok && len(k) > 0 {
		key = string(k) // the Kafka record key wins over the header
	}
	if err := l.table.Apply(part, offset, key, msg.Payload); err != nil {
		return messaging.Permanent(err)
	}
	return nil
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
		"services", st.Services, "bytes", st.Bytes, "overflow", st.Overflow, "duration", time.Since(start).String())
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
	return errors.Join(l.sub.Close(), l.client.Close(), l.pub.Close())
}
