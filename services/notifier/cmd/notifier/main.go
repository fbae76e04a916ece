// Command notifier delivers alerts to people: it consumes the alerts topic
// and sends each new firing alert to the configured webhook and to the
// Redis list alerts:recent, once.
package main

import (
	"os"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
	"github.com/streamwatch/streamwatch/services/notifier/internal/service"
)

func main() {
	cfg := config.Default()
	os.Exit(boot.Main("notifier", &cfg, func(c *config.Config) string { return c.Log.Level }, service.Run))
}
