package adapters

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// OpenRedis returns a Redis client for cfg after a successful PING; its
// commands are client spans when tracing is on. The caller closes it.
func OpenRedis(ctx context.Context, cfg config.Redis) (*redis.Client, error) {
	c := redis.NewClient(&redis.Options{Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB})
	if err := telemetry.InstrumentRedis(c); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ping redis %s: %w", cfg.Addr, err)
	}
	return c, nil
}
