package window

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// A window's HyperLogLog is checkpointed apart from its window entry: a
// dense one is 16 KiB, and a window entry is rewritten by every commit
// whose record touched the window. In the benchmark of 2026-11-23 00:09,
// the default set's distinct_users (one window a partition and minute,
// touched by nearly every record) wrote 13 KB a commit: 40 % of the bytes
// of Redis's append-only file, which Redis then had to rewrite every
// 30-110 s.
//
// The sketch has a base entry, x|<metric>|<group>|<start>, its binary
// encoding, and log entries h|<metric>|<group>|<start>|<n>, n = 1, 2, ...:
// the hashes (metrics.DistinctHash, 8 bytes little endian each) added in
// one commit each after the base was written. A restore decodes the base
// and adds the logged hashes again (metrics.Distinct.AddHash), which gives
// the registers of the sketch that was checkpointed: a register keeps the
// largest rank of the hashes it was given, whatever their order. A commit
// writes a new base, and deletes the logs, when the logs would hold more
// bytes than the base (pendingMinBytes at least, as for a DDSketch's
// pending values) or more than hllMaxLogs entries; then the cost of a
// commit is its new hashes plus at most the base's size spread over the
// commits since the last base.

// hllMaxLogs is the most log entries a window's HyperLogLog has before a
// commit writes a new base. It bounds the entries (each costs Redis ~60
// bytes of bookkeeping besides its name) of a sketch that gains a few
// hashes in each of many commits.
const hllMaxLogs = 32

// hllLog is the checkpoint state of one window's HyperLogLog.
type hllLog struct {
	// pend are the hashes added since the last TakeDelta, when based.
	pend []uint64
	// based is set when the checkpoint holds a base entry whose sketch,
	// with the logs 1..logs and pend, is the window's: unset, the next
	// TakeDelta writes a base.
	based bool
	// baseLen is the base entry's size (bytes); logs the number of log
	// entries written since it, logBytes their total size (bytes).
	baseLen, logs, logBytes int
}

// add records that hash h (metrics.DistinctHash) was added to the sketch.
func (l *hllLog) add(h uint64) {
	if l.based {
		l.pend = append(l.pend, h)
	}
}

// rebase makes the next TakeDelta write a new base: for a change to the
// sketch that is not a list of added hashes (a merge).
func (l *hllLog) rebase() {
	l.based = false
	l.pend = l.pend[:0]
}

// hllBaseName is the name of the base of the HyperLogLog of sr's window
// starting at start (ms); hllLogPrefix followed by n is that of its log n.
func hllBaseName(sr *series, start int64) string {
	return "x" + entryName(sr, start)[1:]
}

func hllLogPrefix(sr *series, start int64) string {
	return "h" + entryName(sr, start)[1:] + "|"
}

// takeHLL adds to set the checkpoint entry of w's HyperLogLog for this
// commit: none when nothing was added, a log of the added hashes (written
// into buf, which it returns), or a new base, when there is none or the
// logs would outgrow it (then the logs go with the commit's deletions).
// It fails only when the sketch cannot be encoded.
func (d *deltaTracker) takeHLL(set map[string][]byte, buf []byte, w *Window) ([]byte, error) {
	l := w.sk.hlog
	if l.based && len(l.pend) == 0 {
		return buf, nil
	}
	if l.based && l.logs < hllMaxLogs && l.logBytes+8*len(l.pend) <= max(pendingMinBytes, l.baseLen) {
		l.logs++
		n := len(buf)
		for _, h := range l.pend {
			buf = binary.LittleEndian.AppendUint64(buf, h)
		}
		set[hllLogPrefix(w.series, w.Start)+strconv.Itoa(l.logs)] = buf[n:len(buf):len(buf)]
		l.logBytes += len(buf) - n
		l.pend = l.pend[:0]
		return buf, nil
	}
	base, err := w.sk.distinct.MarshalBinaryDensify(distinctDenseBytes)
	if err != nil {
		return buf, fmt.Errorf("encode the HyperLogLog of window %s: %w", entryName(w.series, w.Start), err)
	}
	set[hllBaseName(w.series, w.Start)] = base
	d.removeHLLLogs(w.series, w.Start, l.logs)
	*l = hllLog{pend: l.pend[:0], based: true, baseLen: len(base)}
	return buf, nil
}

