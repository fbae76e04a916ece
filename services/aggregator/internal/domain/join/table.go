// Package join is the aggregator's stream-table join: a table of the latest
// entity profiles (pkg/profiles) read from the compacted profiles topic, and
// the enrichment of events with the profile of their user, product and
// service, plus the country of an access log's client IP from an IP-range
// table, before the events are windowed. The join is a KTable-style lookup
// join as of the event's processing (docs/join.md has the guarantees).
//
// The package does no I/O: an adapter feeds Table.Apply with the topic's
// records and supplies the topic's end offsets (HighWatermarks).
package join

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"unsafe"

	"github.com/streamwatch/streamwatch/pkg/profiles"
)

// attrs are one profile's join attributes as indices into the table's
// interned values (0 is ""): user segment, plan, country; product category;
// service team, tier. Interning keeps a million profiles at tens of bytes
// each: the values are few and shared.
type attrs [3]uint32

// Table holds the latest join attributes of every user, product and service
// profile, bounded to MaxEntries, and how far it has read each partition of
// the profiles topic. Safe for concurrent use: Apply takes the write lock,
// lookups (through Joiner.Enrich) the read lock.
type Table struct {
	maxEntries int

	mu       sync.RWMutex
	byType   [3]map[string]attrs // indexed by typeIndex
	values   []string            // interned attribute values; values[0] = ""
	valueIdx map[string]uint32
	keyBytes int64 // sum of the ids' lengths, for MemoryBytes
	next     map[int32]int64
	advanced chan struct{} // closed and replaced whenever next moves
	stats    TableStats
}

// TableStats counts what the table has applied since it was created.
type TableStats struct {
	// Entries is the number of profiles held (all types).
	Entries int
	// Users, Products and Services split Entries by type.
	Users, Products, Services int
	// Records is the number of profile records applied (tombstones
	// included, invalid ones excluded).
	Records int64
	// Tombstones is the number of deletes applied.
	Tombstones int64
	// Overflow counts new profiles refused because the table held
	// MaxEntries (updates and deletes of held profiles always apply).
	Overflow int64
	// Values is the number of distinct attribute values interned.
	Values int
	// Bytes estimates the table's heap in bytes (see MemoryBytes).
	Bytes int64
}

// NewTable returns an empty table that holds at most maxEntries profiles
// (all types together; maxEntries <= 0 means no bound).
func NewTable(maxEntries int) *Table {
	t := &Table{
		maxEntries: maxEntries,
		values:     []string{""},
		valueIdx:   map[string]uint32{"": 0},
		next:       map[int32]int64{},
		advanced:   make(chan struct{}),
	}
	for i := range t.byType {
		t.byType[i] = map[string]attrs{}
	}
	return t
}

func typeIndex(t profiles.Type) int {
	switch t {
	case profiles.TypeUser:
		return 0
	case profiles.TypeProduct:
		return 1
	}
	return 2
}

