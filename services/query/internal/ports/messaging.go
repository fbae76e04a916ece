// Package ports adapts the outside world to the query service's use cases:
// Watermill handlers for the projected Kafka topics and the REST API.
package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
)

// Handler names, which are also the Kafka consumer groups of the
// subscribers that feed them.
//
// Warning: renaming one re-consumes its topic from the oldest offset.
const (
	EventsProjector        = "query.events-projector"
	WindowsProjector       = "query.windows-projector"
	LiveProjector          = "query.live-projector"
	AlertsProjector        = "query.alerts-projector"
	NotificationsProjector = "query.notifications-projector"
	RulesProjector         = "query.rules-projector"
	SilencesProjector      = "query.silences-projector"
)

// Subscribers are the Kafka subscribers of the projections, one per
// consumer group (the handler names above).
type Subscribers struct {
	Events, Windows, Alerts, Notifications, Rules, Silences message.Subscriber
}

// Projections are the Watermill handlers that keep the query service's
// projections. A handler returns nil only after the record's effect is
// durable (the router then acks it); a messaging.Permanent error for a
// record that can never be applied (DeadLetter sends it to the topic's
// .dlq); any other error is transient and the record is retried. Safe for
// concurrent use by the handlers of several partitions.
type Projections struct {
	app app.Application
}

// NewProjections returns the handlers over a.
func NewProjections(a app.Application) Projections {
	return Projections{app: a}
}

// Register adds the projection handlers to router: events.raw,
// metrics.windows, alerts, notifications, rules and silences, each from its subscriber in
// subs (whose consumer group must be the handler's name). Each handler gets
// DeadLetter middleware publishing poison records through dlq.
func (p Projections) Register(router *message.Router, subs Subscribers, dlq message.Publisher, logger *slog.Logger) {
	for _, h := range []struct {
		name, topic string
		sub         message.Subscriber
		fn          message.NoPublishHandlerFunc
	}{
		{EventsProjector, messaging.TopicEventsRaw, subs.Events, p.HandleEventsRaw},
		{WindowsProjector, messaging.TopicMetricsWindows, subs.Windows, p.HandleMetricsWindow},
		{AlertsProjector, messaging.TopicAlerts, subs.Alerts, p.HandleAlert},
		{NotificationsProjector, messaging.TopicNotifications, subs.Notifications, p.HandleNotification},
		{RulesProjector, messaging.TopicRules, subs.Rules, p.HandleRuleChange},
		{SilencesProjector, messaging.TopicSilences, subs.Silences, p.HandleSilence},
	} {
		if h.sub == nil {
			continue
		}
		router.AddConsumerHandler(h.name, h.topic, h.sub, h.fn).
			AddMiddleware(messaging.DeadLetter(dlq, h.topic, logger))
	}
}

// HandleEventsRaw projects one events.raw record (a batch, schema
// events.batch.v2, or events.batch.v1 of earlier builds) into the events
// table with one insert. A record with another schema or that does not
// decode is permanent; a failed insert is transient.
func (p Projections) HandleEventsRaw(msg *message.Message) error {
	evs, err := decodeEvents(msg)
	if err != nil {
		return err
	}
	return p.app.Commands.ProjectEvents.Handle(msg.Context(), evs)
}

// HandleMetricsWindow projects one metrics.windows record (one result,
// schema metrics.window.v1, or a batch, metrics.windows.batch.v1; decoded
// by metrics.DecodeRecord) into metric_windows with the record's results in
// one insert, and into the live view. A record that does not decode or
// holds an invalid result is permanent; a failed write is transient.
func (p Projections) HandleMetricsWindow(msg *message.Message) error {
	rs, err := metrics.DecodeRecord(msg.Metadata.Get(messaging.MetaSchema), msg.Payload)
	if err != nil {
		return messaging.Permanent(fmt.Errorf("metrics.windows record %s: %w", msg.UUID, err))
	}
	err = p.app.Commands.ProjectWindow.Handle(msg.Context(), rs)
	if errors.Is(err, metrics.ErrInvalidResult) {
		return messaging.Permanent(fmt.Errorf("metrics.windows record %s: %w", msg.UUID, err))
	}
	return err
}

