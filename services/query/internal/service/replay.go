package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// Projection names accepted by Replay.
const (
	ProjectionEvents        = "events"
	ProjectionWindows       = "windows"
	ProjectionAlerts        = "alerts"
	ProjectionNotifications = "notifications"
	ProjectionRules         = "rules"
	ProjectionSilences      = "silences"
)

// Projections lists the projections Replay can rebuild.
var Projections = []string{ProjectionEvents, ProjectionWindows, ProjectionAlerts, ProjectionNotifications, ProjectionRules, ProjectionSilences}

// ReplayOptions says what to rebuild.
type ReplayOptions struct {
	// Projection is one of Projections.
	Projection string
	// FromMs, when >= 0, replays only the records with a Kafka timestamp
	// >= FromMs, on top of a copy of the live table (a fix applied to
	// recent history); < 0 rebuilds from the start of the log.
	FromMs int64
	// KeepRetired keeps the replaced table as <table>_old_<run> instead of
	// dropping it.
	KeepRetired bool
	// Run names the run (tables <table>_replay_<run>, consumer group
	// <projector>.replay-<run>); "" uses the UTC time, yyyymmddhhmmss.
	Run string
}

// ReplayReport says what a replay did.
type ReplayReport struct {
	Projection string
	Run        string
	// Table is the live table now holding the rebuilt projection.
	Table string
	// Group is the consumer group whose committed offsets record where the
	// replay stopped.
	Group string
	// Records and Poison count the records applied and those skipped as
	// permanent errors (the live projector dead-lettered them).
	Records, Poison int64
	// Rows is the rebuilt table's row count (FINAL) after the swap.
	Rows uint64
	// Retired is the replaced table when kept, else "".
	Retired string
}

// replayLog is the part of adapters.KafkaLog a replay uses.
type replayLog interface {
	Offsets(topic string, atMs int64) (map[int32]int64, error)
	Ends(topic string) (map[int32]int64, error)
	Read(ctx context.Context, topic string, partition int32, from, to int64, fn func(*message.Message) error) error
	CommitGroup(group, topic string, offsets map[int32]int64) error
}

// projectionSpec ties a projection to its topic, table, live handler name
// and a handler writing into a given table.
type projectionSpec struct {
	topic, table, projector string
	handler                 func(ch driver.Conn, database, table string) func(*message.Message) error
}

var specs = map[string]projectionSpec{
	ProjectionEvents: {messaging.TopicEventsRaw, adapters.DefaultTables.Events, ports.EventsProjector,
		func(ch driver.Conn, db, table string) func(*message.Message) error {
			a := app.Application{Commands: app.Commands{
				ProjectEvents: command.NewProjectEventsHandler(adapters.NewClickHouseEventRepositoryOn(ch, db, table))}}
			return ports.NewProjections(a).HandleEventsRaw
		}},
	ProjectionWindows: {messaging.TopicMetricsWindows, adapters.DefaultTables.Windows, ports.WindowsProjector,
		func(ch driver.Conn, db, table string) func(*message.Message) error {
			repo := adapters.NewClickHouseWindowRepositoryOn(ch, db, table)
			// History only: the Redis live view and the stream are not replayed.
			a := app.Application{Commands: app.Commands{
				ProjectWindow: command.NewProjectWindowHandler(directWindows{repo}, noLive{}, nil)}}
			return ports.NewProjections(a).HandleMetricsWindow
		}},
	ProjectionAlerts: {messaging.TopicAlerts, adapters.DefaultTables.Alerts, ports.AlertsProjector,
		func(ch driver.Conn, db, table string) func(*message.Message) error {
			repo := adapters.NewClickHouseAlertRepositoryOn(ch, db, table, adapters.DefaultTables.Notifications)
			a := app.Application{Commands: app.Commands{ProjectAlert: command.NewProjectAlertHandler(repo)}}
			return ports.NewProjections(a).HandleAlert
		}},
	ProjectionNotifications: {messaging.TopicNotifications, adapters.DefaultTables.Notifications, ports.NotificationsProjector,
		func(ch driver.Conn, db, table string) func(*message.Message) error {
			repo := adapters.NewClickHouseAlertRepositoryOn(ch, db, adapters.DefaultTables.Alerts, table)
			a := app.Application{Commands: app.Commands{ProjectNotification: command.NewProjectNotificationHandler(repo)}}
			return ports.NewProjections(a).HandleNotification
		}},
	ProjectionRules: {messaging.TopicRules, "rules", ports.RulesProjector,
		func(ch driver.Conn, db, table string) func(*message.Message) error {
			a := app.Application{Commands: app.Commands{Admin: command.NewAdminHandler(nil, adapters.NewClickHouseAdminRepositoryOn(ch, db, table, "silences"))}}
			return ports.NewProjections(a).HandleRuleChange
		}},
	ProjectionSilences: {messaging.TopicSilences, "silences", ports.SilencesProjector,
		func(ch driver.Conn, db, table string) func(*message.Message) error {
			a := app.Application{Commands: app.Commands{Admin: command.NewAdminHandler(nil, adapters.NewClickHouseAdminRepositoryOn(ch, db, "rules", table))}}
			return ports.NewProjections(a).HandleSilence
		}},
}

