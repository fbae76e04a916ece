package ports_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// BenchmarkProjectorInsertEvents measures the events projector's insert
// path in rows/s for inserts of 500 rows (one events.raw batch record as
// the collector packs them), 10,000 and 100,000 rows (what a group commit
// across records reaches), through each insert client: "http-native" (the
// service's path: Native format over ClickHouse's HTTP interface) and
// "http-native-split2" (the same, a block of 10,000 rows or more cut into
// two concurrent inserts), "http-native-nogroup" (500 rows only: without
// the group commit, whose leader waits 2 ms for others to join),
// "http-native-2streams" (100,000 rows only: two callers inserting a block
// each at once, as concurrent partitions with large groups would) and
// "clickhouse-go" (the native protocol's columnar batch). The target is
// >= 1,000,000 rows/s on the dev machine. Besides rows/s it reports the
// server's CPU per 1 M rows (system.events, user + system time of every
// server thread, merges included) and inserts the server delayed for too
// many parts.
func BenchmarkProjectorInsertEvents(b *testing.B) {
	for _, client := range []string{"http-native", "http-native-split2", "http-native-nogroup", "http-native-2streams", "clickhouse-go"} {
		for _, size := range []int{500, 10_000, 100_000} {
			if client == "http-native-nogroup" && size != 500 {
				continue // the 2 ms wait is noise next to a larger insert
			}
			if client == "http-native-2streams" && size != 100_000 {
				continue
			}
			b.Run(fmt.Sprintf("insert=%s/rows=%d", client, size), func(b *testing.B) {
				e := newInsertEnv(b)
				repo := e.events
				switch client {
				case "http-native-split2":
					repo = repo.WithSplitInserts(2, 5_000)
				case "http-native-nogroup":
					repo = repo.WithGroupCommit(adapters.GroupCommitConfig{})
				case "clickhouse-go":
					repo = e.eventsGo
				}
				streams := 1
				if client == "http-native-2streams" {
					streams = 2
				}
				benchInsertEvents(b, e, repo, size, streams, 1)
			})
		}
	}
}

// BenchmarkProjectorInsertEventsInterleaved is the 100,000-row case of
// BenchmarkProjectorInsertEvents with the block made of 8 runs that each
// cover the same time range, as a group commit of 8 partitions' records
// is: not in the table's sort key order, unlike the single time-ordered
// run there. The HTTP path sorts the block before sending it (the server
// then skips its sort); clickhouse-go sends it as it is.
func BenchmarkProjectorInsertEventsInterleaved(b *testing.B) {
	for _, client := range []string{"http-native", "clickhouse-go"} {
		b.Run("insert="+client, func(b *testing.B) {
			e := newInsertEnv(b)
			repo := e.events
			if client == "clickhouse-go" {
				repo = e.eventsGo
			}
			benchInsertEvents(b, e, repo, 100_000, 1, 8)
		})
	}
}

// insertEnv is a fresh ClickHouse with the migrations applied and the
// events and windows repositories on both insert clients.
type insertEnv struct {
	ch                 driver.Conn
	events, eventsGo   *adapters.ClickHouseEventRepository  // Native over HTTP, clickhouse-go
	windows, windowsGo *adapters.ClickHouseWindowRepository // Native over HTTP, clickhouse-go
}

func newInsertEnv(tb testing.TB) *insertEnv {
	tb.Helper()
	srv := chtest.StartClickHouse(tb)
	conn := srv.Conn(tb)
	require.NoError(tb, migrations.Up(context.Background(), conn, database, nil))
	h, err := adapters.NewClickHouseHTTP(srv.HTTPAddr, "default", "")
	require.NoError(tb, err)
	tb.Cleanup(h.Close)
	withHTTP := adapters.WithClickHouseHTTP(conn, h)
	return &insertEnv{ch: conn,
		events: adapters.NewClickHouseEventRepository(withHTTP, database), eventsGo: adapters.NewClickHouseEventRepository(conn, database),
		windows: adapters.NewClickHouseWindowRepository(withHTTP, database), windowsGo: adapters.NewClickHouseWindowRepository(conn, database)}
}

