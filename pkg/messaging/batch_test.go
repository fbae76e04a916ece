package messaging_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

func TestBatchPublisherPartitionsOrdersAndBoundsRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded broker")
	}
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, messaging.TopicEventsRaw))
	require.NoError(t, err)
	defer cluster.Close()
	cfg := config.Kafka{Brokers: cluster.ListenAddrs(), Partitions: 4}
	pub, err := messaging.NewPublisher(cfg, "test", nil)
	require.NoError(t, err)
	defer pub.Close()
	bp, err := messaging.NewBatchPublisher(cfg, pub, 500)
	require.NoError(t, err)
	defer bp.Close()

	// 1,200 events of ~40 KB over 7 keys: far more than one record can hold.
	props := map[string]string{}
	for i := range 40 {
		props[fmt.Sprintf("p%02d", i)] = strings.Repeat("x", 1000)
	}
	var evs []events.Event
	for i := range 1200 {
		key := fmt.Sprintf("user-%d", i%7)
		evs = append(evs, events.Event{V: 1, ID: fmt.Sprint(i), Type: events.TypeClick, Time: 1, Key: key, UserID: key, Properties: props})
	}
	require.NoError(t, bp.PublishEvents(context.Background(), messaging.TopicEventsRaw, evs))

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(messaging.TopicEventsRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	lastByKey := map[string]int{}
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got < len(evs) {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) {
			require.LessOrEqual(t, len(r.Value), messaging.MaxRecordBytes)
			batch, err := events.DecodeBatch(r.Value)
			require.NoError(t, err)
			for _, e := range batch {
				require.Equal(t, messaging.PartitionFor(e.Key, 4), r.Partition, "event in its key's partition")
				var n int
				fmt.Sscan(e.ID, &n)
				if prev, ok := lastByKey[e.Key]; ok {
					require.Greater(t, n, prev, "per-key order kept")
				}
				lastByKey[e.Key] = n
				got++
			}
		})
	}
	require.Equal(t, len(evs), got)
}
