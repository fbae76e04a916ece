// Package service wires the detector: the rule set (file + rules topic),
// and two exactly-once stream processors — window results on
// metrics.windows and raw events on events.raw — publishing to alerts.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
	"github.com/streamwatch/streamwatch/services/detector/internal/adapters"
	"github.com/streamwatch/streamwatch/services/detector/internal/app"
	"github.com/streamwatch/streamwatch/services/detector/internal/config"
)

// Consumer groups and checkpoint namespaces. Never rename them: a new name
// re-consumes its topic from the start with empty state.
const (
	// Group consumes metrics.windows.
	Group = "detector.thresholds"
	// EventsGroup consumes events.raw (patterns, event absence, samples).
	EventsGroup = "detector.events"
)

// MaxBatchRecords is the most records of one partition the detector's
// consumers apply and commit together (one checkpoint commit and one
// produce round per batch). With no backlog a batch is the one record
// that arrived, or, on events.raw with DETECTOR_EVENTS_COMMIT_INTERVAL
// set, the records of one interval.
const MaxBatchRecords = 100

// LoadRules reads the rules file, or the built-in rules when path is empty.
// Errors name the file, the line and the reason.
func LoadRules(path string) ([]rules.Rule, error) {
	if path == "" {
		return rules.Parse("built-in rules", []byte(rules.DefaultRules))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return rules.Parse(path, data)
}

// Run runs the detector until ctx is done. It fails fast on invalid rules.
// The stream processors start once the rules topic has been read to the end
// it had at start-up, so no record is evaluated with stale rules.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	file, err := LoadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	live, err := app.NewRules(file)
	if err != nil {
		return err
	}
	logger.Info("rules loaded", "count", len(file), "file", cfg.RulesFile)

	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()
	if err := telemetry.InstrumentRedis(rdb); err != nil {
		return err
	}
	stopLag, err := messaging.ObserveLag(cfg.Kafka.Brokers, []string{Group, EventsGroup})
	if err != nil {
		return err
	}
	defer func() { _ = stopLag() }()
	// One produce round per batch of alerts (a minute boundary's window
	// results can breach for hundreds of label sets at once), not one
	// synchronous publish per alert.
	pub, err := messaging.NewProducer(cfg.Kafka, "detector")
	if err != nil {
		return err
	}
	defer pub.Close()
	store := checkpoint.New(rdb, cfg.Redis.KeyPrefix)
	windows, err := stream.New(stream.Config{Group: Group, Topic: messaging.TopicMetricsWindows}, app.NewDetect(live), store, pub, logger)
	if err != nil {
		return err
	}
	// The windows state (every label set a rule saw in the last day) is
	// checkpointed incrementally: a record writes the series it changed.
	windows.UseDeltaStore(stream.NewDeltaStore(rdb, cfg.Redis.KeyPrefix))
	evs, err := stream.New(stream.Config{Group: EventsGroup, Topic: messaging.TopicEventsRaw}, app.NewDetectEvents(live, cfg.OutOfOrderness), store, pub, logger)
	if err != nil {
		return err
	}
	// Both consume in batches (stream.HandleBatch): a partition's waiting
	// records are applied together, with one checkpoint commit and one
	// produce round, so the detector catches up after a burst instead of
	// paying a round of writes per record.
	batches := stream.BatchSettings{Kafka: cfg.Kafka, MaxRecords: MaxBatchRecords}
	windowsConsumer, err := windows.NewBatchConsumer(batches, logger)
	if err != nil {
		return err
	}
	eventsBatches := batches
	eventsBatches.CommitInterval = cfg.EventsCommitInterval
	eventsConsumer, err := evs.NewBatchConsumer(eventsBatches, logger)
	if err != nil {
		return err
	}
	consumers := []*messaging.BatchConsumer{windowsConsumer, eventsConsumer}

	loaded := make(chan struct{})
	if !cfg.RulesTopic {
		close(loaded)
	}
	e := httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"rules": func(context.Context) error {
			select {
			case <-loaded:
				return nil
			default:
				return errors.New("reading the rules topic")
			}
		},
		"router": func(context.Context) error {
			for _, c := range consumers {
				select {
				case <-c.Running():
				default:
					return errors.New("not consuming yet")
				}
			}
			return nil
		},
	})

	logger.Info("service starting", "http_addr", cfg.HTTP.Addr, "brokers", cfg.Kafka.Brokers,
		"groups", []string{Group, EventsGroup}, "rules_topic", cfg.RulesTopic)
	g, gctx := errgroup.WithContext(ctx)
	if cfg.RulesTopic {
		rc := adapters.NewRulesConsumer(cfg.Kafka, messaging.TopicRules, live.Apply, logger)
		g.Go(func() error { return rc.Run(gctx, loaded) })
	}
	g.Go(func() error {
		select {
		case <-loaded:
		case <-gctx.Done():
			return nil
		}
		logger.Info("rules topic read", "rules", live.Set().Len())
		cg, cctx := errgroup.WithContext(gctx)
		for _, c := range consumers {
			cg.Go(func() error { return c.Run(cctx) })
		}
		return cg.Wait()
	})
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.Handler(e), cfg.HTTP) })
	err = g.Wait()
	logger.Info("service stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("detector: %w", err)
	}
	return nil
}
