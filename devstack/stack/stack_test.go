package stack_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// startStack starts a stack without services on dir and closes it at the
// end of the test. It skips the test in -short mode or when redis-server or
// clickhouse-server is not installed.
func startStack(t *testing.T, ctx context.Context, opts stack.Options) *stack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Redis and ClickHouse; skipped with -short")
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	began := time.Now()
	st, err := stack.Start(ctx, opts)
	var missing *stack.MissingPackagesError
	if errors.As(err, &missing) {
		t.Skip(missing.Error())
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("stack started in %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := st.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

func TestStackKeepsDataAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	opts := stack.Options{DataDir: dir, SkipServices: true}
	value := "record-" + strconv.FormatInt(time.Now().UnixNano(), 10)

	first := startStack(t, ctx, opts)
	checkTopics(t, ctx, first.Brokers(), stack.DefaultPartitions)
	produce(t, ctx, first.Brokers(), messaging.TopicEventsRaw, value)
	if got := consumeAll(t, ctx, first.Brokers(), messaging.TopicEventsRaw); !contains(got, value) {
		t.Fatalf("consumed %q, want %q among them", got, value)
	}
	checkClickHouse(t, ctx, first.ClickHouseAddr())
	rdb := redis.NewClient(&redis.Options{Addr: first.RedisAddr()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "stack-test", value, 0).Err(); err != nil {
		t.Fatalf("redis SET: %v", err)
	}
	if got, err := rdb.Get(ctx, "stack-test").Result(); err != nil || got != value {
		t.Fatalf("redis GET = %q, %v; want %q", got, err, value)
	}
	rdb.Close()

	addrs := []string{first.Brokers()[0], first.RedisAddr(), first.ClickHouseAddr(), first.ClickHouseHTTPURL()[len("http://"):]}
	if err := first.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, addr := range addrs {
		if !addrFree(addr) {
			t.Errorf("%s still in use after Close", addr)
		}
	}

	second := startStack(t, ctx, opts)
	checkTopics(t, ctx, second.Brokers(), stack.DefaultPartitions)
	if got := consumeAll(t, ctx, second.Brokers(), messaging.TopicEventsRaw); !contains(got, value) {
		t.Errorf("after restart consumed %q, want %q among them", got, value)
	}
	rdb = redis.NewClient(&redis.Options{Addr: second.RedisAddr()})
	defer rdb.Close()
	if got, err := rdb.Get(ctx, "stack-test").Result(); err != nil || got != value {
		t.Errorf("after restart redis GET = %q, %v; want %q", got, err, value)
	}
	checkClickHouse(t, ctx, second.ClickHouseAddr())
}

func checkTopics(t *testing.T, ctx context.Context, brokers []string, partitions int) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	details, err := kadm.NewClient(client).ListTopics(ctx, messaging.Topics()...)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for _, topic := range messaging.Topics() {
		d, ok := details[topic]
		switch {
		case !ok || d.Err != nil:
			t.Errorf("topic %s: missing (%v)", topic, d.Err)
		case len(d.Partitions) != partitions:
			t.Errorf("topic %s: %d partitions, want %d", topic, len(d.Partitions), partitions)
		}
	}
}

func produce(t *testing.T, ctx context.Context, brokers []string, topic, value string) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rec := &kgo.Record{Topic: topic, Key: []byte("stack-test"), Value: []byte(value)}
	if err := client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeAll reads topic from the start until the end offsets of every
// partition, and returns the record values.
func consumeAll(t *testing.T, ctx context.Context, brokers []string, topic string) []string {
	t.Helper()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ends, err := kadm.NewClient(client).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) { remaining += int(o.Offset) })

	var values []string
	for remaining > 0 {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %s: %v with %d records to go", topic, err, remaining)
		}
		fetches.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fetches.EachRecord(func(r *kgo.Record) {
			values = append(values, string(r.Value))
			remaining--
		})
	}
	return values
}

func checkClickHouse(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	err = conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", stack.ClickHouseDatabase).Scan(&n)
	if err != nil {
		t.Fatalf("clickhouse query: %v", err)
	}
	if n != 1 {
		t.Fatalf("database %s: count %d, want 1", stack.ClickHouseDatabase, n)
	}
}

func contains(values []string, v string) bool {
	for _, x := range values {
		if x == v {
			return true
		}
	}
	return false
}

func addrFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    stack.Options
		wantErr bool
	}{
		{name: "services need a bin dir", opts: stack.Options{DataDir: "d"}, wantErr: true},
		{name: "no services", opts: stack.Options{DataDir: "d", SkipServices: true}},
		{name: "empty service list", opts: stack.Options{DataDir: "d", Services: []string{}}},
		{name: "no data dir", opts: stack.Options{BinDir: "b"}, wantErr: true},
		{name: "unknown service", opts: stack.Options{DataDir: "d", BinDir: "b", Services: []string{"nope"}}, wantErr: true},
		{name: "unknown service env", opts: stack.Options{DataDir: "d", BinDir: "b", ServiceEnv: map[string]map[string]string{"nope": nil}}, wantErr: true},
		{name: "negative partitions", opts: stack.Options{DataDir: "d", BinDir: "b", Partitions: -1}, wantErr: true},
		{name: "all set", opts: stack.Options{DataDir: "d", BinDir: "b", Partitions: 3, Services: []string{stack.Query}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.opts.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestFreePorts(t *testing.T) {
	t.Parallel()
	ports, err := stack.FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]bool)
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d returned twice", p)
		}
		seen[p] = true
		if !stack.PortFree(p) {
			t.Errorf("port %d not free", p)
		}
	}
}
