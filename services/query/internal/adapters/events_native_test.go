package adapters

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// storedEvent is one row of the events table, every column.
type storedEvent struct {
	ID         string   `ch:"event_id"`
	Type       string   `ch:"type"`
	TimeSec    uint32   `ch:"t"`
	TimeMs     int64    `ch:"event_time_ms"`
	RecvMs     int64    `ch:"receive_time_ms"`
	V          uint16   `ch:"v"`
	Key        string   `ch:"key"`
	Source     string   `ch:"source"`
	UserID     string   `ch:"user_id"`
	SessionID  string   `ch:"session_id"`
	Page       string   `ch:"page"`
	ProductID  string   `ch:"product_id"`
	Amount     float64  `ch:"amount"`
	Query      string   `ch:"query"`
	PropKeys   []string `ch:"properties_keys"`
	PropValues []string `ch:"properties_values"`
	Service    string   `ch:"service"`
	Endpoint   string   `ch:"endpoint"`
	LatencyMs  float64  `ch:"latency_ms"`
	Status     int32    `ch:"status"`
	ClientIP   string   `ch:"client_ip"`
	Method     string   `ch:"method"`
	Path       string   `ch:"path"`
	Protocol   string   `ch:"protocol"`
	Bytes      int64    `ch:"bytes"`
	Referrer   string   `ch:"referrer"`
	UserAgent  string   `ch:"user_agent"`
}

// expectedRow is what an insert of e must store: the row the clickhouse-go
// path (eventBlock.set) builds, written out independently.
func expectedRow(e events.Event) storedEvent {
	keys, vals := sortedPairs(e.Properties)
	return storedEvent{ID: e.ID, Type: string(e.Type), TimeSec: uint32(dateTime(e.Time).Unix()), TimeMs: e.Time, RecvMs: e.ReceiveTime,
		V: uint16(min(max(e.V, 0), math.MaxUint16)), Key: e.Key, Source: e.Source, UserID: e.UserID, SessionID: e.SessionID,
		Page: e.Page, ProductID: e.ProductID, Amount: e.Amount, Query: e.Query, PropKeys: keys, PropValues: vals,
		Service: e.Service, Endpoint: e.Endpoint, LatencyMs: e.LatencyMs, Status: int32(e.Status), ClientIP: e.ClientIP,
		Method: e.Method, Path: e.Path, Protocol: e.Protocol, Bytes: e.Bytes, Referrer: e.Referrer, UserAgent: e.UserAgent}
}

func readEvents(t *testing.T, conn driver.Conn, table string) []storedEvent {
	t.Helper()
	var rows []storedEvent
	require.NoError(t, conn.Select(context.Background(), &rows, "SELECT "+
		strings.Replace(eventColumns, "event_time,", "toUInt32(event_time) AS t,", 1)+" FROM "+table+" ORDER BY event_id"))
	return rows
}

// edgeEvents covers every column with edge values: empty and long strings
// (length prefixes of 1, 2 and 3 bytes), unicode and NUL bytes, times
// before 1970 and past DateTime's range, clamped versions, extreme numbers,
// empty and unsorted properties.
func edgeEvents() []events.Event {
	long := strings.Repeat("ü", 100)     // 200 bytes: two-byte length
	longer := strings.Repeat("x", 70000) // three-byte length
	return []events.Event{
		{ID: "a-empty", Type: events.TypeHTTPRequest},
		{ID: "b-full", Type: events.TypeHTTPRequest, V: 1, Time: 1431820800123, ReceiveTime: 1431820801999, Key: "10.0.0.1",
			Source: "apache_logs", ClientIP: "10.0.0.1", Method: "GET", Path: "/a?b=c&d=é", Protocol: "HTTP/1.1",
			Status: 200, Bytes: 7697, Referrer: "http://example.com/", UserAgent: "Mozilla/5.0 (Macintosh)",
			Properties: map[string]string{"z": "last", "a": "first", "m": ""}},
		{ID: "c-unicode-日本語-🚀", Type: events.TypePurchase, UserID: "用户", SessionID: "sess\x00ion", Page: long,
			ProductID: "p-ñ", Amount: -0.000001, Query: longer, Properties: map[string]string{"ключ": "значение", "": "empty key"}},
		{ID: "d-extremes", Type: events.TypeServiceRequest, V: 70000, Time: -1500, ReceiveTime: math.MinInt64, Service: "svc",
			Endpoint: "/e", LatencyMs: math.MaxFloat64, Status: -1, Bytes: math.MaxInt64, Amount: math.Inf(1)},
		{ID: "e-far-future", Type: events.TypeServiceRequest, V: -3, Time: (1<<32)*1000 + 5, ReceiveTime: math.MaxInt64,
			LatencyMs: math.Inf(-1), Bytes: math.MinInt64, Status: math.MaxInt32},
	}
}

