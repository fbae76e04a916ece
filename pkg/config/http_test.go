package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/config"
)

func TestHTTPValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, config.HTTP{Addr: ":8080", HealthAddr: ":9090", ReadTimeout: time.Second}.Validate())
	err := config.HTTP{Addr: ":8080", HealthAddr: ":8080", ReadTimeout: -time.Second, WriteTimeout: -1, IdleTimeout: -1}.Validate()
	for _, want := range []string{`HTTP_HEALTH_ADDR: ":8080" is HTTP_ADDR`, "HTTP_READ_TIMEOUT: -1s is negative", "HTTP_WRITE_TIMEOUT", "HTTP_IDLE_TIMEOUT"} {
		require.ErrorContains(t, err, want)
	}
	require.ErrorContains(t, config.HTTP{}.Validate(), "HTTP_ADDR: empty")
}

// These set environment variables, so they do not run in parallel.
func TestHTTPLoadsTimeoutsAndOrigins(t *testing.T) {
	t.Setenv("HTTP_ADDR", ":1")
	t.Setenv("HTTP_WRITE_TIMEOUT", "")
	t.Setenv("HTTP_CORS_ORIGINS", "https://a.example,https://b.example")
	var cfg struct{ HTTP config.HTTP }
	require.NoError(t, config.Load(&cfg))
	require.Equal(t, 60*time.Second, cfg.HTTP.WriteTimeout)
	require.Equal(t, 120*time.Second, cfg.HTTP.IdleTimeout)
	require.Equal(t, []string{"https://a.example", "https://b.example"}, cfg.HTTP.CORSOrigins)
}
