package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/internal/service"
)

const may17 = int64(1431856800000)

// publishHistory publishes events (some twice), window results (some
// revised), alerts and notifications, as the other services would.
func publishHistory(t *testing.T, pub message.Publisher) {
	t.Helper()
	msg := func(payload []byte, schema, key string) *message.Message {
		m := message.NewMessage(watermill.NewUUID(), payload)
		if schema != "" {
			m.Metadata.Set(messaging.MetaSchema, schema)
		}
		m.Metadata.Set(messaging.MetaKey, key)
		return m
	}
	for b := range 20 {
		evs := make([]events.Event, 50)
		for i := range evs {
			n := b*50 + i
			evs[i] = events.Event{V: 1, ID: fmt.Sprintf("replay:%d", n), Type: events.TypeHTTPRequest, Time: may17 + int64(n)*100,
				ReceiveTime: may17, Key: fmt.Sprintf("10.0.0.%d", b), Source: "replay_test", ClientIP: fmt.Sprintf("10.0.0.%d", b),
				Method: "GET", Path: "/", Status: 200}
		}
		payload, err := events.EncodeBatch(evs)
		require.NoError(t, err)
		require.NoError(t, pub.Publish(messaging.TopicEventsRaw, msg(payload, events.BatchSchema, evs[0].Key)))
		if b%5 == 0 { // a producer retry: the same events again
			require.NoError(t, pub.Publish(messaging.TopicEventsRaw, msg(payload, events.BatchSchema, evs[0].Key)))
		}
	}
	var rs []metrics.Result
	for w := range 30 {
		for rev := int64(1); rev <= 2; rev++ {
			rs = append(rs, metrics.Result{V: 1, Metric: "requests", Labels: map[string]string{"status": "200"},
				WindowStart: may17 + int64(w)*60_000, WindowEnd: may17 + int64(w+1)*60_000, Kind: metrics.KindFinal,
				Revision: rev, Count: int64(w) + rev, Value: float64(w) + float64(rev)})
		}
	}
	payload, err := metrics.EncodeBatch(rs)
	require.NoError(t, err)
	require.NoError(t, pub.Publish(messaging.TopicMetricsWindows, msg(payload, metrics.BatchSchema, "requests")))
	for i := range 4 {
		for _, state := range []string{alerts.StatePending, alerts.StateFiring} {
			a := alerts.Alert{V: 1, Fingerprint: fmt.Sprintf("fp%d", i), Rule: "r", State: state, Severity: alerts.SeverityWarning,
				StartsAt: may17 + int64(i)*60_000}
			b, err := json.Marshal(a)
			require.NoError(t, err)
			require.NoError(t, pub.Publish(messaging.TopicAlerts, msg(b, alerts.Schema, a.Fingerprint)))
		}
	}
	for i := range 3 {
		require.NoError(t, pub.Publish(messaging.TopicNotifications, msg([]byte(fmt.Sprintf(`{"id":"n%d","ok":true}`, i)), "", "g")))
	}
	for i, op := range []string{rules.OpUpsert, rules.OpUpsert, rules.OpDelete} {
		id := fmt.Sprintf("rule_%d", min(i, 1))
		c := rules.Change{V: 1, Op: op, ID: id, At: int64(i + 1)}
		if op == rules.OpUpsert {
			c.Rule = &rules.Rule{Name: id, Metric: "requests", Op: ">", Threshold: 10}
		}
		b, err := rules.EncodeChange(c)
		require.NoError(t, err)
		require.NoError(t, pub.Publish(messaging.TopicRules, msg(b, rules.ChangeSchema, id)))
	}
	for i := range 2 {
		sl := silences.Silence{V: 1, ID: fmt.Sprintf("s%d", i), Matchers: silences.Matchers{{Name: "rule", Value: "r"}},
			StartsAt: 1, EndsAt: 2, CreatedBy: "test", UpdatedAt: 1}
		b, err := json.Marshal(sl)
		require.NoError(t, err)
		require.NoError(t, pub.Publish(messaging.TopicSilences, msg(b, silences.Schema, sl.ID)))
	}
	// Poison: dead-lettered live, skipped by the replay.
	require.NoError(t, pub.Publish(messaging.TopicAlerts, msg([]byte("not json"), alerts.Schema, "x")))
}

