// Package jointest checks the aggregator's stream-table join end to end:
// the real aggregator binary on the embedded stack reads profiles from the
// compacted profiles topic and enriches events before windowing. Profiles
// change between two phases of events; the aggregator is killed with
// SIGKILL during the first, stopped between them, restarted each time (its
// table rebuilt from the topic), and joined by a second instance (a
// rebalance) that is SIGKILLed in the second phase. The
// latest revision of every window, summed over shards, must equal a
// brute-force join of the events with the profiles of their phase.
package jointest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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
	"github.com/streamwatch/streamwatch/pkg/profiles"
)

var (
	st     *stack.Stack
	tmpDir string
)

// metricsYAML groups by every kind of enriched field.
const metricsYAML = `
metrics:
  - name: views_by_segment
    types: [page_view]
    group_by: [user.segment]
    window: {size: 1m}
  - name: revenue_by_plan_category
    types: [purchase]
    group_by: [user.plan, product.category]
    value: amount
    aggregations: [sum]
    window: {size: 1m}
  - name: requests_by_team
    types: [service_request]
    group_by: [service.team, service.tier]
    window: {size: 1m}
  - name: requests_by_country
    types: [http_request]
    group_by: [client.country]
    window: {size: 1m}
`

func aggregatorEnv() map[string]string {
	return map[string]string{
		"AGG_METRICS_FILE":     filepath.Join(tmpDir, "metrics.yaml"),
		"AGG_GEOIP_FILE":       filepath.Join(tmpDir, "ip_ranges.csv"),
		"AGG_EMIT_INTERVAL":    "2s",
		"AGG_IDLE_TIMEOUT":     "5m",
		"AGG_OUT_OF_ORDERNESS": "5s",
		"AGG_ALLOWED_LATENESS": "1m",
		"LOG_LEVEL":            "info", // the table's size and catch-up time in the logs
	}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("jointest: skipped with -short")
		return 0
	}
	fail := func(err error) int {
		fmt.Println("jointest:", err)
		return 1
	}
	var err error
	if tmpDir, err = os.MkdirTemp("", "streamwatch-jointest-"); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmpDir)
	repo, err := filepath.Abs("../..")
	if err != nil {
		return fail(err)
	}
	sample, err := os.ReadFile(filepath.Join(repo, "services/aggregator/internal/domain/join/testdata/ip_ranges_sample.csv"))
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(tmpDir, "ip_ranges.csv"), sample, 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(tmpDir, "metrics.yaml"), []byte(metricsYAML), 0o644); err != nil {
		return fail(err)
	}
	binDir := filepath.Join(tmpDir, "bin")
	if err := stack.BuildServices(context.Background(), repo, binDir, stack.Aggregator); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err = stack.Start(ctx, stack.Options{
		DataDir:    filepath.Join(tmpDir, "data"),
		BinDir:     binDir,
		Services:   []string{stack.Aggregator},
		ServiceEnv: map[string]map[string]string{stack.Aggregator: aggregatorEnv()},
	})
	if err != nil {
		return fail(fmt.Errorf("start stack: %w", err))
	}
	code := m.Run()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Minute)
	defer cancelClose()
	if err := st.Close(closeCtx); err != nil {
		fmt.Println("jointest: close stack:", err)
	}
	return code
}

type windowKey struct {
	metric, labels string
	start          int64
}

const (
	t0      = int64(1_431_820_800_000) // 2015-05-17T00:00:00Z
	users   = 240                      // u200..u239 have no profile in phase 1
	perPart = 6_000                    // events per phase and kind of event
	fillers = 400_000                  // profiles of users without events
)

// model is the brute-force side: the profiles as the test published them.
type model struct {
	segment, plan map[string]string
	category      map[string]string
	team, tier    map[string]string
}

func (m *model) labels(metric string, e *events.Event, geo map[string]string) string {
	switch metric {
	case "views_by_segment":
		return "user_segment=" + m.segment[e.UserID]
	case "revenue_by_plan_category":
		return "user_plan=" + m.plan[e.UserID] + ",product_category=" + m.category[e.ProductID]
	case "requests_by_team":
		return "service_team=" + m.team[e.Service] + ",service_tier=" + m.tier[e.Service]
	}
	return "client_country=" + geo[e.ClientIP]
}

