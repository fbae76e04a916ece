// Package service wires the notifier: receivers from config and the
// delivery operator on the alerts topic run by the shared stream service.
package service

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
)

// Group is the notifier's consumer group and checkpoint namespace. Never
// rename it.
const Group = "notifier.delivery"

// Run runs the notifier until ctx is done.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()
	receivers := []app.Receiver{adapters.NewRecentList(rdb, cfg.RecentKey, cfg.RecentLimit)}
	if cfg.WebhookURL != "" {
		receivers = append(receivers, adapters.NewWebhook("webhook", cfg.WebhookURL, cfg.ExternalURL, cfg.WebhookTimeout))
	}
	logger.Info("receivers configured", "count", len(receivers), "webhook", cfg.WebhookURL != "")
	return stream.RunService(ctx, stream.ServiceConfig{
		Name: "notifier", HTTP: cfg.HTTP, Kafka: cfg.Kafka, Redis: cfg.Redis,
		Group: Group, Topic: messaging.TopicAlerts,
	}, app.NewNotify(receivers, cfg.MaxTries), logger)
}
