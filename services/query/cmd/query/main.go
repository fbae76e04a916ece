// Command query runs the Streamwatch query service: it projects events.raw
// and metrics.windows into ClickHouse and Redis and serves the REST API.
// Configuration comes from environment variables (internal/config).
package main

import (
	"os"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/service"
)

func main() {
	cfg := config.Default()
	os.Exit(boot.Main("query", &cfg, func(c *config.Config) string { return c.Log.Level }, service.Run))
}