type directWindows struct {
	repo *adapters.ClickHouseWindowRepository
}

func (d directWindows) WriteAll(ctx context.Context, rs []metrics.Result) error {
	return d.repo.InsertWindows(ctx, rs)
}

type noLive struct{}

func (noLive) UpdateLiveAll(context.Context, []metrics.Result) error { return nil }

// RunReplay connects to ClickHouse (migrating when cfg.Migrate) and Kafka
// and runs Replay; it is the body of `query replay`.
func RunReplay(ctx context.Context, cfg config.Config, opts ReplayOptions, logger *slog.Logger) (ReplayReport, error) {
	ch, err := adapters.OpenClickHouse(ctx, cfg.ClickHouse)
	if err != nil {
		return ReplayReport{}, err
	}
	defer ch.Close()
	if cfg.Migrate {
		if err := migrations.Up(ctx, ch, cfg.ClickHouse.Database, logger); err != nil {
			return ReplayReport{}, fmt.Errorf("migrate clickhouse: %w", err)
		}
	}
	log, err := adapters.NewKafkaLog(cfg.Kafka, "query-replay")
	if err != nil {
		return ReplayReport{}, err
	}
	defer log.Close()
	return Replay(ctx, ch, cfg.ClickHouse.Database, log, opts, logger)
}

// maxCatchUps bounds the rounds of reading up to the log's end before the
// swap; records arriving after the last round are applied after the swap.
const maxCatchUps = 5