// WindowsBatchHandler returns the handler of the windows projector's batch
// consumer (messaging.BatchConsumer), which keeps the window history (the
// metric_windows table): the metrics.windows records of one partition that
// were waiting together, in offset order. Each record is decoded and
// validated on its own, and a poison record goes to metrics.windows.dlq
// through dlq (messaging.DeadLetter, as with the router) while the others
// go on; then the results of all records are projected with one
// ProjectWindow.ApplyHistory call, so a batch costs one round of writes
// whatever its number of records, and the revisions of a window that later
// ones in the batch supersede are not written (the window writer keeps the
// latest; see service.NewApplication). The live stream (SSE) still gets
// every result, in order. The handler returns nil once every record is
// projected or dead-lettered; any other error is transient (the consumer
// hands the same records again, and the projection is idempotent).
//
// The handler is pipelined (messaging.PipelinedBatchHandler): it returns
// once the window history has the results queued, with a wait for the
// insert (grouped over up to QUERY_WINDOWS_BATCH_MAX_DELAY), so the next
// records are decoded and queued meanwhile. The live view is the live
// projector's (LiveBatchHandler).
func (p Projections) WindowsBatchHandler(dlq message.Publisher, logger *slog.Logger) func(ctx context.Context, msgs []*message.Message) (func(context.Context) error, error) {
	return batchHandler(dlq, logger, messaging.TopicMetricsWindows, WindowsProjector, decodeWindows, flat(p.app.Commands.ProjectWindow.ApplyHistory))
}

// LiveBatchHandler returns the handler of the live projector's batch
// consumer (consumer group LiveProjector), which keeps the live view (the
// Redis hashes behind GET /api/v1/live and /api/v1/top) from the
// metrics.windows records of one partition that were waiting together, in
// offset order. It is a consumer group of its own, apart from the windows
// projector, so that the live view never waits behind the history's work:
// at a minute boundary the aggregator emits the finals of every window at
// once, nine in ten of them Unchanged, and the live probes of the
// benchmark waited 1–3 s behind the history's decoding and queueing of
// them (2026-11-22). Each record is decoded without its Unchanged results
// (metrics.DecodeRecordChanged: they repeat values the live view holds
// and are skipped there anyway), a poison record goes to
// metrics.windows.dlq as with WindowsBatchHandler, and the rest are
// written with one ProjectWindow.UpdateLive call. It returns a nil wait
// (the live view is durable when the call returns) or a transient error
// (the records are handed again; the live view keeps the latest revision,
// so repeats are harmless). A record that is poison for both projectors
// is dead-lettered by each, with its consumer group in the metadata.
func (p Projections) LiveBatchHandler(dlq message.Publisher, logger *slog.Logger) func(ctx context.Context, msgs []*message.Message) (func(context.Context) error, error) {
	return batchHandler(dlq, logger, messaging.TopicMetricsWindows, LiveProjector, decodeChangedWindows,
		flat(func(ctx context.Context, rs []metrics.Result) (func(context.Context) error, error) {
			return nil, p.app.Commands.ProjectWindow.UpdateLive(ctx, rs)
		}))
}

// EventsBatchHandler returns the handler of the events projector's batch
// consumer (messaging.BatchConsumer): the events.raw records of one
// partition that were waiting together, in offset order. Each record is
// decoded on its own (schema events.batch.v2, or events.batch.v1 of
// earlier builds), and a poison record (another schema, or a payload that
// does not decode) goes to events.raw.dlq through dlq while the others go
// on; then the events of all records are projected with one ProjectEvents
// call, a slice per record (not joined: the insert reads them where they
// were decoded), which the events repository's group commit merges with
// the batches of the other partitions into one insert. It has the pipelined
// handler's shape, with a nil wait: it returns nil once every record is
// inserted or dead-lettered; any other error is transient (the consumer
// hands the same records again; the events table collapses replayed rows).
func (p Projections) EventsBatchHandler(dlq message.Publisher, logger *slog.Logger) func(ctx context.Context, msgs []*message.Message) (func(context.Context) error, error) {
	return batchHandler(dlq, logger, messaging.TopicEventsRaw, EventsProjector, decodeEvents,
		func(ctx context.Context, records [][]events.Event) (func(context.Context) error, error) {
			return nil, p.app.Commands.ProjectEvents.Handle(ctx, records...)
		})
}

