package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// everyField is a valid result with every field of metrics.Result set.
func everyField() metrics.Result {
	return metrics.Result{
		V: 1, Metric: "latency_p95_by_service", Labels: map[string]string{"service": "checkout", "zone": "eu-1"},
		WindowStart: 1_431_856_800_000, WindowEnd: 1_431_856_860_000, Shard: 3, Complete: true,
		Kind: metrics.KindEarly, Revision: 7, Count: 1234, Sum: 5678.25, Min: -1.5, Max: 99.75, Value: 42.125,
		Watermark: 1_431_856_855_000, Agg: "p95", Unit: "ms", Distinct: 17.5,
		Quantiles:      map[string]float64{"p50": 12.5, "p90": 0, "p99": 80.25},
		TopK:           []metrics.KeyCount{{Key: "/a", Count: 9, Err: 1}, {Key: "/b", Count: 4}},
		DistinctSketch: []byte{0, 1, 2, 255, 0}, QuantileSketch: []byte("opaque sketch bytes"),
		Unchanged: true,
	}
}

func TestBinaryBatchRoundTrip(t *testing.T) {
	t.Parallel()
	in := []metrics.Result{everyField(), res("requests", 1), {V: 1, Metric: "m", WindowEnd: 1, Kind: metrics.KindFinal, Revision: 1}}
	b, err := metrics.EncodeBatchBinary(in)
	require.NoError(t, err)
	for _, schema := range []string{metrics.BatchSchemaV2, ""} {
		out, err := metrics.DecodeRecord(schema, b)
		require.NoError(t, err, schema)
		require.Equal(t, in, out, schema)
	}
	again, err := metrics.EncodeBatchBinary(in)
	require.NoError(t, err)
	require.Equal(t, b, again, "deterministic")

	js, err := metrics.EncodeBatch(in)
	require.NoError(t, err)
	require.Less(t, len(b), len(js)/2, "binary is less than half the JSON size")
}

// TestBinaryMatchesProto: the hand-written codec and the protobuf runtime
// reading metrics.proto agree both ways, with no field left unknown.
func TestBinaryMatchesProto(t *testing.T) {
	t.Parallel()
	files, err := (&protocompile.Compiler{Resolver: &protocompile.SourceResolver{}}).Compile(context.Background(), "metrics.proto")
	require.NoError(t, err)
	batchDesc := files[0].Messages().ByName("Batch")
	require.NotNil(t, batchDesc)

	in := []metrics.Result{everyField(), res("requests", 2)}
	b, err := metrics.EncodeBatchBinary(in)
	require.NoError(t, err)
	msg := dynamicpb.NewMessage(batchDesc)
	require.NoError(t, proto.Unmarshal(b, msg))
	require.Empty(t, msg.GetUnknown())
	require.EqualValues(t, 2, msg.Get(batchDesc.Fields().ByName("v")).Uint())
	list := msg.Get(batchDesc.Fields().ByName("results")).List()
	require.Equal(t, len(in), list.Len())

	// Every field by its JSON name (metrics.proto uses the JSON names).
	first := list.Get(0).Message()
	require.Empty(t, first.GetUnknown())
	var want map[string]any
	raw, err := json.Marshal(in[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &want))
	got := map[string]any{}
	first.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		got[string(fd.Name())] = protoValue(t, fd, v)
		return true
	})
	require.Equal(t, want, got)

	// The other way: the runtime's encoding decodes to the same results.
	back, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	require.NoError(t, err)
	out, err := metrics.DecodeRecord(metrics.BatchSchemaV2, back)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

// protoValue converts v to what encoding/json gives for the same field.
func protoValue(t *testing.T, fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	t.Helper()
	switch {
	case fd.IsMap():
		m := map[string]any{}
		v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			if fd.MapValue().Kind() == protoreflect.DoubleKind {
				m[k.String()] = v.Float()
			} else {
				m[k.String()] = v.String()
			}
			return true
		})
		return m
	case fd.IsList():
		var l []any
		for i := range v.List().Len() {
			kc := map[string]any{}
			v.List().Get(i).Message().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
				kc[string(fd.Name())] = protoValue(t, fd, v)
				return true
			})
			l = append(l, kc)
		}
		return l
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		b, err := json.Marshal(v.Bytes()) // base64, as encoding/json writes []byte
		require.NoError(t, err)
		var s string
		require.NoError(t, json.Unmarshal(b, &s))
		return s
	case protoreflect.Int64Kind, protoreflect.Int32Kind:
		return float64(v.Int())
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.DoubleKind:
		return v.Float()
	}
	return fmt.Sprintf("unexpected kind %s", fd.Kind())
}

