// Package ports adapts the outside world to the query service's use cases:
// Watermill handlers for the projected Kafka topics and the REST API.
package ports

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
)

// Handler names, which are also the Kafka consumer groups of the
// subscribers that feed them.
//
// Warning: renaming one re-consumes its topic from the oldest offset.
const (
	EventsProjector  = "query.events-projector"
	WindowsProjector = "query.windows-projector"
)

// Projections are the Watermill handlers that keep the query service's
// projections. A handler returns nil only after the record's effect is
// durable (the router then acks it); a messaging.Permanent error for a
// record that can never be applied (DeadLetter sends it to the topic's
// .dlq); any other error is transient and the record is retried. Safe for
// concurrent use by the handlers of several partitions.
type Projections struct {
	app app.Application
}

// NewProjections returns the handlers over a.
func NewProjections(a app.Application) Projections {
	return Projections{app: a}
}

// Register adds both handlers to router: events.raw from eventsSub and
// metrics.windows from windowsSub, whose consumer groups must be
// EventsProjector and WindowsProjector. Each handler gets DeadLetter
// middleware publishing poison records through dlq.
func (p Projections) Register(router *message.Router, eventsSub, windowsSub message.Subscriber, dlq message.Publisher, logger *slog.Logger) {
	router.AddConsumerHandler(EventsProjector, messaging.TopicEventsRaw, eventsSub, p.HandleEventsRaw).
		AddMiddleware(messaging.DeadLetter(dlq, messaging.TopicEventsRaw, logger))
	router.AddConsumerHandler(WindowsProjector, messaging.TopicMetricsWindows, windowsSub, p.HandleMetricsWindow).
		AddMiddleware(messaging.DeadLetter(dlq, messaging.TopicMetricsWindows, logger))
}

// HandleEventsRaw projects one events.raw record (a batch, schema
// events.batch.v1) into the events table with one insert. A record with
// another schema or that does not decode is permanent; a failed insert is
// transient.
func (p Projections) HandleEventsRaw(msg *message.Message) error {
	if err := checkSchema(msg, events.BatchSchema); err != nil {
		return err
	}
	evs, err := events.DecodeBatch(msg.Payload)
	if err != nil {
		return messaging.Permanent(fmt.Errorf("events.raw record %s: %w", msg.UUID, err))
	}
	return p.app.Commands.ProjectEvents.Handle(msg.Context(), evs)
}

// HandleMetricsWindow projects one metrics.windows record (one result,
// schema metrics.window.v1, or a batch, metrics.windows.batch.v1; decoded
// by metrics.DecodeRecord) into metric_windows with the record's results in
// one insert, and into the live view. A record that does not decode or
// holds an invalid result is permanent; a failed write is transient.
func (p Projections) HandleMetricsWindow(msg *message.Message) error {
	rs, err := metrics.DecodeRecord(msg.Metadata.Get(messaging.MetaSchema), msg.Payload)
	if err != nil {
		return messaging.Permanent(fmt.Errorf("metrics.windows record %s: %w", msg.UUID, err))
	}
	err = p.app.Commands.ProjectWindow.Handle(msg.Context(), rs)
	if errors.Is(err, metrics.ErrInvalidResult) {
		return messaging.Permanent(fmt.Errorf("metrics.windows record %s: %w", msg.UUID, err))
	}
	return err
}

// checkSchema accepts a record whose schema metadata is want or absent
// (producers before the metadata existed); anything else is permanent.
func checkSchema(msg *message.Message, want string) error {
	if got := msg.Metadata.Get(messaging.MetaSchema); got != "" && got != want {
		return messaging.Permanent(fmt.Errorf("record %s: schema %q, this build reads %q", msg.UUID, got, want))
	}
	return nil
}
