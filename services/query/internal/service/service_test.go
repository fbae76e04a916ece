package service_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/service"
)

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load()
	require.NoError(t, err)
	cfg.Auth = auth.Config{Mode: auth.ModeOff}
	return cfg
}

func TestNewFailsFastWithoutClickHouse(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ClickHouse.Addr = closedAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := service.New(ctx, cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "clickhouse")
}

// Without a broker New fails after migrating ClickHouse, and closes what it
// opened.
func TestNewMigratesThenFailsWithoutKafka(t *testing.T) {
	t.Parallel()
	ch := chtest.StartClickHouse(t)
	cfg := testConfig(t)
	cfg.ClickHouse.Addr = ch.Addr
	cfg.ClickHouse.Database = "sw_service"
	cfg.Redis.Addr = chtest.StartRedis(t)
	cfg.Kafka.Brokers = []string{closedAddr(t)}
	cfg.Migrate = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, err := service.New(ctx, cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "kafka")

	var n uint64
	require.NoError(t, ch.Conn(t).QueryRow(ctx,
		"SELECT count() FROM system.tables WHERE database = 'sw_service' AND name IN ('events', 'metric_windows')").Scan(&n))
	require.Equal(t, uint64(2), n, "QUERY_MIGRATE defaults to true")
}