// TestReplayRebuildsDroppedProjections runs the service on an embedded
// broker until every projection holds the published history, drops the
// projection tables, replays, and gets every count back; then replays
// again over live tables (the RENAME swap path) and with --from.
func TestReplayRebuildsDroppedProjections(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker, ClickHouse and Redis")
	}
	t.Parallel()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, messaging.Topics()...))
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	ch := chtest.StartClickHouse(t)
	cfg := testConfig(t)
	cfg.ClickHouse.Addr = ch.Addr
	cfg.ClickHouse.Database = "sw_replay"
	cfg.Redis.Addr = chtest.StartRedis(t)
	cfg.Kafka.Brokers = broker.ListenAddrs()
	cfg.HTTP.Addr = "127.0.0.1:0"
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	pub, err := messaging.NewPublisher(cfg.Kafka, "replay-test", logger)
	require.NoError(t, err)
	defer pub.Close()
	publishHistory(t, pub)

	svc, err := service.New(ctx, cfg, logger)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.RunProjections(runCtx) }()

	conn := ch.Conn(t)
	count := func(table string) uint64 {
		var n uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM sw_replay."+table+" FINAL").Scan(&n))
		return n
	}
	want := map[string]uint64{"events": 1000, "metric_windows": 30, "alerts": 4, "notifications": 3, "rules": 2, "silences": 2}
	require.Eventually(t, func() bool {
		for table, n := range want {
			if count(table) != n {
				return false
			}
		}
		return true
	}, 90*time.Second, 100*time.Millisecond)
	stop()
	require.NoError(t, <-done)
	require.NoError(t, svc.Close())
	var revSum float64
	require.NoError(t, conn.QueryRow(ctx, "SELECT sum(value) FROM sw_replay.metric_windows FINAL").Scan(&revSum))

	for table := range want {
		require.NoError(t, conn.Exec(ctx, "DROP TABLE sw_replay."+table))
	}
	log, err := adapters.NewKafkaLog(cfg.Kafka, "replay-test")
	require.NoError(t, err)
	defer log.Close()
	for _, p := range service.Projections {
		rep, err := service.Replay(ctx, conn, "sw_replay", log, service.ReplayOptions{Projection: p, FromMs: -1, Run: "r1"}, logger)
		require.NoError(t, err, p)
		require.Equal(t, want[rep.Table], rep.Rows, p)
		require.Equal(t, want[rep.Table], count(rep.Table), p)
		if p == service.ProjectionAlerts {
			require.Equal(t, int64(1), rep.Poison)
		}
	}
	var replayedSum float64
	require.NoError(t, conn.QueryRow(ctx, "SELECT sum(value) FROM sw_replay.metric_windows FINAL").Scan(&replayedSum))
	require.InDelta(t, revSum, replayedSum, 0, "latest revisions again")

	// Over a live table: swapped in with RENAME, the old table dropped.
	rep, err := service.Replay(ctx, conn, "sw_replay", log, service.ReplayOptions{Projection: service.ProjectionEvents, FromMs: -1, Run: "r2"}, logger)
	require.NoError(t, err)
	require.Equal(t, uint64(1000), rep.Rows)
	require.Empty(t, rep.Retired)
	// From a time after every record: the live rows are copied, nothing
	// replayed.
	rep, err = service.Replay(ctx, conn, "sw_replay", log, service.ReplayOptions{Projection: service.ProjectionEvents,
		FromMs: time.Now().Add(time.Hour).UnixMilli(), Run: "r3", KeepRetired: true}, logger)
	require.NoError(t, err)
	require.Equal(t, uint64(1000), rep.Rows)
	require.Zero(t, rep.Records)
	require.Equal(t, "events_old_r3", rep.Retired)

	var leftovers uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'sw_replay' AND name LIKE '%_replay_%'").Scan(&leftovers))
	require.Zero(t, leftovers)
}
