// Package stack runs the whole of Streamwatch on one machine, on 127.0.0.1:
// an in-process Kafka-protocol broker (kfake), Redis and ClickHouse as child
// processes, the suite's topics, and the five service binaries. The
// streamwatch-dev command and the end-to-end tests use it.
//
// Everything a stack writes lives under Options.DataDir:
//
//	kafka/        broker state (topics, records, offsets)
//	redis/        Redis append-only file
//	clickhouse/   generated config.xml and users.xml, data, ClickHouse's logs
//	logs/<name>.log  stdout and stderr of redis, clickhouse and each service
//
// Starting a stack again on the same DataDir keeps the data. Child processes
// run in their own process groups and, on Linux, are killed by the kernel
// when the process that started them dies, so a killed test run leaks no
// servers. The package needs a Unix system.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// ClickHouseDatabase is the database the services use (CLICKHOUSE_DATABASE);
// Start creates it.
const ClickHouseDatabase = "streamwatch"

// Defaults applied by Start to zero Options fields.
const (
	DefaultPartitions   = 6
	DefaultReadyTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultLogLevel     = "info"
)

// Options configure Start. The zero value of every field but DataDir and
// BinDir is usable.
type Options struct {
	// DataDir holds all state and logs (see the package doc); it is
	// created when missing and made absolute. Required.
	DataDir string
	// BinDir holds the service binaries, named as in ServiceNames.
	// Required unless SkipServices.
	BinDir string
	// Partitions is the partition count of every created topic, and of
	// topics the broker creates on first use. Default DefaultPartitions.
	Partitions int32
	// FixedPorts asks for the well-known ports (broker 9092, Redis 6379,
	// ClickHouse native 9000 and HTTP 8123, collector 8080, aggregator
	// 8081, detector 8082, notifier 8083, query 8084); any that is busy is
	// replaced by a free port. When false every port is a free port.
	FixedPorts bool
	// SkipServices starts only the broker, Redis and ClickHouse.
	SkipServices bool
	// Services are the services to start; nil means all of ServiceNames,
	// an empty non-nil slice none. Ignored with SkipServices.
	Services []string
	// ServiceEnv holds extra environment variables per service name (e.g.
	// {"notifier": {"NOTIFIER_WEBHOOK_URL": "http://..."}}); they override
	// the stack's own variables.
	ServiceEnv map[string]map[string]string
	// LogLevel is passed to the services as LOG_LEVEL. Default
	// DefaultLogLevel.
	LogLevel string
	// ReadyTimeout bounds the wait for each service's GET /readyz to answer
	// 200. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is how long a child process gets between SIGTERM and
	// SIGKILL. Default DefaultStopTimeout.
	StopTimeout time.Duration
	// Logger receives lifecycle events; nil discards them.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Services == nil {
		o.Services = ServiceNames()
	}
	if o.SkipServices {
		o.Services = nil
	}
	if o.LogLevel == "" {
		o.LogLevel = DefaultLogLevel
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field: an empty DataDir, an empty BinDir
// when services start, a negative partition count, unknown or repeated
// service names (in Services or ServiceEnv).
func (o Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("DataDir: empty"))
	}
	if o.BinDir == "" && !o.SkipServices && (o.Services == nil || len(o.Services) > 0) {
		errs = append(errs, errors.New("BinDir: empty (set SkipServices to run without services)"))
	}
	if o.Partitions < 0 {
		errs = append(errs, fmt.Errorf("Partitions: negative (%d)", o.Partitions))
	}
	seen := make(map[string]bool)
	for _, name := range o.Services {
		if !slices.Contains(ServiceNames(), name) {
			errs = append(errs, fmt.Errorf("Services: %q: %w", name, ErrUnknownService))
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("Services: %q listed twice", name))
		}
		seen[name] = true
	}
	for name := range o.ServiceEnv {
		if !slices.Contains(ServiceNames(), name) {
			errs = append(errs, fmt.Errorf("ServiceEnv: %q: %w", name, ErrUnknownService))
		}
	}
	return errors.Join(errs...)
}

