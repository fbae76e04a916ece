package window

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
)

// The state is checkpointed as entries of a Redis hash (see
// stream.DeltaState), so a commit writes only what one record changed:
//
//	meta              JSON of the partition clock (metaEntry)
//	w|<metric>|<group>|<start>   one window (encodeWindow, binary)
//	x|<metric>|<group>|<start>   its HyperLogLog (hllLog): the sketch's
//	                  binary encoding (metrics.Distinct.MarshalBinary)
//	h|<metric>|<group>|<start>|<n>  the hashes (metrics.DistinctHash, 8
//	                  bytes little endian each) added to it after that
//	                  encoding, in one commit each, n = 1, 2, ...
//	d|<bucket>|<horizon>|<seq>   the FNV-1a 64 hashes (8 bytes little
//	                  endian each) of the event ids accepted in one commit
//	                  of one minute bucket (event time / 60 s) and one
//	                  dedup class, named by its horizon in ms (see
//	                  Engine.dedupHorizons); deleted when that set is
//	                  forgotten
//	s|<bucket>|<seq>  the same for ids of any type: what builds before the
//	                  per-type horizons wrote, and still read. They restore
//	                  into the any-type set of their minute, which every
//	                  lookup consults and the longest horizon prunes. A
//	                  d| set whose horizon the engine no longer has (other
//	                  definitions or settings) joins it too.
//
// <seq> makes the names of one set's entries unique; a set is written
// again in every commit that adds ids to it, with only the new ids.
var _ stream.DeltaState = (*State)(nil)

type deltaTracker struct {
	touched []*Window // windows with Window.touched set
	removed map[string]struct{}
	// seenNew[:nNew] are the ids accepted since the last TakeDelta, per
	// set (a few per commit: one per minute and dedup class); the slots
	// and their hs keep their memory for the next commit. seenLast is the
	// slot addSeen used last.
	seenNew   []seenBatch
	nNew      int
	seenLast  int
	seenKeys  map[seenKey][]string // entries holding each set's hashes
	seenDrop  []string
	seq       int64
	perWindow int // mean bytes per window entry in the last commit
	// buf and set are the memory of the last TakeDelta's result, reused by
	// the next one.
	buf []byte
	set map[string][]byte
	// ends holds per window entry of the last TakeDelta where its value
	// ends in buf and its name in the commit's names; perName is the
	// mean name length.
	ends    []entryEnd
	perName int
	// hllDue are the touched windows of the TakeDelta under way that have
	// a HyperLogLog (takeHLL).
	hllDue []*Window
}

// entryEnd is where one window entry's value and name end.
type entryEnd struct{ value, name int }

func (d *deltaTracker) init() {
	d.removed = map[string]struct{}{}
	d.seenKeys = map[seenKey][]string{}
}

func (d *deltaTracker) touch(w *Window) {
	if !w.touched {
		w.touched = true
		d.touched = append(d.touched, w)
	}
}
func (d *deltaTracker) remove(entry string) { d.removed[entry] = struct{}{} }

// seenBatch is the ids accepted into set k since the last TakeDelta.
type seenBatch struct {
	k  seenKey
	hs []uint64
}

// addSeen records that id hash h was accepted into set k.
func (d *deltaTracker) addSeen(k seenKey, h uint64) {
	if i := d.seenLast; i < d.nNew && d.seenNew[i].k == k {
		d.seenNew[i].hs = append(d.seenNew[i].hs, h)
		return
	}
	d.seenLast = d.slotOf(k)
	d.seenNew[d.seenLast].hs = append(d.seenNew[d.seenLast].hs, h)
}

// slotOf returns the index of k's slot in seenNew, taking a free one if
// k has none.
func (d *deltaTracker) slotOf(k seenKey) int {
	for i := range d.nNew {
		if d.seenNew[i].k == k {
			return i
		}
	}
	if d.nNew == len(d.seenNew) {
		d.seenNew = append(d.seenNew, seenBatch{})
	}
	d.seenNew[d.nNew].k = k
	d.nNew++
	return d.nNew - 1
}

