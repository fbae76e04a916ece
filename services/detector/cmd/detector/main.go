// Command detector turns window results into alerts: it consumes
// metrics.windows, evaluates threshold rules with an exactly-once effect,
// and publishes alert state changes to the alerts topic.
package main

import (
	"os"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/detector/internal/config"
	"github.com/streamwatch/streamwatch/services/detector/internal/service"
)

func main() {
	cfg := config.Default()
	os.Exit(boot.Main("detector", &cfg, func(c *config.Config) string { return c.Log.Level }, service.Run))
}
