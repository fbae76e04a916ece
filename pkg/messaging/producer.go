package messaging

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/config"
)

// Routed is a message and the topic it goes to.
type Routed struct {
	Topic string
	Msg   *message.Message
}

// Producer is a synchronous Kafka publisher that sends all the messages of
// one call together: they are marshaled as NewPublisher's are (Marshaler:
// key, explicit partition, trace context, counted), handed to the producer
// at once, and the call returns when the broker acknowledged every one of
// them. So n messages cost about one produce round trip instead of n, as
// with watermill-kafka's Publisher, which waits for each message's ack
// before sending the next.
//
// Order: messages of one call to one partition are written in the order
// given, also across retries (one request in flight per broker,
// Net.MaxOpenRequests = 1, as Sarama requires for strict ordering).
// Messages of different calls made concurrently have no order between
// them. Safe for concurrent use. It implements message.Publisher.
type Producer struct {
	sp    sarama.SyncProducer
	m     Marshaler
	close sync.Once
	err   error
}

var _ message.Publisher = (*Producer)(nil)

// NewProducer returns a Producer on the brokers of cfg, with SaramaConfig's
// settings under clientID. The caller closes it.
func NewProducer(cfg config.Kafka, clientID string) (*Producer, error) {
	ins, err := newInstruments()
	if err != nil {
		return nil, err
	}
	sc := SaramaConfig(clientID)
	sc.Net.MaxOpenRequests = 1
	sp, err := sarama.NewSyncProducer(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{sp: sp, m: Marshaler{ins: ins}}, nil
}

// Publish implements message.Publisher: it sends msgs to topic together
// and returns after all were acknowledged. On error some may have been
// written; the caller publishes them again (deterministic ids make that
// harmless).
func (p *Producer) Publish(topic string, msgs ...*message.Message) error {
	rs := make([]Routed, len(msgs))
	for i, m := range msgs {
		rs[i] = Routed{Topic: topic, Msg: m}
	}
	return p.PublishRouted(rs)
}

// PublishRouted sends every message to its topic together, in the order
// given per partition, and returns after all were acknowledged. Errors are
// as Publish's; a message that fails to marshal fails the call before
// anything is sent.
func (p *Producer) PublishRouted(rs []Routed) error {
	if len(rs) == 0 {
		return nil
	}
	pms := make([]*sarama.ProducerMessage, len(rs))
	for i, r := range rs {
		pm, err := p.m.Marshal(r.Topic, r.Msg)
		if err != nil {
			return fmt.Errorf("marshal message %s for %s: %w", r.Msg.UUID, r.Topic, err)
		}
		pms[i] = pm
	}
	if err := p.sp.SendMessages(pms); err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			return fmt.Errorf("produce %d messages: %d failed, first to %s: %w", len(pms), len(perrs), perrs[0].Msg.Topic, perrs[0].Err)
		}
		return fmt.Errorf("produce %d messages: %w", len(pms), err)
	}
	return nil
}

// Close flushes and closes the producer. Safe to call twice.
func (p *Producer) Close() error {
	p.close.Do(func() {
		if err := p.sp.Close(); err != nil {
			p.err = fmt.Errorf("close kafka producer: %w", err)
		}
	})
	return p.err
}
