package app

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/stream"
)

// EventsState is the detector's state for one events.raw partition:
// pattern and event absence state, and the metric state of sample rules.
type EventsState struct {
	Patterns *rules.EventState  `json:"patterns"`
	Samples  *rules.MetricState `json:"samples"`
}

// DetectEvents is the detector's stream.Operator on events.raw: patterns
// (sequence, repetition, negation) and event absence per entity, and
// threshold, change, absence and anomaly rules on metric_sample events.
// The partition's watermark is its largest event time minus
// OutOfOrderness; it only moves with events (never with the wall clock).
type DetectEvents struct {
	rules          *Rules
	outOfOrderness int64
}

var _ stream.Operator[*EventsState] = (*DetectEvents)(nil)

// NewDetectEvents returns the operator for the live rule set rs;
// outOfOrderness delays decisions that wait for the watermark (negation,
// absence, sample alert resolution).
func NewDetectEvents(rs *Rules, outOfOrderness time.Duration) *DetectEvents {
	return &DetectEvents{rules: rs, outOfOrderness: outOfOrderness.Milliseconds()}
}

// NewState implements stream.Operator.
func (d *DetectEvents) NewState(int32) *EventsState {
	return &EventsState{Patterns: rules.NewEventState(), Samples: rules.NewMetricState()}
}

// Apply implements stream.Operator: the events of one batch record in
// order, then the watermark. An undecodable batch is permanent.
func (d *DetectEvents) Apply(_ context.Context, st *EventsState, msg *message.Message, _ int64) ([]stream.Output, error) {
	evs, err := events.DecodeBatch(msg.Payload)
	if err != nil {
		return nil, messaging.Permanent(err)
	}
	part, _, ok := messaging.Position(msg)
	if !ok {
		return nil, messaging.Permanent(errors.New("message has no Kafka partition"))
	}
	set := d.rules.Set()
	var changes []alerts.Alert
	for i := range evs {
		e := &evs[i]
		changes = append(changes, st.Patterns.Apply(set, e)...)
		if e.Type == events.TypeMetricSample {
			p := rules.Point{
				Source: rules.SourceSamples, Metric: e.Series, Labels: e.Labels, Start: e.Time, End: e.Time,
				Value: e.Value, Shard: part, Watermark: st.Patterns.MaxTime - d.outOfOrderness,
			}
			changes = append(changes, st.Samples.Apply(set, &p)...)
		}
	}
	changes = append(changes, st.Patterns.Advance(set, d.outOfOrderness)...)
	changes = append(changes, st.Samples.Advance(set)...)
	return outputs(changes)
}

// Tick implements stream.Operator; nothing happens on processing time.
func (d *DetectEvents) Tick(context.Context, *EventsState, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}
