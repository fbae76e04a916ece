// Package aggregatortest checks the aggregator's exactly-once effect end to
// end: the real aggregator binary on the embedded stack (in-process Kafka
// protocol broker, real Redis), killed with SIGKILL at random points,
// restarted, and joined by a second instance for part of the run, must
// still produce exactly the per-window counts and sums of the events fed in.
package aggregatortest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/internal/windowresults"
	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

var (
	st     *stack.Stack
	binDir string
	tmpDir string
)

// metricsYAML is the metric set under test: a global count, a global sum
// (with count) and a count grouped by the entity key (complete per shard),
// so both partial and complete results are checked.
const metricsYAML = `
metrics:
  - name: requests
    types: [http_request]
    window: {size: 1m}
  - name: bytes
    types: [http_request]
    value: bytes
    aggregations: [sum, count]
    window: {size: 1m}
  - name: requests_by_client
    types: [http_request]
    group_by: [client_ip]
    window: {size: 1m}
`

// aggregatorEnv is the aggregator's configuration in this test: early
// results every 2 s, and an idle timeout long enough that a partition never
// goes idle while the instances restart.
func aggregatorEnv() map[string]string {
	return map[string]string{
		"AGG_METRICS_FILE":     filepath.Join(tmpDir, "metrics.yaml"),
		"AGG_EMIT_INTERVAL":    "2s",
		"AGG_IDLE_TIMEOUT":     "5m",
		"AGG_OUT_OF_ORDERNESS": "5s",
		"AGG_ALLOWED_LATENESS": "1m",
	}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("aggregatortest: skipped with -short")
		return 0
	}
	var err error
	if tmpDir, err = os.MkdirTemp("", "streamwatch-aggtest-"); err != nil {
		fmt.Println("aggregatortest:", err)
		return 1
	}
	code := 1
	defer func() {
		if code == 0 {
			_ = os.RemoveAll(tmpDir)
		} else {
			fmt.Println("aggregatortest: logs kept in", tmpDir)
		}
	}()
	if err := os.WriteFile(filepath.Join(tmpDir, "metrics.yaml"), []byte(metricsYAML), 0o644); err != nil {
		fmt.Println("aggregatortest:", err)
		return 1
	}
	binDir = filepath.Join(tmpDir, "bin")
	repo, err := filepath.Abs("../..")
	if err != nil {
		fmt.Println("aggregatortest:", err)
		return 1
	}
	if err := stack.BuildServices(context.Background(), repo, binDir, stack.Aggregator); err != nil {
		fmt.Println("aggregatortest:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stackLog, err := os.Create(stackLogPath())
	if err != nil {
		fmt.Println("aggregatortest:", err)
		return 1
	}
	defer stackLog.Close()
	st, err = stack.Start(ctx, stack.Options{
		Logger:     slog.New(slog.NewTextHandler(stackLog, nil)),
		DataDir:    filepath.Join(tmpDir, "data"),
		BinDir:     binDir,
		Services:   []string{stack.Aggregator},
		ServiceEnv: map[string]map[string]string{stack.Aggregator: aggregatorEnv()},
	})
	if err != nil {
		fmt.Println("aggregatortest: start stack:", err)
		return 1
	}
	code = m.Run()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Minute)
	defer cancelClose()
	if err := st.Close(closeCtx); err != nil {
		fmt.Println("aggregatortest: close stack:", err)
	}
	return code
}

