package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// windowCodecVersion is the first byte of an encoded window entry.
const windowCodecVersion = 1

// encodeWindow appends the binary form of w to b. Layout (v1): version
// byte; metric, group (strings: uvarint length + bytes); label count and
// sorted name/value strings; start, end, count, revision, last early
// (varints); sum, min, max (float64 bits, little endian); flags byte (1
// fired, 2 dirty, 4 has distinct, 8 has quantiles); HyperLogLog and DDSketch bytes (uvarint length, 0 for
// none); top-k capacity and entries (key string, count and err varints).
// It is what a checkpoint commit writes per touched window, so it avoids
// reflection, copies the series' cached header, and re-serializes a sketch
// only when it changed since its last encoding (Window.hllEnc, ddEnc).
func encodeWindow(b []byte, w *Window) ([]byte, error) {
	sr := w.series
	if sr.hdr == nil {
		sr.hdr = encodeHeader(nil, w.Metric, sr.group, w.Labels)
	}
	b = append(b, sr.hdr...)
	for _, v := range [...]int64{w.Start, w.End, w.Count, w.Revision, w.LastEarly} {
		b = binary.AppendVarint(b, v)
	}
	for _, f := range [...]float64{w.Sum, w.Min, w.Max} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	var flags byte
	if w.Fired {
		flags |= 1
	}
	if w.Dirty {
		flags |= 2
	}
	if w.Distinct != nil {
		flags |= 4
	}
	if w.Quantiles != nil {
		flags |= 8
	}
	b = append(b, flags)
	if w.Distinct != nil && w.hllEnc == nil {
		hll, err := w.Distinct.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode window %s: %w", w.entry, err)
		}
		w.hllEnc = hll
	}
	if w.Quantiles != nil && w.ddEnc == nil {
		w.ddEnc, _ = w.Quantiles.MarshalBinary()
	}
	b = appendBytes(b, w.hllEnc)
	b = appendBytes(b, w.ddEnc)
	if w.TopK == nil {
		return binary.AppendUvarint(b, 0), nil
	}
	b = binary.AppendUvarint(b, uint64(w.TopK.Capacity))
	entries := w.TopK.Entries()
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, kc := range entries {
		b = appendString(b, kc.Key)
		b = binary.AppendVarint(b, kc.Count)
		b = binary.AppendVarint(b, kc.Err)
	}
	return b, nil
}

// encodeHeader appends the part of a window entry shared by every window of
// a series: version byte, metric, group and the sorted labels.
func encodeHeader(b []byte, metric, group string, labels map[string]string) []byte {
	b = append(b, windowCodecVersion)
	b = appendString(b, metric)
	b = appendString(b, group)
	b = binary.AppendUvarint(b, uint64(len(labels)))
	if len(labels) > 0 {
		names := make([]string, 0, len(labels))
		for k := range labels {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b = appendString(b, k)
			b = appendString(b, labels[k])
		}
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("corrupt window entry")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errCorrupt
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errCorrupt
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) byte1() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errCorrupt
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// decodeWindow decodes an encodeWindow entry; it returns the window (not
// linked to a series) and its group key.
func decodeWindow(b []byte) (*Window, string, error) {
	r := &reader{b: b}
	if v := r.byte1(); r.err == nil && v != windowCodecVersion {
		return nil, "", fmt.Errorf("%w: version %d (this build reads %d)", errCorrupt, v, windowCodecVersion)
	}
	w := &Window{Metric: string(r.bytes())}
	group := string(r.bytes())
	if n := r.uvarint(); n > 0 && n < 1<<16 {
		w.Labels = make(map[string]string, n)
		for range n {
			k := string(r.bytes())
			w.Labels[k] = string(r.bytes())
		}
	}
	w.Start, w.End, w.Count, w.Revision, w.LastEarly = r.varint(), r.varint(), r.varint(), r.varint(), r.varint()
	w.Sum, w.Min, w.Max = r.float(), r.float(), r.float()
	flags := r.byte1()
	w.Fired, w.Dirty = flags&1 != 0, flags&2 != 0
	hll, dd := r.bytes(), r.bytes()
	topCap := r.uvarint()
	if r.err != nil {
		return nil, "", r.err
	}
	var err error
	if flags&4 != 0 {
		if w.Distinct, err = metrics.DecodeDistinct(hll); err != nil {
			return nil, "", err
		}
		w.hllEnc = slices.Clone(hll)
	}
	if flags&8 != 0 {
		if w.Quantiles, err = metrics.DecodeQuantiles(dd); err != nil {
			return nil, "", err
		}
		w.ddEnc = slices.Clone(dd)
	}
	if topCap > 0 {
		w.TopK = metrics.NewTopK(int(topCap))
		for range r.uvarint() {
			k := string(r.bytes())
			c, e := r.varint(), r.varint()
			if r.err != nil {
				break
			}
			w.TopK.AddCount(k, c, e)
		}
	}
	if r.err != nil {
		return nil, "", r.err
	}
	return w, group, nil
}
