// Package config is the aggregator's configuration, loaded from environment
// variables (see the README's configuration table).
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/streamwatch/streamwatch/pkg/config"
)

// Config is what users set for the aggregator.
type Config struct {
	HTTP  config.HTTP
	Kafka config.Kafka
	Redis config.Redis
	Log   config.Log
	// Window holds the event-time settings.
	Window Window
	// MetricsFile is a YAML metric definitions file replacing the built-in
	// set (pkg/metrics/defaults.yaml); empty uses the built-in set.
	MetricsFile string `env:"AGG_METRICS_FILE"`
	// Join holds the stream-table join's settings (docs/join.md).
	Join Join
	// CommitInterval is the least time between two checkpoint commits of
	// an events.raw partition's records: records that trickle in while
	// the aggregator keeps up are applied and committed together, once
	// per interval, instead of one commit each. 0 (the default) commits
	// what is waiting as soon as the consumer is free: 100 ms made 2.5×
	// fewer commits and saved 7-12 % of Redis's CPU per event, but raised
	// the live view's latency (docs/bench.md, twelfth round).
	CommitInterval time.Duration `env:"AGG_COMMIT_INTERVAL" envDefault:"0s"`
}

// Join holds the settings of the stream-table join: the profiles table
// and the IP-range table.
type Join struct {
	// MaxEntries bounds the profiles held in memory (all types); new
	// profiles beyond it are refused and counted, updates still apply.
	MaxEntries int `env:"AGG_JOIN_MAX_ENTRIES" envDefault:"5000000"`
	// BarrierTimeout bounds how long a partition's first record after a
	// load waits for the profiles table to catch up before it is retried.
	BarrierTimeout time.Duration `env:"AGG_JOIN_BARRIER_TIMEOUT" envDefault:"60s"`
	// GeoIPFile is a CSV of CIDR,country lines that gives access-log
	// events their client.country; empty leaves it unset.
	GeoIPFile string `env:"AGG_GEOIP_FILE"`
}

// Window holds the aggregator's event-time settings.
type Window struct {
	// OutOfOrderness is how far the watermark trails the max event time.
	OutOfOrderness time.Duration `env:"AGG_OUT_OF_ORDERNESS" envDefault:"5s"`
	// AllowedLateness is how long after its end a window accepts late events.
	AllowedLateness time.Duration `env:"AGG_ALLOWED_LATENESS" envDefault:"1m"`
	// IdleTimeout is how long a partition may be idle before its watermark
	// advances with processing time.
	IdleTimeout time.Duration `env:"AGG_IDLE_TIMEOUT" envDefault:"10s"`
	// EmitInterval is how often early results of open windows go out.
	EmitInterval time.Duration `env:"AGG_EMIT_INTERVAL" envDefault:"250ms"`
	// FinalsStep spreads the final results a partition fires at once (a
	// minute boundary) over steps: the first four hold this many results,
	// the next four twice as many, and so on (window.Config.ScanStep); 0
	// fires them in one step.
	FinalsStep int `env:"AGG_FINALS_STEP" envDefault:"500"`
	// FinalsPause is the processing time between two steps.
	FinalsPause time.Duration `env:"AGG_FINALS_PAUSE" envDefault:"500ms"`
}

// Default returns the configuration before the environment is applied.
func Default() Config {
	return Config{HTTP: config.HTTP{Addr: ":8081"}}
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.HTTP.Validate(), c.Kafka.Validate(), c.Redis.Validate()}
	if c.Window.OutOfOrderness < 0 {
		errs = append(errs, fmt.Errorf("AGG_OUT_OF_ORDERNESS: %s is negative", c.Window.OutOfOrderness))
	}
	if c.Window.AllowedLateness < 0 {
		errs = append(errs, fmt.Errorf("AGG_ALLOWED_LATENESS: %s is negative", c.Window.AllowedLateness))
	}
	if c.Window.IdleTimeout <= 0 {
		errs = append(errs, errors.New("AGG_IDLE_TIMEOUT: must be positive"))
	}
	if c.Window.EmitInterval <= 0 {
		errs = append(errs, errors.New("AGG_EMIT_INTERVAL: must be positive"))
	}
	if c.Window.FinalsStep < 0 {
		errs = append(errs, fmt.Errorf("AGG_FINALS_STEP: %d is negative", c.Window.FinalsStep))
	}
	if c.Window.FinalsPause < 0 {
		errs = append(errs, fmt.Errorf("AGG_FINALS_PAUSE: %s is negative", c.Window.FinalsPause))
	}
	if c.CommitInterval < 0 {
		errs = append(errs, fmt.Errorf("AGG_COMMIT_INTERVAL: %s is negative", c.CommitInterval))
	}
	if c.Join.MaxEntries <= 0 {
		errs = append(errs, fmt.Errorf("AGG_JOIN_MAX_ENTRIES: %d is not positive", c.Join.MaxEntries))
	}
	if c.Join.BarrierTimeout <= 0 {
		errs = append(errs, errors.New("AGG_JOIN_BARRIER_TIMEOUT: must be positive"))
	}
	return errors.Join(errs...)
}