// Replay rebuilds one projection (Kappa architecture: the log is the
// source of truth) without downtime:
//
//  1. create <table>_replay_<run> empty, with the migrations' schema (and
//     with FromMs >= 0, copy the live table's rows into it);
//  2. read the topic from the oldest offset (or the first offset at
//     FromMs) up to its end, applying each record with the projection's
//     own handler into the fresh table, repeating while new records arrive
//     (at most maxCatchUps rounds);
//  3. swap atomically with one RENAME TABLE: live → <table>_old_<run>,
//     fresh → live (18.16 has no EXCHANGE TABLES);
//  4. apply, into the new live table, the records that arrived since the
//     last round (the live projector wrote them into the retired table
//     until the rename; projections upsert, so applying twice is harmless);
//  5. commit the reached offsets to the consumer group
//     <projector>.replay-<run>, and drop the retired table unless kept.
//
// On an error before the swap the fresh table is dropped and the live one
// is untouched. Records that fail permanently (poison) are counted and
// skipped; a transient failure is retried a few times, then fails the
// replay.
func Replay(ctx context.Context, ch driver.Conn, database string, log replayLog, opts ReplayOptions, logger *slog.Logger) (rep ReplayReport, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	spec, ok := specs[opts.Projection]
	if !ok {
		return rep, fmt.Errorf("projection %q: not one of %v", opts.Projection, Projections)
	}
	run := opts.Run
	if run == "" {
		run = time.Now().UTC().Format("20060102150405")
	}
	fresh, retired := spec.table+"_replay_"+run, spec.table+"_old_"+run
	rep = ReplayReport{Projection: opts.Projection, Run: run, Table: spec.table, Group: spec.projector + ".replay-" + run}
	tables := adapters.NewClickHouseTables(ch, database)

	if err := tables.CreateLike(ctx, spec.table, fresh); err != nil {
		return rep, err
	}
	swapped := false
	defer func() {
		if err != nil && !swapped {
			err = errors.Join(err, tables.Drop(context.WithoutCancel(ctx), fresh))
		}
	}()
	startAt := int64(-1)
	if opts.FromMs >= 0 {
		startAt = opts.FromMs
		if live, err := tables.Exists(ctx, spec.table); err != nil {
			return rep, err
		} else if live {
			if err := tables.CopyRows(ctx, spec.table, fresh); err != nil {
				return rep, err
			}
		}
	}
	pos, err := log.Offsets(spec.topic, startAt)
	if err != nil {
		return rep, err
	}
	logger.Info("replay started", "projection", opts.Projection, "run", run, "topic", spec.topic, "fresh_table", fresh, "from", pos)

	apply := func(handler func(*message.Message) error) (bool, error) {
		ends, err := log.Ends(spec.topic)
		if err != nil {
			return false, err
		}
		moved := false
		for _, p := range slices.Sorted(maps.Keys(ends)) {
			from := pos[p]
			if from >= ends[p] {
				continue
			}
			moved = true
			err := log.Read(ctx, spec.topic, p, from, ends[p], func(msg *message.Message) error {
				if err := applyWithRetry(ctx, handler, msg); err != nil {
					if messaging.IsPermanent(err) {
						rep.Poison++
						return nil
					}
					return err
				}
				rep.Records++
				return nil
			})
			if err != nil {
				return false, fmt.Errorf("replay %s/%d [%d, %d): %w", spec.topic, p, from, ends[p], err)
			}
			pos[p] = ends[p]
		}
		return moved, nil
	}

	freshHandler := spec.handler(ch, database, fresh)
	for range maxCatchUps {
		moved, err := apply(freshHandler)
		if err != nil {
			return rep, err
		}
		if !moved {
			break
		}
	}
	hadLive, err := tables.Swap(ctx, spec.table, fresh, retired)
	if err != nil {
		return rep, err
	}
	swapped = true
	if _, err := apply(spec.handler(ch, database, spec.table)); err != nil {
		return rep, fmt.Errorf("after the swap (the rebuilt table is live): %w", err)
	}
	if err := log.CommitGroup(rep.Group, spec.topic, pos); err != nil {
		logger.Warn("replay offsets not committed", "group", rep.Group, "error", err.Error())
	}
	if hadLive {
		if opts.KeepRetired {
			rep.Retired = retired
		} else if err := tables.Drop(ctx, retired); err != nil {
			return rep, err
		}
	}
	if rep.Rows, err = tables.Count(ctx, spec.table); err != nil {
		return rep, err
	}
	logger.Info("replay finished", "projection", opts.Projection, "run", run, "records", rep.Records, "poison", rep.Poison, "rows", rep.Rows)
	return rep, nil
}

// applyWithRetry applies msg, retrying transient errors with exponential
// backoff (100 ms doubling, 5 attempts).
func applyWithRetry(ctx context.Context, handler func(*message.Message) error, msg *message.Message) error {
	delay := 100 * time.Millisecond
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = handler(msg); err == nil || messaging.IsPermanent(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
	return err
}
