package stack_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// TestInfrastructureFaults stops and starts Redis, ClickHouse and the
// broker of a running stack and checks that each comes back on the same
// address with its data, and that AddInstance runs a second process of a
// service with its own address and the same environment otherwise.
func TestInfrastructureFaults(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	st := startStack(t, ctx, stack.Options{
		DataDir:  t.TempDir(),
		BinDir:   fakeBinDir(t),
		Services: []string{stack.Collector},
	})

	t.Run("redis", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr(), MaxRetries: -1})
		defer rdb.Close()
		if err := rdb.Set(ctx, "faults", "kept", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := st.StopRedis(ctx); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Ping(ctx).Err(); err == nil {
			t.Fatal("Redis answers PING after StopRedis")
		}
		if err := st.StopRedis(ctx); err != nil {
			t.Fatalf("second StopRedis: %v", err)
		}
		if err := st.StartRedis(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.StartRedis(ctx); !errors.Is(err, stack.ErrInfraRunning) {
			t.Fatalf("StartRedis on a running Redis = %v, want ErrInfraRunning", err)
		}
		if got, err := rdb.Get(ctx, "faults").Result(); err != nil || got != "kept" {
			t.Fatalf("GET after restart = %q, %v; want the value written before the stop", got, err)
		}
	})

	t.Run("clickhouse", func(t *testing.T) {
		if err := st.StopClickHouse(ctx); err != nil {
			t.Fatal(err)
		}
		if !addrFree(st.ClickHouseAddr()) {
			t.Fatal("ClickHouse's port is still taken after StopClickHouse")
		}
		if err := st.StartClickHouse(ctx); err != nil {
			t.Fatal(err)
		}
		checkClickHouse(t, ctx, st.ClickHouseAddr())
	})

	t.Run("broker", func(t *testing.T) {
		value := "before-restart-" + time.Now().Format(time.RFC3339Nano)
		produce(t, ctx, st.Brokers(), messaging.TopicAlerts, value)
		if err := st.StopBroker(); err != nil {
			t.Fatal(err)
		}
		if !addrFree(st.Brokers()[0]) {
			t.Fatal("broker port still taken after StopBroker")
		}
		if err := st.StartBroker(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.RestartBroker(ctx); err != nil {
			t.Fatal(err)
		}
		if got := consumeAll(t, ctx, st.Brokers(), messaging.TopicAlerts); !contains(got, value) {
			t.Fatalf("after two restarts the broker has %q, want %q among them", got, value)
		}
	})

	t.Run("second instance", func(t *testing.T) {
		inst, err := st.AddInstance(ctx, stack.Collector)
		if err != nil {
			t.Fatal(err)
		}
		if inst != "collector-2" {
			t.Fatalf("instance name %q, want collector-2", inst)
		}
		if st.ServiceURL(inst) == st.CollectorURL() || st.ServiceURL(inst) == "" {
			t.Fatalf("instance URL %q, collector URL %q: want distinct addresses", st.ServiceURL(inst), st.CollectorURL())
		}
		env := getEnv(t, st.ServiceURL(inst))
		if env["KAFKA_BROKERS"] != st.Brokers()[0] || env["HTTP_ADDR"] != strings.TrimPrefix(st.ServiceURL(inst), "http://") {
			t.Fatalf("instance env KAFKA_BROKERS=%q HTTP_ADDR=%q", env["KAFKA_BROKERS"], env["HTTP_ADDR"])
		}
		if err := st.KillService(inst); err != nil {
			t.Fatal(err)
		}
		if st.ServiceRunning(inst) || !st.ServiceRunning(stack.Collector) {
			t.Fatal("killing the instance must leave the first process running")
		}
		if _, err := st.AddInstance(ctx, stack.Detector); !errors.Is(err, stack.ErrUnknownService) {
			t.Fatalf("AddInstance of a service the stack does not run = %v, want ErrUnknownService", err)
		}
	})
}
