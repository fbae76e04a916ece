// Package app holds the detector's use case: evaluate window results
// against threshold rules and publish alert state changes.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/detector/internal/domain/alerting"
	"github.com/streamwatch/streamwatch/services/detector/internal/domain/rule"
)

// Detect is the detector's stream.Operator: one metrics.windows record (one
// metrics.Result or a batch of them, see metrics.DecodeRecord) in, alert
// state changes out on the alerts topic,
// keyed by fingerprint, with the deterministic id fingerprint|starts_at|state.
type Detect struct {
	rules []rule.Threshold
}

var _ stream.Operator[*alerting.State] = (*Detect)(nil)

// NewDetect returns the operator for rules.
func NewDetect(rules []rule.Threshold) *Detect { return &Detect{rules: rules} }

// NewState implements stream.Operator.
func (d *Detect) NewState(int32) *alerting.State { return alerting.NewState() }

// Apply implements stream.Operator. The results of a record are evaluated in
// their order in the record. An undecodable record or an invalid result is
// permanent (the whole record goes to metrics.windows.dlq).
func (d *Detect) Apply(_ context.Context, st *alerting.State, msg *message.Message, _ int64) ([]stream.Output, error) {
	results, err := metrics.DecodeRecord(msg.Metadata.Get(messaging.MetaSchema), msg.Payload)
	if err != nil {
		return nil, messaging.Permanent(err)
	}
	var changes []alerts.Alert
	for i := range results {
		changes = append(changes, st.Evaluate(d.rules, &results[i])...)
	}
	outs := make([]stream.Output, 0, len(changes))
	for i := range changes {
		a := &changes[i]
		b, err := json.Marshal(a)
		if err != nil {
			return nil, messaging.Permanent(fmt.Errorf("encode alert: %w", err))
		}
		outs = append(outs, stream.Output{
			Topic: messaging.TopicAlerts, Key: a.Fingerprint, UUID: a.ID(), Payload: b,
			Metadata: map[string]string{messaging.MetaSchema: alerts.Schema},
		})
	}
	return outs, nil
}

// Tick implements stream.Operator; alert logic is driven by event time only,
// so ticks change nothing.
func (d *Detect) Tick(context.Context, *alerting.State, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}
