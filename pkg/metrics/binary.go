package metrics

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/streamwatch/streamwatch/pkg/internal/wire"
)

// BatchSchemaV2 is the schema metadata of a metrics.windows record in the
// binary batch format: the Protocol Buffers wire format
// (https://protobuf.dev/programming-guides/encoding/) of Batch in
// metrics.proto next to this file, written and read by hand with protowire
// (no generated code, no reflection) as pkg/events does for events.raw.
// TestBinaryMatchesProto checks the codec against that file. Sketches travel
// as raw bytes instead of base64 in JSON, and numbers as varints and
// fixed64 doubles instead of decimal text.
//
// A v2 payload starts with field 1 (the batch version, varint 2): bytes
// 0x08 0x02; a JSON payload starts with '{' or whitespace, so DecodeRecord
// tells them apart when the schema metadata is missing. Consumers read both
// schemas (records of earlier builds stay readable for replays).
const BatchSchemaV2 = "metrics.windows.batch.v2"

// Field numbers of metrics.proto.
const (
	fieldBatchV       = 1
	fieldBatchResults = 2

	fieldV              = 1
	fieldMetric         = 2
	fieldLabels         = 3
	fieldWindowStart    = 4
	fieldWindowEnd      = 5
	fieldShard          = 6
	fieldComplete       = 7
	fieldKind           = 8
	fieldRevision       = 9
	fieldCount          = 10
	fieldSum            = 11
	fieldMin            = 12
	fieldMax            = 13
	fieldValue          = 14
	fieldWatermark      = 15
	fieldAgg            = 16
	fieldUnit           = 17
	fieldDistinct       = 18
	fieldQuantiles      = 19
	fieldTopK           = 20
	fieldDistinctSketch = 21
	fieldQuantileSketch = 22
	fieldUnchanged      = 23

	fieldMapKey   = 1
	fieldMapValue = 2

	fieldKCKey   = 1
	fieldKCCount = 2
	fieldKCErr   = 3
)

// binaryBatchVersion is the batch version a v2 payload carries in field 1.
const binaryBatchVersion = 2

// errTruncated is wrapped when a binary payload ends inside a field.
var errTruncated = errors.New("truncated or malformed protobuf field")

// isBinaryBatch reports whether payload starts with the tag of field 1 as a
// varint (0x08), as every v2 payload does.
func isBinaryBatch(payload []byte) bool {
	return len(payload) > 0 && payload[0] == byte(protowire.EncodeTag(fieldBatchV, protowire.VarintType))
}

// EncodeBatchBinary encodes rs as one record payload of schema
// BatchSchemaV2. Zero fields are left out, as proto3 does, and map entries
// are written in key order, so equal results encode to equal bytes. It
// never fails on valid results; the error is for symmetry with EncodeBatch.
func EncodeBatchBinary(rs []Result) ([]byte, error) {
	return AppendBatchBinary(make([]byte, 0, 64+200*len(rs)), rs), nil
}

// AppendBatchBinary appends the encoding of EncodeBatchBinary to dst and
// returns the extended slice.
func AppendBatchBinary(dst []byte, rs []Result) []byte {
	dst = protowire.AppendTag(dst, fieldBatchV, protowire.VarintType)
	dst = protowire.AppendVarint(dst, binaryBatchVersion)
	var keys []string // reused across results
	for i := range rs {
		var start int
		dst, start = wire.BeginMessage(dst, fieldBatchResults)
		dst, keys = appendResult(dst, &rs[i], keys)
		dst = wire.EndMessage(dst, start)
	}
	return dst
}

