package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamwatch/streamwatch/devstack/stack"
)

// TestMain makes the test binary double as a fake service (the service
// tests put links named after the services to it in BinDir) and as a
// process that holds a stack until it is killed (see holdStack).
func TestMain(m *testing.M) {
	if name := filepath.Base(os.Args[0]); slices.Contains(stack.ServiceNames(), name) {
		os.Exit(fakeService())
	}
	if dir := os.Getenv(holdEnv); dir != "" {
		os.Exit(holdStack(dir))
	}
	os.Exit(m.Run())
}

// fakeService serves GET /readyz (200) and GET /env (its environment as a
// JSON object) on HTTP_ADDR until SIGTERM. With FAKE_EXIT set it prints
// that value and exits with status 3 at once.
func fakeService() int {
	if msg := os.Getenv("FAKE_EXIT"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) {
		env := make(map[string]string)
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		_ = json.NewEncoder(w).Encode(env)
	})
	srv := &http.Server{Addr: os.Getenv("HTTP_ADDR"), Handler: mux, ReadHeaderTimeout: time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Fprintln(os.Stderr, "fake service listening on", srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fakeBinDir returns a BinDir in which every service is a link to this
// test binary.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range stack.ServiceNames() {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestServiceLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st := startStack(t, ctx, stack.Options{
		DataDir:    t.TempDir(),
		BinDir:     fakeBinDir(t),
		Services:   []string{stack.Collector, stack.Query},
		ServiceEnv: map[string]map[string]string{stack.Query: {"EXTRA": "yes"}},
		LogLevel:   "debug",
	})

	env := getEnv(t, st.QueryURL())
	want := map[string]string{
		"KAFKA_BROKERS":       st.Brokers()[0],
		"KAFKA_PARTITIONS":    "6",
		"REDIS_ADDR":          st.RedisAddr(),
		"CLICKHOUSE_ADDR":     st.ClickHouseAddr(),
		"CLICKHOUSE_DATABASE": "streamwatch",
		"HTTP_ADDR":           strings.TrimPrefix(st.QueryURL(), "http://"),
		"LOG_LEVEL":           "debug",
		"EXTRA":               "yes",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("query env %s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := getEnv(t, st.CollectorURL())["EXTRA"]; ok {
		t.Error("collector got the query's extra environment")
	}
	if st.ServiceURL(stack.Detector) != "" {
		t.Error("detector has a URL but was not started")
	}

	url := st.CollectorURL()
	if err := st.KillService(stack.Collector); err != nil {
		t.Fatalf("KillService: %v", err)
	}
	if st.ServiceRunning(stack.Collector) {
		t.Fatal("collector runs after KillService")
	}
	if _, err := http.Get(url + "/readyz"); err == nil {
		t.Fatal("collector answers after KillService")
	}
	if err := st.StartService(ctx, stack.Collector); err != nil {
		t.Fatalf("StartService: %v", err)
	}
	if st.CollectorURL() != url {
		t.Errorf("collector moved from %s to %s", url, st.CollectorURL())
	}
	getEnv(t, url)
	if err := st.StartService(ctx, stack.Collector); !errors.Is(err, stack.ErrServiceRunning) {
		t.Errorf("StartService on a running service = %v, want ErrServiceRunning", err)
	}
	if err := st.StopService(ctx, stack.Collector); err != nil {
		t.Fatalf("StopService: %v", err)
	}
	if err := st.StopService(ctx, stack.Collector); err != nil {
		t.Fatalf("second StopService: %v", err)
	}
	if st.ServiceRunning(stack.Collector) {
		t.Fatal("collector runs after StopService")
	}
	if err := st.StartService(ctx, stack.Detector); !errors.Is(err, stack.ErrUnknownService) {
		t.Errorf("StartService(detector) = %v, want ErrUnknownService", err)
	}
	log, err := os.ReadFile(st.LogPath(stack.Collector))
	if err != nil || strings.Count(string(log), "fake service listening") != 2 {
		t.Errorf("collector log (%v) should show two starts:\n%s", err, log)
	}

	queryAddr := strings.TrimPrefix(st.QueryURL(), "http://")
	if err := st.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !addrFree(queryAddr) {
		t.Errorf("query address %s still in use after Close", queryAddr)
	}
	if err := st.StartService(ctx, stack.Collector); !errors.Is(err, stack.ErrClosed) {
		t.Errorf("StartService after Close = %v, want ErrClosed", err)
	}
}

func TestStartFailsWhenServiceExits(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Redis and ClickHouse; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, err := stack.Start(ctx, stack.Options{
		DataDir:    t.TempDir(),
		BinDir:     fakeBinDir(t),
		Services:   []string{stack.Detector},
		ServiceEnv: map[string]map[string]string{stack.Detector: {"FAKE_EXIT": "detector refuses to start"}},
	})
	var missing *stack.MissingPackagesError
	if errors.As(err, &missing) {
		t.Skip(missing.Error())
	}
	if err == nil || !strings.Contains(err.Error(), "detector refuses to start") {
		t.Fatalf("Start = %v, want an error with the service's last words", err)
	}
}

func getEnv(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url + "/env")
	if err != nil {
		t.Fatalf("GET %s/env: %v", url, err)
	}
	defer resp.Body.Close()
	var env map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("decode env: %v", err)
	}
	return env
}
