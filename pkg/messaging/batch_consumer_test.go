package messaging_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// batchLog records what a BatchHandler was handed.
type batchLog struct {
	mu      sync.Mutex
	batches [][]string // "partition:offset:payload" per record
	failOn  string     // the first batch holding this record fails once
	failed  bool
}

func (l *batchLog) handle(_ context.Context, msgs []*message.Message) error {
	var b []string
	for _, m := range msgs {
		p, o, ok := messaging.Position(m)
		if !ok {
			return errors.New("message without position")
		}
		b = append(b, strconv.Itoa(int(p))+":"+strconv.FormatInt(o, 10)+":"+string(m.Payload))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, b)
	for _, r := range b {
		if r == l.failOn && !l.failed {
			l.failed = true
			return errors.New("transient failure")
		}
	}
	return nil
}

func (l *batchLog) snapshot() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]string(nil), l.batches...)
}

func produce(t *testing.T, brokers []string, topic string, partition int32, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: partition, Value: []byte("r" + strconv.Itoa(i))})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

func runConsumer(t *testing.T, brokers []string, log *batchLog) (stop func()) {
	t.Helper()
	c, err := messaging.NewBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: brokers, Group: "query.windows-projector", Topic: "windows",
		MaxRecords: 16, RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, log.handle, nil)
	require.NoError(t, err)
	return start(t, c)
}

// kafkaCluster starts an in-process Kafka cluster with topic of the given
// partitions for a parallel test (skipped with -short) and returns its
// brokers.
func kafkaCluster(t *testing.T, partitions int32, topic string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs an in-process Kafka cluster")
	}
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()
}

// start runs c until the returned stop is called; stop checks that Run
// returned nil.
func start(t *testing.T, c *messaging.BatchConsumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("consumer did not stop")
		}
	}
}

// TestBatchConsumerBatchesRetriesAndCommits: a backlog is handed in
// batches of up to MaxRecords, in offset order per partition, every record
// exactly once apart from a failed batch, which is handed again whole; a
// new consumer of the group starts after what the first one committed.
func TestBatchConsumerBatchesRetriesAndCommits(t *testing.T) {
	brokers := kafkaCluster(t, 2, "windows")
	produce(t, brokers, "windows", 0, 0, 100)
	produce(t, brokers, "windows", 1, 100, 150)

	log := &batchLog{failOn: "0:50:r50"}
	stop := runConsumer(t, brokers, log)
	handled := func(l *batchLog) map[string]int {
		n := map[string]int{}
		for _, b := range l.snapshot() {
			for _, r := range b {
				n[r]++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return len(handled(log)) == 150 }, 30*time.Second, 20*time.Millisecond)
	stop()

	batches := log.snapshot()
	var failed []string
	last := map[string]int64{"0": -1, "1": -1}
	biggest := 0
	// The retry of the failed batch passes the order check below: the
	// failed one is skipped there.
	for i, b := range batches {
		require.LessOrEqual(t, len(b), 16, "MaxRecords")
		biggest = max(biggest, len(b))
		if failed == nil && contains(b, "0:50:r50") {
			failed = b
			var again []string
			for _, nb := range batches[i+1:] {
				if nb[0][:2] == "0:" { // the next batch of partition 0
					again = nb
					break
				}
			}
			require.Equal(t, b, again, "the failed batch is handed again whole")
			continue
		}
		for _, r := range b {
			p, rest, _ := cut(r)
			o, err := strconv.ParseInt(rest, 10, 64)
			require.NoError(t, err)
			require.Equal(t, last[p]+1, o, "partition %s in offset order, no gaps, no repeats", p)
			last[p] = o
		}
	}
	require.NotNil(t, failed)
	require.Greater(t, biggest, 1, "a backlog is handed in batches")
	for r, n := range handled(log) {
		if contains(failed, r) {
			require.Equal(t, 2, n, r)
		} else {
			require.Equal(t, 1, n, r)
		}
	}

	// A new member of the group starts after the committed offsets.
	produce(t, brokers, "windows", 0, 150, 155)
	next := &batchLog{}
	stop = runConsumer(t, brokers, next)
	require.Eventually(t, func() bool { return len(handled(next)) == 5 }, 30*time.Second, 20*time.Millisecond)
	stop()
	got := handled(next)
	for i := 150; i < 155; i++ {
		require.Equal(t, 1, got["0:"+strconv.Itoa(i-50)+":r"+strconv.Itoa(i)], "only the new records")
	}
}

func contains(b []string, r string) bool {
	for _, x := range b {
		if x == r {
			return true
		}
	}
	return false
}

// cut splits "p:o:payload" into p and o.
func cut(r string) (p, o string, ok bool) {
	i := 0
	for i < len(r) && r[i] != ':' {
		i++
	}
	j := i + 1
	for j < len(r) && r[j] != ':' {
		j++
	}
	if j > len(r) {
		return "", "", false
	}
	return r[:i], r[i+1 : j], true
}

func TestBatchConsumerConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := messaging.NewBatchConsumer(messaging.BatchConsumerConfig{}, nil, nil)
	require.ErrorContains(t, err, "brokers, group and topic are required")
	require.ErrorContains(t, err, "max records 0 < 1")
	require.ErrorContains(t, err, "retry backoff")
	_, err = messaging.NewBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: []string{"b:9092"}, Group: "g", Topic: "t", MaxRecords: 1,
		RetryInitial: time.Millisecond, RetryMax: time.Millisecond, CommitInterval: -time.Second,
	}, nil, nil)
	require.ErrorContains(t, err, "commit interval -1s < 0")
}

