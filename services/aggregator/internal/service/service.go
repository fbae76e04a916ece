// Package service wires the aggregator: Kafka subscriber and publisher,
// Redis checkpoints, the stream processor and the HTTP health server.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
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
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()

	pub, err := messaging.NewPublisher(cfg.Kafka, "aggregator", logger)
	if err != nil {
		return err
	}
	defer pub.Close()
	sub, err := messaging.NewSubscriber(cfg.Kafka, Group, logger)
	if err != nil {
		return err
	}
	defer sub.Close()

	op := app.NewAggregate(app.Settings{
		Definitions: metrics.DefaultDefinitions(),
		Window: window.Config{
			OutOfOrderness:  cfg.Window.OutOfOrderness.Milliseconds(),
			AllowedLateness: cfg.Window.AllowedLateness.Milliseconds(),
			IdleTimeout:     cfg.Window.IdleTimeout.Milliseconds(),
		},
	})
	proc, err := stream.New(stream.Config{Group: Group, Topic: messaging.TopicEventsRaw, TickInterval: cfg.Window.EmitInterval},
		op, checkpoint.New(rdb, cfg.Redis.KeyPrefix), pub, logger)
	if err != nil {
		return err
	}
	router, err := messaging.NewRouter(logger)
	if err != nil {
		return err
	}
	proc.Register(router, sub)

	e := httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"redis":  func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"router": func(context.Context) error { return running(router.IsRunning()) },
	})

	logger.Info("aggregator starting", "http_addr", cfg.HTTP.Addr, "brokers", cfg.Kafka.Brokers)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return router.Run(ctx) })
	g.Go(func() error { return proc.Run(ctx) })
	g.Go(func() error { return httpserver.Run(ctx, e, cfg.HTTP.Addr, cfg.HTTP.ShutdownTimeout) })
	err = g.Wait()
	logger.Info("aggregator stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("aggregator: %w", err)
	}
	return nil
}

func running(ok bool) error {
	if !ok {
		return errors.New("not consuming yet")
	}
	return nil
}