// removeHLL deletes, with the next delta, the HyperLogLog entries of sr's
// window starting at start (ms), which l describes: the window is gone or
// renamed. A renamed window's next TakeDelta writes a base under its new
// name.
func (d *deltaTracker) removeHLL(sr *series, start int64, l *hllLog) {
	d.remove(hllBaseName(sr, start))
	d.removeHLLLogs(sr, start, l.logs)
	*l = hllLog{pend: l.pend[:0]}
}

// removeHLLLogs deletes, with the next delta, logs 1..logs of the
// HyperLogLog of sr's window starting at start (ms).
func (d *deltaTracker) removeHLLLogs(sr *series, start int64, logs int) {
	if logs == 0 {
		return
	}
	prefix := hllLogPrefix(sr, start)
	for n := 1; n <= logs; n++ {
		d.remove(prefix + strconv.Itoa(n))
	}
}

// hllEntries collects the HyperLogLog entries of a restore, by the name
// of their window's entry without its "w|" (the suffix).
type hllEntries struct {
	windows map[string]*Window // the restored windows that have an hlog
	bases   map[string][]byte
	logs    map[string][]hllLogEntry
}

type hllLogEntry struct {
	name   string
	n      int
	hashes []byte
}

func newHLLEntries() *hllEntries {
	return &hllEntries{windows: map[string]*Window{}, bases: map[string][]byte{}, logs: map[string][]hllLogEntry{}}
}

// addLog files log entry name (h|<suffix>|<n>) with its hashes b. It
// fails when the name has no sequence number n >= 1 or b is not a whole
// number of hashes.
func (h *hllEntries) addLog(name string, b []byte) error {
	rest := name[2:]
	i := strings.LastIndexByte(rest, '|')
	if i < 0 || len(b)%8 != 0 {
		return fmt.Errorf("entry %q: malformed HyperLogLog log", name)
	}
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil || n < 1 {
		return fmt.Errorf("entry %q: malformed HyperLogLog log", name)
	}
	h.logs[rest[:i]] = append(h.logs[rest[:i]], hllLogEntry{name: name, n: n, hashes: b})
	return nil
}

// restoreHLLs gives every restored window whose HyperLogLog is in entries
// of its own its sketch: the base's, with the logged hashes added again.
// A window without a base gets an empty sketch and an error. Entries no
// window takes (left by a window whose entry holds its sketch, as entries
// of version 3 do, or by a window restored under another name, which
// writes a base under its own) are deleted with the next delta.
func (s *State) restoreHLLs(h *hllEntries) []error {
	var errs []error
	for suffix, w := range h.windows {
		l := w.sk.hlog
		if w.sk.distinct != nil {
			continue // its sketch was in its window entry
		}
		base, ok := h.bases[suffix]
		if !ok {
			errs = append(errs, fmt.Errorf("entry %q: its HyperLogLog entry %q is missing", "w|"+suffix, "x|"+suffix))
			w.sk.distinct = metrics.NewDistinct()
			continue
		}
		d, err := metrics.DecodeDistinct(base)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %q: %w", "x|"+suffix, err))
			d = metrics.NewDistinct()
		}
		for _, e := range h.logs[suffix] {
			for i := 0; i < len(e.hashes); i += 8 {
				d.AddHash(binary.LittleEndian.Uint64(e.hashes[i:]))
			}
			l.logs = max(l.logs, e.n)
			l.logBytes += len(e.hashes)
		}
		w.sk.distinct = d
		l.based, l.baseLen = true, len(base)
		if "w|"+suffix == entryName(w.series, w.Start) {
			delete(h.bases, suffix) // taken: the rest are removed below
			delete(h.logs, suffix)
			continue
		}
		*l = hllLog{} // restored under another name: a base under its own
	}
	for suffix := range h.bases {
		s.delta.remove("x|" + suffix)
	}
	for _, logs := range h.logs {
		for _, e := range logs {
			s.delta.remove(e.name)
		}
	}
	return errs
}
