// Package service wires the notifier: the routing file, the integrations,
// the forwarders (alerts, silences, acks → dispatch topic), the dispatcher
// (an exactly-once stream operator) and one delivery consumer per
// integration, plus the HTTP server with /healthz and /readyz.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// Consumer groups (and checkpoint namespaces). Never rename them: a new
// name re-consumes its topic from the start.
const (
	// Group forwards the alerts topic (the name predates routing).
	Group         = "notifier.delivery"
	GroupSilences = "notifier.silences"
	GroupAcks     = "notifier.acks"
	GroupDispatch = "notifier.dispatch"
	// GroupDeliverPrefix + integration name (slashes as dots) is the group
	// of one integration's delivery queue.
	GroupDeliverPrefix = "notifier.deliver."
)

// MaxBatchRecords is the most records of one partition the forwarders and
// the dispatcher apply and commit together. Bigger batches amortise the
// commit and the produce round further but hold the batch's first record
// longer; 500 drains a few thousand alert changes in a handful of rounds
// (BenchmarkProbeBehindBurst in devstack/notifiertest).
const MaxBatchRecords = 500

// Routing returns the routing of cfg: the file NOTIFIER_CONFIG_FILE, or
// the built-in default.
func Routing(cfg *config.Config) (config.Routing, error) {
	if cfg.ConfigFile == "" {
		return config.DefaultRouting(cfg), nil
	}
	return config.LoadRouting(cfg.ConfigFile)
}

// deliverGroup is the consumer group of an integration's delivery queue.
func deliverGroup(integration string) string {
	return GroupDeliverPrefix + strings.ReplaceAll(integration, "/", ".")
}

// Run runs the notifier until ctx is done.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	routing, err := Routing(&cfg)
	if err != nil {
		return err
	}
	dcfg, err := routing.Dispatch()
	if err != nil {
		return err
	}
	d, err := dispatch.New(dcfg)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()
	if err := telemetry.InstrumentRedis(rdb); err != nil {
		return err
	}
	lookup := func(k string) (string, bool) {
		if k == "NOTIFIER_WEBHOOK_URL" && cfg.WebhookURL != "" {
			return cfg.WebhookURL, true
		}
		return os.LookupEnv(k)
	}
	built, refs, err := BuildIntegrations(&routing, &cfg, rdb, lookup)
	if err != nil {
		return err
	}
	traced(built)
	stopLag, err := messaging.ObserveLag(cfg.Kafka.Brokers, groups(built))
	if err != nil {
		return err
	}
	defer func() { _ = stopLag() }()
	// One produce round per batch of outputs (messaging.Producer), not one
	// synchronous publish per record.
	kpub, err := messaging.NewProducer(cfg.Kafka, "notifier")
	if err != nil {
		return err
	}
	defer kpub.Close()
	pub, err := newOutcomePublisher(kpub)
	if err != nil {
		return err
	}
	router, err := messaging.NewRouter(logger)
	if err != nil {
		return err
	}
	store := checkpoint.New(rdb, cfg.Redis.KeyPrefix)
	var subs []message.Subscriber
	defer func() {
		for _, s := range subs {
			_ = s.Close()
		}
	}()
	subscribe := func(group string) (message.Subscriber, error) {
		s, err := messaging.NewSubscriber(cfg.Kafka, group, logger)
		if err == nil {
			subs = append(subs, s)
		}
		return s, err
	}
	// The forwarders and the dispatcher take each partition's waiting
	// records together (pkg/stream HandleBatch): one checkpoint commit and
	// one produce round per batch, so a minute boundary's burst of alert
	// changes drains in a few rounds and an alert behind it waits for those
	// instead of one Redis commit and one produce per record ahead of it.
	var consumers []*messaging.BatchConsumer
	batches := stream.BatchSettings{Kafka: cfg.Kafka, MaxRecords: MaxBatchRecords}
	for _, f := range []struct{ group, topic, kind string }{
		{Group, messaging.TopicAlerts, app.KindAlert},
		{GroupSilences, messaging.TopicSilences, app.KindSilence},
		{GroupAcks, messaging.TopicAcks, app.KindAck},
	} {
		proc, err := stream.New(stream.Config{Group: f.group, Topic: f.topic}, app.NewForward(f.kind), store, pub, logger)
		if err != nil {
			return err
		}
		c, err := proc.NewBatchConsumer(batches, logger)
		if err != nil {
			return err
		}
		consumers = append(consumers, c)
	}
	dproc, err := stream.New(stream.Config{Group: GroupDispatch, Topic: messaging.TopicNotifierDispatch, TickInterval: cfg.TickInterval},
		app.NewDispatch(d, refs), store, pub, logger)
	if err != nil {
		return err
	}
	// The dispatch state (every alert of the last 7 days, groups, silences)
	// is checkpointed incrementally: a record or tick writes what it changed.
	dproc.UseDeltaStore(stream.NewDeltaStore(rdb, cfg.Redis.KeyPrefix))
	dc, err := dproc.NewBatchConsumer(batches, logger)
	if err != nil {
		return err
	}
	consumers = append(consumers, dc)
	done := adapters.NewRedisDone(rdb, cfg.Redis.KeyPrefix)
	for _, b := range built {
		group := deliverGroup(b.Ref.Name)
		sub, err := subscribe(group)
		if err != nil {
			return err
		}
		dl := app.NewDeliverer(app.DeliverSettings{
			Integration: b.Ref.Name, Timeout: b.Timeout, MaxTries: b.MaxTries,
			InitialBackoff: cfg.RetryInitial, MaxBackoff: cfg.RetryMax,
		}, b.Target, done, pub, logger)
		h := router.AddConsumerHandler(group, messaging.TopicNotifierDeliveries, sub, dl.Handle)
		h.AddMiddleware(messaging.DeadLetter(pub, messaging.TopicNotifierDeliveries, logger))
	}
	// Wake the dispatcher now and then, so that whichever instance owns
	// its partition loads it and runs its timers without waiting for the
	// next alert (after a restart or a rebalance).
	wake := func() error {
		w := app.DispatchOutput(app.KindWake, watermill.NewUUID(), []byte("{}"))
		wm := message.NewMessage(w.UUID, w.Payload)
		for k, v := range w.Metadata {
			wm.Metadata.Set(k, v)
		}
		wm.Metadata.Set(messaging.MetaKey, w.Key)
		if err := pub.Publish(w.Topic, wm); err != nil {
			return fmt.Errorf("wake dispatcher: %w", err)
		}
		return nil
	}
	if err := wake(); err != nil {
		return err
	}

	names := make([]string, len(built))
	for i, b := range built {
		names[i] = b.Ref.Name
	}
	logger.Info("notifier starting", "http_addr", cfg.HTTP.Addr, "integrations", names, "config_file", cfg.ConfigFile != "")
	e := httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"router": func(context.Context) error {
			if !router.IsRunning() {
				return errors.New("not consuming yet")
			}
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
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return router.Run(gctx) })
	for _, c := range consumers {
		g.Go(func() error { return c.Run(gctx) })
	}
	g.Go(func() error { return dproc.Run(gctx) })
	g.Go(func() error {
		t := time.NewTicker(cfg.WakeInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				if err := wake(); err != nil {
					logger.Warn("wake dispatcher", "error", err.Error())
				}
			}
		}
	})
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.Handler(e), cfg.HTTP) })
	err = g.Wait()
	logger.Info("notifier stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("notifier: %w", err)
	}
	return nil
}
