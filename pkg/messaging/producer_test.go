package messaging_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// TestProducerAndBatchConsumer publishes 600 messages of two topics in one
// PublishRouted call and reads one topic back with a BatchConsumer: every
// message arrives once, in its key's partition (or the explicit one), in
// the order published per partition, with its id and metadata, positioned,
// and handed in batches of at most MaxRecords.
func TestProducerAndBatchConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded broker")
	}
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "a", "b"))
	require.NoError(t, err)
	defer cluster.Close()
	cfg := config.Kafka{Brokers: cluster.ListenAddrs()}
	prod, err := messaging.NewProducer(cfg, "test")
	require.NoError(t, err)
	defer prod.Close()

	var rs []messaging.Routed
	for i := range 600 {
		m := message.NewMessage("id-"+strconv.Itoa(i), []byte(strconv.Itoa(i)))
		m.Metadata.Set("n", strconv.Itoa(i))
		topic := "a"
		if i%2 == 1 {
			topic = "b"
		}
		if i%10 == 0 {
			m.Metadata.Set(messaging.MetaPartition, "2")
		} else {
			m.Metadata.Set(messaging.MetaKey, "k"+strconv.Itoa(i%7))
		}
		rs = append(rs, messaging.Routed{Topic: topic, Msg: m})
	}
	require.NoError(t, prod.PublishRouted(rs))
	bad := message.NewMessage("bad", nil)
	bad.Metadata.Set(messaging.MetaPartition, "x")
	// A message that does not marshal fails the call before any is sent
	// (the consumer below would see "ok").
	require.ErrorContains(t, prod.Publish("a", message.NewMessage("ok", nil), bad), "not a partition number")

	var mu sync.Mutex
	last := map[int32]int{} // partition -> last n
	seen := map[int]bool{}
	maxBatch := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bc, err := messaging.NewBatchConsumer(messaging.BatchConsumerConfig{Brokers: cfg.Brokers, Group: "g", Topic: "a",
		MaxRecords: 50, RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond},
		func(_ context.Context, msgs []*message.Message) error {
			mu.Lock()
			defer mu.Unlock()
			maxBatch = max(maxBatch, len(msgs))
			for _, m := range msgs {
				part, _, ok := messaging.Position(m)
				if !ok {
					return fmt.Errorf("message %s has no position", m.UUID)
				}
				n, _ := strconv.Atoi(m.Metadata.Get("n"))
				if m.UUID != "id-"+strconv.Itoa(n) || string(m.Payload) != strconv.Itoa(n) {
					return fmt.Errorf("message %s: payload %q, metadata n=%d", m.UUID, m.Payload, n)
				}
				want := messaging.PartitionFor("k"+strconv.Itoa(n%7), 3)
				if n%10 == 0 {
					want = 2
				}
				if part != want {
					return fmt.Errorf("message %d in partition %d, want %d", n, part, want)
				}
				if prev, ok := last[part]; ok && prev >= n {
					return fmt.Errorf("partition %d: %d after %d", part, n, prev)
				}
				if seen[n] {
					return fmt.Errorf("message %d twice", n)
				}
				last[part] = n
				seen[n] = true
			}
			if len(seen) == 300 {
				cancel()
			}
			return nil
		}, nil)
	require.NoError(t, err)
	require.NoError(t, bc.Run(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 300, "every message of topic a once")
	require.LessOrEqual(t, maxBatch, 50)
}
