package auth

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Modes of Config.Mode.
const (
	// ModeKeys requires a valid key on every protected endpoint.
	ModeKeys = "keys"
	// ModeOff accepts every request with every scope: development only.
	ModeOff = "off"
)

// Config is how a service authenticates its API, from the environment. Every
// service reads the same variables; each accepts the scopes it serves, so
// one key file can be shared.
type Config struct {
	// Mode is "keys" (default) or "off". With "keys" and no key configured
	// the service refuses to start; "off" must be chosen explicitly.
	Mode string `env:"AUTH_MODE" envDefault:"keys"`
	// Keys holds key lines inline (see ParseKeys), separated by ';' or
	// newlines. Only digests: the secrets never reach the service.
	Keys string `env:"AUTH_KEYS"`
	// KeysFile is a file of key lines (see ParseKeys), read at start.
	KeysFile string `env:"AUTH_KEYS_FILE"`
	// RateLimit is each key's default rate in requests per second (token
	// bucket refill); a key line's rate= overrides it; <= 0 disables
	// limiting. With Mode off the limit applies per client IP.
	RateLimit float64 `env:"AUTH_RATE_LIMIT" envDefault:"100"`
	// RateBurst is each key's default bucket size in requests.
	RateBurst int `env:"AUTH_RATE_BURST" envDefault:"200"`

	_ struct{}
}

// Validate reports an unknown mode, a burst below 1 with limiting on, and
// keys mode without keys.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case ModeKeys:
		if strings.TrimSpace(c.Keys) == "" && c.KeysFile == "" {
			errs = append(errs, errors.New("AUTH_MODE=keys but no API keys configured: set AUTH_KEYS_FILE or AUTH_KEYS (lines \"NAME SCOPES sha256:HEX\"), or AUTH_MODE=off for local development"))
		}
	case ModeOff:
	default:
		errs = append(errs, fmt.Errorf("AUTH_MODE: %q is neither %q nor %q", c.Mode, ModeKeys, ModeOff))
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("AUTH_RATE_BURST: %d < 1", c.RateBurst))
	}
	return errors.Join(errs...)
}

// Keyring reads the configured keys (AUTH_KEYS_FILE, then AUTH_KEYS). With
// Mode off it returns an empty ring. Errors name the source and line.
func (c Config) Keyring() (*Keyring, error) {
	if c.Mode == ModeOff {
		return NewKeyring(nil), nil
	}
	var keys []Key
	if c.KeysFile != "" {
		f, err := os.Open(c.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("AUTH_KEYS_FILE: %w", err)
		}
		defer f.Close()
		ks, err := ParseKeys(c.KeysFile, f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	ks, err := ParseKeys("AUTH_KEYS", strings.NewReader(c.Keys))
	if err != nil {
		return nil, err
	}
	keys = append(keys, ks...)
	if len(keys) == 0 {
		return nil, errors.New("no API keys in AUTH_KEYS_FILE or AUTH_KEYS (AUTH_MODE=off disables authentication for local development)")
	}
	names := map[string]bool{}
	digests := map[[32]byte]string{}
	for _, k := range keys {
		if names[k.Name] {
			return nil, fmt.Errorf("key name %q is in both AUTH_KEYS_FILE and AUTH_KEYS", k.Name)
		}
		if other, dup := digests[k.Digest]; dup {
			return nil, fmt.Errorf("keys %q and %q have the same secret", other, k.Name)
		}
		names[k.Name] = true
		digests[k.Digest] = k.Name
	}
	return NewKeyring(keys), nil
}
