// Package config is the detector's configuration, loaded from environment
// variables (see the README's configuration table).
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/streamwatch/streamwatch/pkg/config"
)

// Config is what users set for the detector.
type Config struct {
	HTTP  config.HTTP
	Kafka config.Kafka
	Redis config.Redis
	Log   config.Log
	// RulesFile is a YAML rules file; empty uses the built-in rules.
	RulesFile string `env:"DETECTOR_RULES_FILE"`
	// OutOfOrderness is how far behind the largest event time of an
	// events.raw partition its watermark stays: negation and absence
	// decisions wait this long for late events.
	OutOfOrderness time.Duration `env:"DETECTOR_OUT_OF_ORDERNESS" envDefault:"5s"`
	// RulesTopic enables reading rule changes from the rules topic.
	RulesTopic bool `env:"DETECTOR_RULES_TOPIC" envDefault:"true"`
	// EventsCommitInterval is the least time between two checkpoint
	// commits of an events.raw partition's records (pattern and absence
	// rules): records that trickle in are committed together, once per
	// interval. 0 (the default) commits what is waiting as soon as the
	// consumer is free. The metrics.windows consumer (threshold rules)
	// never waits.
	EventsCommitInterval time.Duration `env:"DETECTOR_EVENTS_COMMIT_INTERVAL" envDefault:"0s"`
}

// Default returns the configuration before the environment is applied.
func Default() Config { return Config{HTTP: config.HTTP{Addr: ":8082"}} }

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if c.OutOfOrderness < 0 {
		errs = append(errs, fmt.Errorf("DETECTOR_OUT_OF_ORDERNESS: negative %s", c.OutOfOrderness))
	}
	if c.EventsCommitInterval < 0 {
		errs = append(errs, fmt.Errorf("DETECTOR_EVENTS_COMMIT_INTERVAL: negative %s", c.EventsCommitInterval))
	}
	return errors.Join(append(errs, c.HTTP.Validate(), c.Kafka.Validate(), c.Redis.Validate())...)
}
