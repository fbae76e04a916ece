package window

import (
	"math/bits"
	"slices"
)

// Heap bytes per remembered event id, for State.MemoryBytes: in a set's
// map (a Go map[uint64]struct{} slot is 16 bytes plus a control byte, at
// 44–88 % load; BenchmarkSeenBytesPerID measured ~38 B per id for maps
// built by inserts), and in its compact sorted slice.
const (
	mapIDBytes     = 38
	compactIDBytes = 8
)

// compactMin is the fewest ids in a set's map worth compacting.
const compactMin = 16

// idSet is one set of remembered event id hashes (one minute and dedup
// class). While its minute still gets most of its events the ids are in m
// only; once the minute is behind every watermark it gets only late
// events, and compactIfDue moves m into sorted: 8 bytes per id instead of
// a map slot's ~38, with m left for the few later inserts. A lookup checks
// m, then sorted by binary search.
type idSet struct {
	m      map[uint64]struct{}
	sorted []uint64 // ascending, disjoint from m
}

func newIDSet(hint int) *idSet { return &idSet{m: make(map[uint64]struct{}, hint)} }

// insert adds h and reports whether it was not in the set yet.
// Add's loop has it written out (it does not inline).
func (s *idSet) insert(h uint64) bool {
	if len(s.sorted) > 0 && s.inSorted(h) {
		return false
	}
	// One hash operation for the lookup and the insert: an id already there
	// leaves the map's size unchanged.
	n := len(s.m)
	s.m[h] = struct{}{}
	return len(s.m) != n
}

// inSorted reports whether h is in the compacted ids.
func (s *idSet) inSorted(h uint64) bool {
	_, found := slices.BinarySearch(s.sorted, h)
	return found
}

// removeNew takes out h, which the last insert added.
func (s *idSet) removeNew(h uint64) { delete(s.m, h) }

// has reports whether h is in the set; a nil set has nothing.
func (s *idSet) has(h uint64) bool {
	if s == nil {
		return false
	}
	_, ok := s.m[h]
	return ok || s.inSorted(h)
}

// merge adds the ids of o.
func (s *idSet) merge(o *idSet) {
	for h := range o.m {
		s.insert(h)
	}
	for _, h := range o.sorted {
		s.insert(h)
	}
}

// len returns the number of ids in the set.
func (s *idSet) len() int { return len(s.m) + len(s.sorted) }

// memoryBytes estimates the heap the set's ids take, in bytes.
func (s *idSet) memoryBytes() int64 {
	return int64(len(s.m))*mapIDBytes + int64(len(s.sorted))*compactIDBytes
}

// compactIfDue moves the map's ids into the sorted slice when the map
// holds at least compactMin ids and an eighth of the slice's, so a set
// that keeps getting late ids is re-sorted at most every len/8 inserts.
// The map is replaced (clearing it would keep its buckets).
//
// The ids are FNV-1a hashes, close to uniform: a counting sort on their
// top bits puts them into buckets of ~4, which an insertion sort finishes
// (a bucket of more than 32, as crafted ids could make, is sorted with
// slices.Sort). For a busy minute (480,000 ids) that took ~40 ms against
// ~105 ms with slices.Sort of all (BenchmarkIDSetCompact, shared 2-core
// machine; bound by memory: the map walks and the scattered stores), and
// it runs inside one Add, once per minute and dedup class.
func (s *idSet) compactIfDue() {
	n := len(s.sorted) + len(s.m)
	if len(s.m) < max(compactMin, len(s.sorted)/8) {
		return
	}
	shift := uint(64 - bits.Len(uint(n/4)))
	if n < 64 {
		shift = 63 // two buckets: the insertion sorts do it
	}
	ends := make([]int32, 1<<(64-shift)+1) // ends[b+1]: where bucket b ends
	for _, h := range s.sorted {
		ends[h>>shift+1]++
	}
	for h := range s.m {
		ends[h>>shift+1]++
	}
	for b := 1; b < len(ends); b++ {
		ends[b] += ends[b-1]
	}
	// Place every id at its bucket's cursor: ends[b] then walks from b's
	// start to its end, which is b+1's start.
	sorted := make([]uint64, n)
	for _, h := range s.sorted {
		sorted[ends[h>>shift]] = h
		ends[h>>shift]++
	}
	for h := range s.m {
		sorted[ends[h>>shift]] = h
		ends[h>>shift]++
	}
	start := int32(0)
	for _, end := range ends[:len(ends)-1] {
		if b := sorted[start:end]; len(b) > 32 {
			slices.Sort(b)
		} else {
			insertionSort(b)
		}
		start = end
	}
	s.sorted, s.m = sorted, map[uint64]struct{}{}
}

func insertionSort(xs []uint64) {
	for i := 1; i < len(xs); i++ {
		x, j := xs[i], i
		for ; j > 0 && xs[j-1] > x; j-- {
			xs[j] = xs[j-1]
		}
		xs[j] = x
	}
}
