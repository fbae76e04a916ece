package service

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// instrumentationName names the notifier's tracer and meter.
const instrumentationName = "github.com/streamwatch/streamwatch/services/notifier"

// outcomePublisher counts the notification outcome records it publishes
// (streamwatch.notifier.outcomes by kind and integration: sent, retried,
// failed, silenced, inhibited, muted) and passes every message on. A
// record re-published from an outbox after a crash counts again.
type outcomePublisher struct {
	message.Publisher
	outcomes metric.Int64Counter
}

func newOutcomePublisher(pub message.Publisher) (*outcomePublisher, error) {
	c, err := otel.Meter(instrumentationName).Int64Counter("streamwatch.notifier.outcomes", metric.WithUnit("{notification}"),
		metric.WithDescription("Notification outcomes published to the notifications topic, by kind and integration"))
	if err != nil {
		return nil, fmt.Errorf("outcome counter: %w", err)
	}
	return &outcomePublisher{Publisher: pub, outcomes: c}, nil
}

// Publish implements message.Publisher.
func (p *outcomePublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	if topic == messaging.TopicNotifications {
		for _, m := range msgs {
			p.count(m)
		}
	}
	return nil
}

// PublishRouted implements stream.RoutedPublisher: messages of several
// topics in one round when the wrapped publisher can (messaging.Producer),
// else one Publish per message.
func (p *outcomePublisher) PublishRouted(rs []messaging.Routed) error {
	if rp, ok := p.Publisher.(stream.RoutedPublisher); ok {
		if err := rp.PublishRouted(rs); err != nil {
			return err
		}
	} else {
		for _, r := range rs {
			if err := p.Publisher.Publish(r.Topic, r.Msg); err != nil {
				return err
			}
		}
	}
	for _, r := range rs {
		if r.Topic == messaging.TopicNotifications {
			p.count(r.Msg)
		}
	}
	return nil
}

// count counts the outcome record m.
func (p *outcomePublisher) count(m *message.Message) {
	var oc dispatch.Outcome
	if json.Unmarshal(m.Payload, &oc) != nil {
		return
	}
	p.outcomes.Add(m.Context(), 1, metric.WithAttributes(attribute.String("kind", oc.Kind),
		attribute.String("integration", oc.Integration), attribute.String("receiver", oc.Receiver)))
}

// tracedIntegration makes every delivery attempt a client span "notify
// <integration>" (the HTTP call of webhook, Slack and DingTalk integrations
// is a child span through their otelhttp transport; an email attempt is this
// span alone) in the trace of the delivery record.
type tracedIntegration struct {
	name   string
	next   app.Integration
	tracer trace.Tracer
}

var _ app.Integration = tracedIntegration{}

// Notify implements app.Integration.
func (t tracedIntegration) Notify(ctx context.Context, n dispatch.Notification) error {
	ctx, span := t.tracer.Start(ctx, "notify "+t.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("streamwatch.integration", t.name)))
	defer span.End()
	err := t.next.Notify(ctx, n)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// traced wraps every built integration in a tracedIntegration.
func traced(built []Built) {
	tracer := otel.Tracer(instrumentationName)
	for i := range built {
		built[i].Target = tracedIntegration{name: built[i].Ref.Name, next: built[i].Target, tracer: tracer}
	}
}

// groups returns the consumer groups of the notifier for the lag gauge.
func groups(built []Built) []string {
	gs := []string{Group, GroupSilences, GroupAcks, GroupDispatch}
	for _, b := range built {
		gs = append(gs, deliverGroup(b.Ref.Name))
	}
	return gs
}
