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
}

// Validate reports an empty address.
func (h HTTP) Validate() error {
	if h.Addr == "" {
		return errors.New("HTTP_ADDR: empty")
	}
	return nil
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
