// Package boot is the body of every Streamwatch service's main: load the
// configuration from the environment, build the JSON logger and OpenTelemetry,
// run the service under a context cancelled by SIGINT/SIGTERM, and turn the
// outcome into an exit code. Only main calls os.Exit.
package boot

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/logging"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// Exit codes of Main.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitConfig = 2
)

// Main loads cfg (a pointer to the service's Config, preset with its
// defaults) with config.Load, logs JSON to stdout at the level level(cfg)
// returns, sets up telemetry for "streamwatch-<name>", and calls run until it
// returns. It returns ExitConfig for an invalid configuration (printed to
// stderr), ExitFailed when telemetry or run fails, ExitOK otherwise.
//
// "<binary> healthcheck" instead asks the running service on
// HTTP_HEALTH_ADDR, else HTTP_ADDR (or its default), for GET /readyz and returns ExitOK when it answers 200,
// ExitFailed otherwise: container images without curl use it as their
// health check.
//
// With DEBUG_ADDR set (host:port) the service also serves Go's runtime
// profiles on that address, under /debug/pprof/ (see debugMux), until run
// returns.
func Main[C any](name string, cfg *C, level func(*C) string, run func(context.Context, C, *slog.Logger) error) int {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return healthcheck(cfg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var debug debugConfig
	for _, c := range []any{cfg, &debug} {
		if err := config.Load(c); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return ExitConfig
		}
	}
	logger := logging.New(os.Stdout, level(cfg), name)
	setMemoryLimit(logger, memlimit.FromCgroup)
	shutdown, err := telemetry.Setup(ctx, name)
	if err != nil {
		logger.Error("telemetry setup failed", "error", err.Error())
		return ExitFailed
	}
	defer func() { _ = shutdown(context.Background()) }()
	defer startDebug(ctx, debug.Addr, logger)()
	if err := run(ctx, *cfg, logger); err != nil {
		logger.Error(name+" failed", "error", err.Error())
		return ExitFailed
	}
	return ExitOK
}

// memoryLimitRatio is the share of the container's memory limit that
// becomes the Go runtime's soft memory limit, as Prometheus does
// (--auto-gomemlimit.ratio): the rest is for what the runtime does not
// count (thread stacks outside the heap, cgo, the binary).
const memoryLimitRatio = 0.9

// setMemoryLimit sets the Go runtime's soft memory limit (GOMEMLIMIT) to
// memoryLimitRatio of the memory limit limit reports (memlimit.FromCgroup:
// the container's cgroup v1 or v2 limit, bytes), so the GC works harder
// before the process reaches it instead of letting the heap grow to twice
// its live size (GOGC): a minute boundary of 1,000,000 active keys
// otherwise takes the aggregator from 0.7 to 1.3 GiB (docs/aggregator.md).
// A GOMEMLIMIT in the environment wins; AUTOMEMLIMIT=off disables it and
// AUTOMEMLIMIT=<ratio in (0,1]> changes the ratio. No limit (a process
// outside a container) leaves the runtime unlimited. Failures are logged,
// not fatal. Uses github.com/KimMachineGun/automemlimit.
func setMemoryLimit(logger *slog.Logger, limit memlimit.Provider) {
	_, _ = memlimit.Set(memlimit.WithRatio(memoryLimitRatio), memlimit.WithProvider(limit), memlimit.WithLogger(logger))
}

// healthcheck GETs /readyz of the local service; the address comes from the
// HTTP_HEALTH_ADDR variable (health served on its own listener), else
// HTTP_ADDR, else the Addr preset in cfg's HTTP field.
func healthcheck[C any](cfg *C) int {
	addr := os.Getenv("HTTP_HEALTH_ADDR")
	if addr == "" {
		addr = os.Getenv("HTTP_ADDR")
	}
	if addr == "" {
		if v := reflect.ValueOf(cfg).Elem(); v.Kind() == reflect.Struct {
			if f := v.FieldByName("HTTP"); f.IsValid() {
				if h, ok := f.Interface().(config.HTTP); ok {
					addr = h.Addr
				}
			}
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: HTTP_ADDR %q: %v\n", addr, err)
		return ExitFailed
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return ExitFailed
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: /readyz answered", resp.Status)
		return ExitFailed
	}
	return ExitOK
}
