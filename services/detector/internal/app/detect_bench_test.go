package app_test

import (
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/services/detector/internal/app"
)

// BenchmarkApplyFinalBatch applies records of 500 final window results
// (one per client, 1 in 50 breaching the built-in high_request_rate_client
// rule), a new minute per record: the records a minute boundary brings,
// each followed by its checkpoint delta (TakeDelta), as the processor's
// commit takes it. metric=requests_by_client is the metric that rule
// reads; metric=events_by_page the same results of a metric no rule reads
// (most of a boundary's records). ns/op is per record; entries/record
// counts the checkpoint entries a record's commit writes.
func BenchmarkApplyFinalBatch(b *testing.B) {
	file, err := rules.Parse("defaults", []byte(rules.DefaultRules))
	if err != nil {
		b.Fatal(err)
	}
	live, err := app.NewRules(file)
	if err != nil {
		b.Fatal(err)
	}
	for _, metric := range []string{"requests_by_client", "events_by_page"} {
		b.Run("metric="+metric, func(b *testing.B) {
			d := app.NewDetect(live)
			st := d.NewState(0)
			const clients = 500
			records := make([][]byte, 20)
			for m := range records {
				rs := make([]metrics.Result, clients)
				for i := range rs {
					v := int64(10 + i%7)
					if i%50 == 0 {
						v = 150
					}
					rs[i] = result(fmt.Sprintf("10.0.%d.%d", i/256, i%256), int64(m)*60_000, v)
					rs[i].Metric = metric
				}
				if records[m], err = metrics.EncodeBatchBinary(rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			entries := 0
			for i := range b.N {
				msg := message.NewMessage("r", records[i%len(records)])
				msg.Metadata.Set(messaging.MetaSchema, metrics.BatchSchemaV2)
				if _, err := d.Apply(b.Context(), st, msg, int64(i)); err != nil {
					b.Fatal(err)
				}
				set, del, err := st.TakeDelta()
				if err != nil {
					b.Fatal(err)
				}
				entries += len(set) + len(del)
			}
			b.ReportMetric(float64(entries)/float64(b.N), "entries/record")
		})
	}
}
