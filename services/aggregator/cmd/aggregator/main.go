// Command aggregator is Streamwatch's speed layer: it consumes events.raw,
// aggregates events in event-time windows with an exactly-once effect, and
// publishes window results to metrics.windows.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	pkgconfig "github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/logging"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/config"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/service"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config.Default()
	if err := pkgconfig.Load(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		return 2
	}
	logger := logging.New(os.Stdout, cfg.Log.Level, "aggregator")
	shutdown, err := telemetry.Setup(ctx, "aggregator")
	if err != nil {
		logger.Error("telemetry setup failed", "error", err.Error())
		return 1
	}
	defer func() { _ = shutdown(context.Background()) }()
	if err := service.Run(ctx, cfg, logger); err != nil {
		logger.Error("aggregator failed", "error", err.Error())
		return 1
	}
	return 0
}
