// Package service wires the query service: ClickHouse and Redis clients,
// migrations, the use cases, the Watermill router with the projection
// handlers, and the HTTP server.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/dashboard"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// Storage is what the use cases run on, built by NewStorage.
type Storage struct {
	// Events writes raw events.
	Events *adapters.ClickHouseEventRepository
	// Windows reads and writes metric_windows.
	Windows *adapters.ClickHouseWindowRepository
	// WindowBatcher groups window writes into inserts into Windows; it must
	// be running (Run) while window results are projected.
	WindowBatcher *adapters.Batcher[metrics.Result]
	// AlertBatcher groups alert writes into inserts into Alerts; it must be
	// running (Run) while the alerts batch consumer projects.
	AlertBatcher *adapters.Batcher[alerts.Alert]
	// Live is the Redis live view.
	Live *adapters.RedisLiveRepository
	// Alerts holds the alerts and notifications projections.
	Alerts *adapters.ClickHouseAlertRepository
	// Recent reads the notifier's list of the latest alerts.
	Recent *adapters.RedisRecentAlerts
	// Hub fans stored window results out to /api/v1/stream clients.
	Hub *adapters.Hub
	// Batch is the Lambda batch layer (runs and the batch view).
	Batch *adapters.ClickHouseBatchRepository
	// Admin holds the rules and silences projections.
	Admin *adapters.ClickHouseAdminRepository
	// Pipeline reads consumer lag and topic sizes from Kafka; nil answers
	// GET /api/v1/pipeline with 503. NewStorage leaves it nil; New sets it.
	Pipeline query.PipelineReader
}

// WindowsBatchRecords is the most metrics.windows records of one partition
// the windows projector and the live projector each write at once (they
// may hold 500 results each).
const WindowsBatchRecords = 64

// WindowsInFlight is the most batches of one metrics.windows partition
// that the windows projector has queued while their history insert is
// pending: enough for a second of batches (QUERY_WINDOWS_BATCH_MAX_DELAY)
// arriving every few milliseconds.
const WindowsInFlight = 512

// EventsBatchRecords is the most events.raw records of one partition the
// events projector inserts at once (up to COLLECTOR_MAX_BATCH events each).
const EventsBatchRecords = 256

// AlertsBatchRows and AlertsBatchMaxDelay group alert state changes into
// one ClickHouse insert: at most this many, inserted at most this long
// after the first (a burst of alert changes at a minute boundary was one
// insert, and one part to merge, per alert).
const (
	AlertsBatchRows     = 10_000
	AlertsBatchMaxDelay = time.Second
)

// AlertsBatchRecords is the most alerts records of one partition the
// alerts projector applies at once.
const AlertsBatchRecords = 64

// AlertsInFlight is the most batches of one alerts partition applied while
// their insert is pending.
const AlertsInFlight = 512

// PipelineCacheTTL is how long a pipeline health snapshot is served before
// the broker is asked again, so many dashboards cost one round per TTL.
const PipelineCacheTTL = 2 * time.Second

// NewStorage builds the repositories on ch (tables in database) and rdb
// (keys under prefix; recentKey is the notifier's alerts list), with window
// inserts batched per batch.
func NewStorage(ch driver.Conn, database string, rdb redis.UniversalClient, prefix, recentKey string, batch config.WindowBatch) (Storage, error) {
	windows := adapters.NewClickHouseWindowRepository(ch, database)
	// A flush inserts only the latest revision of each window it holds:
	// the table keeps the highest revision anyway.
	batcher, err := adapters.NewBatcher(adapters.BatcherConfig{
		MaxRows: batch.MaxRows, MaxDelay: batch.MaxDelay, Idle: batch.Idle,
	}, func(ctx context.Context, rs []metrics.Result) error {
		return windows.InsertWindows(ctx, adapters.LatestRevisions(rs))
	})
	if err != nil {
		return Storage{}, err
	}
	alertsRepo := adapters.NewClickHouseAlertRepository(ch, database)
	alertBatcher, err := adapters.NewBatcher(adapters.BatcherConfig{MaxRows: AlertsBatchRows, MaxDelay: AlertsBatchMaxDelay}, alertsRepo.InsertAlerts)
	if err != nil {
		return Storage{}, err
	}
	return Storage{
		AlertBatcher:  alertBatcher,
		Events:        adapters.NewClickHouseEventRepository(ch, database),
		Windows:       windows,
		WindowBatcher: batcher,
		Live:          adapters.NewRedisLiveRepository(rdb, prefix),
		Alerts:        alertsRepo,
		Recent:        adapters.NewRedisRecentAlerts(rdb, recentKey),
		Hub:           adapters.NewHub(),
		Batch:         adapters.NewClickHouseBatchRepository(ch, database),
		Admin:         adapters.NewClickHouseAdminRepository(ch, database),
	}, nil
}

