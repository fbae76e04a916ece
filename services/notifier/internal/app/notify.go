// Package app holds the notifier's use case: deliver each new firing alert
// to every receiver, once.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/delivery"
)

// Receiver delivers an alert somewhere (a webhook, a Redis list...).
// Notify must be idempotent for the same alert state change: the notifier
// may call it again after a crash between delivery and checkpoint.
type Receiver interface {
	// Name identifies the receiver in logs and errors.
	Name() string
	// Notify delivers a; an error is retried with backoff.
	Notify(ctx context.Context, a alerts.Alert) error
}

// Notify is the notifier's stream.Operator on the alerts topic.
type Notify struct {
	receivers []Receiver
	// MaxTries bounds delivery attempts per receiver within one Apply; after
	// that the record is nacked and redelivered later.
	maxTries uint
}

var _ stream.Operator[*delivery.State] = (*Notify)(nil)

// NewNotify returns the operator delivering to receivers, trying each up to
// maxTries times with exponential backoff (200 ms doubling, jittered).
func NewNotify(receivers []Receiver, maxTries uint) *Notify {
	return &Notify{receivers: receivers, maxTries: max(maxTries, 1)}
}

// NewState implements stream.Operator.
func (n *Notify) NewState(int32) *delivery.State { return delivery.NewState() }

// Apply implements stream.Operator: a firing alert not delivered before goes
// to every receiver; other state changes are recorded only. An undecodable
// or invalid alert is permanent (alerts.dlq); a receiver that keeps failing
// returns a transient error so the record is redelivered.
func (n *Notify) Apply(ctx context.Context, st *delivery.State, msg *message.Message, _ int64) ([]stream.Output, error) {
	var a alerts.Alert
	if err := json.Unmarshal(msg.Payload, &a); err != nil {
		return nil, messaging.Permanent(fmt.Errorf("decode alert: %w", err))
	}
	if err := a.Validate(); err != nil {
		return nil, messaging.Permanent(err)
	}
	if st.Seen(a.ID()) {
		return nil, nil
	}
	if a.State == alerts.StateFiring {
		var errs []error
		for _, r := range n.receivers {
			_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, r.Notify(ctx, a) },
				backoff.WithBackOff(&backoff.ExponentialBackOff{
					InitialInterval: 200 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second,
				}), backoff.WithMaxTries(n.maxTries))
			if err != nil {
				errs = append(errs, fmt.Errorf("receiver %s: %w", r.Name(), err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	st.MarkSent(a.ID(), a.StartsAt)
	return nil, nil
}

// Tick implements stream.Operator; nothing is time-driven yet.
func (n *Notify) Tick(context.Context, *delivery.State, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}