// appendResult appends the fields of r; keys is scratch space for sorting
// map keys, returned for reuse.
func appendResult(b []byte, r *Result, keys []string) ([]byte, []string) {
	b = wire.AppendInt(b, fieldV, int64(r.V))
	b = wire.AppendString(b, fieldMetric, r.Metric)
	b, keys = wire.AppendStringMap(b, fieldLabels, r.Labels, keys)
	b = wire.AppendInt(b, fieldWindowStart, r.WindowStart)
	b = wire.AppendInt(b, fieldWindowEnd, r.WindowEnd)
	b = wire.AppendInt(b, fieldShard, int64(r.Shard))
	if r.Complete {
		b = wire.AppendInt(b, fieldComplete, 1)
	}
	b = wire.AppendString(b, fieldKind, r.Kind)
	b = wire.AppendInt(b, fieldRevision, r.Revision)
	b = wire.AppendInt(b, fieldCount, r.Count)
	b = wire.AppendDouble(b, fieldSum, r.Sum)
	b = wire.AppendDouble(b, fieldMin, r.Min)
	b = wire.AppendDouble(b, fieldMax, r.Max)
	b = wire.AppendDouble(b, fieldValue, r.Value)
	b = wire.AppendInt(b, fieldWatermark, r.Watermark)
	b = wire.AppendString(b, fieldAgg, r.Agg)
	b = wire.AppendString(b, fieldUnit, r.Unit)
	b = wire.AppendDouble(b, fieldDistinct, r.Distinct)
	keys = slices.AppendSeq(keys[:0], maps.Keys(r.Quantiles))
	slices.Sort(keys)
	for _, k := range keys {
		// A map value is written even when zero, as the protobuf runtime
		// does.
		size := wire.SizeString(fieldMapKey, k) + protowire.SizeTag(fieldMapValue) + protowire.SizeFixed64()
		b = protowire.AppendTag(b, fieldQuantiles, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = wire.AppendString(b, fieldMapKey, k)
		b = protowire.AppendTag(b, fieldMapValue, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(r.Quantiles[k]))
	}
	for i := range r.TopK {
		kc := &r.TopK[i]
		size := wire.SizeString(fieldKCKey, kc.Key) + wire.SizeInt(fieldKCCount, kc.Count) + wire.SizeInt(fieldKCErr, kc.Err)
		b = protowire.AppendTag(b, fieldTopK, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = wire.AppendString(b, fieldKCKey, kc.Key)
		b = wire.AppendInt(b, fieldKCCount, kc.Count)
		b = wire.AppendInt(b, fieldKCErr, kc.Err)
	}
	b = wire.AppendBytes(b, fieldDistinctSketch, r.DistinctSketch)
	b = wire.AppendBytes(b, fieldQuantileSketch, r.QuantileSketch)
	if r.Unchanged {
		b = wire.AppendInt(b, fieldUnchanged, 1)
	}
	return b, keys
}

// decodeBinaryBatch decodes a BatchSchemaV2 payload. Unknown fields are
// skipped (a newer writer may add some); a version other than 2, a field
// of the wrong wire type or a truncated payload is an error naming the
// result index. Every decoded result is validated (Result.Validate), the
// error naming its index. A result for which skip (may be nil) reports
// true, given the result message's bytes, is left out without being
// decoded or validated.
func decodeBinaryBatch(p []byte, skip func(msg []byte) bool) ([]Result, error) {
	var (
		rs      []Result
		version uint64
		index   int // of the next result, skipped ones included
	)
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return nil, fmt.Errorf("batch: %w", errTruncated)
		}
		p = p[n:]
		switch {
		case num == fieldBatchV && typ == protowire.VarintType:
			version, n = protowire.ConsumeVarint(p)
		case num == fieldBatchResults && typ == protowire.BytesType:
			var msg []byte
			msg, n = protowire.ConsumeBytes(p)
			if n >= 0 && (skip == nil || !skip(msg)) {
				var r Result
				if err := decodeResult(msg, &r); err != nil {
					return nil, fmt.Errorf("result %d: %w", index, err)
				}
				if err := r.Validate(); err != nil {
					return nil, fmt.Errorf("result %d: %w", index, err)
				}
				rs = append(rs, r)
			}
			index++
		case num == fieldBatchV || num == fieldBatchResults:
			return nil, fmt.Errorf("batch field %d: wire type %d", num, typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, p)
		}
		if n < 0 {
			return nil, fmt.Errorf("batch: %w", errTruncated)
		}
		p = p[n:]
	}
	if version != binaryBatchVersion {
		return nil, fmt.Errorf("batch version %d (this build reads %d)", version, binaryBatchVersion)
	}
	return rs, nil
}

