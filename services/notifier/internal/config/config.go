// Package config is the notifier's configuration, loaded from environment
// variables (see the README's configuration table).
package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/streamwatch/streamwatch/pkg/config"
)

// Config is what users set for the notifier.
type Config struct {
	HTTP  config.HTTP
	Kafka config.Kafka
	Redis config.Redis
	Log   config.Log
	// WebhookURL receives every new firing alert; empty disables it.
	WebhookURL string `env:"NOTIFIER_WEBHOOK_URL"`
	// WebhookTimeout bounds one webhook POST.
	WebhookTimeout time.Duration `env:"NOTIFIER_WEBHOOK_TIMEOUT" envDefault:"5s"`
	// ExternalURL is sent as externalURL in webhook messages.
	ExternalURL string `env:"NOTIFIER_EXTERNAL_URL" envDefault:"http://localhost:8084"`
	// RecentKey is the Redis list of the latest alerts, newest first.
	RecentKey string `env:"NOTIFIER_RECENT_KEY" envDefault:"alerts:recent"`
	// RecentLimit caps the list.
	RecentLimit int64 `env:"NOTIFIER_RECENT_LIMIT" envDefault:"100"`
	// MaxTries bounds delivery attempts per integration before the
	// notification goes to the dead-letter topic (an integration's
	// max_tries wins).
	MaxTries uint `env:"NOTIFIER_MAX_TRIES" envDefault:"5"`
	// ConfigFile is the routing file (routes, receivers, inhibition, mute
	// intervals); empty means the built-in default (DefaultRouting).
	ConfigFile string `env:"NOTIFIER_CONFIG_FILE"`
	// TickInterval is how often the dispatcher's clock advances with
	// processing time and due groups flush.
	TickInterval time.Duration `env:"NOTIFIER_TICK_INTERVAL" envDefault:"1s"`
	// WakeInterval is how often a wake record is published to the dispatch
	// log: the instance that owns it after a restart or rebalance loads its
	// state within this time even when no alert arrives, so its timers run.
	WakeInterval time.Duration `env:"NOTIFIER_WAKE_INTERVAL" envDefault:"30s"`
	// RetryInitial and RetryMax shape the delivery backoff (exponential,
	// factor 2, ±50% jitter).
	RetryInitial time.Duration `env:"NOTIFIER_RETRY_INITIAL" envDefault:"500ms"`
	RetryMax     time.Duration `env:"NOTIFIER_RETRY_MAX" envDefault:"30s"`
}

// Default returns the configuration before the environment is applied.
func Default() Config { return Config{HTTP: config.HTTP{Addr: ":8083"}} }

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.HTTP.Validate(), c.Kafka.Validate(), c.Redis.Validate()}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Never print the URL: it may carry a token.
			errs = append(errs, errors.New("NOTIFIER_WEBHOOK_URL: not an http(s) URL"))
		}
	}
	if c.TickInterval <= 0 {
		errs = append(errs, fmt.Errorf("NOTIFIER_TICK_INTERVAL: %s <= 0", c.TickInterval))
	}
	if c.WakeInterval <= 0 {
		errs = append(errs, fmt.Errorf("NOTIFIER_WAKE_INTERVAL: %s <= 0", c.WakeInterval))
	}
	if c.MaxTries < 1 {
		errs = append(errs, errors.New("NOTIFIER_MAX_TRIES: must be >= 1"))
	}
	if c.RecentLimit < 1 {
		errs = append(errs, fmt.Errorf("NOTIFIER_RECENT_LIMIT: %d < 1", c.RecentLimit))
	}
	return errors.Join(errs...)
}
