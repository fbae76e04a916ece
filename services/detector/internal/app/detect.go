// Package app holds the detector's use cases: evaluate window results and
// raw events against the live rule set (package rules does the evaluation)
// and publish alert state changes.
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
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/stream"
)

// Detect is the detector's stream.Operator on metrics.windows: one record
// (one metrics.Result or a batch of them, see metrics.DecodeRecord) in,
// alert state changes out on the alerts topic, keyed by fingerprint, with
// the deterministic id fingerprint|starts_at|state. It runs threshold,
// change, absence and anomaly rules whose source is windows.
type Detect struct {
	rules *Rules
}

var _ stream.Operator[*WindowsState] = (*Detect)(nil)

// NewDetect returns the operator for the live rule set rs.
func NewDetect(rs *Rules) *Detect { return &Detect{rules: rs} }

// NewState implements stream.Operator: an empty WindowsState, checkpointed
// incrementally when the processor has a stream.DeltaStore.
func (d *Detect) NewState(int32) *WindowsState { return NewWindowsState() }

// Apply implements stream.Operator. The results of a record are evaluated in
// their order in the record, then the watermarks they carry are applied.
// Results of metrics no rule reads are not decoded
// (metrics.DecodeRecordSelect; at a minute boundary most results are
// finals of such metrics): only their shard's watermark is recorded. An
// undecodable record or an invalid result of a metric a rule reads is
// permanent (the whole record goes to metrics.windows.dlq).
func (d *Detect) Apply(_ context.Context, st *WindowsState, msg *message.Message, _ int64) ([]stream.Output, error) {
	set := d.rules.Set()
	results, err := metrics.DecodeRecordSelect(msg.Metadata.Get(messaging.MetaSchema), msg.Payload,
		set.ReadsWindowMetric, st.ObserveWatermark)
	if err != nil {
		return nil, messaging.Permanent(err)
	}
	var changes []alerts.Alert
	for i := range results {
		p := rules.PointFromResult(&results[i])
		changes = append(changes, st.Apply(set, &p)...)
	}
	changes = append(changes, st.Advance(set)...)
	return outputs(changes)
}

// Tick implements stream.Operator; alert logic is driven by event time only,
// so ticks change nothing.
func (d *Detect) Tick(context.Context, *WindowsState, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}

// outputs turns alert state changes into records of the alerts topic.
func outputs(changes []alerts.Alert) ([]stream.Output, error) {
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
