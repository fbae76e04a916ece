package adapters

import (
	"context"
	"hash/maphash"
	"maps"

	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
)

// LatestRevisions returns rs without the results that rs itself
// supersedes: of the results with one ID (metric, labels, window, shard)
// only the first with the highest revision stays, in its place in rs. The
// metric_windows table keeps the highest revision of each window anyway
// (ReplacingMergeTree, read with FINAL or argMax), so writing only that one
// stores the same view with fewer rows to insert and merge. rs itself is
// returned when nothing is superseded, else a new slice; rs is not changed.
func LatestRevisions(rs []metrics.Result) []metrics.Result {
	if len(rs) < 2 {
		return rs
	}
	seed := maphash.MakeSeed()
	key := func(r *metrics.Result) windowKey {
		return windowKey{metric: r.Metric, start: r.WindowStart, end: r.WindowEnd, shard: r.Shard, labels: labelsHash(seed, r.Labels)}
	}
	if out, ok := latestBy(rs, key, func(a, b *metrics.Result) bool { return maps.Equal(a.Labels, b.Labels) }); ok {
		return out
	}
	// Two label sets with one 64-bit hash: never seen, but then the IDs
	// decide.
	out, _ := latestBy(rs, (*metrics.Result).ID, nil)
	return out
}

// latestBy is LatestRevisions with the ID given by key. same, if not nil,
// confirms that two results with one key have one ID; when it does not,
// latestBy returns false.
func latestBy[K comparable](rs []metrics.Result, key func(*metrics.Result) K, same func(a, b *metrics.Result) bool) ([]metrics.Result, bool) {
	best := make(map[K]int, len(rs))
	keys := make([]K, len(rs))
	superseded := 0
	for i := range rs {
		keys[i] = key(&rs[i])
		j, ok := best[keys[i]]
		switch {
		case !ok:
			best[keys[i]] = i
		case same != nil && !same(&rs[j], &rs[i]):
			return nil, false
		case rs[i].Revision > rs[j].Revision:
			best[keys[i]] = i
			superseded++
		default:
			superseded++
		}
	}
	if superseded == 0 {
		return rs, true
	}
	out := make([]metrics.Result, 0, len(best))
	for i := range rs {
		if best[keys[i]] == i {
			out = append(out, rs[i])
		}
	}
	return out, true
}

// windowKey stands for a result's ID without building its string: the
// labels are an order-independent hash, which LatestRevisions confirms
// with maps.Equal.
type windowKey struct {
	metric     string
	start, end int64
	shard      int32
	labels     uint64
}

// labelsHash hashes a label set independently of the map's order: the
// sum of one hash per name and value pair.
func labelsHash(seed maphash.Seed, labels map[string]string) uint64 {
	var sum uint64
	var h maphash.Hash
	h.SetSeed(seed)
	for k, v := range labels {
		h.Reset()
		h.WriteString(k)
		h.WriteByte(0)
		h.WriteString(v)
		sum += h.Sum64()
	}
	return sum
}

// LatestRevisionsWriter is a command.WindowWriter that writes through W
// only the results that the written slice itself does not supersede
// (LatestRevisions): a batch of many metrics.windows records holds several
// revisions of a busy window, and only the last one matters.
type LatestRevisionsWriter struct {
	// W stores the remaining results.
	W command.WindowWriter
}

var _ command.WindowQueue = LatestRevisionsWriter{}

// WriteAll implements command.WindowWriter.
func (w LatestRevisionsWriter) WriteAll(ctx context.Context, rs []metrics.Result) error {
	return w.W.WriteAll(ctx, LatestRevisions(rs))
}

// Enqueue implements command.WindowQueue: through W when it is one,
// else a synchronous WriteAll (wait then returns nil).
func (w LatestRevisionsWriter) Enqueue(ctx context.Context, rs []metrics.Result) (func(context.Context) error, error) {
	q, ok := w.W.(command.WindowQueue)
	if !ok {
		if err := w.WriteAll(ctx, rs); err != nil {
			return nil, err
		}
		return func(context.Context) error { return nil }, nil
	}
	return q.Enqueue(ctx, LatestRevisions(rs))
}