// TestJoinUnderKillsAndRebalance: phase 1 publishes profiles v1 (and 400,000
// profiles no event uses), then events in minutes 0..5 while the aggregator
// is SIGKILLed twice and restarted. After the pipeline drained, the
// aggregator is stopped, phase 2 publishes v2 (segment changes,
// tombstones, new users, a product's new category, a deleted service) and
// the first events of minutes 10..15 while it is down, then it restarts
// (its table rebuilt from the compacted topic), a second instance joins (a
// rebalance) and is SIGKILLed.
// Every window must match the brute-force join of its events with the
// profiles of their phase.
func TestJoinUnderKillsAndRebalance(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(func() { dumpLogs(t) })
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))

	kcfg := config.Kafka{Brokers: st.Brokers(), Partitions: stack.DefaultPartitions}
	pub, err := messaging.NewPublisher(kcfg, "jointest", nil)
	require.NoError(t, err)
	defer pub.Close()
	bp, err := messaging.NewBatchPublisher(kcfg, pub, 500)
	require.NoError(t, err)
	defer bp.Close()

	m := &model{segment: map[string]string{}, plan: map[string]string{}, category: map[string]string{}, team: map[string]string{}, tier: map[string]string{}}
	var msgs []*message.Message
	put := func(p profiles.Profile) {
		p.V = profiles.SchemaVersion
		b, err := profiles.Encode(&p)
		require.NoError(t, err)
		msg := message.NewMessage(fmt.Sprintf("%s@%d", p.Key(), len(msgs)), b)
		msg.Metadata.Set(messaging.MetaKey, p.Key())
		msg.Metadata.Set(messaging.MetaSchema, profiles.Schema)
		msgs = append(msgs, msg)
	}
	del := func(typ profiles.Type, id string) {
		msg := message.NewMessage(fmt.Sprintf("%s@%d", profiles.Key(typ, id), len(msgs)), nil)
		msg.Metadata.Set(messaging.MetaKey, profiles.Key(typ, id))
		msgs = append(msgs, msg)
	}
	flushProfiles := func() {
		require.NoError(t, pub.Publish(messaging.TopicProfiles, msgs...))
		msgs = nil
	}
	geo := map[string]string{"203.0.113.7": "NL", "198.51.100.200": "FR", "66.249.73.135": "US", "8.8.8.8": "", "2001:db8::5": "DE"}
	ips := []string{"203.0.113.7", "198.51.100.200", "66.249.73.135", "8.8.8.8", "2001:db8::5"}

	// Phase 1 profiles.
	for i := range 200 {
		u := "u" + strconv.Itoa(i)
		m.segment[u], m.plan[u] = "s"+strconv.Itoa(i%4), []string{"free", "pro"}[i%2]
		put(profiles.Profile{Type: profiles.TypeUser, ID: u, Segment: m.segment[u], Plan: m.plan[u], Country: "DE"})
	}
	for i := range 20 {
		p := "p" + strconv.Itoa(i)
		m.category[p] = "c" + strconv.Itoa(i%3)
		put(profiles.Profile{Type: profiles.TypeProduct, ID: p, Category: m.category[p], Price: 5})
	}
	for i := range 8 {
		s := "svc" + strconv.Itoa(i)
		m.team[s], m.tier[s] = "team"+strconv.Itoa(i%3), strconv.Itoa(i%2)
		put(profiles.Profile{Type: profiles.TypeService, ID: s, Team: m.team[s], Tier: m.tier[s]})
	}
	put(profiles.Profile{Type: profiles.TypeUser, ID: "u0", Segment: "s0", Plan: "free"}) // a second version, same values
	// Profiles no event names make every rebuild of the table take a while
	// (a restarted aggregator that did not wait for it would join phase 2's
	// first events with a half-read table).
	poison := message.NewMessage("poison", []byte(`{"v":1,"type":"user","id":"u1","segment":`))
	poison.Metadata.Set(messaging.MetaKey, "user/u1")
	msgs = append(msgs, poison) // dead-lettered; u1 keeps its profile
	flushProfiles()
	produceFillers(t, ctx)

	throttle := newThrottle(t, ctx)
	want := map[windowKey]windowresults.Totals{}
	seq := 0
	// send publishes one phase's events (event times in [from, from+5m)) in
	// chunks, calling disrupt after chunk k.
	send := func(from int64, disrupt func(chunk int)) {
		const chunks, total = 10, 4 * perPart
		for c := range chunks {
			var evs []events.Event
			for i := range total / chunks {
				seq++
				// Event time advances through the 5 minutes, up to 2 s out
				// of order (within AGG_OUT_OF_ORDERNESS).
				tm := from + int64(c*total/chunks+i)*5*60_000/total - rng.Int64N(2_000)
				if tm < from {
					tm = from
				}
				id := "j" + strconv.Itoa(seq)
				var e events.Event
				switch k := rng.IntN(4); k {
				case 0, 1:
					u := "u" + strconv.Itoa(rng.IntN(users))
					e = events.Event{V: 1, ID: id, Type: events.TypePageView, Time: tm, Key: u, UserID: u, Page: "/"}
					if k == 1 {
						e.Type, e.ProductID, e.Amount = events.TypePurchase, "p"+strconv.Itoa(rng.IntN(24)), float64(1+rng.IntN(50))
					}
				case 2:
					s := "svc" + strconv.Itoa(rng.IntN(10)) // svc8, svc9 never have a profile
					e = events.Event{V: 1, ID: id, Type: events.TypeServiceRequest, Time: tm, Key: s, Service: s, Status: 200, LatencyMs: 3}
				default:
					ip := ips[rng.IntN(len(ips))]
					e = events.Event{V: 1, ID: id, Type: events.TypeHTTPRequest, Time: tm, Key: ip, ClientIP: ip, Method: "GET", Status: 200}
				}
				metric := map[events.Type]string{events.TypePageView: "views_by_segment", events.TypePurchase: "revenue_by_plan_category",
					events.TypeServiceRequest: "requests_by_team", events.TypeHTTPRequest: "requests_by_country"}[e.Type]
				k := windowKey{metric, m.labels(metric, &e, geo), tm / 60_000 * 60_000}
				w := want[k]
				w.Count++
				w.Sum += e.Amount
				want[k] = w
				evs = append(evs, e)
			}
			if st.ServiceRunning(stack.Aggregator) {
				throttle()
			}
			require.NoError(t, bp.PublishEvents(ctx, messaging.TopicEventsRaw, evs))
			disrupt(c)
		}
	}
	kill := func() {
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		require.NoError(t, st.KillService(stack.Aggregator))
		require.NoError(t, st.StartService(ctx, stack.Aggregator))
	}

	send(t0, func(c int) {
		if c == 3 || c == 7 {
			kill()
		}
	})
	drain(t, ctx)

	// Phase 2 profiles: segment and plan changes, tombstones, new users
	// and a product changing category.
	for i := range 100 {
		u := "u" + strconv.Itoa(i)
		m.segment[u] = "s" + strconv.Itoa((i+1)%4)
		put(profiles.Profile{Type: profiles.TypeUser, ID: u, Segment: m.segment[u], Plan: m.plan[u]})
	}
	for i := 100; i < 120; i++ {
		u := "u" + strconv.Itoa(i)
		delete(m.segment, u)
		delete(m.plan, u)
		del(profiles.TypeUser, u)
	}
	for i := 200; i < 220; i++ {
		u := "u" + strconv.Itoa(i)
		m.segment[u], m.plan[u] = "new", "team"
		put(profiles.Profile{Type: profiles.TypeUser, ID: u, Segment: "new", Plan: "team"})
	}
	m.category["p0"] = "c9"
	put(profiles.Profile{Type: profiles.TypeProduct, ID: "p0", Category: "c9"})
	del(profiles.TypeService, "svc7")
	delete(m.team, "svc7")
	delete(m.tier, "svc7")
	// The running aggregator would read v2 live, at a moment the test
	// cannot see: it is stopped first, v2 and the first events of phase 2
	// are written while it is down, and the restarted aggregator must
	// rebuild its table from the compacted topic before it joins them. A
	// graceful stop leaves the consumer group at once, so the restarted
	// instance gets its partitions within about a second, long before the
	// table is rebuilt (seconds for 400,000 profiles): only the catch-up
	// barrier keeps it from joining those events with a half-read table.
	// (After a SIGKILL the group waits for the dead member's session
	// timeout, which hides a missing barrier.)
	require.NoError(t, st.StopService(ctx, stack.Aggregator))
	flushProfiles()
	var second string
	send(t0+10*60_000, func(c int) {
		switch c {
		case 2:
			require.NoError(t, st.StartService(ctx, stack.Aggregator))
		case 4:
			// A rebalance: the new instance's table is fresh.
			second, err = st.AddInstance(ctx, stack.Aggregator)
			require.NoError(t, err)
			waitGroup(t, ctx, 2)
		case 7:
			require.NoError(t, st.KillService(second))
		}
	})
	// One event per partition an hour later closes every window.
	var flush []events.Event
	for i := range 600 {
		ip := fmt.Sprintf("10.9.%d.%d", i/100, i%100)
		flush = append(flush, events.Event{V: 1, ID: "flush-" + ip, Type: events.TypeHTTPRequest, Time: t0 + 3_600_000, Key: ip, ClientIP: ip, Method: "GET", Status: 200})
	}
	require.NoError(t, bp.PublishEvents(ctx, messaging.TopicEventsRaw, flush))

	got := readResults(t, want, 3*time.Minute)
	bad := windowresults.Diff(want, got)
	require.Empty(t, bad[:min(len(bad), 20)], "%d of %d windows differ", len(bad), len(want))
	require.Contains(t, want, windowKey{"views_by_segment", "user_segment=", t0 / 60_000 * 60_000}, "unknown users are counted with an empty segment")
	requireDeadLetter(t, ctx, "user/u1")
	require.Contains(t, want, windowKey{"views_by_segment", "user_segment=new", t0 + 10*60_000}, "phase 2 sees the new users")
}

