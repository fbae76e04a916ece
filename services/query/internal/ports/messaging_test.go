package ports_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
	"github.com/streamwatch/streamwatch/services/query/internal/service"
)

const may17 = int64(1431856800000) // 2015-05-17T10:00:00Z

func sampleEvents() []events.Event {
	return []events.Event{
		{V: 1, ID: "log:1", Type: events.TypeHTTPRequest, Time: may17 + 3_250, ReceiveTime: may17 + 9_000, Key: "83.149.9.216",
			Source: "apache_logs", ClientIP: "83.149.9.216", Method: "GET", Path: "/presentations/", Protocol: "HTTP/1.1",
			Status: 200, Bytes: 7697, Referrer: "-", UserAgent: "Mozilla/5.0"},
		{V: 1, ID: "u1-click", Type: events.TypeClick, Time: may17 + 4_000, ReceiveTime: may17 + 9_000, Key: "u1",
			UserID: "u1", Page: "/home", Properties: map[string]string{"b": "2", "a": "1"}},
		{V: 1, ID: "svc-1", Type: events.TypeServiceRequest, Time: may17 + 5_000, ReceiveTime: may17 + 9_000, Key: "checkout",
			Service: "checkout", Endpoint: "/pay", LatencyMs: 12.5, Status: 503},
	}
}

func batchMessage(t *testing.T, evs []events.Event) *message.Message {
	t.Helper()
	payload, err := events.EncodeBatch(evs)
	return record(t, events.BatchSchema, payload, err)
}

func TestEventsProjectorDeduplicatesReplayedBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	batch := sampleEvents()
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, batch)))
	// The same record again (a replay after a crash), and again as a new
	// Kafka message with the same events.
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, batch)))
	require.NoError(t, e.proj.HandleEventsRaw(batchMessage(t, batch[1:])))

	require.Equal(t, uint64(3), e.count(t, "SELECT count() FROM streamwatch.events FINAL"))
	require.Equal(t, uint64(1), e.count(t, "SELECT count() FROM streamwatch.events FINAL WHERE event_id = ?", "u1-click"))

	var (
		eventTime                 time.Time
		eventTimeMs, receiveMs    int64
		keys, values              []string
		status                    int32
		latency                   float64
		clientIP, method, typ, id string
	)
	require.NoError(t, e.ch.QueryRow(ctx, `SELECT event_id, type, event_time, event_time_ms, receive_time_ms,
		properties_keys, properties_values FROM streamwatch.events FINAL WHERE event_id = 'u1-click'`).
		Scan(&id, &typ, &eventTime, &eventTimeMs, &receiveMs, &keys, &values))
	require.Equal(t, "click", typ)
	require.Equal(t, time.UnixMilli(may17+4_000).UTC().Truncate(time.Second), eventTime.UTC())
	require.Equal(t, may17+4_000, eventTimeMs)
	require.Equal(t, may17+9_000, receiveMs)
	require.Equal(t, []string{"a", "b"}, keys)
	require.Equal(t, []string{"1", "2"}, values)

	require.NoError(t, e.ch.QueryRow(ctx, `SELECT status, latency_ms FROM streamwatch.events FINAL WHERE event_id = 'svc-1'`).
		Scan(&status, &latency))
	require.Equal(t, int32(503), status)
	require.InDelta(t, 12.5, latency, 1e-9)
	require.NoError(t, e.ch.QueryRow(ctx, `SELECT client_ip, method FROM streamwatch.events FINAL WHERE event_id = 'log:1'`).
		Scan(&clientIP, &method))
	require.Equal(t, "83.149.9.216", clientIP)
	require.Equal(t, "GET", method)
}

func TestEventsProjectorPoisonIsPermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	wrongSchema := batchMessage(t, sampleEvents())
	wrongSchema.Metadata.Set(messaging.MetaSchema, "events.batch.v9")
	newerEvent := sampleEvents()
	newerEvent[0].V = 2
	for name, msg := range map[string]*message.Message{
		"not json":       message.NewMessage("1", []byte("{nope")),
		"batch v2":       message.NewMessage("2", []byte(`{"v":2,"events":[]}`)),
		"event v2":       batchMessage(t, newerEvent),
		"another schema": wrongSchema,
	} {
		err := e.proj.HandleEventsRaw(msg)
		require.Error(t, err, name)
		require.True(t, messaging.IsPermanent(err), "%s: %v", name, err)
	}
	require.Equal(t, uint64(0), e.count(t, "SELECT count() FROM streamwatch.events"))
}

func TestEventsProjectorStorageFailureIsTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A repository on a database that does not exist fails every insert,
	// like a ClickHouse that is down.
	broken, err := service.NewStorage(e.ch, "missing_db", e.rdb, keyPrefix, recentKey, config.WindowBatch{MaxRows: 10, MaxDelay: 50 * time.Millisecond})
	require.NoError(t, err)
	proj := ports.NewProjections(service.NewApplication(broken, nil, nil))

	err = proj.HandleEventsRaw(batchMessage(t, sampleEvents()))
	require.Error(t, err)
	require.False(t, messaging.IsPermanent(err), "a failed insert must be retried, not dead-lettered: %v", err)
}

func TestWindowsProjectorKeepsHighestRevisionInAnyOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	labels := map[string]string{"status_class": "4xx"}
	w1, w2 := may17, may17+60_000

	// Revisions 1..5 of window w1 on shards 0 and 1, shuffled, delivered by
	// concurrent handlers as from several partitions; plus one replay.
	var msgs []metrics.Result
	for shard := int32(0); shard < 2; shard++ {
		for rev := int64(1); rev <= 5; rev++ {
			msgs = append(msgs, result(labels, shard, w1, rev, float64(10*rev)+float64(shard)))
		}
	}
	msgs = append(msgs, result(labels, 0, w1, 5, 50))
	rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	var wg sync.WaitGroup
	errs := make(chan error, len(msgs))
	for _, r := range msgs {
		wg.Go(func() { errs <- e.proj.HandleMetricsWindow(windowMessage(t, r)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	type row struct {
		shard    int32
		revision int64
		value    float64
	}
	readFinal := func() []row {
		rows, err := e.ch.Query(ctx, `SELECT shard, revision, value FROM streamwatch.metric_windows FINAL
			WHERE metric = 'requests' ORDER BY window_start_ms, shard`)
		require.NoError(t, err)
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			require.NoError(t, rows.Scan(&r.shard, &r.revision, &r.value))
			out = append(out, r)
		}
		require.NoError(t, rows.Err())
		return out
	}
	require.Equal(t, []row{{0, 5, 50}, {1, 5, 51}}, readFinal())

	live := func(shard int32) metrics.Result {
		raw, err := e.rdb.HGet(ctx, keyPrefix+"live:requests", metrics.LabelsKey(labels)+"|"+strconv.Itoa(int(shard))).Result()
		require.NoError(t, err)
		r, err := adapters.DecodeLiveValue(raw)
		require.NoError(t, err)
		return r
	}
	require.Equal(t, int64(5), live(0).Revision)
	require.Equal(t, int64(5), live(1).Revision)

	// A lower revision arriving late changes nothing.
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(labels, 0, w1, 2, 999))))
	require.Equal(t, []row{{0, 5, 50}, {1, 5, 51}}, readFinal())
	require.Equal(t, int64(5), live(0).Revision)

	// The next window replaces the live value even at revision 1; a late
	// revision of the older window then goes to ClickHouse only.
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(labels, 0, w2, 1, 7))))
	require.NoError(t, e.proj.HandleMetricsWindow(windowMessage(t, result(labels, 0, w1, 6, 60))))
	require.Equal(t, w2, live(0).WindowStart)
	require.InDelta(t, 7, live(0).Value, 0)
	require.Equal(t, []row{{0, 6, 60}, {1, 5, 51}, {0, 1, 7}}, readFinal())
}

func TestWindowsProjectorPoisonIsPermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	invalid := result(nil, 0, may17, 0, 1) // revision 0
	otherSchema := windowMessage(t, result(nil, 0, may17, 1, 1))
	otherSchema.Metadata.Set(messaging.MetaSchema, "metrics.window.v2")
	for name, msg := range map[string]*message.Message{
		"not json":     message.NewMessage("1", []byte("[1,2")),
		"wrong type":   message.NewMessage("2", []byte(`{"v":1,"metric":7}`)),
		"revision 0":   windowMessage(t, invalid),
		"other schema": otherSchema,
	} {
		err := e.proj.HandleMetricsWindow(msg)
		require.Error(t, err, name)
		require.True(t, messaging.IsPermanent(err), "%s: %v", name, err)
	}
	require.Equal(t, uint64(0), e.count(t, "SELECT count() FROM streamwatch.metric_windows"))
}

