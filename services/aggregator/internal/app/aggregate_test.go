package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

func batchMsg(t *testing.T, evs []events.Event) *message.Message {
	t.Helper()
	p, err := events.EncodeBatch(evs)
	require.NoError(t, err)
	return message.NewMessage("x", p)
}

func httpEv(id string, tm int64, ip string) events.Event {
	return events.Event{V: 1, ID: id, Type: events.TypeHTTPRequest, Time: tm, Key: ip, ClientIP: ip, Method: "GET", Status: 200, Bytes: 10}
}

// TestApplyEmitsBatchRecordsAndLateEvents runs the operator over the
// built-in set: final results leave as metrics.windows batch records that
// metrics.DecodeRecord reads, one metric per record keyed by the metric;
// events beyond lateness leave on events.late; a poison batch is permanent.
func TestApplyEmitsBatchRecordsAndLateEvents(t *testing.T) {
	t.Parallel()
	defs, err := metrics.Defaults()
	require.NoError(t, err)
	op := app.NewAggregate(app.Settings{Definitions: defs, Window: window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 10_000},
		Clock: func() time.Time { return time.UnixMilli(1) }})
	ctx := context.Background()
	st := op.NewState(2)
	var evs []events.Event
	for i := range 1200 { // 1,200 clients: requests_by_client needs three records
		evs = append(evs, httpEv(fmt.Sprint(i), benchT0+int64(i), fmt.Sprintf("10.0.%d.%d", i/250, i%250)))
	}
	outs, err := op.Apply(ctx, st, batchMsg(t, evs), 0)
	require.NoError(t, err)
	require.Empty(t, outs, "nothing due yet")

	outs, err = op.Apply(ctx, st, batchMsg(t, []events.Event{httpEv("later", benchT0+400_000, "1.1.1.1")}), 1)
	require.NoError(t, err)
	perMetric := map[string]int{}
	records := map[string]int{}
	for _, o := range outs {
		require.Equal(t, messaging.TopicMetricsWindows, o.Topic)
		require.Equal(t, metrics.BatchSchemaV2, o.Metadata[messaging.MetaSchema])
		rs, err := metrics.DecodeRecord(o.Metadata[messaging.MetaSchema], o.Payload)
		require.NoError(t, err)
		for _, r := range rs {
			require.Equal(t, o.Key, r.Metric, "one metric per record, keyed by it")
			require.Equal(t, metrics.KindFinal, r.Kind)
			require.EqualValues(t, 2, r.Shard)
			perMetric[r.Metric]++
		}
		records[o.Key]++
	}
	require.Equal(t, 1200, perMetric["requests_by_client"])
	require.Equal(t, 3, records["requests_by_client"])
	require.Equal(t, 1, perMetric["requests"])

	outs, err = op.Apply(ctx, st, batchMsg(t, []events.Event{httpEv("too-late", benchT0, "1.1.1.1")}), 2)
	require.NoError(t, err)
	require.Len(t, outs, 1)
	require.Equal(t, messaging.TopicEventsLate, outs[0].Topic)
	late, err := events.DecodeBatch(outs[0].Payload)
	require.NoError(t, err)
	require.Equal(t, "too-late", late[0].ID)

	_, err = op.Apply(ctx, st, message.NewMessage("x", []byte("{")), 3)
	require.True(t, messaging.IsPermanent(err))

	g := op.Gauges()[2]
	require.Positive(t, g.Windows)
	require.Equal(t, benchT0+400_000-5_000, g.Watermark)
}

// TestDuplicatesInOneRecordCountOnce is the regression test of the
// duplicate check as it is compiled into this package's callers (it once
// counted a duplicate in the same batch twice here while the window
// package's own tests passed).
func TestDuplicatesInOneRecordCountOnce(t *testing.T) {
	t.Parallel()
	defs, err := metrics.ParseDefinitions("x.yaml", []byte("metrics:\n  - name: requests\n    window: {size: 1m}\n"))
	require.NoError(t, err)
	e := window.NewEngine(defs, window.Config{OutOfOrderness: 5_000, AllowedLateness: 60_000, IdleTimeout: 300_000})
	s := window.NewState(0)
	ev := httpEv("1", benchT0, "1.1.1.1")
	out := e.Add(s, []events.Event{ev, ev, httpEv("2", benchT0, "1.1.1.1"), ev}, 1)
	require.Equal(t, 2, out.Accepted)
	require.Equal(t, 2, out.Duplicates)
	require.Equal(t, 2, s.SeenIDs())
}