// wireType is the wire type of each field of Result (fields 1 to 23).
var wireType = [...]protowire.Type{
	fieldV: protowire.VarintType, fieldMetric: protowire.BytesType, fieldLabels: protowire.BytesType,
	fieldWindowStart: protowire.VarintType, fieldWindowEnd: protowire.VarintType, fieldShard: protowire.VarintType,
	fieldComplete: protowire.VarintType, fieldKind: protowire.BytesType, fieldRevision: protowire.VarintType,
	fieldCount: protowire.VarintType, fieldSum: protowire.Fixed64Type, fieldMin: protowire.Fixed64Type,
	fieldMax: protowire.Fixed64Type, fieldValue: protowire.Fixed64Type, fieldWatermark: protowire.VarintType,
	fieldAgg: protowire.BytesType, fieldUnit: protowire.BytesType, fieldDistinct: protowire.Fixed64Type,
	fieldQuantiles: protowire.BytesType, fieldTopK: protowire.BytesType, fieldDistinctSketch: protowire.BytesType,
	fieldQuantileSketch: protowire.BytesType, fieldUnchanged: protowire.VarintType,
}

// resultHead is what DecodeRecordChanged and DecodeRecordSelect read of a
// result they may leave out; metric aliases the message.
type resultHead struct {
	metric    []byte
	shard     int32
	watermark int64
	unchanged bool
}

// peekHead reads the metric, shard, watermark and unchanged fields of the
// Result message p, only skipping the values of the others: ~10 times
// cheaper than decodeResult, which allocates the label map and strings.
// ok is false when p does not parse (the caller then decodes it, and
// decodeResult names the error).
func peekHead(p []byte) (h resultHead, ok bool) {
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return h, false
		}
		p = p[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(p)
			if n < 0 {
				return h, false
			}
			switch num {
			case fieldShard:
				h.shard = int32(v)
			case fieldWatermark:
				h.watermark = int64(v)
			case fieldUnchanged:
				h.unchanged = v != 0
			}
			p = p[n:]
		case protowire.Fixed64Type:
			if len(p) < 8 {
				return h, false
			}
			p = p[8:]
		case protowire.BytesType:
			b, n := protowire.ConsumeBytes(p)
			if n < 0 {
				return h, false
			}
			if num == fieldMetric {
				h.metric = b
			}
			p = p[n:]
		default: // groups and fixed32: not written by this codec
			if n = protowire.ConsumeFieldValue(num, typ, p); n < 0 {
				return h, false
			}
			p = p[n:]
		}
	}
	return h, true
}

// decodeResult fills r from one Result message.
func decodeResult(p []byte, r *Result) error {
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return errTruncated
		}
		p = p[n:]
		if num < fieldV || num > fieldUnchanged { // unknown: a newer writer's
			if n = protowire.ConsumeFieldValue(num, typ, p); n < 0 {
				return errTruncated
			}
			p = p[n:]
			continue
		}
		if typ != wireType[num] {
			return fmt.Errorf("field %d: wire type %d, want %d", num, typ, wireType[num])
		}
		var (
			v uint64
			b []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(p)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(p)
		default:
			b, n = protowire.ConsumeBytes(p)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, errTruncated)
		}
		p = p[n:]
		if err := setField(r, num, v, b); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	return nil
}