// TestProjectionsThroughRouter runs both handlers in a Watermill router as
// the service does (DeadLetter, Retry), on the in-memory gochannel pub/sub
// instead of Kafka: records are projected, poison goes to <topic>.dlq.
func TestProjectionsThroughRouter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	logger := slog.New(slog.DiscardHandler)
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16, Persistent: true}, watermill.NopLogger{})
	router, err := messaging.NewRouter(logger)
	require.NoError(t, err)
	e.proj.Register(router, ports.Subscribers{Events: ps, Windows: ps, Alerts: ps, Notifications: ps}, ps, logger)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	<-router.Running()

	dlq, err := ps.Subscribe(ctx, messaging.DLQ(messaging.TopicMetricsWindows))
	require.NoError(t, err)
	require.NoError(t, ps.Publish(messaging.TopicEventsRaw, batchMessage(t, sampleEvents())))
	require.NoError(t, ps.Publish(messaging.TopicMetricsWindows, windowMessage(t, result(nil, 0, may17, 1, 3))))
	poison := message.NewMessage(watermill.NewUUID(), []byte("not json"))
	require.NoError(t, ps.Publish(messaging.TopicMetricsWindows, poison))

	select {
	case m := <-dlq:
		require.Equal(t, "not json", string(m.Payload))
		require.Equal(t, messaging.TopicMetricsWindows, m.Metadata.Get(messaging.MetaSourceTopic))
		require.NotEmpty(t, m.Metadata.Get(messaging.MetaError))
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("poison record not dead-lettered")
	}
	require.Eventually(t, func() bool {
		return e.count(t, "SELECT count() FROM streamwatch.events FINAL") == 3 &&
			e.count(t, "SELECT count() FROM streamwatch.metric_windows FINAL") == 1
	}, 10*time.Second, 20*time.Millisecond)
}

func TestWindowsProjectorDecodesBatchRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rs := []metrics.Result{
		result(map[string]string{"status": "200"}, 0, may17, 1, 5),
		result(map[string]string{"status": "404"}, 0, may17, 1, 2),
		result(map[string]string{"status": "200"}, 0, may17, 2, 6),
	}
	payload, err := metrics.EncodeBatch(rs)
	require.NoError(t, err)
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(messaging.MetaSchema, metrics.BatchSchema)
	msg.SetContext(context.Background())
	require.NoError(t, e.proj.HandleMetricsWindow(msg))
	require.Equal(t, uint64(2), e.count(t, "SELECT count() FROM streamwatch.metric_windows FINAL"))
	require.Equal(t, uint64(8), e.count(t, "SELECT toUInt64(sum(value)) FROM streamwatch.metric_windows FINAL"))

	// A batch with one invalid result is poison as a whole: nothing written.
	bad := []metrics.Result{result(nil, 0, may17+60_000, 1, 1), result(nil, 0, may17+60_000, 0, 1)}
	payload, err = metrics.EncodeBatch(bad)
	require.NoError(t, err)
	msg = message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(messaging.MetaSchema, metrics.BatchSchema)
	msg.SetContext(context.Background())
	err = e.proj.HandleMetricsWindow(msg)
	require.True(t, messaging.IsPermanent(err), "%v", err)
	require.Equal(t, uint64(2), e.count(t, "SELECT count() FROM streamwatch.metric_windows FINAL"))
}

