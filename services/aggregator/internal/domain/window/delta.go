package window

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
//	s|<bucket>|<seq>  the FNV-1a 64 hashes (8 bytes little endian each) of
//	                  the event ids accepted in one commit, of one minute
//	                  bucket; deleted with the bucket
var _ stream.DeltaState = (*State)(nil)

type deltaTracker struct {
	touched   []*Window // windows with Window.touched set
	removed   map[string]struct{}
	seenNew   map[int64][]uint64
	seenKeys  map[int64][]string // entries holding each bucket's hashes
	seenDrop  []string
	seq       int64
	metaDirty bool
	perWindow int // mean bytes per window entry in the last commit
	// buf and set are the memory of the last TakeDelta's result, reused by
	// the next one.
	buf []byte
	set map[string][]byte
}

func (d *deltaTracker) init() {
	d.removed = map[string]struct{}{}
	d.seenNew = map[int64][]uint64{}
	d.seenKeys = map[int64][]string{}
}

func (d *deltaTracker) touch(w *Window) {
	if !w.touched {
		w.touched = true
		d.touched = append(d.touched, w)
	}
}
func (d *deltaTracker) remove(entry string) { d.removed[entry] = struct{}{} }
func (d *deltaTracker) addSeen(bucket int64, h uint64) {
	d.seenNew[bucket] = append(d.seenNew[bucket], h)
}

func (d *deltaTracker) dropSeen(bucket int64) {
	d.seenDrop = append(d.seenDrop, d.seenKeys[bucket]...)
	delete(d.seenKeys, bucket)
	delete(d.seenNew, bucket)
}

type metaEntry struct {
	Partition    int32 `json:"p"`
	MaxEventTime int64 `json:"met"`
	Clock        int64 `json:"clock"`
	LastInput    int64 `json:"li"`
	Seq          int64 `json:"seq"`
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
		set = make(map[string][]byte, len(d.touched)+len(d.seenNew)+1)
	} else {
		clear(set)
	}
	// One buffer for every entry of the commit, sized from the last one.
	buf := d.buf[:0]
	if need := len(d.touched)*max(96, d.perWindow+d.perWindow/4) + 64; cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	for _, w := range d.touched {
		w.touched = false
		if w.dead {
			continue
		}
		n := len(buf)
		var err error
		if buf, err = encodeWindow(buf, w); err != nil {
			return nil, nil, err
		}
		set[w.entry] = buf[n:len(buf):len(buf)]
	}
	if len(d.touched) > 0 {
		d.perWindow = len(buf) / len(d.touched)
	}
	for bucket, hs := range d.seenNew {
		d.seq++
		name := "s|" + strconv.FormatInt(bucket, 10) + "|" + strconv.FormatInt(d.seq, 10)
		n := len(buf)
		for _, h := range hs {
			buf = binary.LittleEndian.AppendUint64(buf, h)
		}
		set[name] = buf[n:len(buf):len(buf)]
		d.seenKeys[bucket] = append(d.seenKeys[bucket], name)
	}
	meta, err := json.Marshal(metaEntry{Partition: s.Partition, MaxEventTime: s.MaxEventTime, Clock: s.Clock, LastInput: s.LastInput, Seq: d.seq})
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
	clear(d.seenNew)
	d.seenDrop = nil
	d.metaDirty = false
	return set, del, nil
}

// RestoreEntries implements stream.DeltaState: it rebuilds the state from
// its checkpoint entries. Call it on a state fresh from NewState.
func (s *State) RestoreEntries(entries map[string][]byte) error {
	var errs []error
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
		case strings.HasPrefix(name, "s|"):
			parts := strings.Split(name, "|")
			bucket, err := strconv.ParseInt(parts[1], 10, 64)
			if err != nil || len(parts) != 3 || len(b)%8 != 0 {
				errs = append(errs, fmt.Errorf("entry %q: malformed id bucket", name))
				continue
			}
			set := s.seen[bucket]
			if set == nil {
				set = make(map[uint64]struct{}, len(b)/8)
				s.seen[bucket] = set
			}
			for i := 0; i < len(b); i += 8 {
				set[binary.LittleEndian.Uint64(b[i:])] = struct{}{}
			}
			s.delta.seenKeys[bucket] = append(s.delta.seenKeys[bucket], name)
			if seq, err := strconv.ParseInt(parts[2], 10, 64); err == nil {
				s.delta.seq = max(s.delta.seq, seq)
			}
		case strings.HasPrefix(name, "w|"):
			if err := s.restoreWindow(name, b); err != nil {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("entry %q: unknown kind", name))
		}
	}
	s.linkSharedSketches()
	s.nextScan = 0 // the first Emit rescans everything
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore window state of partition %d: %w", s.Partition, err)
	}
	return nil
}

// linkSharedSketches points every restored window whose DDSketch is shared
// at its owner's. A window whose owner is gone (its metric was removed from
// the definitions) starts an empty sketch of its own.
func (s *State) linkSharedSketches() {
	for _, m := range s.byMetric {
		for _, sr := range m {
			for _, w := range sr.windows {
				if !w.sharedQ || w.Quantiles != nil {
					continue
				}
				var o *Window
				if osr := s.byMetric[w.owner][sr.group]; osr != nil {
					o = osr.find(w.Start)
				}
				if o != nil && o.Quantiles != nil && !o.sharedQ {
					w.Quantiles = o.Quantiles
					continue
				}
				w.Quantiles, w.sharedQ, w.owner = metrics.NewQuantiles(), false, ""
			}
		}
	}
}

func (s *State) restoreWindow(name string, b []byte) error {
	w, group, err := decodeWindow(b)
	if err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	m := s.byMetric[w.Metric]
	if m == nil {
		m = map[string]*series{}
		s.byMetric[w.Metric] = m
	}
	sr := m[group]
	if sr == nil {
		sr = &series{metric: w.Metric, group: group}
		m[group] = sr
	}
	w.series, w.entry = sr, name
	if w.Dirty && !w.Fired {
		s.markDirty(w)
	}
	sr.windows = append(sr.windows, w)
	s.nwin++
	return nil
}
