// Package adapters holds the collector's Kafka adapters that are not the
// shared batch publisher: the profile publisher.
package adapters

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/profiles"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
)

// KafkaProfilePublisher publishes profile records to the profiles topic
// through a synchronous Watermill publisher: one Kafka record per profile
// (compaction works per key), keyed "<type>/<id>", a nil value for a
// tombstone. Safe for concurrent use.
type KafkaProfilePublisher struct {
	pub message.Publisher
}

var _ app.ProfilePublisher = (*KafkaProfilePublisher)(nil)

// NewProfilePublisher returns a publisher over pub (messaging.NewPublisher:
// Publish returns after the broker acknowledged every message).
func NewProfilePublisher(pub message.Publisher) *KafkaProfilePublisher {
	return &KafkaProfilePublisher{pub: pub}
}

// PublishProfiles implements app.ProfilePublisher. Records are published in
// order; records of one key keep their order (one partition per key).
func (p *KafkaProfilePublisher) PublishProfiles(ctx context.Context, recs []app.ProfileRecord) error {
	msgs := make([]*message.Message, len(recs))
	for i, r := range recs {
		m := message.NewMessage(watermill.NewUUID(), r.Value)
		m.SetContext(ctx)
		m.Metadata.Set(messaging.MetaKey, r.Key)
		if r.Value != nil {
			m.Metadata.Set(messaging.MetaSchema, profiles.Schema)
		}
		msgs[i] = m
	}
	if err := p.pub.Publish(app.ProfileTopic, msgs...); err != nil {
		return fmt.Errorf("publish profiles: %w", err)
	}
	return nil
}
