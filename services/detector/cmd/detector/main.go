// Command detector turns window results and raw events into alerts: it
// consumes metrics.windows and events.raw, evaluates the rules (threshold,
// change, absence, patterns, anomaly) with an exactly-once effect, and
// publishes alert state changes to the alerts topic.
//
// `detector backtest --rule FILE --from T --to T` instead evaluates FILE
// over the history stored in ClickHouse and prints the alerts it would have
// fired.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/detector/internal/config"
	"github.com/streamwatch/streamwatch/services/detector/internal/service"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "backtest" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := service.Backtest(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	cfg := config.Default()
	os.Exit(boot.Main("detector", &cfg, func(c *config.Config) string { return c.Log.Level }, service.Run))
}