// unwritten takes set k's slot out of seenNew and returns its ids, which
// stay valid until the next addSeen.
func (d *deltaTracker) unwritten(k seenKey) []uint64 {
	for i := range d.nNew {
		if d.seenNew[i].k == k {
			hs := d.seenNew[i].hs
			d.nNew--
			d.seenNew[i], d.seenNew[d.nNew] = d.seenNew[d.nNew], seenBatch{hs: hs[:0]}
			d.seenLast = 0
			return hs
		}
	}
	return nil
}

// dropSeen deletes the entries of set k with the next delta.
func (d *deltaTracker) dropSeen(k seenKey) {
	d.seenDrop = append(d.seenDrop, d.seenKeys[k]...)
	delete(d.seenKeys, k)
	d.unwritten(k)
}

// moveSeen files the entries and unwritten ids of set from under set to,
// whose ids it joined.
func (d *deltaTracker) moveSeen(from, to seenKey) {
	if names := d.seenKeys[from]; len(names) > 0 {
		d.seenKeys[to] = append(d.seenKeys[to], names...)
		delete(d.seenKeys, from)
	}
	if hs := d.unwritten(from); len(hs) > 0 {
		hs = slices.Clone(hs)
		i := d.slotOf(to)
		d.seenNew[i].hs = append(d.seenNew[i].hs, hs...)
	}
}

type metaEntry struct {
	Partition    int32 `json:"p"`
	MaxEventTime int64 `json:"met"`
	Clock        int64 `json:"clock"`
	LastInput    int64 `json:"li"`
	Seq          int64 `json:"seq"`
	// Fired is State.fired: per metric, the watermark (ms) at or below
	// which every window that is not lateOpen has fired. Builds before it
	// wrote every final into its window's entry; one that does not read
	// it emits such finals again, with the same revision and values.
	Fired map[string]int64 `json:"fired,omitempty"`
	// Partial is State.partial: per metric, the mark of a step that
	// stopped inside it. A build that does not read it emits the finals it
	// stands for again, with the same revision and values.
	Partial map[string]partialMark `json:"partial,omitempty"`
}

// TakeDelta implements stream.DeltaState: the entries changed since the
// last call (touched windows, new event-id hashes, the clock) and the
// entries to delete (purged or renamed windows, forgotten id buckets).
// The map and the entries' bytes are reused by the next call, as
// stream.DeltaState allows: a caller that keeps entries across calls must
// copy them. (Reusing them halved the bytes the aggregator allocates per
// record: ~175 KiB of a 500-event record's ~345 KiB.)
func (s *State) TakeDelta() (map[string][]byte, []string, error) {
	d := &s.delta
	set := d.set
	if set == nil {
		set = make(map[string][]byte, len(d.touched)+d.nNew+1)
	} else {
		clear(set)
	}
	// One buffer for every entry of the commit, sized from the last one.
	buf := d.buf[:0]
	if need := len(d.touched)*max(96, d.perWindow+d.perWindow/4) + 64; cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	// The windows' entry names go into one string (a window keeps no
	// name): one allocation per commit instead of one per window.
	var names strings.Builder
	names.Grow(len(d.touched) * max(32, d.perName))
	ends := d.ends[:0]
	for _, w := range d.touched {
		w.touched = false
		if w.dead {
			continue
		}
		buf = encodeWindow(buf, w)
		ends = append(ends, entryEnd{len(buf), appendEntryName(&names, w.series, w.Start)})
		if w.sk != nil && w.sk.distinct != nil {
			d.hllDue = append(d.hllDue, w)
		}
	}
	all, from, at := names.String(), 0, 0
	for _, e := range ends {
		set[all[at:e.name]] = buf[from:e.value:e.value]
		from, at = e.value, e.name
	}
	if len(d.touched) > 0 {
		d.perWindow = len(buf) / len(d.touched)
		d.perName = len(all)/len(d.touched) + 1
	}
	d.ends = ends
	var err error
	for _, w := range d.hllDue {
		if buf, err = d.takeHLL(set, buf, w); err != nil {
			break
		}
	}
	clear(d.hllDue) // keeps no window alive
	d.hllDue = d.hllDue[:0]
	if err != nil {
		return nil, nil, err
	}
	for i := range d.nNew {
		b := &d.seenNew[i]
		if len(b.hs) == 0 {
			continue
		}
		d.seq++
		name := seenEntryName(b.k, d.seq)
		n := len(buf)
		for _, h := range b.hs {
			buf = binary.LittleEndian.AppendUint64(buf, h)
		}
		set[name] = buf[n:len(buf):len(buf)]
		d.seenKeys[b.k] = append(d.seenKeys[b.k], name)
		b.hs = b.hs[:0]
	}
	meta, err := json.Marshal(metaEntry{Partition: s.Partition, MaxEventTime: s.MaxEventTime, Clock: s.Clock, LastInput: s.LastInput, Seq: d.seq, Fired: s.fired, Partial: s.partial})
	if err != nil {
		return nil, nil, fmt.Errorf("encode window state meta: %w", err)
	}
	set["meta"] = meta
	del := d.seenDrop
	for name := range d.removed {
		if _, written := set[name]; !written {
			del = append(del, name)
		}
	}
	d.buf, d.set = buf, set
	d.touched = d.touched[:0]
	clear(d.removed)
	d.nNew, d.seenLast = 0, 0
	d.seenDrop = nil
	return set, del, nil
}

