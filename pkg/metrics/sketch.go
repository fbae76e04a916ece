package metrics

import (
	"cmp"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"
)

// Accuracy of the approximate aggregations.
const (
	// DistinctPrecision is the HyperLogLog precision p (2^p registers).
	DistinctPrecision = 14
	// DistinctRelativeError is the HyperLogLog standard error
	// 1.04/sqrt(2^14) ≈ 0.81% (Flajolet et al. 2007; the HLL++ bias
	// correction of Heule et al. 2013 keeps it at small cardinalities);
	// tests allow 3 standard errors.
	DistinctRelativeError = 0.0081
	// QuantileRelativeAccuracy is the DDSketch relative accuracy α: a
	// reported quantile q̂ of a true quantile q satisfies |q̂-q| <= α·|q|
	// (Masson et al., "DDSketch", VLDB 2019).
	QuantileRelativeAccuracy = 0.01
	// quantileMaxBins bounds a DDSketch's memory (2048 bins of 8 bytes per
	// sign); with α = 1% that covers values over ~18 orders of magnitude
	// before the lowest bins collapse.
	quantileMaxBins = 2048
	// TopKCapacityFactor: a topk aggregation tracks N·TopKCapacityFactor
	// counters (Space-Saving, Metwally et al. 2005). A value whose count is
	// above total/(N·factor) is guaranteed to be tracked; each reported
	// count overestimates by at most the reported Err.
	TopKCapacityFactor = 10
)

// Distinct is a HyperLogLog distinct-count sketch (axiomhq/hyperloglog,
// precision DistinctPrecision). Not safe for concurrent use.
type Distinct struct{ sk *hyperloglog.Sketch }

// NewDistinct returns an empty sketch.
func NewDistinct() *Distinct { return &Distinct{sk: hyperloglog.New14()} }

// Add adds a value: AddHash(DistinctHash(v)).
func (d *Distinct) Add(v string) { d.sk.InsertHash(DistinctHash(v)) }

// DistinctHash returns the 64-bit hash (xxHash64) by which Add adds v. A
// caller that keeps the hashes it added (a checkpoint's log of them) can
// add them again with AddHash.
func DistinctHash(v string) uint64 { return xxhash.Sum64String(v) }

// AddHash adds a value by its DistinctHash. A register keeps the largest
// rank of the hashes it was given, so adding a set of hashes in any order,
// any of them any number of times, gives the same registers.
func (d *Distinct) AddHash(h uint64) { d.sk.InsertHash(h) }

// Estimate returns the estimated number of distinct values added.
func (d *Distinct) Estimate() uint64 { return d.sk.Estimate() }

// Merge adds other's values to d.
func (d *Distinct) Merge(other *Distinct) error { return d.sk.Merge(other.sk) }

// densify switches a sparse sketch to the dense representation: 2^14
// one-byte registers (16 KiB) whatever the number of values. An insert then
// costs one register update instead of a share of the sparse list's
// periodic sorted merge (thousands of instructions per insert once the
// list holds a few thousand hashes). The estimate keeps the error of
// precision 14 (1.04/√16384 ≈ 0.81 %); the sparse representation's extra
// precision for small counts is lost, as when the library itself converts
// a sparse sketch that outgrew the registers. Called on sparse sketches
// only (a dense one would be copied for nothing).
func (d *Distinct) densify() {
	dense := hyperloglog.NewNoSparse()
	if err := dense.Merge(d.sk); err == nil { // same precision: cannot fail
		d.sk = dense
	}
}

// MarshalBinaryDensify is MarshalBinary, except that a sparse sketch whose
// encoding is longer than maxSparseBytes is first switched to the dense
// representation (densify) and encoded as such (16 KiB + 4 bytes): a
// caller that encodes a sketch after every change uses it to stop paying
// the sparse list's merges once the sketch has grown. The decision depends
// only on the sketch's content, so equal sketches stay equal.
func (d *Distinct) MarshalBinaryDensify(maxSparseBytes int) ([]byte, error) {
	b, err := d.sk.MarshalBinary()
	if err != nil || len(b) <= maxSparseBytes || len(b) < 4 || b[3] != 1 { // axiomhq header: version, p, b, sparse flag
		return b, err
	}
	d.densify()
	return d.sk.MarshalBinary()
}

// MarshalBinary encodes the sketch (sparse sketches stay small).
func (d *Distinct) MarshalBinary() ([]byte, error) { return d.sk.MarshalBinary() }

// DecodeDistinct decodes a sketch written by MarshalBinary.
func DecodeDistinct(b []byte) (*Distinct, error) {
	sk := hyperloglog.New14()
	if err := sk.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decode distinct sketch: %w", err)
	}
	return &Distinct{sk: sk}, nil
}

// Quantiles is a DDSketch of a value distribution with relative accuracy
// QuantileRelativeAccuracy. Not safe for concurrent use.
type Quantiles struct{ sk *ddsketch.DDSketch }

var quantileMapping = func() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(QuantileRelativeAccuracy)
	if err != nil {
		panic(err) // constant accuracy: cannot fail
	}
	return m
}()

func quantileStore() store.Store { return store.NewCollapsingLowestDenseStore(quantileMaxBins) }

