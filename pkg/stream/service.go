package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// ServiceConfig is what a stateful consumer service needs to run one
// Operator: its connections and its input.
type ServiceConfig struct {
	// Name is the service name, for logs and the Kafka client id.
	Name  string
	HTTP  config.HTTP
	Kafka config.Kafka
	Redis config.Redis
	// Group, Topic and TickInterval configure the Processor.
	Group        string
	Topic        string
	TickInterval time.Duration
}

// RunService runs op as a service until ctx is done: a Kafka subscriber in
// Group on Topic, a publisher for outputs and dead letters, Redis
// checkpoints (commands traced when tracing is on), ticks, the consumer-lag
// gauge of Group, and the HTTP server with /healthz, /readyz (ready when
// Redis answers and the router runs) and /metrics. It shuts everything down
// gracefully and returns nil after a clean stop, or the first error that
// stopped a component.
func RunService[S any](ctx context.Context, cfg ServiceConfig, op Operator[S], logger *slog.Logger) error {
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()
	if err := telemetry.InstrumentRedis(rdb); err != nil {
		return err
	}
	stopLag, err := messaging.ObserveLag(cfg.Kafka.Brokers, []string{cfg.Group})
	if err != nil {
		return err
	}
	defer func() { _ = stopLag() }()
	pub, err := messaging.NewPublisher(cfg.Kafka, cfg.Name, logger)
	if err != nil {
		return err
	}
	defer pub.Close()
	sub, err := messaging.NewSubscriber(cfg.Kafka, cfg.Group, logger)
	if err != nil {
		return err
	}
	defer sub.Close()
	proc, err := New(Config{Group: cfg.Group, Topic: cfg.Topic, TickInterval: cfg.TickInterval},
		op, checkpoint.New(rdb, cfg.Redis.KeyPrefix), pub, logger)
	if err != nil {
		return err
	}
	router, err := messaging.NewRouter(logger)
	if err != nil {
		return err
	}
	proc.UseDeltaStore(NewDeltaStore(rdb, cfg.Redis.KeyPrefix)) // used only by states that implement DeltaState
	proc.Register(router, sub)
	e := httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"router": func(context.Context) error {
			if !router.IsRunning() {
				return errors.New("not consuming yet")
			}
			return nil
		},
	})

	logger.Info("service starting", "http_addr", cfg.HTTP.Addr, "brokers", cfg.Kafka.Brokers, "group", cfg.Group, "topic", cfg.Topic)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return router.Run(gctx) })
	g.Go(func() error { return proc.Run(gctx) })
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.Handler(e), cfg.HTTP) })
	err = g.Wait()
	logger.Info("service stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", cfg.Name, err)
	}
	return nil
}