// stampLog records when a BatchHandler was called and what with.
type stampLog struct {
	mu      sync.Mutex
	starts  []time.Time
	batches [][]string
}

func (l *stampLog) handle(_ context.Context, msgs []*message.Message) error {
	now := time.Now()
	var b []string
	for _, m := range msgs {
		b = append(b, string(m.Payload))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.starts = append(l.starts, now)
	l.batches = append(l.batches, b)
	return nil
}

func (l *stampLog) records() (n int, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		n += len(b)
	}
	if len(l.starts) > 0 {
		last = l.starts[len(l.starts)-1]
	}
	return n, last
}

// TestBatchConsumerCommitInterval: records that trickle in are handed on
// together, at most one batch per CommitInterval, each once and in order;
// a record that arrives after a quiet interval is handed on without
// waiting.
func TestBatchConsumerCommitInterval(t *testing.T) {
	brokers := kafkaCluster(t, 1, "events")
	const interval = 2 * time.Second
	log := &stampLog{}
	c, err := messaging.NewBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: brokers, Group: "aggregator.windows", Topic: "events",
		MaxRecords: 1000, RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		CommitInterval: interval,
	}, log.handle, nil)
	require.NoError(t, err)
	stop := start(t, c)
	defer stop()

	// A trickle: 30 records, one every 20 ms, well within one interval.
	// The first may be handed on alone; the rest wait for the interval.
	for i := range 30 {
		produce(t, brokers, "events", 0, i, i+1)
		time.Sleep(20 * time.Millisecond)
	}
	require.Eventually(t, func() bool { n, _ := log.records(); return n == 30 }, 30*time.Second, 10*time.Millisecond)

	// After a quiet interval a record does not wait: it is handed on
	// well before another interval has passed since it was produced.
	_, last := log.records()
	time.Sleep(time.Until(last.Add(interval + 500*time.Millisecond)))
	sent := time.Now()
	produce(t, brokers, "events", 0, 30, 31)
	require.Eventually(t, func() bool { n, _ := log.records(); return n == 31 }, 30*time.Second, 10*time.Millisecond)
	_, last = log.records()
	require.Less(t, last.Sub(sent), interval, "a record after a quiet interval waited for another one")

	log.mu.Lock()
	defer log.mu.Unlock()
	var all []string
	for _, b := range log.batches {
		all = append(all, b...)
	}
	want := make([]string, 31)
	for i := range want {
		want[i] = "r" + strconv.Itoa(i)
	}
	require.Equal(t, want, all, "every record once, in offset order")
	require.LessOrEqual(t, len(log.batches), 4, "the trickle was handed on record by record: %v", log.batches)
	for i := 1; i < len(log.starts); i++ {
		// The handler is called a moment after the batch starts; allow
		// for that moment.
		gap := log.starts[i].Sub(log.starts[i-1])
		require.GreaterOrEqual(t, gap, interval-50*time.Millisecond, "batches %d and %d only %s apart", i-1, i, gap)
	}
}