// batchHandler decodes each record of a batch with decode, dead-letters the
// records whose decode fails (a permanent error) to topic's .dlq as
// consumer, and hands the items of the others to project in one call, one
// slice per record in offset order (none when every record was poison),
// returning project's wait for durability (nil: durable). An error
// publishing a dead letter or from project is returned as is (transient).
// A project that wants one slice is wrapped in flat.
func batchHandler[T any](dlq message.Publisher, logger *slog.Logger, topic, consumer string,
	decode func(*message.Message) ([]T, error), project func(context.Context, [][]T) (func(context.Context) error, error),
) func(ctx context.Context, msgs []*message.Message) (func(context.Context) error, error) {
	deadLetter := messaging.DeadLetter(dlq, topic, logger)
	return func(ctx context.Context, msgs []*message.Message) (func(context.Context) error, error) {
		parts := make([][]T, 0, len(msgs))
		for _, msg := range msgs {
			msg.SetContext(messaging.ContextWithConsumer(msg.Context(), consumer)) // MetaConsumer of dead letters
			var items []T
			_, err := deadLetter(func(msg *message.Message) ([]*message.Message, error) {
				var err error
				items, err = decode(msg)
				return nil, err
			})(msg)
			if err != nil {
				return nil, err // the dead-letter topic failed: transient
			}
			if len(items) > 0 {
				parts = append(parts, items)
			}
		}
		if len(parts) == 0 {
			return nil, nil
		}
		return project(ctx, parts)
	}
}

// flat adapts a project function that takes one slice to batchHandler:
// the records' items are joined into one slice (not copied when there is
// one record).
func flat[T any](project func(context.Context, []T) (func(context.Context) error, error)) func(context.Context, [][]T) (func(context.Context) error, error) {
	return func(ctx context.Context, parts [][]T) (func(context.Context) error, error) {
		if len(parts) == 1 {
			return project(ctx, parts[0])
		}
		total := 0
		for _, items := range parts {
			total += len(items)
		}
		all := make([]T, 0, total) // one copy, not append's repeated growth
		for _, items := range parts {
			all = append(all, items...)
		}
		return project(ctx, all)
	}
}

// decodeEvents decodes one events.raw record; any failure is permanent.
// The events' strings share one copy of the payload
// (events.DecodeBatchShared): the projection keeps them only until the
// insert holding them, and then drops them all together.
func decodeEvents(msg *message.Message) ([]events.Event, error) {
	if err := events.CheckBatchSchema(msg.Metadata.Get(messaging.MetaSchema)); err != nil {
		return nil, messaging.Permanent(fmt.Errorf("events.raw record %s: %w", msg.UUID, err))
	}
	evs, err := events.DecodeBatchShared(msg.Payload, nil, json.Unmarshal)
	if err != nil {
		return nil, messaging.Permanent(fmt.Errorf("events.raw record %s: %w", msg.UUID, err))
	}
	return evs, nil
}

// decodeWindows decodes one metrics.windows record (metrics.DecodeRecord,
// which validates every result); any failure is permanent.
func decodeWindows(msg *message.Message) ([]metrics.Result, error) {
	rs, err := metrics.DecodeRecord(msg.Metadata.Get(messaging.MetaSchema), msg.Payload)
	if err != nil {
		return nil, messaging.Permanent(fmt.Errorf("metrics.windows record %s: %w", msg.UUID, err))
	}
	return rs, nil
}

// decodeChangedWindows is decodeWindows without the Unchanged results
// (metrics.DecodeRecordChanged), for the live view.
func decodeChangedWindows(msg *message.Message) ([]metrics.Result, error) {
	rs, err := metrics.DecodeRecordChanged(msg.Metadata.Get(messaging.MetaSchema), msg.Payload)
	if err != nil {
		return nil, messaging.Permanent(fmt.Errorf("metrics.windows record %s: %w", msg.UUID, err))
	}
	return rs, nil
}

// HandleAlert projects one alerts record (JSON alerts.Alert, schema
// alerts.alert.v1) into the alerts table. A record with another schema,
// that does not decode or is invalid is permanent; a failed insert is
// transient.
func (p Projections) HandleAlert(msg *message.Message) error {
	as, err := decodeAlert(msg)
	if err != nil {
		return err
	}
	return p.app.Commands.ProjectAlert.Handle(msg.Context(), as[0])
}

