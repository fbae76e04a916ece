package app_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/services/detector/internal/app"
)

func result(ip string, start, value int64) metrics.Result {
	return metrics.Result{
		V: 1, Metric: "requests_by_client", Labels: map[string]string{"client_ip": ip},
		WindowStart: start, WindowEnd: start + 60_000, Complete: true, Kind: metrics.KindFinal,
		Revision: 1, Count: value, Value: float64(value), Watermark: start + 60_000,
	}
}

// defaultDetect returns the operator under the built-in rules and a new
// partition state.
func defaultDetect(t *testing.T) (*app.Detect, *app.WindowsState) {
	t.Helper()
	file, err := rules.Parse("defaults", []byte(rules.DefaultRules))
	require.NoError(t, err)
	live, err := app.NewRules(file)
	require.NoError(t, err)
	d := app.NewDetect(live)
	return d, d.NewState(0)
}

func TestApplyDecodesSingleAndBatchRecords(t *testing.T) {
	t.Parallel()
	d, st := defaultDetect(t)

	single, err := json.Marshal(result("1.1.1.1", 0, 150))
	require.NoError(t, err)
	msg := message.NewMessage("a", single)
	msg.Metadata.Set(messaging.MetaSchema, metrics.ResultSchema)
	outs, err := d.Apply(t.Context(), st, msg, 1)
	require.NoError(t, err)
	require.Len(t, outs, 1)

	batch, err := metrics.EncodeBatch([]metrics.Result{result("2.2.2.2", 0, 101), result("3.3.3.3", 0, 100), result("4.4.4.4", 0, 500)})
	require.NoError(t, err)
	msg = message.NewMessage("b", batch)
	msg.Metadata.Set(messaging.MetaSchema, metrics.BatchSchema)
	outs, err = d.Apply(t.Context(), st, msg, 2)
	require.NoError(t, err)
	require.Len(t, outs, 2, "101 and 500 breach > 100; 100 does not")
	var a alerts.Alert
	require.NoError(t, json.Unmarshal(outs[0].Payload, &a))
	require.Equal(t, "2.2.2.2", a.Labels["client_ip"])
	require.Equal(t, alerts.StateFiring, a.State)

	msg = message.NewMessage("c", []byte(`{"v":1,"results":[{"v":2}]}`))
	_, err = d.Apply(t.Context(), st, msg, 3)
	require.True(t, messaging.IsPermanent(err), "bad batch is poison: %v", err)
}

// TestApplyFollowsWatermarksOfMetricsNoRuleReads: results of metrics no rule
// reads are not evaluated, but their watermarks still move the shard's
// watermark: a firing alert resolves when only such results pass the end
// of its breach, and a poison result of such a metric in a binary batch is
// not the detector's concern.
func TestApplyFollowsWatermarksOfMetricsNoRuleReads(t *testing.T) {
	t.Parallel()
	d, st := defaultDetect(t)
	record := func(offset int64, rs ...metrics.Result) *message.Message {
		b, err := metrics.EncodeBatchBinary(rs)
		require.NoError(t, err)
		msg := message.NewMessage(strconv.FormatInt(offset, 10), b)
		msg.Metadata.Set(messaging.MetaSchema, metrics.BatchSchemaV2)
		return msg
	}
	outs, err := d.Apply(t.Context(), st, record(1, result("1.1.1.1", 0, 150)), 1)
	require.NoError(t, err)
	require.Len(t, outs, 1, "fires")

	other := result("", 2*60_000, 7) // [2m, 3m) of a metric no rule reads
	other.Metric, other.Labels = "requests", nil
	poison := other
	poison.WindowEnd = poison.WindowStart - 1 // invalid, but not read
	outs, err = d.Apply(t.Context(), st, record(2, other, poison), 2)
	require.NoError(t, err)
	require.Len(t, outs, 1, "the watermark of 3m passed the breach [0, 1m) and its silence: resolved")
	var a alerts.Alert
	require.NoError(t, json.Unmarshal(outs[0].Payload, &a))
	require.Equal(t, alerts.StateResolved, a.State)
	require.Equal(t, "1.1.1.1", a.Labels["client_ip"])

	bad := result("2.2.2.2", 3*60_000, 1)
	bad.Revision = 0 // invalid, of a metric a rule reads
	_, err = d.Apply(t.Context(), st, record(3, other, bad), 3)
	require.True(t, messaging.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "result 1")
}
