package bench

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// TestCeilingMovesEveryEventThroughTheBroker runs the ceiling on an
// in-process broker: records read back from events.raw are replayed until
// the wanted events, and every event is decoded on the way out.
func TestCeilingMovesEveryEventThroughTheBroker(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, messaging.TopicEventsRaw))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(messaging.TopicEventsRaw))
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	for r := range 10 {
		evs := make([]events.Event, 7)
		for i := range evs {
			evs[i] = events.Event{V: 1, ID: strconv.Itoa(r*7 + i), Type: events.Type("page_view"), Time: 1, Key: "u", UserID: "u"}
		}
		b, err := events.EncodeBatch(evs)
		require.NoError(t, err)
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Key: []byte("u"), Value: b}).FirstErr())
	}

	src, err := readRawRecords(ctx, brokers, 1<<20)
	require.NoError(t, err)
	require.Len(t, src, 10)
	c, err := runCeiling(ctx, brokers, 3, src, 100)
	require.NoError(t, err)
	require.EqualValues(t, 15, c.Records, "whole records until at least 100 events: 15 × 7")
	require.EqualValues(t, 105, c.Events)
	require.Positive(t, c.EventsPerSecond)
	require.Equal(t, 10, c.SourceRecords)

	_, err = runCeiling(ctx, brokers, 3, []*kgo.Record{{Value: []byte("{")}}, 1)
	require.ErrorIs(t, err, events.ErrUndecodable)
}