func newNativeRepo(t *testing.T) (driver.Conn, *ClickHouseEventRepository, *ClickHouseHTTP) {
	t.Helper()
	srv := chtest.StartClickHouse(t)
	conn := srv.Conn(t)
	require.NoError(t, migrations.Up(context.Background(), conn, "streamwatch", nil))
	h, err := NewClickHouseHTTP(srv.HTTPAddr, "default", "")
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return conn, NewClickHouseEventRepository(conn, "streamwatch").WithHTTPInsert(h), h
}

// TestNativeHTTPInsertReadsBackExactly inserts edge events through the
// Native-over-HTTP path and reads every column back from ClickHouse; the
// same events inserted through clickhouse-go into a second table must read
// back identically.
func TestNativeHTTPInsertReadsBackExactly(t *testing.T) {
	t.Parallel()
	conn, repo, _ := newNativeRepo(t)
	ctx := context.Background()
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE streamwatch.events_go AS streamwatch.events"))
	evs := edgeEvents()

	require.NoError(t, repo.InsertEvents(ctx, evs))
	require.NoError(t, NewClickHouseEventRepositoryOn(conn, "streamwatch", "events_go").InsertEvents(ctx, evs))

	got := readEvents(t, conn, "streamwatch.events")
	require.Len(t, got, len(evs))
	for i, e := range evs {
		require.Equal(t, expectedRow(e), got[i], "event %s", e.ID)
	}
	require.Equal(t, readEvents(t, conn, "streamwatch.events_go"), got, "native HTTP and clickhouse-go rows differ")
	require.Equal(t, uint32(0), got[3].TimeSec, "time before 1970 clamps to 0")
	require.Equal(t, uint32(math.MaxUint32), got[4].TimeSec, "time past 2106 clamps")
	require.Equal(t, []string{"", "ключ"}, got[2].PropKeys)
	require.Len(t, got[2].Query, 70000)
}

// TestNativeHTTPInsertReusedBlocks inserts batches of different sizes and
// property counts one after another (blocks are reused) and concurrently
// (group commit, split inserts), then checks every row and that a replayed
// batch collapses under FINAL.
func TestNativeHTTPInsertReusedBlocks(t *testing.T) {
	t.Parallel()
	conn, repo, _ := newNativeRepo(t)
	ctx := context.Background()
	split := repo.WithSplitInserts(2, 100)
	mk := func(prefix string, n int) []events.Event {
		evs := make([]events.Event, n)
		for i := range evs {
			props := map[string]string{}
			for k := range i % 4 {
				props[fmt.Sprintf("k%d", k)] = strings.Repeat("v", i%7)
			}
			evs[i] = events.Event{ID: fmt.Sprintf("%s-%05d", prefix, i), Type: events.TypeHTTPRequest, V: 1,
				Time: 1431820800000 + int64(i), Path: strings.Repeat("/p", i%50), Status: 200 + i%3, Properties: props}
		}
		return evs
	}
	var want []events.Event
	for i, n := range []int{1, 1000, 3, 500, 0, 2000} {
		evs := mk(fmt.Sprintf("seq%d", i), n)
		require.NoError(t, repo.InsertEvents(ctx, evs))
		want = append(want, evs...)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for p := range 8 {
		evs := mk(fmt.Sprintf("par%d", p), 300+p)
		mu.Lock()
		want = append(want, evs...)
		mu.Unlock()
		wg.Go(func() {
			r := repo
			if p%2 == 0 {
				r = split
			}
			require.NoError(t, r.InsertEvents(ctx, evs))
		})
	}
	wg.Wait()
	big := mk("split", 1001) // cut into 2 concurrent inserts
	require.NoError(t, split.InsertEvents(ctx, big))
	want = append(want, big...)
	require.NoError(t, split.InsertEvents(ctx, big[:600])) // replayed

	got := readEvents(t, conn, "streamwatch.events FINAL")
	require.Len(t, got, len(want))
	byID := make(map[string]storedEvent, len(got))
	for _, r := range got {
		byID[r.ID] = r
	}
	for _, e := range want {
		require.Equal(t, expectedRow(e), byID[e.ID], "event %s", e.ID)
	}
}

// TestNativeHTTPInsertErrors checks that the server's refusal comes back as
// a wrapped *ClickHouseHTTPError with its code and message, and that an
// unreachable server and a bad address fail with errors naming them.
func TestNativeHTTPInsertErrors(t *testing.T) {
	t.Parallel()
	conn, _, h := newNativeRepo(t)
	ctx := context.Background()

	missing := NewClickHouseEventRepositoryOn(conn, "streamwatch", "no_such_table").WithHTTPInsert(h)
	err := missing.InsertEvents(ctx, edgeEvents())
	require.Error(t, err)
	he, ok := AsClickHouseHTTPError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, 404, he.Status) // ClickHouse answers UNKNOWN_TABLE with 404
	require.Equal(t, 60, he.Code)    // UNKNOWN_TABLE
	require.Contains(t, err.Error(), "no_such_table")
	require.Contains(t, err.Error(), "insert 5 rows into streamwatch.no_such_table")

	// A table without the columns the insert names: the server names one.
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE streamwatch.events_bad (event_id String, type String) ENGINE = Memory"))
	err = NewClickHouseEventRepositoryOn(conn, "streamwatch", "events_bad").WithHTTPInsert(h).InsertEvents(ctx, edgeEvents())
	he, ok = AsClickHouseHTTPError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, 16, he.Code, he.Message) // NO_SUCH_COLUMN_IN_TABLE
	require.Contains(t, he.Message, "event_time")

	down, err := NewClickHouseHTTP("127.0.0.1:1", "default", "")
	require.NoError(t, err)
	err = NewClickHouseEventRepositoryOn(conn, "streamwatch", "events").WithHTTPInsert(down).InsertEvents(ctx, edgeEvents())
	require.ErrorContains(t, err, "127.0.0.1:1")
	_, ok = AsClickHouseHTTPError(err)
	require.False(t, ok)

	for _, addr := range []string{"", "localhost", "http://x:8123", "host:99999"} {
		_, err := NewClickHouseHTTP(addr, "default", "")
		require.Error(t, err, "address %q", addr)
	}
}

