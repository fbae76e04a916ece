// Package app holds the notifier's use cases: forwarding alerts, silences
// and acknowledgements into one ordered log, dispatching them (routing,
// grouping, silences, inhibition: package dispatch) inside the
// exactly-once operator, and delivering due notifications per integration.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/pkg/stream"
)

// Kinds of records on the dispatch topic (metadata MetaKind).
const (
	MetaKind    = "kind"
	KindAlert   = "alert"
	KindSilence = "silence"
	KindAck     = "ack"
	// KindWake carries nothing: the service publishes one at start-up so
	// the dispatcher loads its state and its timers run without waiting
	// for the next alert.
	KindWake = "wake"
)

// DispatchKey is the record key of every dispatch record; they all go to
// partition 0 of the dispatch topic, one total order (see docs/notifier.md).
const DispatchKey = "dispatch"

// Forward is a stateless stream.Operator that validates the records of one
// input topic (alerts, silences or acks) and forwards them to partition 0
// of the dispatch topic with a deterministic id. Invalid records are
// permanent errors (the input topic's dead-letter topic).
type Forward struct {
	kind string
}

var _ stream.Operator[struct{}] = (*Forward)(nil)

// NewForward returns the forwarder of records of kind (KindAlert,
// KindSilence or KindAck).
func NewForward(kind string) *Forward { return &Forward{kind: kind} }

// NewState implements stream.Operator.
func (f *Forward) NewState(int32) struct{} { return struct{}{} }

// Apply implements stream.Operator.
func (f *Forward) Apply(_ context.Context, _ struct{}, msg *message.Message, _ int64) ([]stream.Output, error) {
	var id string
	switch f.kind {
	case KindAlert:
		var a alerts.Alert
		if err := json.Unmarshal(msg.Payload, &a); err != nil {
			return nil, messaging.Permanent(fmt.Errorf("decode alert: %w", err))
		}
		if err := a.Validate(); err != nil {
			return nil, messaging.Permanent(err)
		}
		id = "alert:" + a.ID()
	case KindSilence:
		var s silences.Silence
		if err := json.Unmarshal(msg.Payload, &s); err != nil {
			return nil, messaging.Permanent(fmt.Errorf("decode silence: %w", err))
		}
		if err := s.Validate(); err != nil {
			return nil, messaging.Permanent(err)
		}
		id = "silence:" + s.ID + ":" + s.Op + ":" + strconv.FormatInt(s.UpdatedAt, 10)
	case KindAck:
		var a silences.Ack
		if err := json.Unmarshal(msg.Payload, &a); err != nil {
			return nil, messaging.Permanent(fmt.Errorf("decode ack: %w", err))
		}
		if err := a.Validate(); err != nil {
			return nil, messaging.Permanent(err)
		}
		id = "ack:" + a.ID
	default:
		return nil, messaging.Permanent(fmt.Errorf("forward: unknown kind %q", f.kind))
	}
	return []stream.Output{DispatchOutput(f.kind, id, msg.Payload)}, nil
}

// Tick implements stream.Operator; forwarding is not time-driven.
func (f *Forward) Tick(context.Context, struct{}, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}

// DispatchOutput is a record for partition 0 of the dispatch topic.
func DispatchOutput(kind, id string, payload []byte) stream.Output {
	return stream.Output{
		Topic: messaging.TopicNotifierDispatch, Key: DispatchKey, UUID: id, Payload: payload,
		Metadata: map[string]string{MetaKind: kind, messaging.MetaPartition: "0"},
	}
}