// RestoreEntries implements stream.DeltaState: it rebuilds the state from
// its checkpoint entries. Call it on a state fresh from NewState.
func (s *State) RestoreEntries(entries map[string][]byte) error {
	var errs []error
	hlls := newHLLEntries()
	for name, b := range entries {
		switch {
		case name == "meta":
			var m metaEntry
			if err := json.Unmarshal(b, &m); err != nil {
				errs = append(errs, fmt.Errorf("entry %q: %w", name, err))
				continue
			}
			s.MaxEventTime, s.Clock, s.LastInput = m.MaxEventTime, m.Clock, m.LastInput
			s.delta.seq = max(s.delta.seq, m.Seq)
			if m.Fired != nil {
				s.fired = m.Fired
			}
			if m.Partial != nil {
				s.partial = m.Partial
			}
		case strings.HasPrefix(name, "d|"), strings.HasPrefix(name, "s|"):
			if err := s.restoreSeen(name, b); err != nil {
				errs = append(errs, err)
			}
		case strings.HasPrefix(name, "w|"):
			w, err := s.restoreWindow(name, b)
			if err != nil {
				errs = append(errs, err)
			} else if w.sk != nil && w.sk.hlog != nil {
				hlls.windows[name[2:]] = w
			}
		case strings.HasPrefix(name, "x|"):
			hlls.bases[name[2:]] = b
		case strings.HasPrefix(name, "h|"):
			if err := hlls.addLog(name, b); err != nil {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("entry %q: unknown kind", name))
		}
	}
	errs = append(errs, s.restoreHLLs(hlls)...)
	s.linkSharedSketches()
	s.restoreFired()
	s.nextScan = 0     // the first Emit rescans everything
	s.horizonsOf = nil // the first Add checks the sets' horizons
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore window state of partition %d: %w", s.Partition, err)
	}
	return nil
}

// restoreFired completes the restored windows whose final a scan emitted
// without rewriting their entries (Engine.firedMarks): a window whose
// entry is not fired and not lateOpen, and that its metric's marks cover
// (State.marked), fired with the revision after its entry's, and took no
// event since (an event would have rewritten the entry).
func (s *State) restoreFired() {
	for metric, m := range s.byMetric {
		_, full := s.fired[metric]
		_, part := s.partial[metric]
		if !full && !part {
			continue
		}
		for _, sr := range m {
			for _, w := range sr.windows {
				if !w.Fired && !w.lateOpen && s.marked(metric, sr.group, w.End) {
					w.Fired, w.Dirty = true, false
					w.Revision++
				}
			}
		}
	}
}

