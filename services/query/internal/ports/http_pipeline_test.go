package ports_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

func TestNotificationsNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	project := func(payload string) {
		msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
		msg.Metadata.Set(messaging.MetaSchema, "notifications.outcome.v1")
		msg.Metadata.Set(messaging.MetaKey, `0:{alertname="cpu"}`)
		msg.SetContext(context.Background())
		require.NoError(t, e.proj.HandleNotification(msg))
		time.Sleep(5 * time.Millisecond) // distinct receive times
	}
	var empty ports.NotificationsResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/notifications", &empty))
	require.NotNil(t, empty.Notifications, "an empty list, not null")
	require.Empty(t, empty.Notifications)

	for i := range 3 {
		project(fmt.Sprintf(`{"v":1,"id":"n%d","kind":"sent","receiver":"team","integration":"team/webhook/0","at":%d}`, i, may17+int64(i)))
	}
	project(`{"v":1,"id":"n0","kind":"sent","receiver":"team","integration":"team/webhook/0","at":1431849600000}`) // a replay

	var resp ports.NotificationsResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/notifications", &resp))
	var ids []string
	for _, n := range resp.Notifications {
		ids = append(ids, n.ID)
	}
	// The replayed n0 collapses with the first and keeps one of the two
	// receive times: it is the newest or the oldest, never twice.
	require.Len(t, ids, 3, ids)
	require.ElementsMatch(t, []string{"n0", "n1", "n2"}, ids)
	require.Less(t, indexOf(ids, "n2"), indexOf(ids, "n1"), "newest first: %v", ids)
	for i := 1; i < len(resp.Notifications); i++ {
		require.GreaterOrEqual(t, resp.Notifications[i-1].ReceivedAt, resp.Notifications[i].ReceivedAt)
	}
	n := resp.Notifications[indexOf(ids, "n2")]
	require.Equal(t, "notifications.outcome.v1", n.Schema)
	require.Equal(t, `0:{alertname="cpu"}`, n.Key)
	require.JSONEq(t, fmt.Sprintf(`{"v":1,"id":"n2","kind":"sent","receiver":"team","integration":"team/webhook/0","at":%d}`, may17+2), string(n.Payload))

	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/notifications?limit=1", &resp))
	require.Len(t, resp.Notifications, 1)
	require.Equal(t, ids[0], resp.Notifications[0].ID)

	for _, bad := range []string{"limit=0", "limit=101", "limit=x", "limit=1&limit=2", "foo=1"} {
		var body httpserver.ErrorBody
		require.Equal(t, http.StatusBadRequest, e.get(t, "/api/v1/notifications?"+bad, &body), bad)
		require.NotEmpty(t, body.Message, bad)
	}
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// pipelineServer serves the API with only the pipeline use case, reading
// brokers and caching for 2 s on clock.
func pipelineServer(t *testing.T, brokers []string, clock func() time.Time) *echo.Echo {
	t.Helper()
	kp, err := adapters.NewKafkaPipeline(brokers)
	require.NoError(t, err)
	t.Cleanup(func() { _ = kp.Close() })
	a := app.Application{Queries: app.Queries{Pipeline: query.NewPipelineHandler(kp, 2*time.Second).WithClock(clock)}}
	e := httpserver.New(slog.New(slog.DiscardHandler), nil)
	ports.NewHTTPServer(a, ports.StreamConfig{}, noAuth()).Register(e)
	return e
}

func getPipeline(t *testing.T, e *echo.Echo, ctx context.Context) (int, ports.PipelineResponse, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/pipeline", nil))
	var resp ports.PipelineResponse
	if rec.Code == http.StatusOK {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp), rec.Body.String())
	}
	return rec.Code, resp, rec.Body.String()
}

func TestPipelineLagAndDeadLetters(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(2, messaging.TopicEventsRaw, messaging.TopicEventsLate, messaging.DLQ(messaging.TopicEventsRaw), messaging.DLQ(messaging.TopicAlerts)))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer prod.Close()
	produce := func(topic string, perPartition ...int) {
		var recs []*kgo.Record
		for p, n := range perPartition {
			for range n {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte("x")})
			}
		}
		require.NoError(t, prod.ProduceSync(ctx, recs...).FirstErr())
	}
	produce(messaging.TopicEventsRaw, 6, 4)
	produce(messaging.TopicEventsLate, 2, 1)
	produce(messaging.DLQ(messaging.TopicEventsRaw), 0, 2)

	// A live group that consumed everything and committed 4 of 6 and 1 of
	// 4: lag (6-4)+(4-1) = 5.
	cons, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumerGroup("projector"),
		kgo.ConsumeTopics(messaging.TopicEventsRaw), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cons.Close()
	for got := 0; got < 10; {
		fs := cons.PollFetches(ctx)
		require.NoError(t, fs.Err0())
		got += fs.NumRecords()
	}
	var commitErr error
	cons.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		messaging.TopicEventsRaw: {0: {Epoch: -1, Offset: 4}, 1: {Epoch: -1, Offset: 1}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		if resp == nil {
			return
		}
		for _, tp := range resp.Topics {
			for _, p := range tp.Partitions {
				commitErr = errors.Join(commitErr, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	})
	require.NoError(t, commitErr)
	// A group without members is not listed.
	adm := kadm.NewClient(prod)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: messaging.TopicEventsRaw, Partition: 0, At: 1, LeaderEpoch: -1})
	_, err = adm.CommitOffsets(ctx, "gone", offsets)
	require.NoError(t, err)

	now := time.UnixMilli(1_700_000_000_000)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := pipelineServer(t, cluster.ListenAddrs(), clock)

	code, resp, body := getPipeline(t, e, ctx)
	require.Equal(t, http.StatusOK, code, body)
	want := ports.PipelineResponse{
		Groups:      []ports.GroupLagJSON{{Group: "projector", Lag: 5, Topics: []ports.TopicLagJSON{{Topic: messaging.TopicEventsRaw, Lag: 5}}}},
		LateRecords: 3,
		DLQ:         []ports.TopicRecordsJSON{{Topic: "alerts.dlq", Records: 0}, {Topic: "events.raw.dlq", Records: 2}},
		GeneratedAt: now.UnixMilli(),
	}
	require.Equal(t, want, resp)

	// Within 2 s the cached answer is served; after, a fresh one.
	produce(messaging.DLQ(messaging.TopicAlerts), 1, 0)
	mu.Lock()
	now = now.Add(1999 * time.Millisecond)
	mu.Unlock()
	_, resp, _ = getPipeline(t, e, ctx)
	require.Equal(t, want, resp, "cached for 2 s")
	mu.Lock()
	now = now.Add(time.Millisecond)
	mu.Unlock()
	_, resp, _ = getPipeline(t, e, ctx)
	want.DLQ[0].Records = 1
	want.GeneratedAt = now.UnixMilli()
	require.Equal(t, want, resp, "read again after 2 s")

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/pipeline?x=1", nil))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
}

func TestPipelineUnavailable(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e := pipelineServer(t, []string{addr}, time.Now)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	code, _, body := getPipeline(t, e, ctx)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var eb httpserver.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(body), &eb))
	require.Contains(t, eb.Message, "pipeline health not available")

	// Without a broker configured at all.
	noBroker := httpserver.New(slog.New(slog.DiscardHandler), nil)
	ports.NewHTTPServer(app.Application{}, ports.StreamConfig{}, noAuth()).Register(noBroker)
	code, _, body = getPipeline(t, noBroker, context.Background())
	require.Equal(t, http.StatusServiceUnavailable, code, body)
}