// newThrottle returns a function that waits while the aggregator has more
// than a few records of events.raw to do (end offsets minus the offsets of
// its checkpoints in Redis), so the kills hit an aggregator at work rather
// than one still joining its group.
func newThrottle(t *testing.T, ctx context.Context) func() {
	kc, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	adm := kadm.NewClient(kc)
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	t.Cleanup(func() { _ = rdb.Close() })
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
	return func() {
		deadline := time.Now().Add(2 * time.Minute)
		for backlog() > 12 {
			require.True(t, time.Now().Before(deadline), "the aggregator stopped consuming (backlog %d records)", backlog())
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// produceFillers writes fillers user profiles that no event names, with a
// batching Kafka producer (the Watermill publisher sends one record at a
// time).
func produceFillers(t *testing.T, ctx context.Context) {
	kc, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.DefaultProduceTopic(messaging.TopicProfiles))
	require.NoError(t, err)
	defer kc.Close()
	recs := make([]*kgo.Record, 0, fillers)
	for i := range fillers {
		p := profiles.Profile{V: profiles.SchemaVersion, Type: profiles.TypeUser, ID: "f" + strconv.Itoa(i), Segment: "filler"}
		v, err := profiles.Encode(&p)
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Key: []byte(p.Key()), Value: v})
	}
	require.NoError(t, kc.ProduceSync(ctx, recs...).FirstErr())
}

