// Package config loads service configuration from environment variables
// (with defaults) into typed structs, and holds the sub-configs every service
// shares. The variables are documented in one table in the README.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/caarlos0/env/v11"
)

// Kafka is how a service reaches the broker.
type Kafka struct {
	// Brokers are host:port addresses of bootstrap brokers.
	Brokers []string `env:"KAFKA_BROKERS" envDefault:"127.0.0.1:9092" envSeparator:","`
	// Partitions is the partition count used when topics are created (the
	// embedded stack and tests); services read the real count from the broker.
	Partitions int32 `env:"KAFKA_PARTITIONS" envDefault:"6"`
}

// Validate reports missing brokers or a partition count below 1.
func (k Kafka) Validate() error {
	var errs []error
	if len(k.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS: empty"))
	}
	if k.Partitions < 1 {
		errs = append(errs, fmt.Errorf("KAFKA_PARTITIONS: %d < 1", k.Partitions))
	}
	return errors.Join(errs...)
}

// Redis is how a service reaches Redis.
type Redis struct {
	// Addr is host:port.
	Addr string `env:"REDIS_ADDR" envDefault:"127.0.0.1:6379"`
	// Password is the AUTH password; empty for none.
	Password string `env:"REDIS_PASSWORD"`
	// DB is the database number.
	DB int `env:"REDIS_DB" envDefault:"0"`
	// KeyPrefix is prepended to every key Streamwatch writes.
	KeyPrefix string `env:"REDIS_KEY_PREFIX" envDefault:"sw:"`
}

// Validate reports an empty address.
func (r Redis) Validate() error {
	if r.Addr == "" {
		return errors.New("REDIS_ADDR: empty")
	}
	return nil
}

// ClickHouse is how a service reaches ClickHouse over the native protocol.
type ClickHouse struct {
	// Addr is host:port of the native (TCP) interface.
	Addr string `env:"CLICKHOUSE_ADDR" envDefault:"127.0.0.1:9000"`
	// Database is created by the migrations when missing.
	Database string `env:"CLICKHOUSE_DATABASE" envDefault:"streamwatch"`
	// User and Password authenticate; ClickHouse's default user has no password.
	User     string `env:"CLICKHOUSE_USER" envDefault:"default"`
	Password string `env:"CLICKHOUSE_PASSWORD"`
	// HTTPAddr is host:port of the HTTP interface (e.g. 127.0.0.1:8123).
	// When set, the query service writes raw events through it in Native
	// format (cheaper for client and server than the native protocol's
	// client); empty keeps every call on the native protocol.
	HTTPAddr string `env:"CLICKHOUSE_HTTP_ADDR"`
}

// Validate reports an empty address or database.
func (c ClickHouse) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("CLICKHOUSE_ADDR: empty"))
	}
	if c.Database == "" {
		errs = append(errs, errors.New("CLICKHOUSE_DATABASE: empty"))
	}
	return errors.Join(errs...)
}

// HTTP is a service's HTTP listener. Each service presets its own default
// address before Load.
type HTTP struct {
	// Addr is the listen address host:port.
	Addr string `env:"HTTP_ADDR"`
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration `env:"HTTP_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// HealthAddr, when set, is a second listener that serves /healthz,
	// /readyz and /metrics, which the main listener then no longer serves
	// (probes and scrapes on an internal port, the API on a public one).
	HealthAddr string `env:"HTTP_HEALTH_ADDR"`
	// ReadTimeout bounds reading one request, headers and body.
	ReadTimeout time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"60s"`
	// WriteTimeout bounds writing one response; Server-Sent Events requests
	// (Accept: text/event-stream) are exempt.
	WriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"60s"`
	// IdleTimeout closes keep-alive connections idle for this long.
	IdleTimeout time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"120s"`
	// CORSOrigins are the origins browsers may call the API from
	// (Access-Control-Allow-Origin); empty allows none but the API's own,
	// "*" allows any.
	CORSOrigins []string `env:"HTTP_CORS_ORIGINS" envSeparator:","`
}

// Validate reports an empty address, a health address equal to it, and
// timeouts that are not positive.
func (h HTTP) Validate() error {
	var errs []error
	if h.Addr == "" {
		errs = append(errs, errors.New("HTTP_ADDR: empty"))
	}
	if h.HealthAddr != "" && h.HealthAddr == h.Addr {
		errs = append(errs, fmt.Errorf("HTTP_HEALTH_ADDR: %q is HTTP_ADDR; leave it empty to serve health on the main listener", h.HealthAddr))
	}
	for _, d := range [...]struct {
		name string
		v    time.Duration
	}{{"HTTP_READ_TIMEOUT", h.ReadTimeout}, {"HTTP_WRITE_TIMEOUT", h.WriteTimeout}, {"HTTP_IDLE_TIMEOUT", h.IdleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s is negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

// Log configures slog.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `env:"LOG_LEVEL" envDefault:"info"`
}

// Validator is implemented by configs that check themselves.
type Validator interface{ Validate() error }

// Load fills cfg (a pointer to a struct) from the environment: values already
// in cfg stay unless a variable or an envDefault overrides them. It then
// calls cfg.Validate when cfg implements Validator. Validation errors name
// the variable; a value that does not parse is reported by the env library
// with the Go field name and the variable's value type.
func Load(cfg any) error {
	if err := env.Parse(cfg); err != nil {
		return fmt.Errorf("load config from environment: %w", err)
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	return nil
}
