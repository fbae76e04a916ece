package metrics_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

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

// TestDecodeRecordChangedLeavesOutUnchanged: in every schema,
// DecodeRecordChanged returns exactly DecodeRecord's results without the
// Unchanged ones, in order; a binary batch's truncated Unchanged result is
// still an error naming its index.
func TestDecodeRecordChangedLeavesOutUnchanged(t *testing.T) {
	t.Parallel()
	var in []metrics.Result
	for i := range 9 {
		r := everyField()
		r.Metric = "m" + string(rune('a'+i))
		r.Unchanged = i%3 != 1 // two in three, the first and last among them
		in = append(in, r)
	}
	var want []metrics.Result
	for _, r := range in {
		if !r.Unchanged {
			want = append(want, r)
		}
	}
	require.Len(t, want, 3)
	bin, err := metrics.EncodeBatchBinary(in)
	require.NoError(t, err)
	js, err := metrics.EncodeBatch(in)
	require.NoError(t, err)
	for schema, payload := range map[string][]byte{metrics.BatchSchemaV2: bin, "": bin, metrics.BatchSchema: js} {
		all, err := metrics.DecodeRecord(schema, payload)
		require.NoError(t, err, schema)
		require.Len(t, all, len(in), schema)
		got, err := metrics.DecodeRecordChanged(schema, payload)
		require.NoError(t, err, schema)
		require.Equal(t, want, got, schema)
	}

	one, err := json.Marshal(in[0])
	require.NoError(t, err)
	got, err := metrics.DecodeRecordChanged(metrics.ResultSchema, one)
	require.NoError(t, err)
	require.Empty(t, got, "a single Unchanged result")

	allUnchanged, err := metrics.EncodeBatchBinary([]metrics.Result{in[0], in[2]})
	require.NoError(t, err)
	got, err = metrics.DecodeRecordChanged(metrics.BatchSchemaV2, allUnchanged)
	require.NoError(t, err)
	require.Empty(t, got)

	// Cut the payload inside the last result (Unchanged): the framing of
	// the batch is broken there.
	_, err = metrics.DecodeRecordChanged(metrics.BatchSchemaV2, bin[:len(bin)-3])
	require.ErrorIs(t, err, metrics.ErrUndecodable)

	// A result whose own fields do not parse is decoded (and fails)
	// rather than skipped; its index counts the skipped result before it.
	first, err := metrics.EncodeBatchBinary(in[:1]) // version + one Unchanged result
	require.NoError(t, err)
	broken := protowire.AppendTag(nil, 2, protowire.BytesType) // metric, claiming 100 bytes
	broken = protowire.AppendVarint(broken, 100)
	payload := protowire.AppendTag(first, 2, protowire.BytesType) // batch field 2: a result
	payload = protowire.AppendBytes(payload, broken)
	_, err = metrics.DecodeRecordChanged(metrics.BatchSchemaV2, payload)
	require.ErrorIs(t, err, metrics.ErrUndecodable)
	require.ErrorContains(t, err, "result 1")
}

// TestDecodeRecordSelectLeavesOutOtherMetrics: in every batch schema,
// DecodeRecordSelect returns DecodeRecord's results of the metrics keep
// accepts, in order, and hands the shard and watermark of every other
// result to skipped, in order; in a binary batch an invalid result of a
// left-out metric is not decoded, so not an error, while one of a kept
// metric is, named by its index among all results.
func TestDecodeRecordSelectLeavesOutOtherMetrics(t *testing.T) {
	t.Parallel()
	var in []metrics.Result
	for i := range 8 {
		r := res("other", 1)
		if i%4 == 1 {
			r.Metric = "read"
		}
		r.Shard, r.Watermark = int32(i), int64(1000*i)
		in = append(in, r)
	}
	keep := func(m []byte) bool { return string(m) == "read" }
	bin, err := metrics.EncodeBatchBinary(in)
	require.NoError(t, err)
	js, err := metrics.EncodeBatch(in)
	require.NoError(t, err)
	for schema, payload := range map[string][]byte{metrics.BatchSchemaV2: bin, metrics.BatchSchema: js} {
		type mark struct {
			shard int32
			wm    int64
		}
		var marks []mark
		got, err := metrics.DecodeRecordSelect(schema, payload, keep, func(s int32, wm int64) { marks = append(marks, mark{s, wm}) })
		require.NoError(t, err, schema)
		require.Equal(t, []metrics.Result{in[1], in[5]}, got, schema)
		require.Equal(t, []mark{{0, 0}, {2, 2000}, {3, 3000}, {4, 4000}, {6, 6000}, {7, 7000}}, marks, schema)
	}

	broken := slices.Clone(in)
	broken[2].Revision = 0 // invalid, of a left-out metric
	b, err := metrics.EncodeBatchBinary(broken)
	require.NoError(t, err)
	got, err := metrics.DecodeRecordSelect(metrics.BatchSchemaV2, b, keep, nil)
	require.NoError(t, err, "a left-out result is not validated")
	require.Len(t, got, 2)
	_, err = metrics.DecodeRecord(metrics.BatchSchemaV2, b)
	require.ErrorContains(t, err, "result 2")

	broken[5].Revision = 0 // invalid, of a kept metric
	b, err = metrics.EncodeBatchBinary(broken)
	require.NoError(t, err)
	_, err = metrics.DecodeRecordSelect(metrics.BatchSchemaV2, b, keep, nil)
	require.ErrorIs(t, err, metrics.ErrUndecodable)
	require.ErrorContains(t, err, "result 5")
}