// waitGroup waits until the aggregator's consumer group is stable with
// members members, so the partitions have really moved.
func waitGroup(t *testing.T, ctx context.Context, members int) {
	t.Helper()
	kc, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	require.NoError(t, err)
	defer kc.Close()
	adm := kadm.NewClient(kc)
	deadline := time.Now().Add(time.Minute)
	for {
		groups, err := adm.DescribeGroups(ctx, "aggregator.windows")
		require.NoError(t, err)
		if g := groups["aggregator.windows"]; g.State == "Stable" && len(g.Members) == members {
			return
		}
		require.True(t, time.Now().Before(deadline), "the group never became stable with %d members", members)
		time.Sleep(100 * time.Millisecond)
	}
}

// requireDeadLetter checks that profiles.dlq holds the invalid record (once
// per aggregator start: every start re-reads the topic), with its key and
// the error.
func requireDeadLetter(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.ConsumeTopics(messaging.DLQ(messaging.TopicProfiles)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(fctx)
	recs := fs.Records()
	require.NotEmpty(t, recs, "the invalid profile record reaches profiles.dlq")
	for _, r := range recs {
		require.Equal(t, key, string(r.Key))
		var cause string
		for _, h := range r.Headers {
			if h.Key == messaging.MetaError {
				cause = string(h.Value)
			}
		}
		require.Contains(t, cause, "invalid profile")
	}
}

// dumpLogs prints the end of every aggregator instance's log when the test
// failed.
func dumpLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	for _, name := range st.Services() {
		b, err := os.ReadFile(st.LogPath(name))
		if err != nil {
			continue
		}
		if len(b) > 60000 {
			b = b[len(b)-60000:]
		}
		t.Logf("%s log (end):\n%s", name, b)
	}
}

func drain(t *testing.T, ctx context.Context) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, st.WaitDrained(dctx))
}

// labelString renders a result's labels in the order model.labels uses.
func labelString(r *metrics.Result) string {
	switch r.Metric {
	case "views_by_segment":
		return "user_segment=" + r.Labels["user_segment"]
	case "revenue_by_plan_category":
		return "user_plan=" + r.Labels["user_plan"] + ",product_category=" + r.Labels["product_category"]
	case "requests_by_team":
		return "service_team=" + r.Labels["service_team"] + ",service_tier=" + r.Labels["service_tier"]
	}
	return "client_country=" + r.Labels["client_country"]
}

// readResults reads metrics.windows until the latest revision of every
// window result, summed over shards, matches want (or the timeout passes),
// and returns the sums of the windows before the flush.
func readResults(t *testing.T, want map[windowKey]windowresults.Totals, timeout time.Duration) map[windowKey]windowresults.Totals {
	t.Helper()
	key := func(r *metrics.Result) (windowKey, bool) {
		return windowKey{r.Metric, labelString(r), r.WindowStart}, r.WindowStart < t0+3_600_000-60_000
	}
	got := windowresults.Sum(windowresults.Latest(t, st.Brokers(), timeout, func(latest map[string]metrics.Result) bool {
		return windowresults.Equal(want, windowresults.Sum(latest, key))
	}), key)
	if !windowresults.Equal(want, got) {
		t.Logf("results did not converge within %s: %d of %d windows seen", timeout, len(got), len(want))
	}
	return got
}