// setField stores the value of field num: v for varint and fixed64
// fields, b for length-delimited ones (copied where kept).
func setField(r *Result, num protowire.Number, v uint64, b []byte) error {
	f := math.Float64frombits(v)
	switch num {
	case fieldV:
		r.V = int(int32(v))
	case fieldMetric:
		r.Metric = string(b)
	case fieldLabels:
		k, val, _, err := decodeEntry(b, protowire.BytesType)
		if err != nil {
			return err
		}
		if r.Labels == nil {
			r.Labels = make(map[string]string, 4)
		}
		r.Labels[k] = string(val)
	case fieldWindowStart:
		r.WindowStart = int64(v)
	case fieldWindowEnd:
		r.WindowEnd = int64(v)
	case fieldShard:
		r.Shard = int32(v)
	case fieldComplete:
		r.Complete = v != 0
	case fieldKind:
		r.Kind = string(b)
	case fieldRevision:
		r.Revision = int64(v)
	case fieldCount:
		r.Count = int64(v)
	case fieldSum:
		r.Sum = f
	case fieldMin:
		r.Min = f
	case fieldMax:
		r.Max = f
	case fieldValue:
		r.Value = f
	case fieldWatermark:
		r.Watermark = int64(v)
	case fieldAgg:
		r.Agg = string(b)
	case fieldUnit:
		r.Unit = string(b)
	case fieldDistinct:
		r.Distinct = f
	case fieldQuantiles:
		k, _, bits, err := decodeEntry(b, protowire.Fixed64Type)
		if err != nil {
			return err
		}
		if r.Quantiles == nil {
			r.Quantiles = make(map[string]float64, 4)
		}
		r.Quantiles[k] = math.Float64frombits(bits)
	case fieldTopK:
		kc, err := decodeKeyCount(b)
		if err != nil {
			return err
		}
		r.TopK = append(r.TopK, kc)
	case fieldDistinctSketch:
		r.DistinctSketch = append([]byte(nil), b...)
	case fieldQuantileSketch:
		r.QuantileSketch = append([]byte(nil), b...)
	case fieldUnchanged:
		r.Unchanged = v != 0
	}
	return nil
}

// decodeEntry decodes a map entry: its string key and its value, the
// bytes of a string value (valueType BytesType) or the bits of a double
// (Fixed64Type); a missing value is the zero value.
func decodeEntry(p []byte, valueType protowire.Type) (key string, str []byte, bits uint64, err error) {
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return "", nil, 0, errTruncated
		}
		p = p[n:]
		switch {
		case num == fieldMapKey && typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(p)
			key = string(b)
		case num == fieldMapValue && typ == valueType && typ == protowire.BytesType:
			str, n = protowire.ConsumeBytes(p)
		case num == fieldMapValue && typ == valueType && typ == protowire.Fixed64Type:
			bits, n = protowire.ConsumeFixed64(p)
		case num == fieldMapKey || num == fieldMapValue:
			return "", nil, 0, fmt.Errorf("map entry field %d: wire type %d", num, typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, p)
		}
		if n < 0 {
			return "", nil, 0, errTruncated
		}
		p = p[n:]
	}
	return key, str, bits, nil
}

// decodeKeyCount decodes one KeyCount message.
func decodeKeyCount(p []byte) (KeyCount, error) {
	var kc KeyCount
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return kc, errTruncated
		}
		p = p[n:]
		switch {
		case num == fieldKCKey && typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(p)
			kc.Key = string(b)
		case (num == fieldKCCount || num == fieldKCErr) && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(p)
			if num == fieldKCCount {
				kc.Count = int64(v)
			} else {
				kc.Err = int64(v)
			}
		case num == fieldKCKey || num == fieldKCCount || num == fieldKCErr:
			return kc, fmt.Errorf("topk field %d: wire type %d", num, typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, p)
		}
		if n < 0 {
			return kc, errTruncated
		}
		p = p[n:]
	}
	return kc, nil
}