// linkSharedSketches points every restored window whose DDSketch is shared
// at its owner's. A window whose owner is gone (its metric was removed from
// the definitions) starts an empty sketch of its own.
func (s *State) linkSharedSketches() {
	for _, m := range s.byMetric {
		for _, sr := range m {
			for _, w := range sr.windows {
				sk := w.sk
				if sk == nil || !sk.sharedQ || sk.quantiles != nil {
					continue
				}
				var o *Window
				if osr := s.byMetric[sk.owner][sr.group]; osr != nil {
					o = osr.find(w.Start)
				}
				if o != nil && o.ownsQuantiles() {
					sk.quantiles = o.sk.quantiles
					continue
				}
				sk.quantiles, sk.sharedQ, sk.owner = metrics.NewQuantiles(), false, ""
			}
		}
	}
}

// seenEntryName is the name of the entry holding ids of set k written with
// sequence number seq (d| form; s| for the any-type sets).
func seenEntryName(k seenKey, seq int64) string {
	if k.horizon == anyHorizon {
		return "s|" + strconv.FormatInt(k.bucket, 10) + "|" + strconv.FormatInt(seq, 10)
	}
	return "d|" + strconv.FormatInt(k.bucket, 10) + "|" + strconv.FormatInt(k.horizon, 10) + "|" + strconv.FormatInt(seq, 10)
}

// parseSeenEntryName parses a d| or s| entry name (seenEntryName).
func parseSeenEntryName(name string) (k seenKey, seq int64, ok bool) {
	parts := strings.Split(name, "|")
	k.horizon = anyHorizon
	switch {
	case parts[0] == "d" && len(parts) == 4:
		h, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || h < 0 {
			return k, 0, false
		}
		k.horizon = h
	case parts[0] != "s" || len(parts) != 3:
		return k, 0, false
	}
	bucket, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return k, 0, false
	}
	seq, err = strconv.ParseInt(parts[len(parts)-1], 10, 64)
	if err != nil {
		return k, 0, false
	}
	k.bucket = bucket
	return k, seq, true
}

// restoreSeen adds the id hashes of entry name (d| or s| form) to their
// set.
func (s *State) restoreSeen(name string, b []byte) error {
	k, seq, ok := parseSeenEntryName(name)
	if !ok || len(b)%8 != 0 {
		return fmt.Errorf("entry %q: malformed id bucket", name)
	}
	set := s.seen[k]
	if set == nil {
		set = newIDSet(len(b) / 8)
		s.seen[k] = set
		if k.horizon == anyHorizon {
			s.anySets++
		}
	}
	for i := 0; i < len(b); i += 8 {
		set.insert(binary.LittleEndian.Uint64(b[i:]))
	}
	s.delta.seenKeys[k] = append(s.delta.seenKeys[k], name)
	s.delta.seq = max(s.delta.seq, seq)
	return nil
}

// restoreWindow adds the window of entry name to s and returns it.
func (s *State) restoreWindow(name string, b []byte) (*Window, error) {
	w, metric, group, err := decodeWindow(name, b)
	if err != nil {
		return nil, fmt.Errorf("entry %q: %w", name, err)
	}
	m := s.byMetric[metric]
	if m == nil {
		m = map[string]*series{}
		s.byMetric[metric] = m
	}
	sr := m[group]
	if sr == nil {
		sr = &series{metric: metric, group: group}
		m[group] = sr
	}
	w.series = sr
	if name != entryName(sr, w.Start) {
		// Written under another name (a window keeps none; it derives from
		// metric, group and start): move it to its own with the next delta.
		s.delta.remove(name)
		s.delta.touch(w)
	}
	if w.Dirty && !w.Fired {
		s.markDirty(w)
	}
	sr.windows = append(sr.windows, w)
	s.nwin++
	return w, nil
}
