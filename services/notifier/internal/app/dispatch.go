package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// IntegrationRef names one integration of a receiver for fan-out.
type IntegrationRef struct {
	// Name is "<receiver>/<kind>/<index>", e.g. "default/webhook/0"; it
	// keys the delivery records and names the delivery consumer group.
	Name string
	// SendResolved: resolved alerts are sent to this integration.
	SendResolved bool
}

// Dispatch is the stream.Operator on the dispatch topic: it applies
// alerts, silences and acks to the dispatch state and turns due
// notifications into delivery records (one per integration, on the
// deliveries topic) and suppressed/muted alerts into outcomes (on the
// notifications topic), all in the operator's outbox, so they are
// published exactly once in effect.
type Dispatch struct {
	d         *dispatch.Dispatcher
	receivers map[string][]IntegrationRef
}

var (
	_ stream.Operator[*dispatch.State] = (*Dispatch)(nil)
	_ stream.DeltaState                = (*dispatch.State)(nil)
	_ stream.SnapshotRestorer          = (*dispatch.State)(nil)
)

// NewDispatch returns the operator; receivers maps receiver names to their
// integrations.
func NewDispatch(d *dispatch.Dispatcher, receivers map[string][]IntegrationRef) *Dispatch {
	return &Dispatch{d: d, receivers: receivers}
}

// NewState implements stream.Operator: an empty state that tracks its
// changes, so the processor checkpoints it incrementally when it has a
// stream.DeltaStore.
func (o *Dispatch) NewState(int32) *dispatch.State {
	st := dispatch.NewState()
	st.TrackChanges()
	return st
}

// Apply implements stream.Operator. Undecodable and invalid records are
// permanent errors (the forwarders validated them, so this means a foreign
// writer): they go to notifier.dispatch.dlq and change nothing.
func (o *Dispatch) Apply(_ context.Context, st *dispatch.State, msg *message.Message, _ int64) ([]stream.Output, error) {
	var res dispatch.Result
	switch k := msg.Metadata.Get(MetaKind); k {
	case KindAlert:
		var a alerts.Alert
		if err := json.Unmarshal(msg.Payload, &a); err != nil {
			return nil, messaging.Permanent(fmt.Errorf("decode alert: %w", err))
		}
		// A foreign writer's alert must not reach the state: a start in
		// the year 9999 would move the clock, and every timer, with it.
		if err := a.Validate(); err != nil {
			return nil, messaging.Permanent(err)
		}
		res = o.d.Alert(st, a)
	case KindSilence:
		var s silences.Silence
		if err := json.Unmarshal(msg.Payload, &s); err != nil {
			return nil, messaging.Permanent(fmt.Errorf("decode silence: %w", err))
		}
		if err := s.Validate(); err != nil {
			return nil, messaging.Permanent(err)
		}
		o.d.Silence(st, s)
	case KindAck:
		var a silences.Ack
		if err := json.Unmarshal(msg.Payload, &a); err != nil {
			return nil, messaging.Permanent(fmt.Errorf("decode ack: %w", err))
		}
		if err := a.Validate(); err != nil {
			return nil, messaging.Permanent(err)
		}
		o.d.Ack(st, a)
	case KindWake:
	default:
		return nil, messaging.Permanent(fmt.Errorf("dispatch record: unknown kind %q", k))
	}
	return o.outputs(res)
}

// Tick implements stream.Operator: the clock follows processing time
// (dispatch.Dispatcher.Tick). Only flushes count as changes; the clock
// alone need not be committed (it is recomputed from the last tick).
func (o *Dispatch) Tick(_ context.Context, st *dispatch.State, now time.Time) ([]stream.Output, bool, error) {
	before := len(st.Groups)
	res := o.d.Tick(st, now.UnixMilli())
	outs, err := o.outputs(res)
	return outs, !res.Empty() || len(st.Groups) != before, err
}

// Fanout returns the per-integration notifications of n: integrations
// without SendResolved get only the firing alerts, and none at all when
// nothing fires.
func Fanout(n dispatch.Notification, refs []IntegrationRef) []dispatch.Notification {
	var out []dispatch.Notification
	for _, ref := range refs {
		m := n
		m.Integration = ref.Name
		if !ref.SendResolved {
			m.Alerts = nil
			for _, a := range n.Alerts {
				if a.State == alerts.StateFiring {
					m.Alerts = append(m.Alerts, a)
				}
			}
			if len(m.Alerts) == 0 {
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

func (o *Dispatch) outputs(res dispatch.Result) ([]stream.Output, error) {
	var outs []stream.Output
	for _, n := range res.Notifications {
		for _, m := range Fanout(n, o.receivers[n.Receiver]) {
			b, err := json.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("encode notification: %w", err)
			}
			outs = append(outs, stream.Output{
				Topic: messaging.TopicNotifierDeliveries, Key: m.Integration, UUID: DeliveryID(&m), Payload: b,
				Metadata: map[string]string{MetaIntegration: m.Integration},
			})
		}
	}
	for _, oc := range res.Outcomes {
		out, err := OutcomeOutput(oc)
		if err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// MetaIntegration is the metadata naming a delivery record's integration.
const MetaIntegration = "integration"

// DeliveryID is the deterministic id of a delivery record.
func DeliveryID(n *dispatch.Notification) string { return n.ID + "/" + n.Integration }

// OutcomeOutput is the record of an outcome on the notifications topic,
// keyed by group.
func OutcomeOutput(oc dispatch.Outcome) (stream.Output, error) {
	b, err := json.Marshal(oc)
	if err != nil {
		return stream.Output{}, fmt.Errorf("encode outcome: %w", err)
	}
	return stream.Output{Topic: messaging.TopicNotifications, Key: oc.GroupKey, UUID: oc.ID, Payload: b,
		Metadata: map[string]string{messaging.MetaSchema: "notifications.outcome.v1"}}, nil
}