// benchInsertEvents inserts blocks of batchSize events, streams of them at
// once, each block made of runs runs of events covering the same time
// range (1: one time-ordered run).
func benchInsertEvents(b *testing.B, e *insertEnv, repo *adapters.ClickHouseEventRepository, batchSize, streams, runs int) {
	ctx := context.Background()
	evs := make([][]events.Event, streams)
	for s := range evs {
		evs[s] = benchEvents(batchSize)
		per := batchSize / runs
		for i := range evs[s] {
			evs[s][i].Time = may17 + int64(i%per)*10*int64(runs) + int64(i/per)*10
		}
	}
	n := 0
	before := serverEvents(b, e.ch)
	var harness time.Duration // CPU of making ids, not the client's
	clientBefore := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		t0 := processCPU(b)
		for s := range evs {
			for i := range evs[s] {
				evs[s][i].ID = "bench:" + strconv.Itoa(n+i)
			}
			n += batchSize
		}
		harness += processCPU(b) - t0
		b.StartTimer()
		var g errgroup.Group
		for s := range evs {
			g.Go(func() error { return repo.InsertEvents(ctx, evs[s]) })
		}
		require.NoError(b, g.Wait())
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
	reportCPU(b, e.ch, before, clientBefore+harness, n)
}

// serverEvents reads the server's cumulative counters (system.events).
func serverEvents(tb testing.TB, ch driver.Conn) map[string]uint64 {
	tb.Helper()
	var rows []struct {
		Event string `ch:"event"`
		Value uint64 `ch:"value"`
	}
	require.NoError(tb, ch.Select(context.Background(), &rows, "SELECT event, value FROM system.events"))
	m := make(map[string]uint64, len(rows))
	for _, r := range rows {
		m[r.Event] = r.Value
	}
	return m
}

// processCPU returns the user + system CPU time this process used so far
// (rusage; 1 ms resolution on Linux at worst, so measure over many rows).
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports, for n rows inserted since server and client were
// read, the server's and this process's (the client's) CPU seconds per
// 1 M rows, rows per CPU second of both together, and the inserts the
// server delayed for too many parts (ms per op).
func reportCPU(b *testing.B, ch driver.Conn, server map[string]uint64, client time.Duration, n int) {
	b.Helper()
	clientCPU := (processCPU(b) - client).Seconds()
	after := serverEvents(b, ch)
	d := func(k string) float64 { return float64(after[k] - server[k]) }
	serverCPU := (d("UserTimeMicroseconds") + d("SystemTimeMicroseconds")) / 1e6
	b.ReportMetric(serverCPU/float64(n)*1e6, "server-cpu-s/Mrows")
	b.ReportMetric(clientCPU/float64(n)*1e6, "client-cpu-s/Mrows")
	b.ReportMetric(float64(n)/(serverCPU+clientCPU), "rows/cpu-s")
	b.ReportMetric(d("DelayedInsertsMilliseconds")/float64(b.N), "delayed-ms/op")
}

// benchEvents returns n access-log events 10 ms apart (ids unset).
func benchEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.Event{V: 1, Type: events.TypeHTTPRequest, Time: may17 + int64(i)*10, ReceiveTime: may17,
			Key: "10.0.0.1", Source: "bench", ClientIP: fmt.Sprintf("10.0.%d.%d", i/256%256, i%256), Method: "GET",
			Path: "/presentations/logstash-monitorama-2013/images/kibana-search.png", Protocol: "HTTP/1.1", Status: 200, Bytes: 7697,
			Referrer: "http://semicomplete.com/presentations/logstash-monitorama-2013/", UserAgent: "Mozilla/5.0 (Macintosh)"}
	}
	return evs
}

