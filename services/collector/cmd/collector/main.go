// Command collector is Streamwatch's ingestion service: it accepts client
// events (POST /v1/events) and access-log lines (POST /v1/logs) over HTTP,
// validates them and publishes them to the events.raw Kafka topic. It is
// configured from the environment (see internal/config) and stops gracefully
// on SIGINT or SIGTERM. Exit codes: 0 after a clean stop, 1 when the service
// failed, 2 for an invalid configuration.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/collector/internal/config"
	"github.com/streamwatch/streamwatch/services/collector/internal/service"
)

func main() { os.Exit(run()) }

// run loads the configuration, sets up logging and telemetry and runs the
// service under a context cancelled by SIGINT/SIGTERM (boot.Main), returning
// the exit code.
func run() int {
	cfg := config.Default()
	return boot.Main("collector", &cfg, func(c *config.Config) string { return c.Log.Level }, serve)
}

// serve wires the collector and serves until ctx is done.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) (err error) {
	svc, err := service.New(cfg, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.Close()) }()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	return g.Wait()
}
