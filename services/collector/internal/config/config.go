// Package config holds the collector's configuration, loaded from the
// environment at startup.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/streamwatch/streamwatch/pkg/auth"
	swconfig "github.com/streamwatch/streamwatch/pkg/config"
)

// Defaults of the collector settings.
const (
	// DefaultHTTPAddr is the listen address when HTTP_ADDR is unset.
	DefaultHTTPAddr = ":8080"
	// DefaultMaxBodyBytes is the request body limit: 5 MiB.
	DefaultMaxBodyBytes = 5 << 20
	// DefaultMaxBatch is the most events per Kafka batch record.
	DefaultMaxBatch = 500
	// MaxLinger bounds COLLECTOR_LINGER: every request waits up to this
	// long on top of the broker.
	MaxLinger = time.Second
	// MaxMaxBatch bounds COLLECTOR_MAX_BATCH so that a batch record stays
	// well below the broker's record size limit.
	MaxMaxBatch = 10000
)

// Config is what users set for the collector, from environment variables.
type Config struct {
	// HTTP is the ingest listener (HTTP_ADDR, default ":8080";
	// HTTP_SHUTDOWN_TIMEOUT).
	HTTP swconfig.HTTP
	// Kafka is the broker the collector publishes events.raw to
	// (KAFKA_BROKERS).
	Kafka swconfig.Kafka
	// Log is the slog level (LOG_LEVEL).
	Log swconfig.Log
	// MaxBodyBytes is the largest accepted request body in bytes; larger
	// bodies get 413 without being read whole.
	MaxBodyBytes int64 `env:"COLLECTOR_MAX_BODY_BYTES" envDefault:"5242880"`
	// MaxBatch is the most events packed into one Kafka batch record.
	MaxBatch int `env:"COLLECTOR_MAX_BATCH" envDefault:"500"`
	// Linger is how long the events of a partition may wait for those of
	// concurrent requests before their record is written (group commit);
	// 0 writes as soon as the partition's previous record was
	// acknowledged. At most MaxLinger.
	Linger time.Duration `env:"COLLECTOR_LINGER" envDefault:"2ms"` // adapters.DefaultLinger
	// Auth is the API key configuration (AUTH_MODE, AUTH_KEYS,
	// AUTH_KEYS_FILE, AUTH_RATE_LIMIT, AUTH_RATE_BURST); ingest needs a key
	// with the ingest scope.
	Auth auth.Config
	// MaxEventBytes bounds one JSON event or sample; larger ones are
	// rejected item by item.
	MaxEventBytes int `env:"COLLECTOR_MAX_EVENT_BYTES" envDefault:"65536"`
	// MaxJSONDepth bounds the nesting of one JSON event (schema v1 needs 2).
	MaxJSONDepth int `env:"COLLECTOR_MAX_JSON_DEPTH" envDefault:"8"`
	// MaxJSONFields bounds the object keys of one JSON event, nested ones
	// included (schema v1 has 26 fields and 64 properties at most).
	MaxJSONFields int `env:"COLLECTOR_MAX_JSON_FIELDS" envDefault:"128"`
	// MaxEventAge rejects events older than this relative to their receive
	// time; 0 (the default) accepts any age, so historical logs replay.
	MaxEventAge time.Duration `env:"COLLECTOR_MAX_EVENT_AGE" envDefault:"0s"`
	// MaxEventSkew rejects events further than this in the future; 0
	// accepts any.
	MaxEventSkew time.Duration `env:"COLLECTOR_MAX_EVENT_SKEW" envDefault:"1h"`

	_ struct{} // forces keyed literals
}

// Default returns the configuration preset with the defaults that have no
// envDefault tag (the HTTP address ":8080"), ready for swconfig.Load (or
// boot.Main) to fill from the environment.
func Default() Config {
	var cfg Config
	cfg.setDefaults()
	return cfg
}

// Load returns Default filled from the environment and validated. The error
// names every invalid setting (a value that does not parse is named by its
// Go field, see the env library).
func Load() (Config, error) {
	cfg := Default()
	if err := swconfig.Load(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// setDefaults presets what has no envDefault tag.
func (c *Config) setDefaults() {
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = DefaultHTTPAddr
	}
}

// Validate reports every invalid setting, joined with errors.Join; nil when
// the configuration is usable.
func (c Config) Validate() error {
	errs := []error{c.HTTP.Validate(), c.Kafka.Validate(), c.Auth.Validate()}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("COLLECTOR_MAX_BODY_BYTES: %d < 1", c.MaxBodyBytes))
	}
	if c.MaxBatch < 1 || c.MaxBatch > MaxMaxBatch {
		errs = append(errs, fmt.Errorf("COLLECTOR_MAX_BATCH: %d not in 1..%d", c.MaxBatch, MaxMaxBatch))
	}
	for _, v := range [...]struct {
		name string
		n    int
	}{{"COLLECTOR_MAX_EVENT_BYTES", c.MaxEventBytes}, {"COLLECTOR_MAX_JSON_DEPTH", c.MaxJSONDepth}, {"COLLECTOR_MAX_JSON_FIELDS", c.MaxJSONFields}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("%s: %d < 1", v.name, v.n))
		}
	}
	if c.MaxJSONDepth > 0 && c.MaxJSONDepth < 2 {
		errs = append(errs, fmt.Errorf("COLLECTOR_MAX_JSON_DEPTH: %d < 2, the depth of an event with properties", c.MaxJSONDepth))
	}
	if c.Linger < 0 || c.Linger > MaxLinger {
		errs = append(errs, fmt.Errorf("COLLECTOR_LINGER: %s not in 0s..%s", c.Linger, MaxLinger))
	}
	if c.MaxEventAge < 0 {
		errs = append(errs, fmt.Errorf("COLLECTOR_MAX_EVENT_AGE: %s is negative (0 disables the bound)", c.MaxEventAge))
	}
	if c.MaxEventSkew < 0 {
		errs = append(errs, fmt.Errorf("COLLECTOR_MAX_EVENT_SKEW: %s is negative (0 disables the bound)", c.MaxEventSkew))
	}
	return errors.Join(errs...)
}