// BenchmarkProjectorInsertEventsConcurrent measures the events projector
// as the Kafka subscriber drives it: 8 partitions, each inserting one
// record of 500 events at a time and waiting for the insert (ack after
// write), 100,000 events per op, in rows/s (and CPU as
// BenchmarkProjectorInsertEvents). Modes: "direct" is one clickhouse-go
// insert per record, "grouped" the repository's group commit (concurrent
// records in one insert) over clickhouse-go, "grouped-http" the group
// commit over Native HTTP (the service's path), "grouped-http-split2" that
// with groups of 10,000 rows or more cut into two concurrent inserts.
func BenchmarkProjectorInsertEventsConcurrent(b *testing.B) {
	for _, mode := range []string{"direct", "grouped", "grouped-http", "grouped-http-split2"} {
		b.Run(mode, func(b *testing.B) {
			e := newInsertEnv(b)
			var repo *adapters.ClickHouseEventRepository
			switch mode {
			case "direct":
				repo = e.eventsGo.WithGroupCommit(adapters.GroupCommitConfig{})
			case "grouped":
				repo = e.eventsGo
			case "grouped-http":
				repo = e.events
			case "grouped-http-split2":
				repo = e.events.WithSplitInserts(2, 5_000)
			}
			const partitions, record, perOp = 8, 500, 100_000
			recs := make([][]events.Event, partitions)
			for p := range recs {
				recs[p] = benchEvents(record)
			}
			ctx := context.Background()
			n := 0
			before := serverEvents(b, e.ch)
			clientBefore := processCPU(b)
			b.ResetTimer()
			for b.Loop() {
				var g errgroup.Group
				for p := range partitions {
					g.Go(func() error {
						for k := 0; k < perOp/partitions/record; k++ {
							for i := range recs[p] {
								recs[p][i].ID = fmt.Sprintf("bench:%d:%d:%d:%d", n, p, k, i)
							}
							if err := repo.InsertEvents(ctx, recs[p]); err != nil {
								return err
							}
						}
						return nil
					})
				}
				require.NoError(b, g.Wait())
				n++
			}
			b.ReportMetric(float64(n*perOp)/b.Elapsed().Seconds(), "rows/s")
			reportCPU(b, e.ch, before, clientBefore, n*perOp)
		})
	}
}

// BenchmarkProjectorInsertWindows measures the windows projector's
// insert path for a batch of 1,000 results, in rows/s (and CPU as
// BenchmarkProjectorInsertEvents), through each insert client.
func BenchmarkProjectorInsertWindows(b *testing.B) {
	for _, client := range []string{"http-native", "clickhouse-go"} {
		b.Run("insert="+client, func(b *testing.B) {
			e := newInsertEnv(b)
			repo := e.windows
			if client == "clickhouse-go" {
				repo = e.windowsGo
			}
			ctx := context.Background()
			rs := make([]metrics.Result, 1000)
			n := 0
			before := serverEvents(b, e.ch)
			var harness time.Duration
			clientBefore := processCPU(b)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				t0 := processCPU(b)
				for i := range rs {
					rs[i] = result(map[string]string{"client_ip": fmt.Sprintf("10.0.%d.%d", i/256, i%256)}, int32(i%3), may17+int64(n/1000)*60_000, 1, float64(i))
				}
				harness += processCPU(b) - t0
				b.StartTimer()
				n += len(rs)
				require.NoError(b, repo.InsertWindows(ctx, rs))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
			reportCPU(b, e.ch, before, clientBefore+harness, n)
		})
	}
}

