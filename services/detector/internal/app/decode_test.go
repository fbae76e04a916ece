package app

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// TestDecodeResultsIsDecodeRecord checks the fast path against
// metrics.DecodeRecord: the same results for records with every field set,
// the same error for every kind of bad record.
func TestDecodeResultsIsDecodeRecord(t *testing.T) {
	t.Parallel()
	full := metrics.Result{
		V: 1, Metric: "latency_by_service", Labels: map[string]string{"service": "api \"eu\"", "zone": "ä"},
		WindowStart: 60_000, WindowEnd: 120_000, Shard: 3, Complete: true, Kind: metrics.KindFinal, Revision: 2,
		Count: 7, Sum: 1.5e3, Min: -2, Max: 1e300, Value: 0.125, Watermark: 119_000, Agg: "p99", Unit: "ms",
		Distinct: 4.5, Quantiles: map[string]float64{"p50": 1, "p99": 2.5},
		TopK:           []metrics.KeyCount{{Key: "/a", Count: 3}},
		DistinctSketch: []byte{0, 1, 2, 255}, QuantileSketch: []byte("sketch"),
	}
	early := full
	early.Kind, early.Labels, early.TopK = metrics.KindEarly, nil, nil
	good, err := metrics.EncodeBatch([]metrics.Result{full, early})
	require.NoError(t, err)
	cases := map[string]struct{ schema, payload string }{
		"batch":              {metrics.BatchSchema, string(good)},
		"no schema":          {"", string(good)},
		"invalid result":     {metrics.BatchSchema, `{"v":1,"results":[{"v":2}]}`},
		"bad metric name":    {metrics.BatchSchema, `{"v":1,"results":[{"v":1,"metric":"A b","window_start":0,"window_end":1,"kind":"final","revision":1}]}`},
		"batch version":      {metrics.BatchSchema, `{"v":2,"results":[]}`},
		"not json":           {metrics.BatchSchema, `{"v":1,"results":[`},
		"wrong field type":   {metrics.BatchSchema, `{"v":1,"results":[{"v":"1"}]}`},
		"single result":      {metrics.ResultSchema, `{"v":1,"metric":"m","window_start":0,"window_end":1,"kind":"early","revision":1}`},
		"unknown schema":     {"metrics.windows.batch.v9", string(good)},
		"empty batch":        {metrics.BatchSchema, `{"v":1,"results":[]}`},
		"negative count":     {metrics.BatchSchema, `{"v":1,"results":[{"v":1,"metric":"m","window_start":0,"window_end":1,"kind":"final","revision":1,"count":-1}]}`},
		"unknown field kept": {metrics.BatchSchema, `{"v":1,"future":true,"results":[{"v":1,"metric":"m","window_start":0,"window_end":1,"kind":"final","revision":1,"new":[1]}]}`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, wantErr := metrics.DecodeRecord(c.schema, []byte(c.payload))
			got, err := decodeResults(c.schema, []byte(c.payload))
			if wantErr != nil {
				require.EqualError(t, err, wantErr.Error())
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}
