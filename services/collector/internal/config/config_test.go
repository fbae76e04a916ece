package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/collector/internal/config"
)

// These tests set environment variables, so they do not run in parallel.

func TestLoadDefaults(t *testing.T) {
	for _, k := range []string{"HTTP_ADDR", "KAFKA_BROKERS", "COLLECTOR_MAX_BODY_BYTES", "COLLECTOR_MAX_BATCH", "LOG_LEVEL"} {
		t.Setenv(k, "")
	}
	cfg, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, ":8080", cfg.HTTP.Addr)
	require.Equal(t, int64(5242880), cfg.MaxBodyBytes)
	require.Equal(t, 500, cfg.MaxBatch)
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
				"COLLECTOR_MAX_BODY_BYTES": "1024", "COLLECTOR_MAX_BATCH": "10",
			},
			check: func(t *testing.T, cfg config.Config) {
				require.Equal(t, "127.0.0.1:9999", cfg.HTTP.Addr)
				require.Equal(t, []string{"a:1", "b:2"}, cfg.Kafka.Brokers)
				require.Equal(t, int64(1024), cfg.MaxBodyBytes)
				require.Equal(t, 10, cfg.MaxBatch)
			},
		},
		{
			name:    "every invalid value is reported",
			env:     map[string]string{"COLLECTOR_MAX_BODY_BYTES": "0", "COLLECTOR_MAX_BATCH": "0", "KAFKA_PARTITIONS": "0"},
			wantErr: []string{"COLLECTOR_MAX_BODY_BYTES: 0 < 1", "COLLECTOR_MAX_BATCH: 0 not in 1..10000", "KAFKA_PARTITIONS"},
		},
		{
			name:    "not a number",
			env:     map[string]string{"COLLECTOR_MAX_BATCH": "many"},
			wantErr: []string{`"MaxBatch"`, `"many"`}, // env names the field, not the variable
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"HTTP_ADDR", "KAFKA_BROKERS", "KAFKA_PARTITIONS", "COLLECTOR_MAX_BODY_BYTES", "COLLECTOR_MAX_BATCH"} {
				t.Setenv(k, "")
			}
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