// tenMillionEvents fills events with 10 M access-log events (one every 30
// ms from 2015-05-16, about 3.5 days, 7 statuses, 3 shards) server-side,
// and metric_windows with what the aggregator would emit for
// requests_by_status from them: one result per minute, status and shard.
// It returns the first event time.
func tenMillionEvents(tb testing.TB, e *env) int64 {
	tb.Helper()
	ctx := context.Background()
	start := int64(1431734400000) // 2015-05-16T00:00:00Z
	require.NoError(tb, e.ch.Exec(ctx, fmt.Sprintf(`INSERT INTO streamwatch.events (event_id, type, event_time, event_time_ms, receive_time_ms, v, key, source, client_ip, method, path, status, bytes)
SELECT concat('bench:', toString(number)), 'http_request', toDateTime(intDiv(t, 1000)), t, t, 1, ip, 'bench', ip, 'GET', '/index.html',
       [200, 200, 200, 301, 404, 500, 503][number %% 7 + 1], 1000 + number %% 5000
FROM (SELECT number, %d + number * 30 AS t, concat('10.0.', toString(intDiv(number, 256) %% 256), '.', toString(number %% 256)) AS ip FROM numbers(10000000))`, start)))
	require.NoError(tb, e.ch.Exec(ctx, `INSERT INTO streamwatch.metric_windows (metric, labels_key, label_names, label_values, window_start, window_start_ms, window_end_ms,
  shard, complete, kind, revision, count, sum, min, max, value, watermark_ms)
SELECT 'requests_by_status', concat('status=', toString(status)), ['status'], [toString(status)], toDateTime(intDiv(ws, 1000)), ws, ws + 60000,
  toInt32(shard), 0, 'final', 1, count(), toFloat64(count()), 1., 1., toFloat64(count()), ws + 60000
FROM (SELECT intDiv(event_time_ms, 60000) * 60000 AS ws, status, cityHash64(client_ip) % 3 AS shard FROM streamwatch.events)
GROUP BY ws, status, shard`))
	return start
}

