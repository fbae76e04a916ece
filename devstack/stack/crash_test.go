package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// holdEnv names the data directory of a stack that the test binary starts
// and holds until it is killed.
const holdEnv = "STACK_TEST_HOLD"

// held is what a holding process writes to DIR/held.json once its stack
// is up.
type held struct {
	Brokers    []string `json:"brokers"`
	Redis      string   `json:"redis"`
	ClickHouse string   `json:"clickhouse"`
}

// holdStack starts a stack without services on dir, writes dir/held.json
// and blocks until the process is killed.
func holdStack(dir string) int {
	st, err := stack.Start(context.Background(), stack.Options{DataDir: dir, SkipServices: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, _ := json.Marshal(held{Brokers: st.Brokers(), Redis: st.RedisAddr(), ClickHouse: st.ClickHouseAddr()})
	if err := os.WriteFile(filepath.Join(dir, "held.json"), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {}
}

// TestKilledOwnerLeaksNothing kills a process that runs a stack with
// SIGKILL, as a crashed or timed-out test run would be, and checks that
// Redis and ClickHouse die with it, and that a new stack on the same data
// directory still has what was written before the kill.
func TestKilledOwnerLeaksNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Redis and ClickHouse; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	var h held
	for {
		b, err := os.ReadFile(filepath.Join(dir, "held.json"))
		if err == nil && json.Unmarshal(b, &h) == nil {
			break
		}
		if ctx.Err() != nil {
			t.Skipf("holding process did not start a stack (see its stderr): %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	value := "crash-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	produce(t, ctx, h.Brokers, messaging.TopicAlerts, value)
	rdb := redis.NewClient(&redis.Options{Addr: h.Redis})
	if err := rdb.Set(ctx, "crash-test", value, 0).Err(); err != nil {
		t.Fatalf("redis SET: %v", err)
	}
	rdb.Close()
	time.Sleep(1500 * time.Millisecond) // Redis fsyncs its append-only file every second

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for _, addr := range append([]string{h.Redis, h.ClickHouse}, h.Brokers...) {
		deadline := time.Now().Add(10 * time.Second)
		for !addrFree(addr) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still in use 10 s after its owner was killed", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	st := startStack(t, ctx, stack.Options{DataDir: dir, SkipServices: true})
	if got := consumeAll(t, ctx, st.Brokers(), messaging.TopicAlerts); !contains(got, value) {
		t.Errorf("after the crash consumed %q, want %q among them", got, value)
	}
	rdb = redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	got, err := rdb.Get(ctx, "crash-test").Result()
	if errors.Is(err, redis.Nil) || got != value {
		t.Errorf("after the crash redis GET = %q, %v; want %q", got, err, value)
	}
}
