// Package service wires the aggregator: the windowing operator on events.raw
// run by the shared stream service (Kafka, Redis checkpoints, HTTP health).
package service

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/config"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

// Group is the aggregator's consumer group and checkpoint namespace. Never
// rename it: a new group starts from empty state and re-reads events.raw.
const Group = "aggregator.windows"

// Run runs the aggregator until ctx is done, then shuts down gracefully. It
// returns an error when a dependency cannot be set up or a component fails.
// Besides the shared pipeline metrics it exports the state gauges (open
// windows, state size, watermark delay per partition) and the late-event
// counter.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	defs, err := loadDefinitions(cfg.MetricsFile)
	if err != nil {
		return err
	}
	logger.Info("metric definitions loaded", "count", len(defs), "file", cmp.Or(cfg.MetricsFile, metrics.DefaultsFile))
	op := app.NewAggregate(app.Settings{
		Definitions: defs,
		Window: window.Config{
			OutOfOrderness:  cfg.Window.OutOfOrderness.Milliseconds(),
			AllowedLateness: cfg.Window.AllowedLateness.Milliseconds(),
			IdleTimeout:     cfg.Window.IdleTimeout.Milliseconds(),
			EarlyInterval:   cfg.Window.EmitInterval.Milliseconds(),
		},
	})
	unregister, err := observeGauges(op, time.Now)
	if err != nil {
		return err
	}
	defer func() { _ = unregister() }()
	counted, err := newCountingOperator(op)
	if err != nil {
		return err
	}
	return stream.RunService(ctx, stream.ServiceConfig{
		Name: "aggregator", HTTP: cfg.HTTP, Kafka: cfg.Kafka, Redis: cfg.Redis,
		Group: Group, Topic: messaging.TopicEventsRaw, TickInterval: cfg.Window.EmitInterval,
	}, counted, logger)
}

// loadDefinitions returns the definitions of path, or the built-in set when
// path is empty. Errors name the file, line and reason.
func loadDefinitions(path string) ([]metrics.Definition, error) {
	if path == "" {
		return metrics.Defaults()
	}
	return metrics.LoadDefinitions(path)
}
