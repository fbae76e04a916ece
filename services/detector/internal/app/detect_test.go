package app_test

import (
	"encoding/json"
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

func TestApplyDecodesSingleAndBatchRecords(t *testing.T) {
	t.Parallel()
	file, err := rules.Parse("defaults", []byte(rules.DefaultRules))
	require.NoError(t, err)
	live, err := app.NewRules(file)
	require.NoError(t, err)
	d := app.NewDetect(live)
	st := d.NewState(0)

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
