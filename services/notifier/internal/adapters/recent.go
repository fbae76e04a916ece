package adapters

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// RecentList keeps the latest alerts, newest first, in a Redis list (the
// seed platform's alerts:recent), capped at a limit. Each entry is the
// alert record's JSON (pkg/alerts.Alert).
type RecentList struct {
	rdb   redis.UniversalClient
	key   string
	limit int64
}

// NewRecentList returns the integration writing list key, capped at limit.
func NewRecentList(rdb redis.UniversalClient, key string, limit int64) *RecentList {
	return &RecentList{rdb: rdb, key: key, limit: limit}
}

// Notify pushes each alert of n to the head of the list and trims it, in
// one MULTI/EXEC. The same alert JSON is removed first, so a redelivery
// (or a repeat of the group) does not add a second entry.
func (r *RecentList) Notify(ctx context.Context, n dispatch.Notification) error {
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range n.Alerts {
			b, err := json.Marshal(a.Alert)
			if err != nil {
				return fmt.Errorf("encode alert: %w", err)
			}
			p.LRem(ctx, r.key, 0, b)
			p.LPush(ctx, r.key, b)
		}
		p.LTrim(ctx, r.key, 0, r.limit-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("push %s: %w", r.key, err)
	}
	return nil
}
