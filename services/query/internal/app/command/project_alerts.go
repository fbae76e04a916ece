package command

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// AlertWriter stores alert state changes.
type AlertWriter interface {
	// InsertAlerts stores as in one insert and returns nil once durable.
	// Storing a state change again must be harmless; readers see the
	// latest state of each episode (fingerprint, starts_at).
	InsertAlerts(ctx context.Context, as []alerts.Alert) error
}

// ProjectAlertHandler projects alerts records into the alerts table. Safe
// for concurrent use.
type ProjectAlertHandler struct {
	store AlertWriter
	queue Queue[alerts.Alert] // nil: Apply stores synchronously
}

// NewProjectAlertHandler returns a handler writing to store.
func NewProjectAlertHandler(store AlertWriter) ProjectAlertHandler {
	return ProjectAlertHandler{store: store}
}

// WithQueue returns h with Apply queueing alerts in q instead of storing
// them synchronously (Handle still stores directly).
func (h ProjectAlertHandler) WithQueue(q Queue[alerts.Alert]) ProjectAlertHandler {
	h.queue = q
	return h
}

// Handle validates a and stores it. An invalid alert returns an error
// wrapping alerts.ErrInvalid (permanent); any other error is transient.
func (h ProjectAlertHandler) Handle(ctx context.Context, a alerts.Alert) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if err := h.store.InsertAlerts(ctx, []alerts.Alert{a}); err != nil {
		return fmt.Errorf("store alert %s: %w", a.ID(), err)
	}
	return nil
}

// Apply validates every alert of as and, with a queue (WithQueue), queues
// them and returns a wait that returns nil once all are durable (else a
// transient error: apply as again); without one it stores them in one
// insert and returns a nil wait. An invalid alert returns an error
// wrapping alerts.ErrInvalid and nothing is stored; any other error is
// transient.
func (h ProjectAlertHandler) Apply(ctx context.Context, as []alerts.Alert) (wait func(context.Context) error, err error) {
	if err := validateAll("alert", as); err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, nil
	}
	if h.queue == nil {
		if err := h.store.InsertAlerts(ctx, as); err != nil {
			return nil, fmt.Errorf("store %d alerts (first %s): %w", len(as), as[0].ID(), err)
		}
		return nil, nil
	}
	w, err := h.queue.Enqueue(ctx, as)
	if err != nil {
		return nil, fmt.Errorf("queue %d alerts (first %s): %w", len(as), as[0].ID(), err)
	}
	return w, nil
}

// Notification is one record of the notifications topic as projected: its
// payload is kept as JSON, since its schema belongs to the notifier.
type Notification struct {
	// ID is deterministic for the record (see ProjectNotificationHandler).
	ID string
	// Schema and Key are the record's metadata.
	Schema, Key string
	// ReceivedMs is when the query service read it, ms since the epoch.
	ReceivedMs int64
	// Payload is the record's JSON.
	Payload json.RawMessage
}

// NotificationWriter stores notification outcomes.
type NotificationWriter interface {
	// InsertNotifications stores ns in one insert and returns nil once
	// durable; rows with the same ID collapse.
	InsertNotifications(ctx context.Context, ns []Notification) error
}

// ProjectNotificationHandler projects notifications records. Safe for
// concurrent use.
type ProjectNotificationHandler struct {
	store NotificationWriter
}

// NewProjectNotificationHandler returns a handler writing to store.
func NewProjectNotificationHandler(store NotificationWriter) ProjectNotificationHandler {
	return ProjectNotificationHandler{store: store}
}

// NotificationSchema is the schema metadata of the notifier's outcome
// records (services/notifier writes them; records without schema metadata
// are accepted too).
const NotificationSchema = "notifications.outcome.v1"

// ErrInvalidNotification is wrapped when a notifications record is not a
// JSON object, has no id, has another schema (metadata) or version ("v"),
// or an "at" outside 0..events.MaxTime; such a record is poison.
var ErrInvalidNotification = fmt.Errorf("invalid notification record")

// Handle stores n. Its ID must be set by the caller (the payload's "id",
// else the record's partition and offset); a payload that is not a JSON
// object wraps ErrInvalidNotification.
func (h ProjectNotificationHandler) Handle(ctx context.Context, n Notification) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(n.Payload, &obj); err != nil {
		return fmt.Errorf("%w: payload is not a JSON object: %w", ErrInvalidNotification, err)
	}
	if n.Schema != "" && n.Schema != NotificationSchema {
		return fmt.Errorf("%w: schema %q, this build reads %q", ErrInvalidNotification, n.Schema, NotificationSchema)
	}
	var head struct {
		V  *int   `json:"v"`
		At *int64 `json:"at"`
	}
	if err := json.Unmarshal(n.Payload, &head); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidNotification, err)
	}
	if head.V != nil && *head.V != 1 {
		return fmt.Errorf("%w: schema version %d (this build reads 1)", ErrInvalidNotification, *head.V)
	}
	if head.At != nil && (*head.At < 0 || *head.At > events.MaxTime) {
		return fmt.Errorf("%w: at %d outside 0..%d (events.MaxTime)", ErrInvalidNotification, *head.At, events.MaxTime)
	}
	if n.ID == "" {
		return fmt.Errorf("%w: no id", ErrInvalidNotification)
	}
	if err := h.store.InsertNotifications(ctx, []Notification{n}); err != nil {
		return fmt.Errorf("store notification %s: %w", n.ID, err)
	}
	return nil
}
