package metrics_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

func res(metric string, rev int64) metrics.Result {
	return metrics.Result{V: 1, Metric: metric, WindowStart: 0, WindowEnd: 60000, Kind: metrics.KindFinal, Revision: rev, Count: 3, Value: 3}
}

func TestDecodeRecordBothSchemas(t *testing.T) {
	t.Parallel()
	one, err := json.Marshal(res("requests", 1))
	require.NoError(t, err)
	many, err := metrics.EncodeBatch([]metrics.Result{res("a", 1), res("b", 2)})
	require.NoError(t, err)
	for _, tc := range []struct {
		schema  string
		payload []byte
		want    int
	}{
		{metrics.ResultSchema, one, 1}, {"", one, 1}, {metrics.BatchSchema, many, 2}, {"", many, 2},
	} {
		rs, err := metrics.DecodeRecord(tc.schema, tc.payload)
		require.NoError(t, err)
		require.Len(t, rs, tc.want)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	t.Parallel()
	bad, _ := metrics.EncodeBatch([]metrics.Result{res("ok", 1), res("Bad-Name", 1)})
	for name, tc := range map[string]struct {
		schema, payload, want string
	}{
		"garbage":        {metrics.ResultSchema, "{", "metrics.window.v1"},
		"unknown schema": {"x.v9", "{}", `unknown schema "x.v9"`},
		"bad in batch":   {metrics.BatchSchema, string(bad), "result 1"},
		"zero revision":  {metrics.ResultSchema, `{"v":1,"metric":"m","window_start":0,"window_end":1,"kind":"final","revision":0}`, "revision 0"},
		"batch version":  {metrics.BatchSchema, `{"v":2,"results":[]}`, "batch version 2"},
		"end before start": {metrics.ResultSchema, `{"v":1,"metric":"m","window_start":120000,"window_end":60000,"kind":"final","revision":1}`,
			"window end 60000 not after start 120000"},
		"negative count": {metrics.ResultSchema, `{"v":1,"metric":"m","window_start":0,"window_end":60000,"kind":"final","revision":1,"count":-3}`,
			"negative count -3"},
		"year 9999": {metrics.ResultSchema, `{"v":1,"metric":"m","window_start":253402300740000,"window_end":253402300800000,"kind":"final","revision":1}`,
			"outside 0..4102444800000"},
	} {
		_, err := metrics.DecodeRecord(tc.schema, []byte(tc.payload))
		require.ErrorIs(t, err, metrics.ErrUndecodable, name)
		require.ErrorContains(t, err, tc.want, name)
	}
}
