package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// DoneTTL is how long a delivery's final outcome is remembered: longer
// than any redelivery of its record can take.
const DoneTTL = 7 * 24 * time.Hour

// RedisDone is the delivery queues' memory of final outcomes, one Redis
// string per delivery record: <prefix>notifier:done:<record id>.
type RedisDone struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisDone returns the store; prefix is the suite's key prefix.
func NewRedisDone(rdb redis.UniversalClient, prefix string) *RedisDone {
	return &RedisDone{rdb: rdb, prefix: prefix + "notifier:done:"}
}

// Done implements app.DoneStore.
func (r *RedisDone) Done(ctx context.Context, id string) (dispatch.Outcome, bool, error) {
	b, err := r.rdb.Get(ctx, r.prefix+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return dispatch.Outcome{}, false, nil
	}
	if err != nil {
		return dispatch.Outcome{}, false, fmt.Errorf("load delivery outcome: %w", err)
	}
	var oc dispatch.Outcome
	if err := json.Unmarshal(b, &oc); err != nil {
		return dispatch.Outcome{}, false, fmt.Errorf("decode delivery outcome: %w", err)
	}
	return oc, true, nil
}

// MarkDone implements app.DoneStore.
func (r *RedisDone) MarkDone(ctx context.Context, id string, oc dispatch.Outcome) error {
	b, err := json.Marshal(oc)
	if err != nil {
		return fmt.Errorf("encode delivery outcome: %w", err)
	}
	if err := r.rdb.Set(ctx, r.prefix+id, b, DoneTTL).Err(); err != nil {
		return fmt.Errorf("store delivery outcome: %w", err)
	}
	return nil
}
