package notifiertest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/bench"
	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

var (
	burstSize  = flag.Int("burst", 3000, "alert state changes per burst in BenchmarkProbeBehindBurst")
	burstRules = flag.Int("burst-rules", 5, "rules the burst's alerts belong to (the rest of a label set: client_ip)")
	probes     = &probeSink{seen: map[string]time.Time{}, arrived: make(chan struct{}, 1)}
)

// probeSink is the probes' webhook: it notes when the first notification
// naming each probe's service arrived.
type probeSink struct {
	mu      sync.Mutex
	seen    map[string]time.Time
	arrived chan struct{}
}

func (s *probeSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	m, ok := readWebhook(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	for _, a := range m.Alerts {
		if svc := a.Labels["service"]; svc != "" {
			if _, ok := s.seen[svc]; !ok {
				s.seen[svc] = now
			}
		}
	}
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
}

// wait returns when the probe of service arrived, or false after timeout.
func (s *probeSink) wait(service string, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		at, ok := s.seen[service]
		s.mu.Unlock()
		if ok {
			return at, true
		}
		select {
		case <-s.arrived:
		case <-deadline:
			return time.Time{}, false
		}
	}
}

// alertRecord is a as the detector writes it to the alerts topic: keyed by
// fingerprint, on the partition Sarama's hash gives that key, with the
// Watermill message id the consumers read.
func alertRecord(t testing.TB, a alerts.Alert, partitions int32) *kgo.Record {
	b, err := json.Marshal(a)
	require.NoError(t, err)
	return &kgo.Record{
		Topic: messaging.TopicAlerts, Partition: messaging.PartitionFor(a.Fingerprint, partitions),
		Key: []byte(a.Fingerprint), Value: b,
		Headers: []kgo.RecordHeader{
			{Key: "_watermill_message_uuid", Value: []byte(a.ID())},
			{Key: messaging.MetaSchema, Value: []byte(alerts.Schema)},
		},
	}
}

