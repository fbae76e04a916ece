package window

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkIDSetCompact measures compacting one minute's ids of a busy
// partition (48,000 events/s over 6 partitions: 480,000 ids), the pause
// one Add pays once per minute and dedup class when that minute falls
// behind every watermark.
func BenchmarkIDSetCompact(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 480_000
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = rng.Uint64()
	}
	for b.Loop() {
		b.StopTimer()
		s := newIDSet(0)
		for _, h := range ids {
			s.insert(h)
		}
		b.StartTimer()
		s.compactIfDue()
		if s.len() != n || len(s.sorted) != n {
			b.Fatal("not compacted")
		}
	}
}

// TestIDSetRecompacts checks that a compacted set that keeps getting ids
// is compacted again once its map holds an eighth of the sorted ids, and
// keeps every id.
func TestIDSetRecompacts(t *testing.T) {
	t.Parallel()
	s := newIDSet(0)
	for h := range uint64(800) {
		s.insert(h * 2)
	}
	s.compactIfDue()
	if len(s.sorted) != 800 || len(s.m) != 0 {
		t.Fatalf("compacted %d, map %d", len(s.sorted), len(s.m))
	}
	for h := range uint64(100) {
		if !s.insert(h*2 + 1) {
			t.Fatalf("%d was new", h*2+1)
		}
		if s.insert(h * 2) {
			t.Fatalf("%d is compacted", h*2)
		}
		s.compactIfDue()
	}
	if len(s.sorted) != 900 || len(s.m) != 0 || s.len() != 900 {
		t.Fatalf("compacted %d, map %d", len(s.sorted), len(s.m))
	}
	for h := range uint64(2_000) {
		if s.has(h) != (h < 1_600 && h%2 == 0 || h < 200) {
			t.Fatalf("has(%d)", h)
		}
	}
}

// TestIDSetCompactSorts checks the counting sort of compactIfDue on random
// hashes, on hashes that all share their top bits (crafted ids) and on
// small sets.
func TestIDSetCompactSorts(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		n    int
		mask uint64
	}{
		{"random", 100_000, ^uint64(0)},
		{"same top bits", 5_000, 1<<20 - 1},
		{"small", 20, ^uint64(0)},
	} {
		s := newIDSet(0)
		var want []uint64
		for range tc.n {
			h := rng.Uint64() & tc.mask
			if s.insert(h) {
				want = append(want, h)
			}
		}
		s.compactIfDue()
		// Recompaction merges the sorted ids with new ones.
		for range tc.n/8 + compactMin {
			h := rng.Uint64() & tc.mask
			if s.insert(h) {
				want = append(want, h)
			}
		}
		s.compactIfDue()
		slices.Sort(want)
		if len(s.m) != 0 || !slices.Equal(want, s.sorted) {
			t.Fatalf("%s: map %d, sorted %d ids (want %d), in order: %v", tc.name, len(s.m), len(s.sorted), len(want), slices.IsSorted(s.sorted))
		}
	}
}
