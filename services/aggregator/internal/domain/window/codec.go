package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// windowCodecVersion is the first byte of an encoded window entry. The
// decoder also reads versions 1 to 4 (their layouts are at encodeWindow).
const windowCodecVersion = 5

// Flags of an encoded window (a byte before version 5, a uvarint since).
const (
	flagFired     = 1
	flagDirty     = 2
	flagDistinct  = 4
	flagQuantiles = 8
	// flagSharedQ: the DDSketch is the one of the window of the same label
	// set and start of the metric named after the flags (its owner), which
	// checkpoints it; the entry carries no sketch bytes.
	flagSharedQ = 16
	// flagPending: the DDSketch bytes are followed by values to add to it.
	flagPending = 32
	// flagLateOpen: the window is not fired although it ends at or before
	// its metric's fired mark (Window.lateOpen).
	flagLateOpen = 64
	// flagDistinctLog (v4, with flagDistinct): the HyperLogLog is in
	// entries of its own (hllLog); the entry's HyperLogLog bytes are
	// empty. Version 5 has no HyperLogLog bytes and no flag 128: its flag
	// 4 implies it.
	flagDistinctLog = 128
	// flagValues (v5): sum, min and max follow; without it all three are
	// 0 (a counting metric's windows). Earlier versions always have them.
	flagValues = 256
)

// pendingMinBytes is the least room the values added since a DDSketch's
// last full encoding may take in its entry before encodeWindow encodes it
// again; beyond it they may take as much as the encoding itself.
const pendingMinBytes = 256

