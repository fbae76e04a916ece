package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// Integration sends a notification somewhere (a webhook, Slack, DingTalk,
// mail, a Redis list). Errors marked messaging.Permanent are not retried.
// Notify may be called again for the same notification after a crash, so
// the payload carries the notification id for deduplication.
type Integration interface {
	Notify(ctx context.Context, n dispatch.Notification) error
}

// DoneStore remembers the final outcome of each delivery record, so a
// redelivered record is not sent again (the delivery queue's idempotence).
type DoneStore interface {
	// Done returns the stored outcome of id, if any.
	Done(ctx context.Context, id string) (dispatch.Outcome, bool, error)
	// MarkDone stores the final outcome of id.
	MarkDone(ctx context.Context, id string, oc dispatch.Outcome) error
}

// DeliverSettings configure a Deliverer.
type DeliverSettings struct {
	// Integration is the name of the integration (IntegrationRef.Name).
	Integration string
	// Timeout bounds one attempt.
	Timeout time.Duration
	// MaxTries bounds attempts; after the last one the record goes to the
	// deliveries dead-letter topic with the error.
	MaxTries uint
	// InitialBackoff and MaxBackoff shape the exponential backoff (factor 2,
	// ±50% jitter) between attempts.
	InitialBackoff, MaxBackoff time.Duration
	// Now is the wall clock for outcome times (time.Now when nil).
	Now func() time.Time
}

// Deliverer delivers the delivery records of one integration: it is the
// handler of that integration's own consumer group on the deliveries
// topic, so a slow or failing integration holds back only itself.
type Deliverer struct {
	s      DeliverSettings
	target Integration
	done   DoneStore
	pub    message.Publisher
	logger *slog.Logger
}

// NewDeliverer returns the deliverer of one integration.
func NewDeliverer(s DeliverSettings, target Integration, done DoneStore, pub message.Publisher, logger *slog.Logger) *Deliverer {
	if s.MaxTries == 0 {
		s.MaxTries = 1
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.InitialBackoff <= 0 {
		s.InitialBackoff = 500 * time.Millisecond
	}
	if s.MaxBackoff < s.InitialBackoff {
		s.MaxBackoff = max(s.InitialBackoff, 30*time.Second)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return &Deliverer{s: s, target: target, done: done, pub: pub, logger: messaging.Logger(logger)}
}

// Handle processes one delivery record (a Watermill handler). Records of
// other integrations are skipped. A record delivered before (its final
// outcome is in the DoneStore) only has its outcome re-published. Otherwise
// the notification is sent with retries; each failed attempt publishes a
// retried outcome; success or the last failure (published first to the
// deadletter topic with the error) is stored as done, published, and the
// record acked. It returns an error only when Redis or the broker failed
// (the record is then redelivered).
func (d *Deliverer) Handle(msg *message.Message) error {
	if msg.Metadata.Get(MetaIntegration) != d.s.Integration {
		return nil
	}
	ctx := msg.Context()
	id := msg.UUID
	if oc, ok, err := d.done.Done(ctx, id); err != nil {
		return err
	} else if ok {
		return d.publishOutcome(oc)
	}
	var n dispatch.Notification
	if err := json.Unmarshal(msg.Payload, &n); err != nil {
		return messaging.Permanent(fmt.Errorf("decode notification: %w", err))
	}
	if err := validNotification(&n); err != nil {
		return messaging.Permanent(err)
	}
	oc := dispatch.Outcome{
		V: 1, GroupKey: n.GroupKey, Receiver: n.Receiver, Integration: d.s.Integration, NotificationID: n.ID,
		Fingerprints: fingerprints(&n),
	}
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		actx, cancel := context.WithTimeout(ctx, d.s.Timeout)
		defer cancel()
		err := d.target.Notify(actx, n)
		if err == nil {
			return struct{}{}, nil
		}
		if messaging.IsPermanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		if uint(attempt) < d.s.MaxTries {
			r := oc
			r.ID, r.Kind, r.Attempt, r.Error, r.At = fmt.Sprintf("%s:retried:%d", id, attempt), dispatch.OutcomeRetried,
				attempt, err.Error(), d.s.Now().UnixMilli()
			if perr := d.publishOutcome(r); perr != nil {
				d.logger.Warn("publish retried outcome", "integration", d.s.Integration, "error", perr.Error())
			}
		}
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval: d.s.InitialBackoff, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: d.s.MaxBackoff,
	}), backoff.WithMaxTries(d.s.MaxTries), backoff.WithMaxElapsedTime(0))
	if ctx.Err() != nil {
		return fmt.Errorf("deliver %s: %w", id, ctx.Err()) // shutting down: redeliver later
	}
	oc.Attempt, oc.At = attempt, d.s.Now().UnixMilli()
	if err == nil {
		oc.ID, oc.Kind = id+":sent", dispatch.OutcomeSent
	} else {
		var pe *backoff.PermanentError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		oc.ID, oc.Kind, oc.Error = id+":failed", dispatch.OutcomeFailed, err.Error()
		dl := message.NewMessage(id+":dlq", msg.Payload)
		dl.Metadata = message.Metadata{
			MetaIntegration: d.s.Integration, messaging.MetaError: err.Error(), messaging.MetaKey: d.s.Integration,
			messaging.MetaSourceTopic: messaging.TopicNotifierDeliveries,
		}
		if perr := d.pub.Publish(messaging.DLQ(messaging.TopicNotifierDeliveries), dl); perr != nil {
			return fmt.Errorf("dead-letter %s: %w", id, perr)
		}
		d.logger.Warn("notification dead-lettered", "integration", d.s.Integration, "notification", n.ID,
			"attempts", attempt, "error", err.Error())
	}
	if err := d.done.MarkDone(ctx, id, oc); err != nil {
		return err
	}
	return d.publishOutcome(oc)
}

func (d *Deliverer) publishOutcome(oc dispatch.Outcome) error {
	out, err := OutcomeOutput(oc)
	if err != nil {
		return err
	}
	m := message.NewMessage(out.UUID, out.Payload)
	for k, v := range out.Metadata {
		m.Metadata.Set(k, v)
	}
	m.Metadata.Set(messaging.MetaKey, out.Key)
	if err := d.pub.Publish(out.Topic, m); err != nil {
		return fmt.Errorf("publish outcome: %w", err)
	}
	return nil
}

func fingerprints(n *dispatch.Notification) []string {
	fps := make([]string, len(n.Alerts))
	for i, a := range n.Alerts {
		fps[i] = a.Fingerprint
	}
	return fps
}

// validNotification refuses a delivery record no integration should send
// (the dispatcher never writes one, so it comes from a foreign writer):
// another schema version, no id, an unknown status, a flush time outside
// 0..events.MaxTime.
func validNotification(n *dispatch.Notification) error {
	switch {
	case n.V != 1:
		return fmt.Errorf("notification: schema version %d (this build reads 1)", n.V)
	case n.ID == "":
		return errors.New("notification: missing id")
	case n.Status != alerts.StateFiring && n.Status != alerts.StateResolved:
		return fmt.Errorf("notification: unknown status %q", n.Status)
	case n.At < 0 || n.At > events.MaxTime:
		return fmt.Errorf("notification: at %d outside 0..%d (events.MaxTime)", n.At, events.MaxTime)
	}
	return nil
}
