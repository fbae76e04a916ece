// Package config is the query service's configuration, loaded from
// environment variables (see the README's configuration table).
package config

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// Config is what users set for the query service.
type Config struct {
	// HTTP is the REST listener (default :8084).
	HTTP config.HTTP
	// Kafka is where events.raw and metrics.windows are consumed from and
	// dead-lettered records go.
	Kafka config.Kafka
	// Redis holds the live view (latest window per metric, labels, shard).
	Redis config.Redis
	// ClickHouse holds the events and metric_windows projections.
	ClickHouse config.ClickHouse
	// Log configures slog.
	Log config.Log
	// Migrate applies the ClickHouse migrations at startup.
	Migrate bool `env:"QUERY_MIGRATE" envDefault:"true"`
	// Windows tunes the batching of metric_windows inserts.
	Windows WindowBatch
	// Events tunes the batching of events inserts.
	Events EventBatch
	// RecentAlertsKey is the Redis list of the latest alerts that the
	// notifier writes (its NOTIFIER_RECENT_KEY, unprefixed); the query
	// service only reads it.
	RecentAlertsKey string `env:"QUERY_ALERTS_RECENT_KEY" envDefault:"alerts:recent"`
	// Batch configures the Lambda batch layer.
	Batch Batch
	// StreamHeartbeat is the interval of SSE heartbeat comments on
	// /api/v1/stream (> 0).
	StreamHeartbeat time.Duration `env:"QUERY_STREAM_HEARTBEAT" envDefault:"15s"`
	// LiveRetention is how far (event time) a label set's latest window may
	// end before its metric's newest window end and still be in the live
	// view; older ones are swept every minute. 0 keeps them forever. (15
	// minutes: Prometheus marks a series stale after 5.)
	LiveRetention time.Duration `env:"QUERY_LIVE_RETENTION" envDefault:"15m"`
	// Auth is the API key configuration (AUTH_*): reads need the read
	// scope, changes the admin scope. service.New validates it (it fails
	// when keys are required and none is configured), so that commands
	// without the API (batch, replay) run without keys.
	Auth auth.Config

	_ struct{}
}

// EventBatch tunes how raw events are grouped into one ClickHouse insert.
// The events batch consumer hands the projector up to 256 waiting
// events.raw records of a partition at once, and the events of every
// partition that arrive within MaxDelay of a group's first one are inserted
// together (group commit; a record is acked only after that insert). One
// insert writes one part per partition of the table, and ClickHouse merges
// parts in the background: an insert per second instead of dozens cut the
// rows its merges rewrite by a large factor (docs/query.md). The raw events
// table is for search and history, so MaxDelay is the delay it adds there;
// the live view does not wait for it.
type EventBatch struct {
	// MaxRows closes a group once it holds this many rows (>= 1).
	MaxRows int `env:"QUERY_EVENTS_BATCH_ROWS" envDefault:"100000"`
	// MaxDelay flushes a group this long after its first rows (> 0).
	MaxDelay time.Duration `env:"QUERY_EVENTS_BATCH_MAX_DELAY" envDefault:"1s"`
}

// WindowBatch tunes how window results are grouped into one ClickHouse
// insert into metric_windows (the history; the live view in Redis does not
// wait for it). The windows batch consumer applies a partition's waiting
// records to the live view at once and hands their results to the batcher,
// which inserts what it holds MaxDelay after its first row or at MaxRows;
// a record's offset is committed once the insert holding it succeeded, and
// meanwhile the consumer goes on (messaging.NewPipelinedBatchConsumer). One
// insert a second instead of one every few milliseconds is what keeps the
// table's merges cheap: a 60 s bench with 2 ms idle flushes made 1,807
// inserts and merges rewrote 67 rows per row inserted.
type WindowBatch struct {
	// MaxRows flushes a batch when it holds this many rows (>= 1).
	MaxRows int `env:"QUERY_WINDOWS_BATCH_ROWS" envDefault:"20000"`
	// MaxDelay flushes a batch this long after its first row (> 0).
	MaxDelay time.Duration `env:"QUERY_WINDOWS_BATCH_MAX_DELAY" envDefault:"1s"`
	// Idle flushes a batch when no row arrived for this long (0 disables).
	Idle time.Duration `env:"QUERY_WINDOWS_BATCH_IDLE" envDefault:"0s"`
}

