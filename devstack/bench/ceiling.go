package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// Ceiling is the machine's limit for the pipeline's first hop: the
// collector's own batch records produced to and consumed from the
// embedded broker by one franz-go client each, every record decoded with
// events.DecodeBatch, producer and consumer running at once.
type Ceiling struct {
	// Records and Events are what went through (events are decoded
	// events); Bytes are record value bytes.
	Records int64 `json:"records"`
	Events  int64 `json:"events"`
	Bytes   int64 `json:"bytes"`
	// Seconds is from the first produce to the last decoded record.
	Seconds float64 `json:"seconds"`
	// EventsPerSecond is Events / Seconds.
	EventsPerSecond float64 `json:"events_per_second"`
	// CPUSeconds is this process's CPU time during the run (broker, client
	// and decoding all run here).
	CPUSeconds float64 `json:"cpu_s"`
	// EventsPerCPUSecond is Events / CPUSeconds.
	EventsPerCPUSecond float64 `json:"events_per_cpu_s"`
	// SourceRecords is how many distinct events.raw records were replayed.
	SourceRecords int `json:"source_records"`
}

// ceilingTopic is the topic the ceiling run creates and deletes.
const ceilingTopic = "bench.ceiling"

// readRawRecords fetches up to maxBytes of record values from the start of
// events.raw.
func readRawRecords(ctx context.Context, brokers []string, maxBytes int) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(messaging.TopicEventsRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	size := 0
	for size < maxBytes {
		// A poll that brings nothing for 2 s means the topic is read.
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if errs := fs.Errors(); len(errs) > 0 && !errors.Is(errs[0].Err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("read %s: %w", messaging.TopicEventsRaw, errs[0].Err)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if size < maxBytes {
				out = append(out, &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers})
				size += len(r.Value)
			}
		})
		if n == 0 && (len(out) > 0 || ctx.Err() != nil) {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read %s: no records", messaging.TopicEventsRaw)
	}
	return out, nil
}

// runCeiling produces source records round-robin until events events have
// been produced (whole records), consumes and decodes them concurrently,
// and times the whole.
func runCeiling(ctx context.Context, brokers []string, partitions int32, source []*kgo.Record, wantEvents int64) (Ceiling, error) {
	if len(source) == 0 {
		return Ceiling{}, errors.New("ceiling: no events.raw records to replay")
	}
	perRecord := make([]int64, len(source))
	for i, r := range source {
		evs, err := events.DecodeBatch(r.Value)
		if err != nil {
			return Ceiling{}, fmt.Errorf("ceiling: source record %d: %w", i, err)
		}
		perRecord[i] = int64(len(evs))
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return Ceiling{}, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, ceilingTopic); err != nil {
		return Ceiling{}, fmt.Errorf("create %s: %w", ceilingTopic, err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.WithoutCancel(ctx), ceilingTopic) }()

	// How many records to produce.
	var plan []int
	var planned int64
	for i := 0; planned < wantEvents; i = (i + 1) % len(source) {
		plan = append(plan, i)
		planned += perRecord[i]
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(ceilingTopic),
		kgo.MaxBufferedRecords(10_000))
	if err != nil {
		return Ceiling{}, fmt.Errorf("kafka producer: %w", err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(ceilingTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return Ceiling{}, fmt.Errorf("kafka consumer: %w", err)
	}
	defer cons.Close()

	self0, _ := ReadProc(osPid())
	began := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var (
		wg      sync.WaitGroup
		prodErr error
		errOnce sync.Once
	)
	fail := func(err error) {
		errOnce.Do(func() { prodErr = err })
		cancel() // the consumer would wait for records that never come
	}
	wg.Go(func() {
		for _, i := range plan {
			src := source[i]
			prod.Produce(cctx, &kgo.Record{Key: src.Key, Value: src.Value, Headers: src.Headers}, func(_ *kgo.Record, err error) {
				if err != nil {
					fail(err)
				}
			})
		}
		if err := prod.Flush(cctx); err != nil {
			fail(err)
		}
	})
	var c Ceiling
	for c.Records < int64(len(plan)) {
		fs := cons.PollFetches(cctx)
		if err := cctx.Err(); err != nil {
			wg.Wait()
			return c, fmt.Errorf("ceiling: consumed %d of %d records: %w", c.Records, len(plan), errors.Join(prodErr, err))
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return c, fmt.Errorf("ceiling consume: %w", errs[0].Err)
		}
		var decodeErr error
		fs.EachRecord(func(r *kgo.Record) {
			evs, err := events.DecodeBatch(r.Value)
			if err != nil && decodeErr == nil {
				decodeErr = err
			}
			c.Records++
			c.Events += int64(len(evs))
			c.Bytes += int64(len(r.Value))
		})
		if decodeErr != nil {
			return c, fmt.Errorf("ceiling decode: %w", decodeErr)
		}
	}
	c.Seconds = time.Since(began).Seconds()
	wg.Wait()
	if prodErr != nil {
		return c, fmt.Errorf("ceiling produce: %w", prodErr)
	}
	self1, _ := ReadProc(osPid())
	c.CPUSeconds = self1.CPUSeconds - self0.CPUSeconds
	c.EventsPerSecond = Rate(c.Events, c.Seconds)
	c.EventsPerCPUSecond = Rate(c.Events, c.CPUSeconds)
	c.SourceRecords = len(source)
	return c, nil
}