// NewApplication returns the use cases over s; the batch job computes defs
// (compiled metric definitions, the aggregator's); admin changes are
// published with pub (nil: the admin write endpoints fail).
func NewApplication(s Storage, defs []metrics.Definition, pub command.RecordPublisher) app.Application {
	return app.Application{
		Commands: app.Commands{
			ProjectEvents:       command.NewProjectEventsHandler(s.Events),
			ProjectWindow:       command.NewProjectWindowHandler(adapters.LatestRevisionsWriter{W: s.WindowBatcher}, s.Live, s.Hub),
			ProjectAlert:        command.NewProjectAlertHandler(s.Alerts),
			ProjectNotification: command.NewProjectNotificationHandler(s.Alerts),
			RunBatch:            command.NewRunBatchHandler(s.Batch, defs),
			Admin:               command.NewAdminHandler(pub, s.Admin),
		},
		Queries: app.Queries{
			Series: query.NewSeriesHandler(s.Windows, s.Batch),
			Live:   query.NewLiveHandler(s.Live),
			Top:    query.NewLiveTopHandler(s.Live, s.Live),
			Search: query.NewSearchHandler(s.Events, s.Windows, s.Alerts, s.Recent),
			Batch:  query.NewBatchReportHandler(s.Batch),
			Admin:  s.Admin,

			Notifications: query.NewNotificationsHandler(s.Alerts),
			Pipeline:      query.NewPipelineHandler(s.Pipeline, PipelineCacheTTL),
		},
	}
}

// Run builds the service from cfg and runs the HTTP server and the
// projections until ctx is done or one of them fails, then closes
// everything. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	svc, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("query service started", "http_addr", cfg.HTTP.Addr, "clickhouse", cfg.ClickHouse.Addr,
		"redis", cfg.Redis.Addr, "brokers", cfg.Kafka.Brokers)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.RunHTTP(gctx) })
	g.Go(func() error { return svc.RunProjections(gctx) })
	g.Go(func() error { return svc.RunBatchSchedule(gctx, logger) })
	g.Go(func() error { return svc.RunLiveSweep(gctx, logger) })
	err = g.Wait()
	logger.Info("query service stopped")
	return errors.Join(err, svc.Close())
}

// Service is the running query service. Build it with New, run
// RunProjections and RunHTTP (each until its context ends), then Close.
type Service struct {
	cfg     config.Config
	storage Storage
	app     app.Application
	http    *echo.Echo
	router  *message.Router
	windows *messaging.BatchConsumer
	live    *messaging.BatchConsumer
	events  *messaging.BatchConsumer
	alerts  *messaging.BatchConsumer
	// metricNames are the defined metrics' names: the live view's hashes
	// RunLiveSweep sweeps.
	metricNames []string

	streamStop     chan struct{} // closed when RunHTTP's context ends
	streamStopOnce sync.Once

	closeOnce sync.Once
	closeErr  error
	closers   []func() error // in reverse order of opening
}

