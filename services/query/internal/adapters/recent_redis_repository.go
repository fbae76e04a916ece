package adapters

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
)

var _ query.RecentReader = (*RedisRecentAlerts)(nil)

// RedisRecentAlerts reads the notifier's list of the latest alerts (JSON
// alerts.Alert, newest first). The query service only reads it: the
// notifier owns and writes it (one writer keeps its order and cap).
type RedisRecentAlerts struct {
	client redis.UniversalClient
	key    string
}

// NewRedisRecentAlerts returns a reader of list key (the notifier's
// NOTIFIER_RECENT_KEY, "alerts:recent" by default, unprefixed).
func NewRedisRecentAlerts(client redis.UniversalClient, key string) *RedisRecentAlerts {
	return &RedisRecentAlerts{client: client, key: key}
}

// RecentAlerts returns the first n entries of the list as raw JSON, newest
// first; entries that are not JSON are skipped.
func (r *RedisRecentAlerts) RecentAlerts(ctx context.Context, n int) ([]json.RawMessage, error) {
	vals, err := r.client.LRange(ctx, r.key, 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.key, err)
	}
	out := make([]json.RawMessage, 0, len(vals))
	for _, v := range vals {
		if json.Valid([]byte(v)) {
			out = append(out, json.RawMessage(v))
		}
	}
	return out, nil
}
