// Package config is the detector's configuration, loaded from environment
// variables (see the README's configuration table).
package config

import (
	"errors"

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
}

// Default returns the configuration before the environment is applied.
func Default() Config { return Config{HTTP: config.HTTP{Addr: ":8082"}} }

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	return errors.Join(c.HTTP.Validate(), c.Kafka.Validate(), c.Redis.Validate())
}