// New connects to ClickHouse (applying migrations when cfg.Migrate), Redis
// and Kafka, and builds the router and the HTTP server. It fails fast when
// a dependency is unreachable; what it opened is closed again.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (_ *Service, err error) {
	s := &Service{cfg: cfg, streamStop: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()

	guard, err := auth.NewGuard(cfg.Auth, logger)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	ch, err := adapters.OpenClickHouse(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, ch.Close)
	if cfg.Migrate {
		if err := migrations.Up(ctx, ch, cfg.ClickHouse.Database, logger); err != nil {
			return nil, fmt.Errorf("migrate clickhouse: %w", err)
		}
	}
	rdb, err := adapters.OpenRedis(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, rdb.Close)

	s.storage, err = NewStorage(ch, cfg.ClickHouse.Database, rdb, cfg.Redis.KeyPrefix, cfg.RecentAlertsKey, cfg.Windows)
	if err != nil {
		return nil, err
	}
	// Inserts of raw events are grouped by time and size alone (idle =
	// MaxDelay): the events batch consumer keeps a partition's records
	// coming in batches, and fewer, larger parts are what keeps ClickHouse's
	// merges cheap (config.EventBatch).
	s.storage.Events = s.storage.Events.WithGroupCommit(adapters.GroupCommitConfig{
		MaxRows: cfg.Events.MaxRows, Idle: cfg.Events.MaxDelay, MaxDelay: cfg.Events.MaxDelay,
	})
	kp, err := adapters.NewKafkaPipeline(cfg.Kafka.Brokers)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, kp.Close)
	s.storage.Pipeline = kp
	defs, err := cfg.Batch.Definitions()
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		s.metricNames = append(s.metricNames, d.Name)
	}
	// One Kafka publisher for dead letters and admin records.
	pub, err := messaging.NewPublisher(cfg.Kafka, "query", logger)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, pub.Close)
	application := NewApplication(s.storage, defs, adapters.RecordPublisher{Pub: pub})
	application.Commands.ProjectAlert = application.Commands.ProjectAlert.WithQueue(s.storage.AlertBatcher)
	application.Commands.RunBatch = application.Commands.RunBatch.WithPlan(cfg.Batch.Chunk, cfg.Batch.Parallelism)
	s.app = application
	var subs ports.Subscribers
	for _, sub := range []struct {
		group string
		dst   *message.Subscriber
	}{
		{ports.NotificationsProjector, &subs.Notifications},
		{ports.RulesProjector, &subs.Rules},
		{ports.SilencesProjector, &subs.Silences},
	} {
		k, err := messaging.NewSubscriber(cfg.Kafka, sub.group, logger)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, k.Close)
		*sub.dst = k
	}
	stopLag, err := messaging.ObserveLag(cfg.Kafka.Brokers, []string{ports.EventsProjector, ports.WindowsProjector, ports.LiveProjector,
		ports.AlertsProjector, ports.NotificationsProjector, ports.RulesProjector, ports.SilencesProjector})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, stopLag)
	s.router, err = messaging.NewRouter(logger)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.router.Close)
	projections := ports.NewProjections(application)
	projections.Register(s.router, subs, pub, logger)
	// metrics.windows is consumed in batches (see messaging.BatchConsumer):
	// a backlog of window results is written a batch at a time, with the
	// superseded revisions left out, instead of a round of writes per record.
	// Two consumer groups project it: the windows projector keeps the
	// history, pipelined (its offsets are committed once the grouped
	// insert holding a batch is done), and the live projector the live
	// view, which so never waits behind the history's work.
	s.windows, err = messaging.NewPipelinedBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: cfg.Kafka.Brokers, Group: ports.WindowsProjector, Topic: messaging.TopicMetricsWindows,
		MaxRecords: WindowsBatchRecords, RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
		MaxInFlight: WindowsInFlight,
	}, projections.WindowsBatchHandler(pub, logger), logger)
	if err != nil {
		return nil, err
	}
	s.live, err = messaging.NewPipelinedBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: cfg.Kafka.Brokers, Group: ports.LiveProjector, Topic: messaging.TopicMetricsWindows,
		MaxRecords: WindowsBatchRecords, RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
	}, projections.LiveBatchHandler(pub, logger), logger)
	if err != nil {
		return nil, err
	}
	// events.raw too: while a group commit waits (cfg.Events.MaxDelay), a
	// partition's records pile up and go into the next insert together.
	s.events, err = messaging.NewPipelinedBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: cfg.Kafka.Brokers, Group: ports.EventsProjector, Topic: messaging.TopicEventsRaw,
		MaxRecords: EventsBatchRecords, RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
	}, projections.EventsBatchHandler(pub, logger), logger)
	if err != nil {
		return nil, err
	}

	// alerts too, pipelined: alert changes come in bursts, and each of
	// them was an insert of its own.
	s.alerts, err = messaging.NewPipelinedBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: cfg.Kafka.Brokers, Group: ports.AlertsProjector, Topic: messaging.TopicAlerts,
		MaxRecords: AlertsBatchRecords, RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
		MaxInFlight: AlertsInFlight,
	}, projections.AlertsBatchHandler(pub, logger), logger)
	if err != nil {
		return nil, err
	}

	router := s.router
	s.http = httpserver.New(logger, map[string]httpserver.ReadyFunc{
		"clickhouse": ch.Ping,
		"redis":      func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"router": func(context.Context) error {
			if !router.IsRunning() || router.IsClosed() {
				return errors.New("not consuming")
			}
			return nil
		},
		"batch consumers": func(context.Context) error {
			for _, c := range []*messaging.BatchConsumer{s.events, s.windows, s.live, s.alerts} {
				select {
				case <-c.Running():
				default:
					return errors.New("not consuming yet")
				}
			}
			return nil
		},
	})
	s.http.Use(httpserver.CORS(cfg.HTTP.CORSOrigins))
	ports.NewHTTPServer(application, ports.StreamConfig{Feed: s.storage.Hub, Heartbeat: cfg.StreamHeartbeat, Stop: s.streamStop}, guard).Register(s.http)
	dashboard.Register(s.http)
	return s, nil
}

