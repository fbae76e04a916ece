// Package boot is the body of every Streamwatch service's main: load the
// configuration from the environment, build the JSON logger and OpenTelemetry,
// run the service under a context cancelled by SIGINT/SIGTERM, and turn the
// outcome into an exit code. Only main calls os.Exit.
package boot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
func Main[C any](name string, cfg *C, level func(*C) string, run func(context.Context, C, *slog.Logger) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := config.Load(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return ExitConfig
	}
	logger := logging.New(os.Stdout, level(cfg), name)
	shutdown, err := telemetry.Setup(ctx, name)
	if err != nil {
		logger.Error("telemetry setup failed", "error", err.Error())
		return ExitFailed
	}
	defer func() { _ = shutdown(context.Background()) }()
	if err := run(ctx, *cfg, logger); err != nil {
		logger.Error(name+" failed", "error", err.Error())
		return ExitFailed
	}
	return ExitOK
}