// Stack is a running single-machine Streamwatch. Its methods are safe for
// concurrent use. Addresses do not change for the life of a Stack, service
// restarts included.
type Stack struct {
	opts    Options
	logger  *slog.Logger
	dataDir string
	http    *http.Client

	ports map[string]int // by component: broker, redis, clickhouse, clickhouse-http, services

	redisBin, clickHouseBin string
	infraMu                 sync.Mutex // guards broker, redis and clickHouse (see faults.go)
	broker                  *kfake.Cluster
	redis                   *process
	clickHouse              *process

	keys     DevKeys // generated at Start
	keysFile string  // their digests, AUTH_KEYS_FILE of every service

	services map[string]*service // instances added by AddInstance too; guarded by mu
	order    []string

	mu        sync.Mutex // guards closed and additions to services
	closed    bool       // set by Close; no service starts after it
	closeOnce sync.Once
	closeErr  error
}

// Start brings up, in order, the broker, Redis and ClickHouse (the three in
// parallel), the topics of messaging.Topics(), then the services (in
// parallel), each waited for until ready. ctx bounds the start only; the
// stack runs until Close. On error everything already started is stopped
// and the error says which part failed, with the tail of its log. A missing
// redis-server or clickhouse-server gives a *MissingPackagesError (see
// EnsurePackages).
func Start(ctx context.Context, opts Options) (*Stack, error) {
	began := time.Now()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("stack options: %w", err)
	}
	opts.setDefaults()
	redisBin, clickHouseBin, err := serverBinaries()
	if err != nil {
		return nil, err
	}
	serviceBins := make(map[string]string, len(opts.Services))
	var errs []error
	for _, name := range opts.Services {
		bin, err := findServiceBinary(opts.BinDir, name)
		errs = append(errs, err)
		serviceBins[name] = bin
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}

	s := &Stack{
		opts:     opts,
		logger:   opts.Logger,
		dataDir:  dataDir,
		http:     newReadyClient(),
		services: make(map[string]*service),
		order:    opts.Services,

		redisBin:      redisBin,
		clickHouseBin: clickHouseBin,
	}
	if s.ports, err = s.pickPorts(); err != nil {
		return nil, err
	}
	if s.keys, s.keysFile, err = newDevKeys(dataDir); err != nil {
		return nil, err
	}
	common := s.Env()
	for _, name := range opts.Services {
		addr := hostPort(s.ports[name])
		s.services[name] = &service{
			name:    name,
			bin:     serviceBins[name],
			addr:    addr,
			env:     serviceEnv(common, withHTTPAddr(opts.ServiceEnv[name], addr)),
			logPath: s.LogPath(name),
		}
	}

	if err := s.startInfra(ctx, redisBin, clickHouseBin); err != nil {
		return nil, s.abort(err)
	}
	if err := createTopics(ctx, s.logger, s.Brokers(), opts.Partitions, messaging.Topics()); err != nil {
		return nil, s.abort(err)
	}
	s.logger.Info("infrastructure ready", "broker", s.Brokers()[0], "redis", s.RedisAddr(),
		"clickhouse", s.ClickHouseAddr(), "data_dir", dataDir, "took", time.Since(began).Round(time.Millisecond).String())

	g, gctx := errgroup.WithContext(ctx)
	for _, name := range s.order {
		svc := s.services[name]
		g.Go(func() error { return svc.start(gctx, s) })
	}
	if err := g.Wait(); err != nil {
		return nil, s.abort(err)
	}
	s.logger.Info("stack ready", "services", len(s.order), "took", time.Since(began).Round(time.Millisecond).String())
	return s, nil
}

