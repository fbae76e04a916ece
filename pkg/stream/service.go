package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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
	// MaxBatchRecords, when > 0, consumes in batches (HandleBatch through
	// NewBatchConsumer): up to this many waiting records of a partition
	// are applied with one checkpoint commit and one produce round. 0 uses
	// the Watermill router, one record and one commit at a time.
	MaxBatchRecords int
	// CommitInterval, with MaxBatchRecords, is the least time between two
	// batches of a partition: records that trickle in are committed
	// together, once per interval (messaging.BatchConsumerConfig); 0: none.
	CommitInterval time.Duration
}

// RunService runs op as a service until ctx is done: a Kafka consumer in
// Group on Topic (a batch consumer when MaxBatchRecords > 0, else a
// Watermill subscriber and router), a publisher for outputs and dead
// letters (a messaging.Producer, one produce round per commit, with
// batches), Redis
// checkpoints (commands traced when tracing is on), ticks, the consumer-lag
// gauge of Group, and the HTTP server with /healthz, /readyz (ready when
// Redis answers and the consumer runs) and /metrics. It shuts everything down
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
	var pub message.Publisher
	if cfg.MaxBatchRecords > 0 {
		// One produce round per commit (RoutedPublisher).
		pub, err = messaging.NewProducer(cfg.Kafka, cfg.Name)
	} else {
		pub, err = messaging.NewPublisher(cfg.Kafka, cfg.Name, logger)
	}
	if err != nil {
		return err
	}
	defer pub.Close()
	proc, err := New(Config{Group: cfg.Group, Topic: cfg.Topic, TickInterval: cfg.TickInterval},
		op, checkpoint.New(rdb, cfg.Redis.KeyPrefix), pub, logger)
	if err != nil {
		return err
	}
	proc.UseDeltaStore(NewDeltaStore(rdb, cfg.Redis.KeyPrefix)) // used only by states that implement DeltaState
	consume, consuming, closeInput, err := serviceInput(cfg, proc, logger)
	if err != nil {
		return err
	}
	defer closeInput()
	e := httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"router": func(context.Context) error {
			if !consuming() {
				return errors.New("not consuming yet")
			}
			return nil
		},
	})

	logger.Info("service starting", "http_addr", cfg.HTTP.Addr, "brokers", cfg.Kafka.Brokers, "group", cfg.Group, "topic", cfg.Topic,
		"max_batch_records", cfg.MaxBatchRecords, "commit_interval", cfg.CommitInterval.String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return consume(gctx) })
	g.Go(func() error { return proc.Run(gctx) })
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.Handler(e), cfg.HTTP) })
	err = g.Wait()
	logger.Info("service stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", cfg.Name, err)
	}
	return nil
}

// serviceInput builds the consumer of RunService: a batch consumer
// (cfg.MaxBatchRecords > 0) or a Watermill subscriber and router. It
// returns the function that consumes until ctx ends, whether it is
// consuming (for /readyz), and what closes it.
func serviceInput[S any](cfg ServiceConfig, proc *Processor[S], logger *slog.Logger) (consume func(context.Context) error, consuming func() bool, closeInput func(), err error) {
	if cfg.MaxBatchRecords > 0 {
		bc, err := proc.NewBatchConsumer(BatchSettings{Kafka: cfg.Kafka, MaxRecords: cfg.MaxBatchRecords, CommitInterval: cfg.CommitInterval}, logger)
		if err != nil {
			return nil, nil, nil, err
		}
		running := func() bool {
			select {
			case <-bc.Running():
				return true
			default:
				return false
			}
		}
		return bc.Run, running, func() {}, nil
	}
	sub, err := messaging.NewSubscriber(cfg.Kafka, cfg.Group, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	router, err := messaging.NewRouter(logger)
	if err != nil {
		_ = sub.Close()
		return nil, nil, nil, err
	}
	proc.Register(router, sub)
	return router.Run, router.IsRunning, func() { _ = sub.Close() }, nil
}
