package ports_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
	"github.com/streamwatch/streamwatch/services/query/internal/service"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

const (
	database  = "streamwatch"
	keyPrefix = "sw:"
	recentKey = "alerts:recent"
)

// env is the query service minus Kafka, on a real ClickHouse and Redis
// started for one test.
type env struct {
	ch      driver.Conn
	rdb     *redis.Client
	storage service.Storage
	app     app.Application
	pubsub  *gochannel.GoChannel // admin records published by the API
	proj    ports.Projections
	http    *echo.Echo
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvBatch(t, config.WindowBatch{MaxRows: 1000, MaxDelay: 200 * time.Millisecond, Idle: 5 * time.Millisecond})
}

// newEnvBatch is newEnv with the window history grouped by wb.
func newEnvBatch(t testing.TB, wb config.WindowBatch) *env {
	t.Helper()
	srv := chtest.StartClickHouse(t)
	redisAddr := chtest.StartRedis(t)
	ctx := context.Background()

	conn := srv.Conn(t)
	require.NoError(t, migrations.Up(ctx, conn, database, nil))
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })

	storage, err := service.NewStorage(conn, database, rdb, keyPrefix, recentKey, wb)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- storage.WindowBatcher.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})

	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64, Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = pubsub.Close() })
	application := service.NewApplication(storage, metrics.DefaultDefinitions(), adapters.RecordPublisher{Pub: pubsub})
	e := httpserver.New(slog.New(slog.DiscardHandler), nil)
	ports.NewHTTPServer(application, ports.StreamConfig{Feed: storage.Hub, Heartbeat: 50 * time.Millisecond}, noAuth()).Register(e)
	return &env{ch: conn, rdb: rdb, storage: storage, app: application, pubsub: pubsub, proj: ports.NewProjections(application), http: e}
}

// get serves GET target and decodes the JSON answer into out (when not
// nil); it returns the status.
func (e *env) get(t *testing.T, target string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	e.http.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	require.True(t, strings.HasPrefix(rec.Header().Get(echo.HeaderContentType), echo.MIMEApplicationJSON),
		"%d %s", rec.Code, rec.Body.String())
	if out != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out), rec.Body.String())
	}
	return rec.Code
}

// count returns the result of a single-number query.
func (e *env) count(t *testing.T, sql string, args ...any) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, e.ch.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// windowMessage returns a metrics.windows record for r, as the aggregator
// published one result before batches.
func windowMessage(t *testing.T, r metrics.Result) *message.Message {
	t.Helper()
	payload, err := json.Marshal(r)
	msg := record(t, metrics.ResultSchema, payload, err)
	msg.SetContext(context.Background())
	return msg
}

// windowBatchMessage is a metrics.windows record holding rs in the binary
// batch schema, as the aggregator writes them.
func windowBatchMessage(t testing.TB, rs ...metrics.Result) *message.Message {
	t.Helper()
	payload, err := metrics.EncodeBatchBinary(rs)
	return record(t, metrics.BatchSchemaV2, payload, err)
}

// record returns a message of payload with schema metadata, failing t on
// the error of encoding the payload.
func record(t testing.TB, schema string, payload []byte, err error) *message.Message {
	t.Helper()
	require.NoError(t, err)
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(messaging.MetaSchema, schema)
	return msg
}

// result returns a valid window result of metric "requests".
func result(labels map[string]string, shard int32, start int64, rev int64, value float64) metrics.Result {
	return metrics.Result{
		V: 1, Metric: "requests", Labels: labels, WindowStart: start, WindowEnd: start + 60_000, Shard: shard,
		Kind: metrics.KindEarly, Revision: rev, Count: int64(value), Sum: value, Min: 1, Max: value, Value: value,
		Watermark: start,
	}
}