// BenchmarkSeriesOneDay measures GET-series latency (use case + ClickHouse,
// no HTTP) for a 1-day range at 1-minute step over the windows of 10 M raw
// events, grouped by status; it reports p50 and p99 (target p99 < 200 ms).
func BenchmarkSeriesOneDay(b *testing.B) {
	if testing.Short() {
		b.Skip("10 M events")
	}
	e := newEnv(b)
	start := tenMillionEvents(b, e)
	step, err := window.ParseStep("1m")
	require.NoError(b, err)
	ctx := context.Background()
	var lat []time.Duration
	day := int64(24 * 3_600_000)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		from := start + int64(i%3)*day/2 // different ranges, not one cached answer
		i++
		q, err := window.NewSeriesQuery("requests_by_status", from, from+day, step, "status", nil)
		require.NoError(b, err)
		t0 := time.Now()
		series, err := e.app.Queries.Series.Handle(ctx, q)
		lat = append(lat, time.Since(t0))
		require.NoError(b, err)
		require.Len(b, series, 5)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// BenchmarkBatchRecompute measures the batch job over 10 M raw events
// (requests_by_status, 1-minute windows): raw events/s (target >= 5 M/s)
// of runs over history that an earlier run compacted (the events are
// inserted as ~1 M-row parts; the first run compacts the 4 day partitions
// with OPTIMIZE ... FINAL, reported as first-run-s), and the read path the
// runs took.
func BenchmarkBatchRecompute(b *testing.B) {
	if testing.Short() {
		b.Skip("10 M events")
	}
	e := newEnv(b)
	start := tenMillionEvents(b, e)
	ctx := context.Background()
	end := start + 10_000_000*30
	recompute := func(id string) {
		run, err := e.app.Commands.RunBatch.Handle(ctx, id, start, end, []string{"requests_by_status"})
		require.NoError(b, err)
		require.Equal(b, batch.StatusDone, run.Status)
	}
	t0 := time.Now()
	recompute("first")
	first := time.Since(t0)
	before := e.storage.Batch.Stats()
	n := 0
	b.ResetTimer()
	for b.Loop() {
		recompute(fmt.Sprintf("bench%d", n))
		n++
	}
	b.ReportMetric(float64(n)*10_000_000/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(first.Seconds(), "first-run-s")
	after := e.storage.Batch.Stats()
	b.ReportMetric(float64(after.Merged-before.Merged)/float64(n), "merged-queries/op")
	b.ReportMetric(float64(after.Final-before.Final)/float64(n), "final-queries/op")
}

// BenchmarkWindowsProjectorBoundary measures the handlers of the two
// projectors of metrics.windows (decode, validate, then history queue or
// live view; not the history insert, which the windows projector waits
// for in the background) on what a minute boundary brings one partition:
// 64 binary records of 500 results, nine in ten of them the Unchanged
// finals of the minute that ended (a tenth of all with a quantile sketch,
// as latency_p95_by_service's partials), the rest early results of the
// new minute. The projector has taken the minute's early results before.
// It reports wall µs per result of the handler alone; the CPU profile of
// the measured calls is labelled phase=finals.
func BenchmarkWindowsProjectorBoundary(b *testing.B) {
	e := newEnvBatch(b, config.WindowBatch{MaxRows: 20_000, MaxDelay: time.Second}) // the service's defaults
	logger := slog.New(slog.DiscardHandler)
	dlq := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	b.Cleanup(func() { _ = dlq.Close() })
	qs := metrics.NewQuantiles()
	for i := range 200 {
		qs.Add(float64(10 + i))
	}
	sketch, err := qs.MarshalBinary()
	require.NoError(b, err)
	minute := int64(0)
	for _, projector := range []struct {
		name    string
		handler func(context.Context, []*message.Message) (func(context.Context) error, error)
	}{
		{"history", e.proj.WindowsBatchHandler(dlq, logger)},
		{"live", e.proj.LiveBatchHandler(dlq, logger)},
	} {
		b.Run("projector="+projector.name, func(b *testing.B) {
			ctx := context.Background()
			run := func(msgs []*message.Message) {
				wait, err := projector.handler(ctx, msgs)
				require.NoError(b, err)
				if wait != nil {
					require.NoError(b, wait(ctx))
				}
			}
			var handlerTime time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				start := may17 + minute*60_000
				minute++
				run(boundaryRecords(b, metrics.KindEarly, start, sketch))
				finals := boundaryRecords(b, metrics.KindFinal, start, sketch)
				b.StartTimer()
				t0 := time.Now()
				var wait func(context.Context) error
				pprof.Do(ctx, pprof.Labels("phase", "finals"), func(ctx context.Context) {
					wait, err = projector.handler(ctx, finals)
				})
				handlerTime += time.Since(t0)
				require.NoError(b, err)
				if wait != nil {
					require.NoError(b, wait(ctx))
				}
				n += len(finals) * boundaryPerRecord
			}
			b.ReportMetric(float64(handlerTime.Microseconds())/float64(n), "handler-µs/result")
		})
	}
}

const boundaryRecords64, boundaryPerRecord = 64, 500

// boundaryRecords returns the 64 records of BenchmarkWindowsProjectorBoundary
// for the minute at start: kind early, that minute's early results; kind
// final, its finals (nine in ten Unchanged) with the next minute's early
// results as every tenth.
func boundaryRecords(b *testing.B, kind string, start int64, sketch []byte) []*message.Message {
	msgs := make([]*message.Message, boundaryRecords64)
	for r := range msgs {
		rs := make([]metrics.Result, boundaryPerRecord)
		for i := range rs {
			n := r*boundaryPerRecord + i
			rev := int64(1)
			if kind == metrics.KindFinal {
				rev = 2
			}
			rs[i] = result(map[string]string{"user_id": "u" + strconv.Itoa(n)}, int32(n%6), start, rev, float64(n%50+1))
			rs[i].Metric, rs[i].Kind = "events_by_user", kind
			if n%10 == 0 {
				rs[i].Metric, rs[i].QuantileSketch = "latency_p95_by_service", sketch
			}
			if kind == metrics.KindFinal {
				if n%10 == 9 {
					rs[i].Kind, rs[i].Revision = metrics.KindEarly, 1
					rs[i].WindowStart, rs[i].WindowEnd = start+60_000, start+120_000
				} else {
					rs[i].Unchanged = true
				}
			}
		}
		msgs[r] = windowBatchMessage(b, rs...)
		msgs[r].SetContext(messaging.ContextWithPosition(context.Background(), 0, int64(r)))
	}
	return msgs
}
