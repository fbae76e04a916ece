// Package service wires the collector: Kafka publisher and batch publisher,
// the use cases, the echo server with its readiness check, and the HTTP
// lifecycle.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/collector/internal/adapters"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
	"github.com/streamwatch/streamwatch/services/collector/internal/config"
	"github.com/streamwatch/streamwatch/services/collector/internal/ports"
)

// ClientID is the Kafka client id of the collector's producer.
const ClientID = "streamwatch-collector"

// Service is the running collector: an HTTP server that publishes to
// Kafka. Create it with New, serve with Run, release it with Close.
type Service struct {
	cfg    config.Config
	logger *slog.Logger
	echo   *echo.Echo

	pub   *kafka.Publisher
	batch *messaging.BatchPublisher
	group *adapters.GroupPublisher
	meta  sarama.Client

	closeOnce sync.Once
	closeErr  error
}

// New reads the API keys (cfg.Auth: it fails when keys are required but
// none is configured), connects to the brokers in cfg.Kafka (it fails fast
// when none is reachable) and builds the HTTP server. A nil logger discards. The caller
// calls Close when done, also when Run was never called.
func New(cfg config.Config, logger *slog.Logger) (*Service, error) {
	logger = messaging.Logger(logger)
	s := &Service{cfg: cfg, logger: logger}
	guard, err := auth.NewGuard(cfg.Auth, logger)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	if s.pub, err = messaging.NewPublisher(cfg.Kafka, ClientID, logger); err != nil {
		return nil, err
	}
	if s.batch, err = messaging.NewBatchPublisher(cfg.Kafka, s.pub, cfg.MaxBatch); err != nil {
		_ = s.pub.Close()
		return nil, err
	}
	if s.group, err = adapters.NewGroupPublisher(s.batch, adapters.GroupConfig{MaxEvents: cfg.MaxBatch, Linger: cfg.Linger}); err != nil {
		_ = s.batch.Close()
		_ = s.pub.Close()
		return nil, err
	}
	if s.meta, err = sarama.NewClient(cfg.Kafka.Brokers, messaging.SaramaConfig(ClientID+"-readiness")); err != nil {
		_ = s.batch.Close()
		_ = s.pub.Close()
		return nil, fmt.Errorf("kafka readiness client: %w", err)
	}

	s.echo = httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"kafka": topicReady(s.meta, app.Topic),
	})
	s.echo.Use(httpserver.CORS(cfg.HTTP.CORSOrigins))
	limits := app.Limits{
		MaxEventBytes: cfg.MaxEventBytes, MaxJSONDepth: cfg.MaxJSONDepth, MaxJSONFields: cfg.MaxJSONFields,
		MaxEventAge: cfg.MaxEventAge, MaxEventSkew: cfg.MaxEventSkew,
	}
	ports.NewHTTPServer(app.New(s.group, nil, limits), cfg.MaxBodyBytes, guard).Register(s.echo)
	ports.NewProfilesServer(app.NewProfiles(adapters.NewProfilePublisher(s.pub), nil), cfg.MaxBodyBytes, guard).Register(s.echo)
	return s, nil
}

// Handler returns the HTTP handler Run serves: the ingest endpoints,
// /healthz, /readyz and /metrics, with a server span per ingest request
// (the root of the request's trace, or a child of its traceparent header).
func (s *Service) Handler() http.Handler { return httpserver.Handler(s.echo) }

// Run serves HTTP on cfg.HTTP.Addr until ctx is done, then stops accepting
// connections and waits up to cfg.HTTP.ShutdownTimeout for requests in
// flight (whose events are being published) to finish. It returns nil after
// a clean shutdown, or the listen or shutdown error. It logs start and stop.
func (s *Service) Run(ctx context.Context) error {
	s.logger.Info("collector starting", "addr", s.cfg.HTTP.Addr, "kafka_brokers", s.cfg.Kafka.Brokers, "topic", app.Topic)
	err := httpserver.Serve(ctx, httpserver.Handler(s.echo), s.cfg.HTTP)
	s.logger.Info("collector stopped")
	return err
}

// Close releases the Kafka clients. Call it after Run returned. Safe to call
// more than once; later calls return the first result.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.meta.Close(), s.group.Close(), s.batch.Close(), s.pub.Close())
	})
	return s.closeErr
}

// topicReady returns a readiness check that refreshes the metadata of topic
// from the brokers and requires at least one partition. A check that does
// not finish before ctx is done fails; checks never run concurrently.
func topicReady(client sarama.Client, topic string) httpserver.ReadyFunc {
	sem := make(chan struct{}, 1)
	return func(ctx context.Context) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("metadata of %s: %w", topic, ctx.Err())
		}
		done := make(chan error, 1)
		go func() {
			defer func() { <-sem }()
			if err := client.RefreshMetadata(topic); err != nil {
				done <- fmt.Errorf("metadata of %s: %w", topic, err)
				return
			}
			ps, err := client.Partitions(topic)
			if err == nil && len(ps) == 0 {
				err = errors.New("no partitions")
			}
			if err != nil {
				err = fmt.Errorf("partitions of %s: %w", topic, err)
			}
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return fmt.Errorf("metadata of %s: %w", topic, ctx.Err())
		}
	}
}