// TestOpenClickHouseWithHTTPAddr checks the wiring: with CLICKHOUSE_HTTP_ADDR
// set, OpenClickHouse pings the HTTP interface and the events repository
// built on its connection inserts through it; an unreachable address fails
// the open, naming the variable.
func TestOpenClickHouseWithHTTPAddr(t *testing.T) {
	t.Parallel()
	srv := chtest.StartClickHouse(t)
	ctx := context.Background()
	cfg := config.ClickHouse{Addr: srv.Addr, Database: "streamwatch", User: "default", HTTPAddr: srv.HTTPAddr}
	conn, err := OpenClickHouse(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, migrations.Up(ctx, conn, cfg.Database, nil))

	repo := NewClickHouseEventRepository(conn, cfg.Database)
	require.NotNil(t, repo.http, "inserts should go through the HTTP interface")
	require.Nil(t, NewClickHouseEventRepository(srv.Conn(t), cfg.Database).http)
	require.NoError(t, repo.InsertEvents(ctx, edgeEvents()))
	require.Len(t, readEvents(t, conn, "streamwatch.events"), len(edgeEvents()))

	cfg.HTTPAddr = "127.0.0.1:1"
	_, err = OpenClickHouse(ctx, cfg)
	require.ErrorContains(t, err, "CLICKHOUSE_HTTP_ADDR")
	cfg.HTTPAddr = "no-port"
	_, err = OpenClickHouse(ctx, cfg)
	require.ErrorContains(t, err, `"no-port": want host:port`)
}

// TestNativeHTTPInsertSendsSortedBlocks inserts events in shuffled order
// and checks that the server found the block already in its sort key order
// (so it skipped sorting it), and that of two rows with one key the later
// one in the insert is the one ReplacingMergeTree keeps.
func TestNativeHTTPInsertSendsSortedBlocks(t *testing.T) {
	t.Parallel()
	conn, repo, _ := newNativeRepo(t)
	ctx := context.Background()
	repo = repo.WithGroupCommit(GroupCommitConfig{})
	sorted := func() uint64 {
		var n uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT toUInt64(sum(value)) FROM system.events WHERE event = 'MergeTreeDataWriterBlocksAlreadySorted'").Scan(&n))
		return n
	}
	rng := rand.New(rand.NewPCG(1, 2))
	types := []events.Type{events.TypeHTTPRequest, events.TypePageView, events.TypeServiceRequest}
	evs := make([]events.Event, 2000)
	for i := range evs {
		evs[i] = events.Event{ID: fmt.Sprintf("e%d", rng.IntN(1_000_000)), Type: types[rng.IntN(3)], V: 1,
			Time: 1431820800000 + rng.Int64N(10*60_000), Path: fmt.Sprint(i)}
	}
	dup := evs[7]
	dup.Path = "the later copy"
	evs = append(evs, dup) // same key as evs[7], later in the insert
	before := sorted()
	require.NoError(t, repo.InsertEvents(ctx, evs))
	require.Equal(t, before+1, sorted(), "the server sorted the block itself")

	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE streamwatch.events FINAL"))
	var path string
	require.NoError(t, conn.QueryRow(ctx, "SELECT path FROM streamwatch.events WHERE event_id = ? AND type = ? AND event_time_ms = ?",
		dup.ID, string(dup.Type), dup.Time).Scan(&path))
	require.Equal(t, "the later copy", path)
}
