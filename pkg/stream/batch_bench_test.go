package stream_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
)

// fanout emits n outputs per record (a detector record whose window
// results breach for n label sets, a forwarder's one record).
type fanout struct{ n int }

func (fanout) NewState(int32) *sumState { return &sumState{} }

func (f fanout) Apply(_ context.Context, st *sumState, _ *message.Message, offset int64) ([]stream.Output, error) {
	st.Sum++
	outs := make([]stream.Output, f.n)
	for i := range outs {
		id := strconv.FormatInt(offset, 10) + "-" + strconv.Itoa(i)
		outs[i] = stream.Output{Topic: "out", Key: id, UUID: id, Payload: []byte(`{"alert":"` + id + `"}`)}
	}
	return outs, nil
}

func (fanout) Tick(context.Context, *sumState, time.Time) ([]stream.Output, bool, error) {
	return nil, false, nil
}

// BenchmarkBurst measures how fast a processor drains a backlog of 1,000
// records of one partition on an embedded broker and a real Redis, with 1
// or 20 outputs per record: per-record (Handle behind the Watermill router
// with watermill-kafka's publisher, one commit and one synchronous publish
// per output) against batches (HandleBatch of 500 records with
// messaging.Producer: one commit and one produce round per batch). It
// reports records/s; ns/op is per record.
func BenchmarkBurst(b *testing.B) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "out", messaging.DLQ("in")))
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	kcfg := config.Kafka{Brokers: cluster.ListenAddrs()}
	rdb := redistest.Start(b)
	const backlog = 1000
	for _, outputs := range []int{1, 20} {
		for _, mode := range []string{"per-record", "batch"} {
			b.Run(fmt.Sprintf("outputs=%d/%s", outputs, mode), func(b *testing.B) {
				var pub message.Publisher
				if mode == "batch" {
					pub, err = messaging.NewProducer(kcfg, "bench")
				} else {
					pub, err = messaging.NewPublisher(kcfg, "bench", nil)
				}
				if err != nil {
					b.Fatal(err)
				}
				defer pub.Close()
				store := checkpoint.New(rdb, fmt.Sprintf("b%d%s%d:", outputs, mode, time.Now().UnixNano())) // fresh per run: no replays
				p, err := stream.New[*sumState](stream.Config{Group: "g", Topic: "in"}, fanout{n: outputs}, store, pub, nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				var off int64
				b.ResetTimer()
				for done := 0; done < b.N; done += backlog {
					msgs := make([]*message.Message, backlog)
					for i := range msgs {
						msgs[i] = record(0, off, "1")
						off++
					}
					if mode == "batch" {
						for start := 0; start < len(msgs); start += 500 {
							if err := p.HandleBatch(ctx, msgs[start:min(start+500, len(msgs))]); err != nil {
								b.Fatal(err)
							}
						}
						continue
					}
					for _, m := range msgs {
						if err := p.Handle(m); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(off)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(off), "ns/op")
			})
		}
	}
}