// TestWindowsBatchHandlerDeadLettersPoisonAndWritesLatest: the windows
// projector's batch handler dead-letters each poison record on its own,
// projects the others, and inserts of a window only the latest revision
// the batch holds.
func TestWindowsBatchHandlerDeadLettersPoisonAndWritesLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16, Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	labels := map[string]string{"status_class": "5xx"}

	batchRecord := func(rs ...metrics.Result) *message.Message {
		payload, err := metrics.EncodeBatch(rs)
		return record(t, metrics.BatchSchema, payload, err)
	}
	msgs := []*message.Message{
		batchRecord(result(labels, 0, may17, 1, 10), result(labels, 1, may17, 1, 11)),
		message.NewMessage(watermill.NewUUID(), []byte("not json")),
		batchRecord(result(labels, 0, may17, 3, 30)),
		batchRecord(result(labels, 1, may17, 2, 21), result(labels, 1, may17, 0, 99)), // revision 0: poison as a whole
		windowMessage(t, result(labels, 0, may17, 2, 20)),                             // older than revision 3
	}
	for i, m := range msgs {
		m.SetContext(messaging.ContextWithPosition(ctx, 4, int64(100+i)))
	}
	wait, err := e.proj.WindowsBatchHandler(ps, logger)(ctx, msgs)
	require.NoError(t, err)
	require.NotNil(t, wait, "the history insert is grouped: the handler returns a wait for it")
	require.NoError(t, wait(ctx))

	dlq, err := ps.Subscribe(ctx, messaging.DLQ(messaging.TopicMetricsWindows))
	require.NoError(t, err)
	dead := map[string]bool{}
	for range 2 {
		select {
		case m := <-dlq:
			dead[m.Metadata.Get(messaging.MetaSourceOffset)] = true
			require.Equal(t, "4", m.Metadata.Get(messaging.MetaSourcePartition))
			require.Equal(t, ports.WindowsProjector, m.Metadata.Get(messaging.MetaConsumer))
			require.NotEmpty(t, m.Metadata.Get(messaging.MetaError))
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("poison records not dead-lettered, got %v", dead)
		}
	}
	require.Equal(t, map[string]bool{"101": true, "103": true}, dead, "the poison records, by source offset")
	// Of shard 0's revisions 1, 3 and 2 only 3 was inserted at all.
	require.Equal(t, uint64(1), e.count(t, "SELECT count() FROM streamwatch.metric_windows WHERE metric = 'requests' AND shard = 0"))
	require.Equal(t, uint64(30), e.count(t, "SELECT toUInt64(max(value)) FROM streamwatch.metric_windows WHERE shard = 0"))
	require.Equal(t, uint64(11), e.count(t, "SELECT toUInt64(max(value)) FROM streamwatch.metric_windows FINAL WHERE shard = 1"))
	liveField := metrics.LabelsKey(labels) + "|0"
	_, err = e.rdb.HGet(ctx, keyPrefix+"live:requests", liveField).Result()
	require.ErrorIs(t, err, redis.Nil, "the live view is the live projector's")

	// The live projector, a consumer group of its own, takes the same
	// batch: it dead-letters the same poison records under its own name
	// and stores the latest revision.
	wait, err = e.proj.LiveBatchHandler(ps, logger)(ctx, msgs)
	require.NoError(t, err)
	require.Nil(t, wait, "the live view is durable when the handler returns")
	for range 2 {
		select {
		case m := <-dlq:
			require.Equal(t, ports.LiveProjector, m.Metadata.Get(messaging.MetaConsumer))
			delete(dead, m.Metadata.Get(messaging.MetaSourceOffset))
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("poison records not dead-lettered by the live projector, left %v", dead)
		}
	}
	require.Empty(t, dead)
	raw, err := e.rdb.HGet(ctx, keyPrefix+"live:requests", liveField).Result()
	require.NoError(t, err)
	live, err := adapters.DecodeLiveValue(raw)
	require.NoError(t, err)
	require.Equal(t, int64(3), live.Revision)

	// A failed history insert is transient for the whole batch: its wait
	// fails (the consumer applies the batch again).
	broken, err := service.NewStorage(e.ch, "missing_db", e.rdb, keyPrefix, recentKey, config.WindowBatch{MaxRows: 10, MaxDelay: 50 * time.Millisecond})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = broken.WindowBatcher.Run(runCtx) }()
	wait, err = ports.NewProjections(service.NewApplication(broken, nil, nil)).WindowsBatchHandler(ps, logger)(ctx, msgs[:1])
	require.NoError(t, err, "the history queued the batch")
	err = wait(ctx)
	require.Error(t, err)
	require.False(t, messaging.IsPermanent(err), "%v", err)
}