// withHTTPAddr returns extra with HTTP_ADDR set to addr unless extra sets it.
func withHTTPAddr(extra map[string]string, addr string) map[string]string {
	env := map[string]string{"HTTP_ADDR": addr}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// pickPorts chooses a port for every component, distinct from each other.
func (s *Stack) pickPorts() (map[string]int, error) {
	picker := newPortPicker()
	names := append([]string{"broker", "redis", "clickhouse", "clickhouse-http"}, s.order...)
	ports := make(map[string]int, len(names))
	for _, name := range names {
		preferred := 0
		if s.opts.FixedPorts {
			preferred = wellKnownPort(name)
		}
		port, err := picker.pick(preferred)
		if err != nil {
			return nil, fmt.Errorf("port for %s: %w", name, err)
		}
		if preferred != 0 && port != preferred {
			s.logger.Warn("well-known port busy, using another", "component", name, "busy", preferred, "port", port)
		}
		ports[name] = port
	}
	return ports, nil
}

// startInfra starts the broker, Redis and ClickHouse in parallel.
func (s *Stack) startInfra(ctx context.Context, redisBin, clickHouseBin string) error {
	g, gctx := errgroup.WithContext(ctx)
	timed := func(name string, start func() error) {
		g.Go(func() error {
			began := time.Now()
			if err := start(); err != nil {
				return err
			}
			s.logger.Debug("component ready", "component", name, "took", time.Since(began).Round(time.Millisecond).String())
			return nil
		})
	}
	timed("broker", func() (err error) {
		s.broker, err = startBroker(s.logger, filepath.Join(s.dataDir, "kafka"), s.ports["broker"], s.opts.Partitions)
		return err
	})
	timed("redis", func() (err error) {
		s.redis, err = startRedis(gctx, s.logger, redisBin, filepath.Join(s.dataDir, "redis"), s.LogPath("redis"), s.ports["redis"])
		return err
	})
	timed("clickhouse", func() (err error) {
		s.clickHouse, err = startClickHouse(gctx, s.logger, clickHouseBin, filepath.Join(s.dataDir, "clickhouse"),
			s.LogPath("clickhouse"), s.ports["clickhouse"], s.ports["clickhouse-http"], ClickHouseDatabase)
		return err
	})
	return g.Wait()
}

// abort stops what Start started and returns err.
func (s *Stack) abort(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StopTimeout)
	defer cancel()
	if cerr := s.Close(ctx); cerr != nil {
		s.logger.Warn("stop after failed start", "error", cerr.Error())
	}
	return fmt.Errorf("start stack: %w", err)
}

// Close stops the services (SIGTERM, then SIGKILL after
// Options.StopTimeout or when ctx is done), then ClickHouse and Redis the
// same way, then the broker, which writes its state to disk; a ctx that is
// already done kills at once. Once Close returns, every port of the stack
// is free and no service can be started again. It returns an error naming
// the processes that had to be killed; later calls return the same error.
func (s *Stack) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = s.close(ctx)
	})
	return s.closeErr
}

