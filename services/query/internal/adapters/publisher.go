package adapters

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
)

var _ command.RecordPublisher = RecordPublisher{}

// RecordPublisher publishes admin records through a Watermill publisher
// (Kafka in the service): synchronous, so nil means the broker has it.
type RecordPublisher struct {
	Pub message.Publisher
}

// PublishRecord publishes payload on topic with the record key and schema
// metadata set.
func (p RecordPublisher) PublishRecord(ctx context.Context, topic, key, schema string, payload []byte) error {
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(messaging.MetaKey, key)
	msg.Metadata.Set(messaging.MetaSchema, schema)
	msg.SetContext(ctx)
	if err := p.Pub.Publish(topic, msg); err != nil {
		return fmt.Errorf("publish %s record %s: %w", topic, key, err)
	}
	return nil
}