// AlertsBatchHandler returns the handler of the alerts projector's
// pipelined batch consumer (messaging.NewPipelinedBatchConsumer): each
// record of the batch is decoded and validated on its own (a poison record
// goes to alerts.dlq), and the alerts of the others are queued for one
// grouped insert (ProjectAlert.Apply); the returned wait ends when that
// insert is done. Alert bursts at minute boundaries were one ClickHouse
// insert, and part, per alert.
func (p Projections) AlertsBatchHandler(dlq message.Publisher, logger *slog.Logger) func(ctx context.Context, msgs []*message.Message) (func(context.Context) error, error) {
	return batchHandler(dlq, logger, messaging.TopicAlerts, AlertsProjector, decodeAlert, flat(p.app.Commands.ProjectAlert.Apply))
}

// decodeAlert decodes and validates one alerts record (JSON alerts.Alert,
// schema alerts.alert.v1); any failure is permanent.
func decodeAlert(msg *message.Message) ([]alerts.Alert, error) {
	if err := checkSchema(msg, alerts.Schema); err != nil {
		return nil, err
	}
	var a alerts.Alert
	if err := json.Unmarshal(msg.Payload, &a); err != nil {
		return nil, messaging.Permanent(fmt.Errorf("alerts record %s: decode: %w", msg.UUID, err))
	}
	if err := a.Validate(); err != nil {
		return nil, messaging.Permanent(fmt.Errorf("alerts record %s: %w", msg.UUID, err))
	}
	return []alerts.Alert{a}, nil
}

// HandleNotification projects one notifications record, whatever its
// schema (the notifier owns it), keeping the JSON payload. Its id is the
// payload's string "id" field when present, else "<partition>:<offset>"
// of the record, else the message UUID (transports without positions). A
// payload that is not a JSON object is permanent.
func (p Projections) HandleNotification(msg *message.Message) error {
	var probe struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(msg.Payload, &probe) // a non-object is rejected by the command
	id := probe.ID
	if id == "" {
		if part, off, ok := messaging.Position(msg); ok {
			id = strconv.FormatInt(int64(part), 10) + ":" + strconv.FormatInt(off, 10)
		} else {
			id = msg.UUID
		}
	}
	err := p.app.Commands.ProjectNotification.Handle(msg.Context(), command.Notification{
		ID: id, Schema: msg.Metadata.Get(messaging.MetaSchema), Key: msg.Metadata.Get(messaging.MetaKey),
		ReceivedMs: time.Now().UnixMilli(), Payload: json.RawMessage(msg.Payload),
	})
	if errors.Is(err, command.ErrInvalidNotification) {
		return messaging.Permanent(fmt.Errorf("notifications record %s: %w", msg.UUID, err))
	}
	return err
}

// HandleRuleChange projects one rules topic record (rules.Change) into
// the rules table. A record that does not decode or whose rule does not
// compile is permanent; a failed insert is transient.
func (p Projections) HandleRuleChange(msg *message.Message) error {
	if err := checkSchema(msg, rules.ChangeSchema); err != nil {
		return err
	}
	err := p.app.Commands.Admin.ProjectRuleChange(msg.Context(), msg.Payload)
	if errors.Is(err, rules.ErrBadChange) {
		return messaging.Permanent(fmt.Errorf("rules record %s: %w", msg.UUID, err))
	}
	return err
}

// HandleSilence projects one silences topic record (silences.Silence) into
// the silences table. An invalid record is permanent; a failed insert is
// transient.
func (p Projections) HandleSilence(msg *message.Message) error {
	if err := checkSchema(msg, silences.Schema); err != nil {
		return err
	}
	err := p.app.Commands.Admin.ProjectSilence(msg.Context(), msg.Payload)
	if errors.Is(err, command.ErrBadSilence) {
		return messaging.Permanent(fmt.Errorf("silences record %s: %w", msg.UUID, err))
	}
	return err
}

// checkSchema accepts a record whose schema metadata is want or absent
// (producers before the metadata existed); anything else is permanent.
func checkSchema(msg *message.Message, want string) error {
	if got := msg.Metadata.Get(messaging.MetaSchema); got != "" && got != want {
		return messaging.Permanent(fmt.Errorf("record %s: schema %q, this build reads %q", msg.UUID, got, want))
	}
	return nil
}
