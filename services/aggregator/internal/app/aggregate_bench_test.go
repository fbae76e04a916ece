package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

const benchT0 = int64(1_431_857_100_000)

// genEvents returns n events of a realistic mix (60% access-log requests
// from 2,000 clients, 20% service requests of 20 services, 20% behaviour
// events of 5,000 users over 200 pages and 500 products), ~rate per second
// of event time starting at t, up to 2 s out of order.
func genEvents(rng *rand.Rand, n int, t int64, perSecond int, seq *int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		*seq++
		tm := t + int64(*seq)*1000/int64(perSecond) - rng.Int64N(2000)
		e := events.Event{V: 1, ID: fmt.Sprintf("ev-%d", *seq), Time: tm, ReceiveTime: tm}
		status := []int{200, 200, 200, 200, 304, 404, 500, 503}[rng.IntN(8)]
		switch r := rng.IntN(10); {
		case r < 6:
			e.Type, e.ClientIP, e.Method, e.Status = events.TypeHTTPRequest, fmt.Sprintf("10.%d.%d.%d", rng.IntN(8), rng.IntN(16), rng.IntN(16)), "GET", status
			e.Path, e.Bytes, e.Key = fmt.Sprintf("/page/%d", rng.IntN(300)), rng.Int64N(50_000), e.ClientIP
		case r < 8:
			e.Type, e.Service, e.Status, e.LatencyMs = events.TypeServiceRequest, fmt.Sprintf("svc-%d", rng.IntN(20)), status, rng.ExpFloat64()*40
			e.Endpoint, e.Key = "/api", e.Service
		default:
			e.Type = []events.Type{events.TypePageView, events.TypePageView, events.TypeClick, events.TypeAddCart, events.TypePurchase}[rng.IntN(5)]
			e.UserID, e.Page, e.Key = fmt.Sprintf("u%d", rng.IntN(5000)), fmt.Sprintf("/p/%d", rng.IntN(200)), ""
			e.Key = e.UserID
			if e.Type == events.TypeAddCart || e.Type == events.TypePurchase {
				e.ProductID, e.Amount = fmt.Sprintf("prod-%d", rng.IntN(500)), 9.99
			}
		}
		evs[i] = e
	}
	return evs
}

// benchSettings are the aggregator's settings in the benchmarks: the
// built-in metric set, the service defaults, a fixed processing time.
func benchSettings(b testing.TB) app.Settings {
	defs, err := metrics.Defaults()
	if err != nil {
		b.Fatal(err)
	}
	return app.Settings{
		Definitions: defs,
		Window:      window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000, EarlyInterval: 1_000},
		Clock:       func() time.Time { return time.UnixMilli(benchT0) },
	}
}

