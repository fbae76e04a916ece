package query

import (
	"context"
	"encoding/json"
	"fmt"
)

// StoredNotification is one notification outcome as projected.
type StoredNotification struct {
	// ID is the outcome's id; Schema and Key the record's.
	ID, Schema, Key string
	// ReceivedMs is when the projection stored it, ms since the epoch.
	ReceivedMs int64
	// Payload is the notifier's outcome record, a JSON object.
	Payload json.RawMessage
}

// NotificationReader reads the notifications projection.
type NotificationReader interface {
	// RecentNotifications returns at most n outcomes, newest first.
	RecentNotifications(ctx context.Context, n int) ([]StoredNotification, error)
}

// NotificationsHandler answers the latest notification outcomes. Safe for
// concurrent use.
type NotificationsHandler struct {
	reader NotificationReader
}

// NewNotificationsHandler returns a handler over reader.
func NewNotificationsHandler(reader NotificationReader) NotificationsHandler {
	return NotificationsHandler{reader: reader}
}

// Handle returns at most n outcomes, newest first.
func (h NotificationsHandler) Handle(ctx context.Context, n int) ([]StoredNotification, error) {
	out, err := h.reader.RecentNotifications(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("recent notifications: %w", err)
	}
	return out, nil
}
