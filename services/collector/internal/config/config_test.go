package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/collector/internal/config"
)

// These tests set environment variables, so they do not run in parallel.

func TestLoadDefaults(t *testing.T) {
	for _, k := range []string{"HTTP_ADDR", "KAFKA_BROKERS", "COLLECTOR_MAX_BODY_BYTES", "COLLECTOR_MAX_BATCH", "LOG_LEVEL",
		"AUTH_KEYS_FILE", "COLLECTOR_MAX_EVENT_AGE", "COLLECTOR_MAX_EVENT_SKEW", "COLLECTOR_MAX_EVENT_BYTES",
		"COLLECTOR_MAX_JSON_DEPTH", "COLLECTOR_MAX_JSON_FIELDS", "AUTH_RATE_LIMIT", "AUTH_RATE_BURST", "COLLECTOR_LINGER"} {
		t.Setenv(k, "")
	}
	t.Setenv("AUTH_MODE", "")
	t.Setenv("AUTH_KEYS", "")
	_, err := config.Load()
	require.ErrorContains(t, err, "no API keys configured", "keys are required by default")

	t.Setenv("AUTH_KEYS", "web ingest sha256:"+strings.Repeat("ab", 32))
	cfg, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, "keys", cfg.Auth.Mode)
	require.Equal(t, 100.0, cfg.Auth.RateLimit)
	require.Equal(t, 200, cfg.Auth.RateBurst)
	require.Equal(t, 65536, cfg.MaxEventBytes)
	require.Equal(t, 8, cfg.MaxJSONDepth)
	require.Equal(t, 128, cfg.MaxJSONFields)
	require.Zero(t, cfg.MaxEventAge, "no age bound by default: historical logs replay")
	require.Equal(t, time.Hour, cfg.MaxEventSkew)
	require.Equal(t, ":8080", cfg.HTTP.Addr)
	require.Equal(t, int64(5242880), cfg.MaxBodyBytes)
	require.Equal(t, 500, cfg.MaxBatch)
	require.Equal(t, 2*time.Millisecond, cfg.Linger)
	require.Equal(t, []string{"127.0.0.1:9092"}, cfg.Kafka.Brokers)
	require.Equal(t, "info", cfg.Log.Level)
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string
		check   func(t *testing.T, cfg config.Config)
	}{
		{
			name: "overrides",
			env: map[string]string{
				"HTTP_ADDR": "127.0.0.1:9999", "KAFKA_BROKERS": "a:1,b:2",
				"COLLECTOR_MAX_BODY_BYTES": "1024", "COLLECTOR_MAX_BATCH": "10", "COLLECTOR_LINGER": "0s",
			},
			check: func(t *testing.T, cfg config.Config) {
				require.Equal(t, "127.0.0.1:9999", cfg.HTTP.Addr)
				require.Equal(t, []string{"a:1", "b:2"}, cfg.Kafka.Brokers)
				require.Equal(t, int64(1024), cfg.MaxBodyBytes)
				require.Equal(t, 10, cfg.MaxBatch)
				require.Zero(t, cfg.Linger, "0 turns lingering off")
			},
		},
		{
			name:    "every invalid value is reported",
			env:     map[string]string{"COLLECTOR_MAX_BODY_BYTES": "0", "COLLECTOR_MAX_BATCH": "0", "KAFKA_PARTITIONS": "0", "COLLECTOR_LINGER": "2s"},
			wantErr: []string{"COLLECTOR_MAX_BODY_BYTES: 0 < 1", "COLLECTOR_MAX_BATCH: 0 not in 1..10000", "KAFKA_PARTITIONS", "COLLECTOR_LINGER: 2s not in 0s..1s"},
		},
		{
			name: "limits out of range",
			env: map[string]string{"COLLECTOR_MAX_JSON_DEPTH": "1", "COLLECTOR_MAX_JSON_FIELDS": "0", "COLLECTOR_MAX_EVENT_BYTES": "0",
				"COLLECTOR_MAX_EVENT_AGE": "-1h", "COLLECTOR_MAX_EVENT_SKEW": "-1s", "AUTH_MODE": "maybe"},
			wantErr: []string{"COLLECTOR_MAX_JSON_DEPTH: 1 < 2", "COLLECTOR_MAX_JSON_FIELDS: 0 < 1", "COLLECTOR_MAX_EVENT_BYTES: 0 < 1",
				"COLLECTOR_MAX_EVENT_AGE: -1h0m0s is negative", "COLLECTOR_MAX_EVENT_SKEW: -1s is negative", `AUTH_MODE: "maybe"`},
		},
		{
			name:    "not a number",
			env:     map[string]string{"COLLECTOR_MAX_BATCH": "many"},
			wantErr: []string{`"MaxBatch"`, `"many"`}, // env names the field, not the variable
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"HTTP_ADDR", "KAFKA_BROKERS", "KAFKA_PARTITIONS", "COLLECTOR_MAX_BODY_BYTES", "COLLECTOR_MAX_BATCH",
				"COLLECTOR_MAX_JSON_DEPTH", "COLLECTOR_MAX_JSON_FIELDS", "COLLECTOR_MAX_EVENT_BYTES", "COLLECTOR_MAX_EVENT_AGE", "COLLECTOR_MAX_EVENT_SKEW",
				"COLLECTOR_LINGER"} {
				t.Setenv(k, "")
			}
			t.Setenv("AUTH_MODE", "off")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load()
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					require.ErrorContains(t, err, want)
				}
				return
			}
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}
