package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/query/internal/config"
)

// These tests use t.Setenv, so they cannot run in parallel.

func TestLoadDefaults(t *testing.T) {
	cfg, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, ":8084", cfg.HTTP.Addr)
	require.True(t, cfg.Migrate)
	require.Equal(t, "streamwatch", cfg.ClickHouse.Database)
	require.Equal(t, 20000, cfg.Windows.MaxRows)
	require.Equal(t, time.Second, cfg.Windows.MaxDelay)
	require.Equal(t, time.Duration(0), cfg.Windows.Idle)
	require.Equal(t, 100_000, cfg.Events.MaxRows)
	require.Equal(t, time.Second, cfg.Events.MaxDelay)
	require.Equal(t, "alerts:recent", cfg.RecentAlertsKey)
	require.Equal(t, 15*time.Second, cfg.StreamHeartbeat)
}

func TestLoadFromEnvironment(t *testing.T) {
	t.Setenv("QUERY_MIGRATE", "false")
	t.Setenv("HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("CLICKHOUSE_DATABASE", "sw_e2e")
	t.Setenv("QUERY_WINDOWS_BATCH_ROWS", "10")
	cfg, err := config.Load()
	require.NoError(t, err)
	require.False(t, cfg.Migrate)
	require.Equal(t, "127.0.0.1:9999", cfg.HTTP.Addr)
	require.Equal(t, "sw_e2e", cfg.ClickHouse.Database)
	require.Equal(t, 10, cfg.Windows.MaxRows)
}

func TestLoadRejectsInvalid(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"database not an identifier", "CLICKHOUSE_DATABASE", "sw; DROP", "CLICKHOUSE_DATABASE"},
		{"batch rows", "QUERY_WINDOWS_BATCH_ROWS", "0", "QUERY_WINDOWS_BATCH_ROWS"},
		{"heartbeat", "QUERY_STREAM_HEARTBEAT", "0s", "QUERY_STREAM_HEARTBEAT"},
		{"batch delay", "QUERY_WINDOWS_BATCH_MAX_DELAY", "0s", "QUERY_WINDOWS_BATCH_MAX_DELAY"},
		{"events batch rows", "QUERY_EVENTS_BATCH_ROWS", "0", "QUERY_EVENTS_BATCH_ROWS"},
		{"events batch delay", "QUERY_EVENTS_BATCH_MAX_DELAY", "-1s", "QUERY_EVENTS_BATCH_MAX_DELAY"},
		// pkg/config reports parse errors by field name, not variable.
		{"migrate not a bool", "QUERY_MIGRATE", "maybe", "Migrate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			_, err := config.Load()
			require.ErrorContains(t, err, tt.want)
		})
	}
}