func TestBinaryBatchRejects(t *testing.T) {
	t.Parallel()
	good, err := metrics.EncodeBatchBinary([]metrics.Result{everyField()})
	require.NoError(t, err)
	bad, err := metrics.EncodeBatchBinary([]metrics.Result{res("ok", 1), res("Bad-Name", 1)})
	require.NoError(t, err)
	v3 := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3)
	// Field 4 (window_start) as a string: wrong wire type.
	wrongType := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), []byte("x"))
	wrong := protowire.AppendBytes(protowire.AppendTag(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 2), 2, protowire.BytesType), wrongType)
	for name, tc := range map[string]struct {
		payload []byte
		want    string
	}{
		"truncated":    {good[:len(good)-3], "truncated"},
		"version 3":    {v3, "batch version 3"},
		"invalid":      {bad, "result 1"},
		"wire type":    {wrong, "result 0: field 4: wire type 2"},
		"only version": {good[:2], ""},
	} {
		rs, err := metrics.DecodeRecord(metrics.BatchSchemaV2, tc.payload)
		if tc.want == "" {
			require.NoError(t, err, name)
			require.Empty(t, rs, name)
			continue
		}
		require.ErrorIs(t, err, metrics.ErrUndecodable, name)
		require.ErrorContains(t, err, tc.want, name)
	}

	// Unknown fields (a newer writer) are skipped.
	withUnknown := protowire.AppendString(protowire.AppendTag(append([]byte(nil), good...), 99, protowire.BytesType), "future")
	out, err := metrics.DecodeRecord(metrics.BatchSchemaV2, withUnknown)
	require.NoError(t, err)
	require.Equal(t, []metrics.Result{everyField()}, out)
}

// FuzzDecodeBinaryBatch: decoding never panics, and what decodes encodes
// back to a payload that decodes to the same results.
func FuzzDecodeBinaryBatch(f *testing.F) {
	good, err := metrics.EncodeBatchBinary([]metrics.Result{everyField(), res("requests", 1)})
	require.NoError(f, err)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x08, 0x02})
	f.Fuzz(func(t *testing.T, payload []byte) {
		rs, err := metrics.DecodeRecord(metrics.BatchSchemaV2, payload)
		if err != nil {
			return
		}
		for _, r := range rs {
			if math.IsNaN(r.Value) || math.IsNaN(r.Sum) {
				return // NaN != NaN: the comparison below does not hold
			}
		}
		b, err := metrics.EncodeBatchBinary(rs)
		require.NoError(t, err)
		again, err := metrics.DecodeRecord(metrics.BatchSchemaV2, b)
		require.NoError(t, err)
		require.Equal(t, rs, again)
	})
}

// BenchmarkDecodeRecord compares decoding the same 500 results in both
// schemas (the size of an aggregator record).
func BenchmarkDecodeRecord(b *testing.B) {
	rs := make([]metrics.Result, 500)
	for i := range rs {
		rs[i] = everyField()
		rs[i].Labels = map[string]string{"service": fmt.Sprintf("svc-%d", i)}
		rs[i].TopK, rs[i].Quantiles, rs[i].DistinctSketch, rs[i].QuantileSketch = nil, nil, nil, nil
	}
	js, err := metrics.EncodeBatch(rs)
	require.NoError(b, err)
	bin, err := metrics.EncodeBatchBinary(rs)
	require.NoError(b, err)
	for _, c := range []struct {
		name, schema string
		payload      []byte
	}{{"json", metrics.BatchSchema, js}, {"binary", metrics.BatchSchemaV2, bin}} {
		b.Run("decode-"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := metrics.DecodeRecord(c.schema, c.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A minute boundary's record: nine in ten results are Unchanged
	// finals, which the live view leaves out (DecodeRecordChanged).
	boundary := slices.Clone(rs)
	for i := range boundary {
		boundary[i].Kind, boundary[i].Unchanged = metrics.KindFinal, i%10 != 9
	}
	bb, err := metrics.EncodeBatchBinary(boundary)
	require.NoError(b, err)
	b.Run("boundary-all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := metrics.DecodeRecord(metrics.BatchSchemaV2, bb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("boundary-changed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := metrics.DecodeRecordChanged(metrics.BatchSchemaV2, bb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = metrics.EncodeBatch(rs)
		}
	})
	b.Run("encode-binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = metrics.EncodeBatchBinary(rs)
		}
	})
}
