package ports

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// MaxNotifications is the most outcomes GET /api/v1/notifications returns;
// DefaultNotifications is its default limit.
const (
	MaxNotifications     = 100
	DefaultNotifications = 20
)

// NotificationsResponse is the body of GET /api/v1/notifications.
type NotificationsResponse struct {
	// Notifications are the newest outcomes first.
	Notifications []NotificationJSON `json:"notifications"`
}

// NotificationJSON is one stored notification outcome.
type NotificationJSON struct {
	ID     string `json:"id"`
	Schema string `json:"schema"`
	Key    string `json:"key"`
	// ReceivedAt is when the query service stored it, ms since the epoch.
	ReceivedAt int64 `json:"received_at"`
	// Payload is the notifier's outcome record (docs/notifier.md).
	Payload json.RawMessage `json:"payload"`
}

// PipelineResponse is the body of GET /api/v1/pipeline.
type PipelineResponse struct {
	// Groups are the consumer groups with members, sorted by name.
	Groups []GroupLagJSON `json:"groups"`
	// LateRecords is the number of records in events.late.
	LateRecords int64 `json:"late_records"`
	// DLQ has one entry per *.dlq topic, sorted by topic.
	DLQ []TopicRecordsJSON `json:"dlq"`
	// GeneratedAt is when the snapshot was read, ms since the epoch.
	GeneratedAt int64 `json:"generated_at"`
}

// GroupLagJSON is one consumer group's lag in records.
type GroupLagJSON struct {
	Group  string         `json:"group"`
	Lag    int64          `json:"lag"`
	Topics []TopicLagJSON `json:"topics"`
}

// TopicLagJSON is a group's lag on one topic, in records.
type TopicLagJSON struct {
	Topic string `json:"topic"`
	Lag   int64  `json:"lag"`
}

// TopicRecordsJSON is the number of records in a topic.
type TopicRecordsJSON struct {
	Topic   string `json:"topic"`
	Records int64  `json:"records"`
}

var (
	notificationsParams = map[string]bool{"limit": false}
	pipelineParams      = map[string]bool{}
)

func (s *HTTPServer) notifications(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, notificationsParams); err != nil {
		return badRequest(err)
	}
	limit, err := parseInt("limit", params.Get("limit"), DefaultNotifications)
	if err != nil {
		return badRequest(err)
	}
	if limit < 1 || limit > MaxNotifications {
		return badRequest(window.InvalidParam("limit", "%d is outside 1..%d", limit, MaxNotifications))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Notifications.Handle(ctx, limit)
	if err != nil {
		return err
	}
	resp := NotificationsResponse{Notifications: make([]NotificationJSON, len(list))}
	for i, n := range list {
		resp.Notifications[i] = NotificationJSON{ID: n.ID, Schema: n.Schema, Key: n.Key, ReceivedAt: n.ReceivedMs, Payload: n.Payload}
	}
	return c.JSON(http.StatusOK, resp)
}

// pipelineTimeout bounds one read of the pipeline's health from Kafka.
const pipelineTimeout = 10 * time.Second

func (s *HTTPServer) pipeline(c echo.Context) error {
	if err := checkParams(c.QueryParams(), pipelineParams); err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), pipelineTimeout)
	defer cancel()
	h, err := s.app.Queries.Pipeline.Handle(ctx)
	if errors.Is(err, query.ErrPipelineUnavailable) {
		return httpserver.Error(http.StatusServiceUnavailable, "%s", err.Error())
	}
	if err != nil {
		return err
	}
	resp := PipelineResponse{Groups: make([]GroupLagJSON, len(h.Groups)), LateRecords: h.LateRecords,
		DLQ: make([]TopicRecordsJSON, len(h.DLQ)), GeneratedAt: h.GeneratedAt}
	for i, g := range h.Groups {
		topics := make([]TopicLagJSON, len(g.Topics))
		for j, t := range g.Topics {
			topics[j] = TopicLagJSON{Topic: t.Topic, Lag: t.Lag}
		}
		resp.Groups[i] = GroupLagJSON{Group: g.Group, Lag: g.Total, Topics: topics}
	}
	for i, d := range h.DLQ {
		resp.DLQ[i] = TopicRecordsJSON{Topic: d.Topic, Records: d.Records}
	}
	return c.JSON(http.StatusOK, resp)
}
