// Package service wires the aggregator: the windowing operator on events.raw
// run by the shared stream service (Kafka, Redis checkpoints, HTTP health).
package service

import (
	"context"
	"log/slog"

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
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	op := app.NewAggregate(app.Settings{
		Definitions: metrics.DefaultDefinitions(),
		Window: window.Config{
			OutOfOrderness:  cfg.Window.OutOfOrderness.Milliseconds(),
			AllowedLateness: cfg.Window.AllowedLateness.Milliseconds(),
			IdleTimeout:     cfg.Window.IdleTimeout.Milliseconds(),
		},
	})
	return stream.RunService(ctx, stream.ServiceConfig{
		Name: "aggregator", HTTP: cfg.HTTP, Kafka: cfg.Kafka, Redis: cfg.Redis,
		Group: Group, Topic: messaging.TopicEventsRaw, TickInterval: cfg.Window.EmitInterval,
	}, op, logger)
}
