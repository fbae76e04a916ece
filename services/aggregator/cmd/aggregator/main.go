// Command aggregator is Streamwatch's speed layer: it consumes events.raw,
// aggregates events in event-time windows with an exactly-once effect, and
// publishes window results to metrics.windows.
package main

import (
	"os"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/config"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/service"
)

func main() {
	cfg := config.Default()
	os.Exit(boot.Main("aggregator", &cfg, func(c *config.Config) string { return c.Log.Level }, service.Run))
}