// Apply applies the profiles record at (partition, offset) with record key
// key and value value (empty value: a tombstone) and moves the partition's
// position to offset+1. A record at or below the position is ignored (a
// redelivery), so Apply is idempotent. A key or value that is not a valid
// profile record returns an error wrapping profiles.ErrInvalid; the
// position still moves (the caller dead-letters the record and goes on).
func (t *Table) Apply(partition int32, offset int64, key string, value []byte) error {
	var p profiles.Profile
	typ, id, err := profiles.ParseKey(key)
	if err == nil && len(value) > 0 {
		if p, err = profiles.Decode(value); err == nil && p.Key() != key {
			err = fmt.Errorf("%w: record key %q differs from the profile's %q", profiles.ErrInvalid, key, p.Key())
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.next[partition]; ok && offset < n {
		return nil
	}
	t.next[partition] = offset + 1
	close(t.advanced)
	t.advanced = make(chan struct{})
	if err != nil {
		return fmt.Errorf("profiles record %d/%d: %w", partition, offset, err)
	}
	m := t.byType[typeIndex(typ)]
	t.stats.Records++
	if len(value) == 0 {
		t.stats.Tombstones++
		if _, ok := m[id]; ok {
			delete(m, id)
			t.keyBytes -= int64(len(id))
		}
		return nil
	}
	old, held := m[id]
	if !held && t.maxEntries > 0 && t.entries() >= t.maxEntries {
		t.stats.Overflow++
		return nil
	}
	var a attrs
	switch typ {
	case profiles.TypeUser:
		a = attrs{t.intern(p.Segment), t.intern(p.Plan), t.intern(p.Country)}
	case profiles.TypeProduct:
		a = attrs{t.intern(p.Category)}
	case profiles.TypeService:
		a = attrs{t.intern(p.Team), t.intern(p.Tier)}
	}
	if held && old == a {
		return nil
	}
	if !held {
		id = string([]byte(id)) // own the bytes: key may share a large buffer
		t.keyBytes += int64(len(id))
	}
	m[id] = a
	return nil
}

// intern returns the index of v in t.values, adding it when new. Call with
// t.mu held for writing. Values are never removed: their number is bounded
// by the distinct values ever applied since the table was built (the table
// is rebuilt on every start).
func (t *Table) intern(v string) uint32 {
	if i, ok := t.valueIdx[v]; ok {
		return i
	}
	v = string([]byte(v))
	i := uint32(len(t.values))
	t.values = append(t.values, v)
	t.valueIdx[v] = i
	return i
}

func (t *Table) entries() int { return len(t.byType[0]) + len(t.byType[1]) + len(t.byType[2]) }

// Positions returns, per profiles partition read so far, the next offset
// the table expects (the offset of the last applied record + 1).
func (t *Table) Positions() map[int32]int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return maps.Clone(t.next)
}

// Reached reports whether the table has read every partition of end up to
// its offset (end maps partition to an end offset, as HighWatermarks
// returns; an end offset of 0 is an empty partition).
func (t *Table) Reached(end map[int32]int64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.reached(end)
}

func (t *Table) reached(end map[int32]int64) bool {
	for p, e := range end {
		if e > 0 && t.next[p] < e {
			return false
		}
	}
	return true
}

// WaitFor blocks until the table has Reached end or ctx is done; it returns
// ctx's error in the second case.
func (t *Table) WaitFor(ctx context.Context, end map[int32]int64) error {
	for {
		t.mu.RLock()
		ok, ch := t.reached(end), t.advanced
		t.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("profiles table at %v, waiting for %v: %w", t.Positions(), end, ctx.Err())
		case <-ch:
		}
	}
}

// Stats returns the table's size and counters. Safe for concurrent use.
func (t *Table) Stats() TableStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.stats
	s.Users, s.Products, s.Services = len(t.byType[0]), len(t.byType[1]), len(t.byType[2])
	s.Entries = s.Users + s.Products + s.Services
	s.Values = len(t.values)
	s.Bytes = t.memoryBytes()
	return s
}

// bytesPerEntry estimates the heap of one map[string]attrs entry besides
// its id bytes: the key's string header, the value, and the swiss table's
// control bytes, padding and spare capacity (40 bytes: BenchmarkEnrich
// measured 75 B of heap per profile with ~7-byte ids at 1,000,000 profiles).
const bytesPerEntry = int64(unsafe.Sizeof("")+unsafe.Sizeof(attrs{})) + 40

// memoryBytes estimates the heap the table holds: entries, their id bytes,
// and the interned values. Call with t.mu held.
func (t *Table) memoryBytes() int64 {
	b := int64(t.entries())*bytesPerEntry + t.keyBytes
	for _, v := range t.values {
		b += int64(len(v)) + 2*int64(unsafe.Sizeof("")) + 8 // value bytes, slice + map entry
	}
	return b
}
