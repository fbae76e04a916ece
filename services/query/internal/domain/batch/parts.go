package batch

import (
	"cmp"
	"slices"
)

// Part is one active data part of the events table, as ClickHouse's
// system.parts lists it.
type Part struct {
	// Name is the part's name (unique within the table; a merge or a new
	// insert always makes a new name, and an inactive part never becomes
	// active again).
	Name string
	// Partition is the partition id.
	Partition string
	// Level is 0 for a part written by an insert and > 0 for the output of
	// a merge.
	Level uint32
	// MinTime and MaxTime bound the part's event_time (seconds, inclusive):
	// the table's partition key minmax index.
	MinTime, MaxTime int64
}

// Deduplicated reports whether a statement without FINAL reads each
// ReplacingMergeTree key of parts at most once, given parts: every active
// part holding events of the range read. That is so when
//
//   - every part is the output of a merge (Level > 0): a ReplacingMergeTree
//     merge keeps one row per sorting key, so such a part holds no key
//     twice (an insert's part may: nothing deduplicates inside an insert
//     block on ClickHouse 18.16), and
//   - no two parts can share a key: the sorting key contains event_time, so
//     two parts whose [MinTime, MaxTime] do not intersect hold different
//     keys (a replayed event has the same event_time, hence the same
//     partition and a time inside both parts' ranges).
//
// After OPTIMIZE TABLE ... PARTITION ... FINAL a partition is one merged
// part, and partitions are disjoint days, so a fully optimized range
// qualifies. No parts qualify trivially. A part with MaxTime 0 does not
// qualify: system.parts reports 0 when it knows no time range (and an event
// at the epoch's first second is no real event).
func Deduplicated(parts []Part) bool {
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b Part) int { return cmp.Compare(a.MinTime, b.MinTime) })
	for i, p := range sorted {
		if p.Level == 0 || p.MaxTime == 0 {
			return false // MaxTime 0: ClickHouse knows no time range for the part
		}
		if i > 0 && sorted[i-1].MaxTime >= p.MinTime {
			return false
		}
	}
	return true
}

// SameParts reports whether a and b name the same set of parts. A statement
// that started after a was listed and finished before b was listed read
// exactly the parts of a when SameParts(a, b): any part created in between
// would still be active in b or have been merged into one that is, under a
// new name, and a part of a merged away in between would be missing from b.
func SameParts(a, b []Part) bool {
	if len(a) != len(b) {
		return false
	}
	names := make(map[string]bool, len(a))
	for _, p := range a {
		names[p.Name] = true
	}
	for _, p := range b {
		if !names[p.Name] {
			return false
		}
	}
	return true
}