// waitStable waits up to a minute until the aggregator's consumer group is
// Stable with members members, and fails with msg otherwise.
func waitStable(t *testing.T, adm *kadm.Client, members int, msg string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		groups, err := adm.DescribeGroups(context.Background(), "aggregator.windows")
		require.NoError(t, err)
		if g := groups["aggregator.windows"]; g.State == "Stable" && len(g.Members) == members {
			return
		}
		if time.Now().After(deadline) {
			logStuck(t, adm)
			require.Fail(t, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stackLogPath is the file the stack logs to: its lifecycle events and
// the embedded broker's warnings.
func stackLogPath() string { return filepath.Join(tmpDir, "stack.log") }

// logStuck logs what a stalled run leaves to diagnose: the consumer
// group's state and members as the broker describes them, and the last
// lines of the aggregator's and the stack's logs (the broker's warnings).
func logStuck(t *testing.T, adm *kadm.Client) {
	t.Helper()
	groups, err := adm.DescribeGroups(context.Background(), "aggregator.windows")
	if err != nil {
		t.Logf("describe group: %v", err)
	}
	for _, g := range groups {
		t.Logf("group %s: state %s, protocol %s, %d members", g.Group, g.State, g.Protocol, len(g.Members))
		for _, m := range g.Members {
			t.Logf("  member %s (client %s, host %s)", m.MemberID, m.ClientID, m.ClientHost)
		}
	}
	for _, f := range []string{st.LogPath(stack.Aggregator), stackLogPath()} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("last lines of %s:\n%s", f, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// windowKey names one window of one metric and label set, summed over
// shards.
type windowKey struct {
	metric string
	client string
	start  int64
}

const (
	totalEvents = 1_000_000
	clients     = 60
	chunk       = 20_000
	t0          = int64(1_431_820_800_000) // 2015-05-17T00:00:00Z
	// spanMs is the event time the events cover: 15 one-minute windows.
	spanMs = 15 * 60_000
)

// TestExactlyOnceUnderKillsAndRebalance feeds 1,000,000 events (60 client
// IPs over the 6 partitions of events.raw, event time over 15 minutes, up to
// 2 s out of order, 2% sent twice); while the aggregator works through them
// it is killed with SIGKILL and restarted 3 times at random points of its
// progress (each restart waited for until the group is stable again), and
// a second instance joins the consumer group (the test waits
// until the group is stable with two members) for part of the run and is
// killed too. Then the latest revision of every window result, summed over
// shards, must equal the exact count and sum.
func TestExactlyOnceUnderKillsAndRebalance(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	kcfg := config.Kafka{Brokers: st.Brokers(), Partitions: stack.DefaultPartitions}
	pub, err := messaging.NewPublisher(kcfg, "aggregatortest", nil)
	require.NoError(t, err)
	defer pub.Close()
	bp, err := messaging.NewBatchPublisher(kcfg, pub, 500)
	require.NoError(t, err)
	defer bp.Close()

	want := map[windowKey]windowresults.Totals{}
	add := func(k windowKey, v float64) {
		x := want[k]
		x.Count++
		x.Sum += v
		want[k] = x
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	require.NoError(t, err)
	defer kc.Close()
	adm := kadm.NewClient(kc)
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	// backlog returns the records of events.raw not yet committed by the
	// aggregator (from the checkpoint offsets in Redis).
	backlog := func() int64 {
		ends, err := adm.ListEndOffsets(ctx, messaging.TopicEventsRaw)
		require.NoError(t, err)
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		for p := range stack.DefaultPartitions {
			if o, err := rdb.HGet(ctx, fmt.Sprintf("sw:ckpt:aggregator.windows:%s:%d", messaging.TopicEventsRaw, p), "o").Int64(); err == nil {
				n -= o + 1
			}
		}
		return n
	}
	// Production is paced to consumption (at most ~2 chunks of backlog),
	// so the disruptions below hit an aggregator in the middle of its work.
	throttle := func() {
		deadline := time.Now().Add(2 * time.Minute)
		for backlog() > 90 {
			if time.Now().After(deadline) {
				logStuck(t, adm)
				require.Fail(t, "the aggregator stopped consuming", "backlog %d records", backlog())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	chunks := totalEvents / chunk
	perm := rng.Perm(chunks - 6)
	kills := map[int]bool{perm[0] + 3: true, perm[1] + 3: true, perm[2] + 3: true}
	secondFrom := 2 + rng.IntN(chunks/3)
	secondTo := secondFrom + 5 + rng.IntN(chunks/3)
	t.Logf("kills after chunks %v; second instance from chunk %d to %d", kills, secondFrom, secondTo)
	var second *exec.Cmd
	defer func() {
		if second != nil {
			_ = second.Process.Kill()
			_ = second.Wait()
		}
	}()
	seq := 0
	for c := range chunks {
		throttle()
		evs := make([]events.Event, 0, chunk+chunk/50)
		for range chunk {
			seq++
			tm := t0 + int64(seq)*spanMs/totalEvents - rng.Int64N(2_000)
			ip := fmt.Sprintf("10.1.%d.%d", rng.IntN(clients)/10, rng.IntN(10))
			e := events.Event{
				V: 1, ID: "agg-" + strconv.Itoa(seq), Type: events.TypeHTTPRequest, Time: tm, ReceiveTime: tm,
				Key: ip, ClientIP: ip, Method: "GET", Path: "/", Status: 200, Bytes: rng.Int64N(10_000),
			}
			evs = append(evs, e)
			start := floorMinute(tm)
			add(windowKey{"requests", "", start}, 0)
			add(windowKey{"bytes", "", start}, float64(e.Bytes))
			add(windowKey{"requests_by_client", ip, start}, 0)
			if rng.IntN(50) == 0 {
				evs = append(evs, e) // sent twice: must count once
			}
		}
		require.NoError(t, bp.PublishEvents(ctx, messaging.TopicEventsRaw, evs))
		if kills[c] {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			require.NoError(t, st.KillService(stack.Aggregator))
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			require.NoError(t, st.StartService(ctx, stack.Aggregator))
			// The restarted instance completes its join before the next
			// kill: a member SIGKILLed while joining stayed in the
			// embedded broker's Stable group, never expired, owning half
			// the partitions (CI, seed 1795374171507708245).
			members := 1
			if second != nil {
				members = 2
			}
			waitStable(t, adm, members, "the restarted instance never joined the group")
		}
		if c == secondFrom {
			second = startSecond(t)
			// The second instance must really take partitions over.
			waitStable(t, adm, 2, "the second instance never joined the group")
		}
		if c == secondTo {
			require.NoError(t, second.Process.Signal(syscall.SIGKILL))
			_ = second.Wait()
			second = nil
		}
	}
	// One event per partition an hour later moves every watermark past the
	// last window; those windows are not checked.
	var flush []events.Event
	for i := range 600 {
		ip := fmt.Sprintf("10.9.%d.%d", i/100, i%100)
		flush = append(flush, events.Event{V: 1, ID: "flush-" + ip, Type: events.TypeHTTPRequest, Time: t0 + 3_600_000, Key: ip, ClientIP: ip, Method: "GET", Status: 200})
	}
	require.NoError(t, bp.PublishEvents(ctx, messaging.TopicEventsRaw, flush))

	got := readResults(t, want, 3*time.Minute)
	bad := windowresults.Diff(want, got)
	require.Empty(t, bad[:min(len(bad), 20)], "%d of %d windows differ", len(bad), len(want))
}

func floorMinute(ms int64) int64 { return ms / 60_000 * 60_000 }

// startSecond launches a second aggregator process in the same consumer
// group, with the stack's environment and its own HTTP port.
func startSecond(t *testing.T) *exec.Cmd {
	t.Helper()
	ports, err := stack.FreePorts(1)
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(binDir, stack.Aggregator))
	cmd.Env = os.Environ()
	for k, v := range st.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range aggregatorEnv() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(ports[0]), "LOG_LEVEL=warn")
	logf, err := os.Create(filepath.Join(tmpDir, "aggregator-2.log"))
	require.NoError(t, err)
	t.Cleanup(func() { logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	return cmd
}

// readResults consumes metrics.windows from the start until the latest
// revision of every window result, summed over shards, matches want (or the
// timeout passes), and returns the sums of the windows in want's range.
func readResults(t *testing.T, want map[windowKey]windowresults.Totals, timeout time.Duration) map[windowKey]windowresults.Totals {
	t.Helper()
	key := func(r *metrics.Result) (windowKey, bool) {
		return windowKey{r.Metric, r.Labels["client_ip"], r.WindowStart}, r.WindowStart >= t0-60_000 && r.WindowStart < t0+spanMs+60_000
	}
	got := windowresults.Sum(windowresults.Latest(t, st.Brokers(), timeout, func(latest map[string]metrics.Result) bool {
		return windowresults.Equal(want, windowresults.Sum(latest, key))
	}), key)
	if !windowresults.Equal(want, got) {
		t.Logf("results did not converge within %s: %d of %d windows seen", timeout, len(got), len(want))
	}
	return got
}