// BenchmarkProbeBehindBurst measures the notifier's breach → webhook path
// right behind a minute boundary's burst of alert state changes (issue
// 10; docs/bench.md): each iteration puts -burst state changes of
// -burst-rules rules (many client_ip label sets; all firing in one
// iteration, all resolved in the next) on the alerts topic at once, then one
// probe alert routed alone to a webhook on loopback, as devstack/bench's
// breach probe is. It reports
//
//   - probe-ms: from the probe's produce until its webhook call arrived;
//   - drain-records/s: burst records / time from the burst's produce until
//     the forwarders and the dispatcher had committed every record (their
//     checkpoint offsets in Redis reached the topics' ends);
//   - notifier-cpu-ms/1k-records: the notifier process's CPU time
//     (/proc/<pid>/stat) over the same span per 1,000 burst records, which
//     compares runs on a machine shared with other work.
//
// Run it against a prebuilt notifier with -bin to compare builds:
//
//	go test -run '^$' -bench ProbeBehindBurst -benchtime 6x ./notifiertest/
func BenchmarkProbeBehindBurst(b *testing.B) {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<20))
	require.NoError(b, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rdb := redis.NewClient(&redis.Options{Addr: st.RedisAddr()})
	defer rdb.Close()
	const partitions = stack.DefaultPartitions

	// Label sets are fixed across iterations: an even iteration opens a new
	// episode of each, the next resolves it (the dispatcher's state keeps
	// them all, as it keeps every alert of 7 days).
	type labelSet struct {
		rule   string
		labels map[string]string
	}
	sets := make([]labelSet, *burstSize)
	for i := range sets {
		rule := fmt.Sprintf("storm_%d", i%*burstRules)
		sets[i] = labelSet{rule: rule, labels: map[string]string{
			"alertname": rule, "severity": "warning",
			"client_ip": fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		}}
	}
	var starts int64
	var probeTotal, drainTotal time.Duration
	var cpuTotal float64
	cpu := func() float64 {
		ps, err := bench.ReadProc(st.PID(stack.Notifier))
		require.NoError(b, err)
		return ps.CPUSeconds
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		now := time.Now()
		firing := it%2 == 0
		if firing {
			starts = now.Add(-time.Second).UnixMilli()
		}
		recs := make([]*kgo.Record, len(sets))
		for i, s := range sets {
			a := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint(s.rule, s.labels), Rule: s.rule, State: alerts.StateFiring,
				Severity: "warning", Labels: s.labels, StartsAt: starts, Value: 120, Threshold: 100}
			if !firing {
				a.State, a.EndsAt = alerts.StateResolved, now.UnixMilli()
			}
			recs[i] = alertRecord(b, a, partitions)
		}
		service := "probe-" + strconv.FormatInt(now.UnixNano(), 36)
		pl := map[string]string{"alertname": "probe", "severity": "critical", "service": service}
		probe := alertRecord(b, alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("probe", pl), Rule: "probe",
			State: alerts.StateFiring, Severity: "critical", Labels: pl, StartsAt: now.UnixMilli(), Value: 1e7, Threshold: 1e6}, partitions)
		b.StartTimer()

		cpuStart := cpu()
		burstStart := time.Now()
		res := cl.ProduceSync(ctx, recs...)
		require.NoError(b, res.FirstErr())
		last := map[int32]int64{} // the burst's last offset per alerts partition
		for _, r := range res {
			last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
		}
		probeStart := time.Now()
		pres := cl.ProduceSync(ctx, probe)
		require.NoError(b, pres.FirstErr())
		last[probe.Partition] = max(last[probe.Partition], pres[0].Record.Offset)
		at, ok := probes.wait(service, 2*time.Minute)
		require.True(b, ok, "probe %s not delivered within 2 minutes", service)
		probeTook := at.Sub(probeStart)
		drained := waitDrained(b, ctx, adm, rdb, last)
		drainTook := drained.Sub(burstStart)
		cpuTook := cpu() - cpuStart
		cpuTotal += cpuTook
		probeTotal += probeTook
		drainTotal += drainTook
		b.Logf("iteration %d (%s): probe %d ms, burst drained in %d ms (%.0f records/s), notifier CPU %.2f s", it,
			map[bool]string{true: "firing", false: "resolved"}[firing], probeTook.Milliseconds(), drainTook.Milliseconds(),
			float64(len(recs))/drainTook.Seconds(), cpuTook)
	}
	b.StopTimer()
	b.ReportMetric(float64(probeTotal.Milliseconds())/float64(b.N), "probe-ms")
	b.ReportMetric(float64(*burstSize*b.N)/drainTotal.Seconds(), "drain-records/s")
	b.ReportMetric(cpuTotal*1e6/float64(*burstSize*b.N), "notifier-cpu-ms/1k-records")
	b.ReportMetric(0, "ns/op")
}

// waitDrained returns when the forwarders had committed every alerts record
// up to last (offset per partition) and the dispatcher every dispatch
// record up to the end of its topic as it was then: their checkpoint
// offsets in Redis, polled every 5 ms.
func waitDrained(b *testing.B, ctx context.Context, adm *kadm.Client, rdb *redis.Client, last map[int32]int64) time.Time {
	b.Helper()
	ckpt := func(group, topic string, p int32) int64 {
		o, err := rdb.HGet(ctx, fmt.Sprintf("sw:ckpt:%s:%s:%d", group, topic, p), "o").Int64()
		if err != nil {
			return -1
		}
		return o
	}
	deadline := time.Now().Add(5 * time.Minute)
	for p, off := range last {
		for ckpt("notifier.delivery", messaging.TopicAlerts, p) < off {
			require.True(b, time.Now().Before(deadline), "forwarder of alerts/%d not drained", p)
			time.Sleep(5 * time.Millisecond)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, messaging.TopicNotifierDispatch)
	require.NoError(b, err)
	end, ok := ends.Lookup(messaging.TopicNotifierDispatch, 0)
	require.True(b, ok)
	for ckpt("notifier.dispatch", messaging.TopicNotifierDispatch, 0) < end.Offset-1 {
		require.True(b, time.Now().Before(deadline), "dispatcher not drained")
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}