// encodeWindow appends the binary form of w to b. Layout (v5): version
// byte; flags (uvarint: 1 fired, 2 dirty, 4 has distinct, in entries of
// its own, 8 has quantiles, 16 shared quantiles, 32 pending values, 64
// late open, 256 has values); start, end − start,
// count, revision, last early − start (varints, ms); with flag 256 sum,
// min, max (float64 bits, little endian; all three 0 without it); with
// flag 16 the owner metric (string: uvarint length + bytes); with flag 8
// and not 16 the DDSketch bytes (uvarint length + bytes); with flag 32 the
// count of pending values (uvarint) and the values (float64 bits, little
// endian); top-k capacity (uvarint, 0 for none) and entries (count; key
// string, count and err varints). The metric and group key are the entry
// name's (entryName), which restores them.
//
// Older layouts, which decodeWindow reads: v4 is version byte; metric,
// group (strings); start, end, count, revision, last early (varints);
// sum, min, max (float64 bits); flags byte; with flag 16 the owner;
// HyperLogLog bytes (empty with flag 128) and DDSketch bytes (uvarint
// length, 0 for none); pending values; top-k. v3 is v4 without flag 128
// (the HyperLogLog in the entry); v2 is v3 with a label count and sorted
// name/value strings after the group; v1 is v2 without flags 16 and 32.
// v5 takes ~20 bytes for a window of a counting metric, which v4 took
// ~100 for (BenchmarkAggregateApply: delta-B/record).
//
// It is what a checkpoint commit writes per touched window, so it avoids
// reflection. The HyperLogLog is not in it: TakeDelta writes it
// as entries of its own (hllLog), its hashes since the last full encoding.
// The DDSketch is re-serialized only when it changed since its last
// encoding (sketches.ddEnc). A DDSketch that changed is written
// incrementally: its last full encoding plus the values added since
// (sketches.ddPend), until those take more room than pendingMinBytes and
// the encoding itself; then it is encoded again. Restoring decodes the
// sketch and adds the pending values, which gives the same bins (a
// DDSketch's counts do not depend on insertion order), so a full encoding
// costs O(bins) once per O(bins) values instead of once per commit.
func encodeWindow(b []byte, w *Window) []byte {
	var flags uint64
	if w.Fired {
		flags |= flagFired
	}
	if w.Dirty {
		flags |= flagDirty
	}
	if w.lateOpen && !w.Fired {
		flags |= flagLateOpen
	}
	if math.Float64bits(w.Sum)|math.Float64bits(w.Min)|math.Float64bits(w.Max) != 0 {
		flags |= flagValues
	}
	sk := w.sk
	if sk == nil {
		sk = &sketches{} // does not escape: a window without sketches encodes none
	}
	if sk.distinct != nil {
		flags |= flagDistinct // in entries of its own: flagDistinctLog for the decoder
	}
	switch {
	case sk.quantiles == nil:
	case sk.sharedQ:
		flags |= flagQuantiles | flagSharedQ
	default:
		flags |= flagQuantiles
		if sk.ddEnc == nil || 8*len(sk.ddPend) > max(pendingMinBytes, len(sk.ddEnc)) {
			sk.ddEnc, _ = sk.quantiles.MarshalBinary()
			sk.ddPend = sk.ddPend[:0]
		}
		if len(sk.ddPend) > 0 {
			flags |= flagPending
		}
	}
	b = append(b, windowCodecVersion)
	b = binary.AppendUvarint(b, flags)
	for _, v := range [...]int64{w.Start, w.End - w.Start, w.Count, w.Revision, w.LastEarly - w.Start} {
		b = binary.AppendVarint(b, v)
	}
	if flags&flagValues != 0 {
		for _, f := range [...]float64{w.Sum, w.Min, w.Max} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	switch {
	case flags&flagSharedQ != 0:
		b = appendString(b, sk.owner)
	case flags&flagQuantiles != 0:
		b = appendBytes(b, sk.ddEnc)
	}
	if flags&flagPending != 0 {
		b = binary.AppendUvarint(b, uint64(len(sk.ddPend)))
		for _, v := range sk.ddPend {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	if sk.topK == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(sk.topK.Capacity))
	// Unsorted: the table's order (count, then key) is total, so restoring
	// the entries with AddCount in any order gives the same top keys and
	// the same next eviction (TestTopKAllRestores); sorting them cost
	// ~4 % of the aggregator's CPU per record.
	b = binary.AppendUvarint(b, uint64(sk.topK.Len()))
	for kc := range sk.topK.All() {
		b = appendString(b, kc.Key)
		b = binary.AppendVarint(b, kc.Count)
		b = binary.AppendVarint(b, kc.Err)
	}
	return b
}

// distinctDenseBytes is the largest sparse HyperLogLog encoding a window
// keeps: a larger one (about 1,500 or more distinct values) is switched to
// the dense registers (metrics.Distinct.MarshalBinaryDensify, 16 KiB),
// after which an insert is a register update instead of a share of the
// sparse list's sorted merges (4,500 instructions per insert on the
// default set's distinct_users, 5 % of the aggregator's CPU). The switch
// happens when the window is checkpointed, after a record, so a replay
// switches at the same record.
const distinctDenseBytes = 4096

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

// decodeWindow decodes the encodeWindow entry b named name; it returns
// the window (not linked to a series), its metric and its group key
// (v5: from name; v1 to v4: from the entry, and labels of v1 and v2
// entries are skipped: they derive from the group key). A window with a
// shared DDSketch comes back with sharedQ set and quantiles nil: the
// restore links it to its owner's. A window whose HyperLogLog is in
// entries of its own (v5 flag 4, v4 flag 128) comes back with hlog set and distinct
// nil: the restore adds them (State.restoreHLLs). It fails with
// errCorrupt for an unknown version, a truncated entry or (v5) a name
// that is not w|<metric>|<group>|<start>.
func decodeWindow(name string, b []byte) (w *Window, metric, group string, err error) {
	r := &reader{b: b}
	version := r.byte1()
	if r.err == nil && (version < 1 || version > windowCodecVersion) {
		return nil, "", "", fmt.Errorf("%w: version %d (this build reads 1..%d)", errCorrupt, version, windowCodecVersion)
	}
	w = &Window{}
	var flags uint64
	if version >= 5 {
		var ok bool
		if metric, group, ok = parseEntryName(name); !ok {
			return nil, "", "", fmt.Errorf("%w: name %q is not w|<metric>|<group>|<start>", errCorrupt, name)
		}
		flags = r.uvarint()
		w.Start = r.varint()
		w.End = w.Start + r.varint()
		w.Count, w.Revision = r.varint(), r.varint()
		w.LastEarly = w.Start + r.varint()
		if flags&flagValues != 0 {
			w.Sum, w.Min, w.Max = r.float(), r.float(), r.float()
		}
		if flags&flagDistinct != 0 {
			flags |= flagDistinctLog
		}
	} else {
		metric = string(r.bytes())
		group = string(r.bytes())
		if version < 3 {
			for n := r.uvarint(); n > 0 && r.err == nil; n-- { // name and value
				r.bytes()
				r.bytes()
			}
		}
		w.Start, w.End, w.Count, w.Revision, w.LastEarly = r.varint(), r.varint(), r.varint(), r.varint(), r.varint()
		w.Sum, w.Min, w.Max = r.float(), r.float(), r.float()
		flags = uint64(r.byte1())
		switch {
		case version == 1:
			flags &= flagFired | flagDirty | flagDistinct | flagQuantiles
		case version < 4:
			flags &^= flagDistinctLog
		}
	}
	w.Fired, w.Dirty, w.lateOpen = flags&flagFired != 0, flags&flagDirty != 0, flags&flagLateOpen != 0
	var sk sketches // copied to the heap only for a window that has one
	if flags&flagSharedQ != 0 {
		sk.sharedQ, sk.owner = true, string(r.bytes())
	}
	var hll, dd []byte
	switch {
	case version < 5:
		hll, dd = r.bytes(), r.bytes()
	case flags&(flagQuantiles|flagSharedQ) == flagQuantiles:
		dd = r.bytes()
	}
	var pend []float64
	if flags&flagPending != 0 {
		n := r.uvarint()
		if r.err == nil && n > uint64(len(r.b)/8) {
			r.err = errCorrupt
		}
		if r.err == nil {
			pend = make([]float64, n)
			for i := range pend {
				pend[i] = r.float()
			}
		}
	}
	topCap := r.uvarint()
	if r.err != nil {
		return nil, "", "", r.err
	}
	if flags&flagDistinct != 0 {
		sk.hlog = &hllLog{}
		if flags&flagDistinctLog == 0 {
			if sk.distinct, err = metrics.DecodeDistinct(hll); err != nil {
				return nil, "", "", err
			}
		}
	}
	if flags&(flagQuantiles|flagSharedQ) == flagQuantiles {
		if sk.quantiles, err = metrics.DecodeQuantiles(dd); err != nil {
			return nil, "", "", err
		}
		sk.ddEnc = slices.Clone(dd)
		for _, v := range pend {
			sk.quantiles.Add(v)
		}
		sk.ddPend = pend
	}
	if topCap > 0 {
		sk.topK = metrics.NewTopK(int(topCap))
		for range r.uvarint() {
			k := string(r.bytes())
			c, e := r.varint(), r.varint()
			if r.err != nil {
				break
			}
			sk.topK.AddCount(k, c, e)
		}
	}
	if r.err != nil {
		return nil, "", "", r.err
	}
	if sk.sharedQ || sk.hlog != nil || sk.quantiles != nil || sk.topK != nil {
		w.sk = &sketches{}
		*w.sk = sk
	}
	return w, metric, group, nil
}

// parseEntryName splits window entry name w|<metric>|<group>|<start>
// (entryName) into its metric and group key. Metric names have no "|"
// (metrics.ParseDefinitions) and the start is digits, so a group key
// holding "|" splits correctly. ok is false for any other name.
func parseEntryName(name string) (metric, group string, ok bool) {
	rest, ok := strings.CutPrefix(name, "w|")
	i, j := strings.IndexByte(rest, '|'), strings.LastIndexByte(rest, '|')
	if !ok || i <= 0 || j <= i {
		return "", "", false
	}
	return rest[:i], rest[i+1 : j], true
}
