package adapters

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/pkg/alerts"
)

// RecentList keeps the latest alerts, newest first, in a Redis list (the
// seed platform's alerts:recent), capped at Limit entries.
type RecentList struct {
	rdb   redis.UniversalClient
	key   string
	limit int64
}

// NewRecentList returns the receiver writing list key, capped at limit.
func NewRecentList(rdb redis.UniversalClient, key string, limit int64) *RecentList {
	return &RecentList{rdb: rdb, key: key, limit: limit}
}

// Name implements app.Receiver.
func (r *RecentList) Name() string { return "redis:" + r.key }

// Notify pushes the alert's JSON to the head of the list and trims it, in
// one MULTI/EXEC. The same alert JSON is removed first, so a redelivery
// does not add a second entry.
func (r *RecentList) Notify(ctx context.Context, a alerts.Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LRem(ctx, r.key, 0, b)
		p.LPush(ctx, r.key, b)
		p.LTrim(ctx, r.key, 0, r.limit-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("push %s: %w", r.key, err)
	}
	return nil
}