func (s *Stack) close(ctx context.Context) error {
	began := time.Now()
	var (
		mu     sync.Mutex
		killed []string
	)
	stopAll := func(stops map[string]func() bool) {
		var wg sync.WaitGroup
		for name, stop := range stops {
			wg.Go(func() {
				if !stop() {
					mu.Lock()
					killed = append(killed, name)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}

	services := make(map[string]func() bool)
	for name, svc := range s.services {
		services[name] = func() bool { return svc.stop(ctx, s.opts.StopTimeout) }
	}
	stopAll(services)

	s.infraMu.Lock()
	defer s.infraMu.Unlock()
	infra := make(map[string]func() bool)
	for name, proc := range map[string]*process{"clickhouse": s.clickHouse, "redis": s.redis} {
		if proc != nil {
			infra[name] = func() bool { return proc.stop(ctx, s.opts.StopTimeout) }
		}
	}
	stopAll(infra)

	if s.broker != nil {
		s.broker.Close()
	}
	s.logger.Info("stack stopped", "took", time.Since(began).Round(time.Millisecond).String())
	if len(killed) > 0 {
		slices.Sort(killed)
		return fmt.Errorf("close stack: killed after SIGTERM timeout: %s", strings.Join(killed, ", "))
	}
	return nil
}

// isClosed reports whether Close has been called.
func (s *Stack) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// service returns the named service, ErrUnknownService or ErrClosed.
func (s *Stack) service(name string) (*service, error) {
	s.mu.Lock()
	svc, ok := s.services[name]
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownService)
	}
	return svc, nil
}

// StartService starts a stopped or killed service again with the same
// environment and address, and waits until GET /readyz answers 200 (at most
// Options.ReadyTimeout, less if ctx ends first). It returns
// ErrServiceRunning if the service runs, ErrUnknownService or ErrClosed;
// on a readiness failure the error has the tail of the service log and the
// process is killed.
func (s *Stack) StartService(ctx context.Context, name string) error {
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	return svc.start(ctx, s)
}

// StopService stops a service gracefully: SIGTERM, then SIGKILL after
// Options.StopTimeout or when ctx is done. It returns once the process has
// exited; stopping a stopped service does nothing. Errors: ErrUnknownService,
// ErrClosed.
func (s *Stack) StopService(ctx context.Context, name string) error {
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	if !svc.stop(ctx, s.opts.StopTimeout) {
		s.logger.Warn("service killed after SIGTERM timeout", "service", name)
	}
	return nil
}

// KillService sends SIGKILL to a service's process group, as a crash would,
// and returns once the process has exited; the service does not restart by
// itself. Killing a stopped service does nothing. Errors: ErrUnknownService,
// ErrClosed.
func (s *Stack) KillService(name string) error {
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	svc.kill()
	return nil
}

// ServiceRunning reports whether the named service's process is alive.
func (s *Stack) ServiceRunning(name string) bool {
	s.mu.Lock()
	svc, ok := s.services[name]
	s.mu.Unlock()
	return ok && svc.running() != nil
}

// Services returns the names of the services this stack runs, in start
// order.
func (s *Stack) Services() []string { return slices.Clone(s.order) }

// Brokers returns the broker's host:port addresses (one).
func (s *Stack) Brokers() []string { return []string{hostPort(s.ports["broker"])} }

// RedisAddr returns Redis's host:port.
func (s *Stack) RedisAddr() string { return hostPort(s.ports["redis"]) }

// ClickHouseAddr returns ClickHouse's native-protocol host:port.
func (s *Stack) ClickHouseAddr() string { return hostPort(s.ports["clickhouse"]) }

// ClickHouseHTTPAddr returns the ClickHouse HTTP interface's host:port.
func (s *Stack) ClickHouseHTTPAddr() string { return hostPort(s.ports["clickhouse-http"]) }

// ClickHouseHTTPURL returns the base URL of ClickHouse's HTTP interface
// (http://host:port).
func (s *Stack) ClickHouseHTTPURL() string { return "http://" + hostPort(s.ports["clickhouse-http"]) }

// ServiceURL returns the base URL (http://host:port, no trailing slash) of
// the named service's HTTP server, or "" if the stack does not run it.
func (s *Stack) ServiceURL(name string) string {
	s.mu.Lock()
	svc, ok := s.services[name]
	s.mu.Unlock()
	if !ok {
		return ""
	}
	return svc.url()
}

// CollectorURL returns ServiceURL(Collector).
func (s *Stack) CollectorURL() string { return s.ServiceURL(Collector) }

// AggregatorURL returns ServiceURL(Aggregator).
func (s *Stack) AggregatorURL() string { return s.ServiceURL(Aggregator) }

// DetectorURL returns ServiceURL(Detector).
func (s *Stack) DetectorURL() string { return s.ServiceURL(Detector) }

// NotifierURL returns ServiceURL(Notifier).
func (s *Stack) NotifierURL() string { return s.ServiceURL(Notifier) }

// QueryURL returns ServiceURL(Query).
func (s *Stack) QueryURL() string { return s.ServiceURL(Query) }

// DataDir returns the absolute data directory.
func (s *Stack) DataDir() string { return s.dataDir }

// Partitions returns the partition count topics are created with.
func (s *Stack) Partitions() int32 { return s.opts.Partitions }

// LogPath returns the log file of a child process: "redis", "clickhouse"
// or a service name.
func (s *Stack) LogPath(name string) string {
	return filepath.Join(s.dataDir, "logs", name+".log")
}

// Env returns the variables every service gets: KAFKA_BROKERS,
// KAFKA_PARTITIONS, REDIS_ADDR, CLICKHOUSE_ADDR, CLICKHOUSE_HTTP_ADDR, CLICKHOUSE_DATABASE,
// LOG_LEVEL and AUTH_KEYS_FILE (the digests of Keys). A service also gets HTTP_ADDR and its Options.ServiceEnv. Tests
// that run a service in-process can load its config from these.
func (s *Stack) Env() map[string]string {
	return map[string]string{
		"KAFKA_BROKERS":        strings.Join(s.Brokers(), ","),
		"KAFKA_PARTITIONS":     strconv.Itoa(int(s.opts.Partitions)),
		"REDIS_ADDR":           s.RedisAddr(),
		"CLICKHOUSE_ADDR":      s.ClickHouseAddr(),
		"CLICKHOUSE_HTTP_ADDR": s.ClickHouseHTTPAddr(),
		"CLICKHOUSE_DATABASE":  ClickHouseDatabase,
		"LOG_LEVEL":            s.opts.LogLevel,
		"AUTH_KEYS_FILE":       s.keysFile,
	}
}