// RunProjections consumes the projected topics (notifications, rules and
// silences through the Watermill router, events.raw, metrics.windows (twice:
// history and live view) and alerts through batch consumers) until ctx is done, then lets
// in-flight messages finish (their window rows are still flushed) and
// returns nil. It returns an error if the router or a batch consumer
// cannot start or stops while ctx is still live; the others then stop too.
func (s *Service) RunProjections(ctx context.Context) error {
	// The batchers outlive the consumers, so that handlers waiting on a
	// flush during shutdown get their answer.
	batcherCtx, stopBatcher := context.WithCancel(context.WithoutCancel(ctx))
	var batcher errgroup.Group
	batcher.Go(func() error { return s.storage.WindowBatcher.Run(batcherCtx) })
	batcher.Go(func() error { return s.storage.AlertBatcher.Run(batcherCtx) })
	g, gctx := errgroup.WithContext(ctx)
	for name, c := range map[string]*messaging.BatchConsumer{"windows": s.windows, "live": s.live, "events": s.events, "alerts": s.alerts} {
		g.Go(func() error {
			if err := c.Run(gctx); err != nil {
				return err
			}
			if ctx.Err() == nil && gctx.Err() == nil {
				return fmt.Errorf("%s batch consumer stopped before shutdown", name)
			}
			return nil
		})
	}
	g.Go(func() error {
		stopClosing := context.AfterFunc(gctx, func() { _ = s.router.Close() })
		defer stopClosing()
		if err := s.router.Run(gctx); err != nil {
			return fmt.Errorf("watermill router: %w", err)
		}
		if ctx.Err() == nil {
			return errors.New("watermill router stopped before shutdown (all handlers stopped)")
		}
		return nil
	})
	err := g.Wait()
	stopBatcher()
	return errors.Join(err, batcher.Wait())
}

// RunHTTP serves the REST API on cfg.HTTP.Addr until ctx is done, then
// shuts down within cfg.HTTP.ShutdownTimeout.
func (s *Service) RunHTTP(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.streamStopOnce.Do(func() { close(s.streamStop) }) })
	defer stop()
	return httpserver.Serve(ctx, httpserver.Handler(s.http), s.cfg.HTTP)
}

// Close releases the router, Kafka clients, Redis and ClickHouse. It is
// safe to call more than once and without Run*; call it after the Run
// methods returned.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for i := len(s.closers) - 1; i >= 0; i-- {
			errs = append(errs, s.closers[i]())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