// pipeLog records what a PipelinedBatchHandler applied; the Pending of a
// batch returns once release is closed (an error for the first batch
// holding failOn).
type pipeLog struct {
	mu      sync.Mutex
	applied [][]string
	release chan struct{}
	failOn  string
	failed  bool
}

func (l *pipeLog) handle(_ context.Context, msgs []*message.Message) (messaging.Pending, error) {
	var b []string
	for _, m := range msgs {
		p, o, _ := messaging.Position(m)
		b = append(b, strconv.Itoa(int(p))+":"+strconv.FormatInt(o, 10)+":"+string(m.Payload))
	}
	l.mu.Lock()
	l.applied = append(l.applied, b)
	fail := l.failOn != "" && !l.failed && contains(b, l.failOn)
	l.failed = l.failed || fail
	l.mu.Unlock()
	return func(ctx context.Context) error {
		select {
		case <-l.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		if fail {
			return errors.New("insert failed")
		}
		return nil
	}, nil
}

func (l *pipeLog) counts() (batches int, records map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	records = map[string]int{}
	for _, b := range l.applied {
		for _, r := range b {
			records[r]++
		}
	}
	return len(l.applied), records
}

func runPipelined(t *testing.T, brokers []string, log *pipeLog) (stop func()) {
	t.Helper()
	c, err := messaging.NewPipelinedBatchConsumer(messaging.BatchConsumerConfig{
		Brokers: brokers, Group: "query.windows-projector", Topic: "windows",
		MaxRecords: 4, MaxInFlight: 3, RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, log.handle, nil)
	require.NoError(t, err)
	return start(t, c)
}

// TestPipelinedBatchConsumer: batches are applied while earlier ones are
// not durable yet, up to MaxInFlight waiting (plus the one being settled
// and the one waiting for room); offsets are committed only for durable
// batches; a batch whose Pending fails is applied again.
func TestPipelinedBatchConsumer(t *testing.T) {
	brokers := kafkaCluster(t, 1, "windows")
	produce(t, brokers, "windows", 0, 0, 40)

	// Nothing becomes durable: the consumer applies ahead, then stops for
	// backpressure: 1 settling + MaxInFlight queued + 1 waiting for room.
	stuck := &pipeLog{release: make(chan struct{})}
	stop := runPipelined(t, brokers, stuck)
	require.Eventually(t, func() bool { n, _ := stuck.counts(); return n == 5 }, 30*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	n, _ := stuck.counts()
	require.Equal(t, 5, n, "at most MaxInFlight+2 batches applied before one is durable")
	stop()

	// Nothing was committed: the next member starts at offset 0, and a
	// batch whose insert fails is applied again.
	retry := &pipeLog{release: make(chan struct{}), failOn: "0:10:r10"}
	close(retry.release)
	stop = runPipelined(t, brokers, retry)
	require.Eventually(t, func() bool { _, recs := retry.counts(); return len(recs) == 40 && recs["0:10:r10"] == 2 },
		30*time.Second, 10*time.Millisecond)
	stop()
	_, recs := retry.counts()
	require.Equal(t, 1, recs["0:0:r0"])
	require.Equal(t, 1, recs["0:39:r39"])

	// Everything became durable and was committed: only new records now.
	produce(t, brokers, "windows", 0, 40, 43)
	next := &pipeLog{release: make(chan struct{})}
	close(next.release)
	stop = runPipelined(t, brokers, next)
	require.Eventually(t, func() bool { _, recs := next.counts(); return len(recs) == 3 }, 30*time.Second, 10*time.Millisecond)
	stop()
	_, recs = next.counts()
	require.Equal(t, map[string]int{"0:40:r40": 1, "0:41:r41": 1, "0:42:r42": 1}, recs)
}