// NewQuantiles returns an empty sketch.
func NewQuantiles() *Quantiles {
	return &Quantiles{sk: ddsketch.NewDDSketch(quantileMapping, quantileStore(), quantileStore())}
}

// Add adds a value; NaN and infinities are ignored.
func (q *Quantiles) Add(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	_ = q.sk.Add(v) // only fails for values outside the mapping's range (±1e308)
}

// Quantile returns the value at quantile p in [0, 1]; 0 for an empty sketch.
func (q *Quantiles) Quantile(p float64) float64 {
	v, err := q.sk.GetValueAtQuantile(p)
	if err != nil {
		return 0
	}
	return v
}

// Merge adds other's values to q.
func (q *Quantiles) Merge(other *Quantiles) error { return q.sk.MergeWith(other.sk) }

// MarshalBinary encodes the sketch (DDSketch binary format, mapping omitted).
func (q *Quantiles) MarshalBinary() ([]byte, error) {
	var b []byte
	q.sk.Encode(&b, true)
	return b, nil
}

// DecodeQuantiles decodes a sketch written by MarshalBinary.
func DecodeQuantiles(b []byte) (*Quantiles, error) {
	sk, err := ddsketch.DecodeDDSketch(b, quantileStore, quantileMapping)
	if err != nil {
		return nil, fmt.Errorf("decode quantile sketch: %w", err)
	}
	return &Quantiles{sk: sk}, nil
}

// KeyCount is one entry of a top-k list. Count may overestimate the true
// count by at most Err.
type KeyCount struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
	Err   int64  `json:"err,omitempty"`
}

// TopK tracks the most frequent keys with the Space-Saving algorithm
// (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and
// top-k elements in data streams", ICDT 2005) in at most Capacity counters,
// kept in a min-heap by count so an update costs O(log Capacity). While
// fewer distinct keys than Capacity were added, the counts are exact.
// Not safe for concurrent use.
type TopK struct {
	Capacity int
	heap     []*topKNode          // min-heap by (Count, then Key descending)
	index    map[string]*topKNode // key -> its node
}

// topKNode is one counter of a TopK and its position in the heap, so that
// moving it in the heap writes no map entry.
type topKNode struct {
	KeyCount
	pos int
}

// NewTopK returns an empty TopK tracking capacity keys.
func NewTopK(capacity int) *TopK {
	return &TopK{Capacity: capacity, index: make(map[string]*topKNode)}
}

// Add counts one occurrence of key. When the table is full, the key with
// the smallest count is replaced and the new key inherits its count as Err.
// A key the table starts to track is copied (strings.Clone), so key may be
// a substring of a larger string (e.g. a decoded record) without keeping
// it alive.
func (t *TopK) Add(key string) { t.AddCount(key, 1, 0) }

// AddCount counts n occurrences of key with error err; a new key is copied
// as in Add.
func (t *TopK) AddCount(key string, n, err int64) {
	if kc, ok := t.index[key]; ok {
		kc.Count += n
		kc.Err += err
		t.down(kc.pos)
		return
	}
	key = strings.Clone(key)
	if len(t.heap) < t.Capacity {
		kc := &topKNode{KeyCount: KeyCount{Key: key, Count: n, Err: err}, pos: len(t.heap)}
		t.heap = append(t.heap, kc)
		t.index[key] = kc
		t.up(kc.pos)
		return
	}
	root := t.heap[0]
	delete(t.index, root.Key)
	root.Key, root.Count, root.Err = key, root.Count+n, root.Count+err
	t.index[key] = root
	t.down(0)
}

func (t *TopK) less(i, j int) bool {
	a, b := t.heap[i], t.heap[j]
	return a.Count < b.Count || (a.Count == b.Count && a.Key > b.Key)
}

func (t *TopK) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.heap[i].pos = i
	t.heap[j].pos = j
}

func (t *TopK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *TopK) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			return
		}
		t.swap(i, m)
		i = m
	}
}

// Top returns the n keys with the highest counts, ties broken by key.
func (t *TopK) Top(n int) []KeyCount {
	all := t.Entries()
	return all[:min(n, len(all))]
}

// Entries returns every tracked key, highest count first, ties by key.
func (t *TopK) Entries() []KeyCount {
	all := make([]KeyCount, 0, len(t.heap))
	for _, kc := range t.heap {
		all = append(all, kc.KeyCount)
	}
	slices.SortFunc(all, func(a, b KeyCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return all
}

// All yields the tracked keys with their counts in no particular order
// (Entries sorts them), for encodings that restore them with AddCount.
func (t *TopK) All() iter.Seq[KeyCount] {
	return func(yield func(KeyCount) bool) {
		for _, kc := range t.heap {
			if !yield(kc.KeyCount) {
				return
			}
		}
	}
}

// Len returns the number of tracked keys.
func (t *TopK) Len() int { return len(t.heap) }

// Merge adds other's counters to t (the merged counts keep the Space-Saving
// overestimate bound as the sum of both errors).
func (t *TopK) Merge(other *TopK) {
	for _, kc := range other.Entries() {
		t.AddCount(kc.Key, kc.Count, kc.Err)
	}
}
