// Package wire holds the Protocol Buffers encoding helpers shared by the
// hand-written binary codecs of internal records (pkg/events: events.raw,
// pkg/metrics: metrics.windows). They append proto3 fields with protowire
// (https://protobuf.dev/programming-guides/encoding/): a scalar field at its
// zero value is left out, as proto3 does, and map entries are written in
// key order so that equal values encode to equal bytes.
package wire

import (
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// AppendInt appends an int32, int64 or bool field as a varint unless v is
// 0 (proto int64: a negative value takes ten bytes).
func AppendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// AppendString appends a string field unless s is empty.
func AppendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// AppendBytes appends a bytes field unless v is empty.
func AppendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// AppendDouble appends a double field unless its bits are 0 (+0.0; -0.0 is
// written, as the Go protobuf runtime does).
func AppendDouble(b []byte, num protowire.Number, v float64) []byte {
	bits := math.Float64bits(v)
	if bits == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, bits)
}

// SizeString is the encoded size of AppendString(num, s), in bytes.
func SizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// SizeInt is the encoded size of AppendInt(num, v), in bytes.
func SizeInt(num protowire.Number, v int64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(v))
}

// AppendStringMap appends a map<string, string> field: one entry message
// (key field 1, value field 2) per key, in key order. keys is scratch
// space for the sort, returned for reuse (nil is fine).
func AppendStringMap(b []byte, num protowire.Number, m map[string]string, keys []string) ([]byte, []string) {
	if len(m) == 0 {
		return b, keys
	}
	keys = slices.AppendSeq(keys[:0], maps.Keys(m))
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(SizeString(1, k)+SizeString(2, v)))
		b = AppendString(AppendString(b, 1, k), 2, v)
	}
	return b, keys
}

// reserved is the number of bytes BeginMessage reserves for a length:
// messages of 128 B to 16 KiB, the common case, need no move.
const reserved = 2

// BeginMessage appends the tag of a length-delimited field num and room
// for its length, and returns the extended slice and where the message
// starts; append the message, then call EndMessage. The length is not
// known before the message is written, so room is reserved and the
// message moved when its length needs another number of bytes.
func BeginMessage(dst []byte, num protowire.Number) ([]byte, int) {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = append(dst, 0, 0)
	return dst, len(dst)
}

// EndMessage writes the length of the message appended to dst since start
// (BeginMessage's) and returns dst, moved as needed.
func EndMessage(dst []byte, start int) []byte {
	n := len(dst) - start
	if sz := protowire.SizeVarint(uint64(n)); sz != reserved {
		if sz > reserved {
			dst = append(dst, make([]byte, sz-reserved)...)
		}
		copy(dst[start-reserved+sz:], dst[start:start+n])
		dst = dst[:start-reserved+sz+n]
	}
	protowire.AppendVarint(dst[:start-reserved], uint64(n))
	return dst
}