// TestLiveBatchHandlerNeverWaitsForTheHistory: the live projector stores
// the changed results of a batch while the window history cannot take
// anything (its batcher is not running, so a history enqueue would block),
// and leaves out the Unchanged results, whose values the live view holds.
func TestLiveBatchHandlerNeverWaitsForTheHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	stalled, err := service.NewStorage(e.ch, "missing_db", e.rdb, keyPrefix, recentKey,
		config.WindowBatch{MaxRows: 1, MaxDelay: time.Hour}) // never run: Enqueue would wait
	require.NoError(t, err)
	handler := ports.NewProjections(service.NewApplication(stalled, nil, nil)).LiveBatchHandler(nil, logger)

	a, b := map[string]string{"status": "200"}, map[string]string{"status": "500"}
	early := result(a, 0, may17, 1, 10)
	final := result(a, 0, may17, 2, 99) // Unchanged with another value: it must not be applied
	final.Kind, final.Unchanged = metrics.KindFinal, true
	other := result(b, 0, may17, 4, 40)
	msgs := []*message.Message{windowBatchMessage(t, early), windowBatchMessage(t, final, other)}
	for i, m := range msgs {
		m.SetContext(messaging.ContextWithPosition(ctx, 0, int64(i)))
	}
	wait, err := handler(ctx, msgs)
	require.NoError(t, err)
	require.Nil(t, wait)
	for labels, want := range map[string]struct {
		rev   int64
		value float64
	}{metrics.LabelsKey(a): {1, 10}, metrics.LabelsKey(b): {4, 40}} {
		raw, err := e.rdb.HGet(ctx, keyPrefix+"live:requests", labels+"|0").Result()
		require.NoError(t, err, labels)
		live, err := adapters.DecodeLiveValue(raw)
		require.NoError(t, err)
		require.Equal(t, want.rev, live.Revision, labels)
		require.InDelta(t, want.value, live.Value, 0, labels)
	}
}

// TestEventsBatchHandlerDeadLettersPoisonAndInsertsTheRest: the events
// projector's batch handler dead-letters each poison record on its own and
// inserts the events of every other record of the batch; a failed insert is
// transient for the whole batch.
func TestEventsBatchHandlerDeadLettersPoisonAndInsertsTheRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16, Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })

	evs := sampleEvents()
	wrongSchema := batchMessage(t, evs[:1])
	wrongSchema.Metadata.Set(messaging.MetaSchema, "events.batch.v9")
	msgs := []*message.Message{
		batchMessage(t, evs[:2]),
		message.NewMessage(watermill.NewUUID(), []byte("{nope")),
		batchMessage(t, evs[1:]), // a replayed event (u1-click) and a new one
		wrongSchema,
	}
	for i, m := range msgs {
		m.SetContext(messaging.ContextWithPosition(ctx, 2, int64(40+i)))
	}
	wait, err := e.proj.EventsBatchHandler(ps, logger)(ctx, msgs)
	require.NoError(t, err)
	require.Nil(t, wait, "inserted when the handler returns")

	dlq, err := ps.Subscribe(ctx, messaging.DLQ(messaging.TopicEventsRaw))
	require.NoError(t, err)
	dead := map[string]bool{}
	for range 2 {
		select {
		case m := <-dlq:
			dead[m.Metadata.Get(messaging.MetaSourceOffset)] = true
			require.Equal(t, ports.EventsProjector, m.Metadata.Get(messaging.MetaConsumer))
			require.NotEmpty(t, m.Metadata.Get(messaging.MetaError))
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("poison records not dead-lettered, got %v", dead)
		}
	}
	require.Equal(t, map[string]bool{"41": true, "43": true}, dead, "the poison records, by source offset")
	// log:1 is only in the first record and svc-1 only in the third.
	require.Equal(t, uint64(3), e.count(t, "SELECT count() FROM streamwatch.events FINAL"))

	broken, err := service.NewStorage(e.ch, "missing_db", e.rdb, keyPrefix, recentKey, config.WindowBatch{MaxRows: 10, MaxDelay: 50 * time.Millisecond})
	require.NoError(t, err)
	_, err = ports.NewProjections(service.NewApplication(broken, nil, nil)).EventsBatchHandler(ps, logger)(ctx, msgs[:1])
	require.Error(t, err)
	require.False(t, messaging.IsPermanent(err), "%v", err)
}
