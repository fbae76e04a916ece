// Package adapters connects the detector to the rules topic.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/IBM/sarama"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

// RulesConsumer reads the whole rules topic from its oldest offset on every
// partition without a consumer group (every detector instance needs every
// rule), and keeps following it.
type RulesConsumer struct {
	cfg    config.Kafka
	topic  string
	apply  func(rules.Change) error
	logger *slog.Logger
}

// NewRulesConsumer returns a consumer of topic that passes every valid
// change to apply. Invalid records and refused changes are logged and
// skipped: one bad rule must not stop detection.
func NewRulesConsumer(cfg config.Kafka, topic string, apply func(rules.Change) error, logger *slog.Logger) *RulesConsumer {
	return &RulesConsumer{cfg: cfg, topic: topic, apply: apply, logger: logger}
}

type record struct {
	partition int32
	offset    int64
	value     []byte
}

// Run consumes until ctx is done. It closes loaded once every record that
// was on the topic when Run started has been applied. It returns nil when
// ctx ends, or the error that stopped it.
func (c *RulesConsumer) Run(ctx context.Context, loaded chan<- struct{}) error {
	client, err := sarama.NewClient(c.cfg.Brokers, messaging.SaramaConfig("detector-rules"))
	if err != nil {
		return fmt.Errorf("rules topic client: %w", err)
	}
	defer client.Close()
	parts, err := client.Partitions(c.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", c.topic, err)
	}
	pending := map[int32]int64{} // partition -> end offset at start
	for _, p := range parts {
		end, err := client.GetOffset(c.topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("end offset of %s/%d: %w", c.topic, p, err)
		}
		oldest, err := client.GetOffset(c.topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("oldest offset of %s/%d: %w", c.topic, p, err)
		}
		if end > oldest {
			pending[p] = end
		}
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("rules topic consumer: %w", err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recs := make(chan record)
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(c.topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", c.topic, p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			perrs := pc.Errors()
			for {
				select {
				case <-ctx.Done():
					return
				case m, ok := <-pc.Messages():
					if !ok {
						if ctx.Err() == nil {
							errs <- fmt.Errorf("partition %d: consumer closed", p)
						}
						return
					}
					select {
					case recs <- record{partition: m.Partition, offset: m.Offset, value: m.Value}:
					case <-ctx.Done():
						return
					}
				case e, ok := <-perrs:
					// Sarama reports a lost broker connection here and
					// goes on by itself (it re-dispatches the partition
					// to the current leader with backoff), so an error is
					// logged, not fatal: returning it stopped the whole
					// detector when the broker restarted (fault suite).
					// A partition consumer that gives up closes Messages.
					if !ok {
						perrs = nil
						continue
					}
					c.logger.Warn("rules topic consumer error, retrying", "topic", c.topic, "partition", p, "error", e.Error())
				}
			}
		}()
	}
	defer wg.Wait()
	done := false
	signal := func() {
		if !done && len(pending) == 0 {
			done = true
			close(loaded)
		}
	}
	signal()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("rules topic: %w", err)
		case r := <-recs:
			c.handle(r)
			if end, ok := pending[r.partition]; ok && r.offset+1 >= end {
				delete(pending, r.partition)
			}
			signal()
		}
	}
}

func (c *RulesConsumer) handle(r record) {
	ch, err := rules.DecodeChange(r.value)
	if err == nil {
		err = c.apply(ch)
	}
	if err != nil {
		c.logger.Warn("rule change skipped", "topic", c.topic, "partition", r.partition, "offset", r.offset,
			"error", err.Error(), "permanent", errors.Is(err, rules.ErrBadChange))
		return
	}
	c.logger.Info("rule change applied", "id", ch.ID, "op", ch.Op, "offset", r.offset)
}