// Batch configures the batch job (`query batch` and its schedule).
type Batch struct {
	// MetricsFile is the metric definitions file, the same format and
	// normally the same file as the aggregator's AGG_METRICS_FILE; empty
	// uses the built-in set (pkg/metrics/defaults.yaml).
	MetricsFile string `env:"QUERY_METRICS_FILE"`
	// Interval runs the batch job every Interval inside the service; 0
	// disables the schedule.
	Interval time.Duration `env:"QUERY_BATCH_INTERVAL" envDefault:"0s"`
	// Range is the event-time span each scheduled run recomputes (> 0).
	Range time.Duration `env:"QUERY_BATCH_RANGE" envDefault:"1h"`
	// Delay is how far behind now (event time) a scheduled run ends, so
	// that late events have arrived (>= 0).
	Delay time.Duration `env:"QUERY_BATCH_DELAY" envDefault:"10m"`
	// Chunk splits a metric's recompute into queries over this much of
	// window starts (the events table is partitioned by day); 0: one
	// query per metric.
	Chunk time.Duration `env:"QUERY_BATCH_CHUNK" envDefault:"24h"`
	// Parallelism is how many batch queries run at once (>= 1).
	Parallelism int `env:"QUERY_BATCH_PARALLELISM" envDefault:"2"`
}

// Definitions loads MetricsFile, or the built-in set without one.
func (b Batch) Definitions() ([]metrics.Definition, error) {
	if b.MetricsFile == "" {
		defs, err := metrics.Defaults()
		if err != nil {
			return nil, fmt.Errorf("built-in metric definitions: %w", err)
		}
		return defs, nil
	}
	defs, err := metrics.LoadDefinitions(b.MetricsFile)
	if err != nil {
		return nil, fmt.Errorf("QUERY_METRICS_FILE: %w", err)
	}
	return defs, nil
}

// DefaultHTTPAddr is the query service's listen address unless HTTP_ADDR
// is set.
const DefaultHTTPAddr = ":8084"

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Default returns the configuration before the environment is applied.
func Default() Config {
	return Config{HTTP: config.HTTP{Addr: DefaultHTTPAddr}}
}

// Load returns Default overridden by the environment and validated. The
// error names every offending variable.
func Load() (Config, error) {
	cfg := Default()
	if err := config.Load(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every invalid setting, joined.
func (c *Config) Validate() error {
	errs := []error{c.HTTP.Validate(), c.Kafka.Validate(), c.Redis.Validate(), c.ClickHouse.Validate()}
	if c.ClickHouse.Database != "" && !identifier.MatchString(c.ClickHouse.Database) {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_DATABASE: %q is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", c.ClickHouse.Database))
	}
	if c.Windows.MaxRows < 1 {
		errs = append(errs, fmt.Errorf("QUERY_WINDOWS_BATCH_ROWS: %d < 1", c.Windows.MaxRows))
	}
	if c.Events.MaxRows < 1 {
		errs = append(errs, fmt.Errorf("QUERY_EVENTS_BATCH_ROWS: %d < 1", c.Events.MaxRows))
	}
	if c.Events.MaxDelay <= 0 {
		errs = append(errs, errors.New("QUERY_EVENTS_BATCH_MAX_DELAY: must be positive"))
	}
	if c.Windows.MaxDelay <= 0 {
		errs = append(errs, errors.New("QUERY_WINDOWS_BATCH_MAX_DELAY: must be positive"))
	}
	if c.RecentAlertsKey == "" {
		errs = append(errs, errors.New("QUERY_ALERTS_RECENT_KEY: empty"))
	}
	if c.Batch.Parallelism < 1 || c.Batch.Chunk < 0 {
		errs = append(errs, errors.New("QUERY_BATCH_PARALLELISM must be at least 1 and QUERY_BATCH_CHUNK not negative"))
	}
	if c.Batch.Interval < 0 || c.Batch.Range <= 0 || c.Batch.Delay < 0 {
		errs = append(errs, errors.New("QUERY_BATCH_INTERVAL and QUERY_BATCH_DELAY must not be negative, QUERY_BATCH_RANGE must be positive"))
	}
	if c.StreamHeartbeat <= 0 {
		errs = append(errs, errors.New("QUERY_STREAM_HEARTBEAT: must be positive"))
	}
	if c.LiveRetention < 0 {
		errs = append(errs, errors.New("QUERY_LIVE_RETENTION: negative"))
	}
	if c.Windows.Idle < 0 {
		errs = append(errs, errors.New("QUERY_WINDOWS_BATCH_IDLE: negative"))
	}
	return errors.Join(errs...)
}