// benchPayloads returns n events.raw batch records of 500 events each
// (genEvents with seed, 50,000 events/s of event time).
func benchPayloads(b *testing.B, seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	seq := 0
	payloads := make([][]byte, 0, n)
	for range n {
		p, err := events.EncodeBatch(genEvents(rng, 500, benchT0, 50_000, &seq))
		if err != nil {
			b.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	return payloads
}

// applyRecord is what the service does per record apart from the Redis
// round trip and the publish: Apply, then encode the checkpoint delta.
func applyRecord(ctx context.Context, op *app.Aggregate, st *window.State, payload []byte, offset int64) error {
	_, err := applyRecordBytes(ctx, op, st, payload, offset)
	return err
}

// applyRecordBytes is applyRecord; it also returns the bytes of the
// checkpoint entries the commit writes (names and values).
func applyRecordBytes(ctx context.Context, op *app.Aggregate, st *window.State, payload []byte, offset int64) (int, error) {
	msg := message.NewMessage("x", payload)
	msg.SetContext(messaging.ContextWithPosition(ctx, st.Partition, offset))
	if _, err := op.Apply(ctx, st, msg, offset); err != nil {
		return 0, err
	}
	set, _, err := st.TakeDelta()
	n := 0
	for k, v := range set {
		n += len(k) + len(v)
	}
	return n, err
}

// BenchmarkAggregateApply measures the aggregator alone with the built-in
// metric set: decode one events.raw batch record of 500 events, window
// them, emit due results, encode the result records and the checkpoint
// delta (everything Handle does except the Redis round trip and publish).
// Event time advances 50,000 events/s over up to 2,400 records (24 s; then
// the state starts afresh). Reports events/s (one core) and the bytes of
// checkpoint entries a record's commit writes (delta-B/record: what Redis
// appends to its AOF, less the command framing).
func BenchmarkAggregateApply(b *testing.B) {
	op := app.NewAggregate(benchSettings(b))
	const batch = 500
	payloads := benchPayloads(b, 1, min(b.N, 2_400))
	st := op.NewState(0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	written := 0
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(payloads) == 0 {
			b.StopTimer()
			st = op.NewState(0) // event time restarts: fresh state
			b.StartTimer()
		}
		n, err := applyRecordBytes(ctx, op, st, payloads[i%len(payloads)], int64(i))
		if err != nil {
			b.Fatal(err)
		}
		written += n
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*batch/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
	b.ReportMetric(float64(written)/float64(b.N), "delta-B/record")
}

// BenchmarkAggregateApplyParallel runs the path of BenchmarkAggregateApply
// on 1, 2 and 6 partitions at once, one goroutine and one state per
// partition and one shared Aggregate, as the service runs them (Sarama
// consumes every claimed partition in its own goroutine, Watermill's router
// handles each message in its own goroutine, and stream.Processor locks
// per partition). b.N records are spread evenly over the partitions; each
// partition has its own event stream (its own ids and keys drawn from the
// whole key space, which is pessimistic: with Kafka's key partitioning a
// partition sees only its share of the clients, users and services) and
// cycles over at most 400 records, starting afresh when it wraps. Reports
// events/s over all partitions (wall clock) and per CPU second.
func BenchmarkAggregateApplyParallel(b *testing.B) {
	for _, parts := range []int{1, 2, 6} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			op := app.NewAggregate(benchSettings(b))
			const batch = 500
			payloads := make([][][]byte, parts)
			for p := range payloads {
				payloads[p] = benchPayloads(b, uint64(p)+1, min((b.N+parts-1)/parts, 400))
			}
			ctx := context.Background()
			errs := make(chan error, parts)
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for p := range parts {
				n := b.N / parts
				if p < b.N%parts {
					n++
				}
				wg.Go(func() {
					st := op.NewState(int32(p))
					for i := range n {
						if i > 0 && i%len(payloads[p]) == 0 {
							st = op.NewState(int32(p))
						}
						if err := applyRecord(ctx, op, st, payloads[p][i%len(payloads[p])], int64(i)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)*batch/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
		})
	}
}

// BenchmarkEngineAdd measures the windowing engine alone (no decoding, no
// checkpoint encoding) with the built-in set.
func BenchmarkEngineAdd(b *testing.B) {
	defs, err := metrics.Defaults()
	if err != nil {
		b.Fatal(err)
	}
	e := window.NewEngine(defs, window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000})
	rng := rand.New(rand.NewPCG(1, 1))
	seq := 0
	var batches [][]events.Event
	for range 2_400 {
		batches = append(batches, genEvents(rng, 500, benchT0, 50_000, &seq))
	}
	st := window.NewState(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(batches) == 0 {
			b.StopTimer()
			st = window.NewState(0)
			b.StartTimer()
		}
		e.Add(st, batches[i%len(batches)], 0)
		e.Emit(st, 0, false)
	}
	b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*500/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

// cpuTime returns the CPU time (user + system) this process used so far.
// Throughput per CPU second is what the benchmarks report next to wall-clock
// events/s, because the development machine is shared and wall-clock rates
// swing with its load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMemoryPerWindow fills one partition's state with two minutes of
// events and reports the heap per active window key (measured by the
// runtime) next to the state's own estimate (window.State.MemoryBytes,
// the gauge the service exposes).
func BenchmarkMemoryPerWindow(b *testing.B) {
	defs, err := metrics.Defaults()
	if err != nil {
		b.Fatal(err)
	}
	e := window.NewEngine(defs, window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000})
	rng := rand.New(rand.NewPCG(2, 2))
	seq := 0
	var batches [][]events.Event
	for range 200 { // 100,000 events over 2 minutes of event time
		batches = append(batches, genEvents(rng, 500, benchT0, 1_000, &seq))
	}
	var perWindow, estimate float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := window.NewState(0)
		for _, batch := range batches {
			e.Add(st, batch, 0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := float64(st.ActiveWindows())
		perWindow = float64(after.HeapAlloc-before.HeapAlloc) / n
		estimate = float64(st.MemoryBytes()) / n
		runtime.KeepAlive(st)
		b.ReportMetric(n, "windows")
	}
	b.ReportMetric(perWindow, "heap-B/window")
	b.ReportMetric(estimate, "gauge-B/window")
}

// BenchmarkMillionActiveKeys measures the aggregator's memory with
// 1,000,000 active keys (issue 10's target: peak RSS < 1 GiB): 1,000,000
// events through Apply and TakeDelta on 6 partitions, each event from a
// key no other event has (600,000 access-log clients, each on one of 300
// paths, and 400,000 users, each viewing one of 200 pages or clicking),
// all within 50 s of event time so every window stays open. Reports the
// live heap after a GC, the process's peak RSS (VmHWM: the runtime's
// overhead and garbage included; the records are generated one at a time
// and dropped), open windows, and heap bytes per key. Then the minute
// boundary: every window's result goes out (finals, and early results of
// the session windows), over as many Emits and commits as
// window.Config.MaxScanResults makes; reported are the results, the
// commits, the largest outbox, the live heap after it and the peak RSS
// with it. Sub-benchmark step-N fires the finals in steps from N results
// (window.Config.ScanStep, ticks a pause apart; the aggregator's default
// AGG_FINALS_STEP is 500). Run each alone (-benchtime 1x): it holds
// ~1 GiB, and its boundary's garbage lets the heap grow to the GC's target
// (GOGC, or a GOMEMLIMIT set for the run).
func BenchmarkMillionActiveKeys(b *testing.B) {
	for _, step := range []int{0, 500} {
		b.Run(fmt.Sprintf("step-%d", step), func(b *testing.B) { benchMillionActiveKeys(b, step) })
	}
}

func benchMillionActiveKeys(b *testing.B, step int) {
	const keys, batch, parts, pause = 1_000_000, 500, 6, 500
	settings := benchSettings(b)
	settings.Window.ScanStep, settings.Window.ScanPause = step, pause
	for b.Loop() {
		op := app.NewAggregate(settings)
		states := make([]*window.State, parts)
		for p := range states {
			states[p] = op.NewState(int32(p))
		}
		base := heapAfterGC()
		evs := make([]events.Event, batch)
		for r := range keys / batch {
			for i := range evs {
				k := r*batch + i
				tm := benchT0 + int64(k)*50_000/keys
				e := events.Event{V: 1, ID: fmt.Sprintf("k%d", k), Time: tm, ReceiveTime: tm}
				if k%5 < 3 {
					ip := fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255)
					e.Type, e.ClientIP, e.Key, e.Method, e.Status = events.TypeHTTPRequest, ip, ip, "GET", 200
					e.Path, e.Bytes = fmt.Sprintf("/page/%d", k%300), 1_000
				} else {
					e.Type, e.UserID, e.Page = events.TypePageView, fmt.Sprintf("user-%d", k), fmt.Sprintf("/p/%d", k%200)
					if k%2 == 0 {
						e.Type = events.TypeClick
					}
					e.Key = e.UserID
				}
				evs[i] = e
			}
			p := r % parts
			if err := applyRecord(context.Background(), op, states[p], mustEncode(b, evs), int64(r/parts)); err != nil {
				b.Fatal(err)
			}
		}
		heap := heapAfterGC() - base
		windows := 0
		for _, st := range states {
			windows += st.ActiveWindows()
		}
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(windows), "windows")
		b.ReportMetric(float64(heap)/keys, "heap-B/key")

		// The minute boundary: one event per partition 70 s in moves every
		// watermark past the minute's end, so each partition emits the
		// final result of every window, in one Apply and the ticks after
		// it (window.Config.MaxScanResults at a time), as the service
		// does; each step's checkpoint delta and outbox are encoded as the
		// processor's commit encodes them.
		results, steps, outboxMax := 0, 0, 0
		commit := func(st *window.State, outs []stream.Output) int {
			if _, _, err := st.TakeDelta(); err != nil {
				b.Fatal(err)
			}
			outbox, err := json.Marshal(struct {
				Outbox []stream.Output `json:"outbox"`
			}{outs})
			if err != nil {
				b.Fatal(err)
			}
			outboxMax = max(outboxMax, len(outbox))
			n := 0
			for _, o := range outs {
				if o.Topic == messaging.TopicMetricsWindows { // the record id ends in |n<results>
					k, err := strconv.Atoi(o.UUID[strings.LastIndex(o.UUID, "|n")+2:])
					if err != nil {
						b.Fatal(err)
					}
					n += k
				}
			}
			results += n
			steps++
			return n
		}
		tickAt := time.UnixMilli(benchT0)
		for p, st := range states {
			ev := events.Event{V: 1, ID: fmt.Sprintf("boundary-%d", p), Type: events.TypeClick, UserID: "boundary",
				Key: "boundary", Page: "/", Time: benchT0 + 70_000, ReceiveTime: benchT0 + 70_000}
			msg := message.NewMessage("x", mustEncode(b, []events.Event{ev}))
			msg.SetContext(messaging.ContextWithPosition(context.Background(), st.Partition, 1<<40))
			outs, err := op.Apply(context.Background(), st, msg, 1<<40)
			if err != nil {
				b.Fatal(err)
			}
			for n := commit(st, outs); n > 0; n = commit(st, outs) {
				tickAt = tickAt.Add(pause * time.Millisecond)
				if outs, _, err = op.Tick(context.Background(), st, tickAt); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(heapAfterGC()-base)/(1<<20), "heap-after-boundary-MiB")
		b.ReportMetric(float64(results), "boundary-results")
		b.ReportMetric(float64(steps), "boundary-commits")
		b.ReportMetric(float64(outboxMax)/(1<<20), "boundary-max-outbox-MiB")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-boundary-MiB")
		runtime.KeepAlive(states)
	}
}

func mustEncode(b *testing.B, evs []events.Event) []byte {
	p, err := events.EncodeBatch(evs)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes,
// 0 where /proc is missing.
func peakRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkBoundary measures what one partition does at a minute
// boundary: the state holds a minute of events (3,500 events/s of event
// time, the benchmark's 21,000 events/s at 50 % load over six partitions,
// genEvents' populations), and one record whose events are 6 s past the
// minute moves the watermark past its end, so Apply emits the final result
// of every window of that minute; then the result records and the
// checkpoint delta are encoded (everything but the Redis round trip and
// the publish). Reports the results and the output bytes per boundary,
// and the entries and bytes (names and values) of its checkpoint delta.
// Sub-benchmark step-N fires the finals in steps of N results
// (window.Config.ScanStep; the aggregator's default AGG_FINALS_STEP is
// 500) and measures the crossing Apply, its first step: what an early
// result in that record waits for.
func BenchmarkBoundary(b *testing.B) {
	for _, step := range []int{0, 500} {
		b.Run(fmt.Sprintf("step-%d", step), func(b *testing.B) { benchBoundary(b, step) })
	}
}

func benchBoundary(b *testing.B, step int) {
	const perSecond, minute = 3_500, 60_000
	s := benchSettings(b)
	s.Window.ScanStep, s.Window.ScanPause = step, 500
	var calls int64 // processing time passes a pause between two records
	s.Clock = func() time.Time { calls++; return time.UnixMilli(benchT0 + calls*1_000) }
	op := app.NewAggregate(s)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	seq := 0
	var payloads [][]byte
	for n := 0; n < perSecond*minute/1000; n += 500 {
		p, err := events.EncodeBatch(genEvents(rng, 500, benchT0, perSecond, &seq))
		if err != nil {
			b.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	seq = (minute + 7_000) * perSecond / 1000 // 67 s in: 5 s out-of-orderness and genEvents' 2 s
	last, err := events.EncodeBatch(genEvents(rng, 500, benchT0, perSecond, &seq))
	if err != nil {
		b.Fatal(err)
	}
	var results, outBytes, deltaEntries, deltaBytes int
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st := op.NewState(0)
		for i, p := range payloads {
			if err := applyRecord(ctx, op, st, p, int64(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		msg := message.NewMessage("x", last)
		msg.SetContext(messaging.ContextWithPosition(ctx, 0, int64(len(payloads))))
		outs, err := op.Apply(ctx, st, msg, int64(len(payloads)))
		if err != nil {
			b.Fatal(err)
		}
		set, _, err := st.TakeDelta()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		results, outBytes, deltaEntries, deltaBytes = 0, 0, len(set), 0
		for k, v := range set {
			deltaBytes += len(k) + len(v)
		}
		for _, o := range outs {
			if o.Topic == messaging.TopicMetricsWindows {
				rs, err := metrics.DecodeRecord(metrics.BatchSchemaV2, o.Payload)
				if err != nil {
					b.Fatal(err)
				}
				results += len(rs)
			}
			outBytes += len(o.Payload)
		}
		b.StartTimer()
	}
	if results == 0 {
		b.Fatal("no final results at the boundary")
	}
	b.ReportMetric(float64(results), "results/op")
	b.ReportMetric(float64(outBytes), "out-bytes/op")
	b.ReportMetric(float64(deltaEntries), "checkpoint-entries/op")
	b.ReportMetric(float64(deltaBytes), "checkpoint-bytes/op")
}
