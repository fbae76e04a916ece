package adapters

import (
	"context"

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
	best := make(map[string]int, len(rs))
	ids := make([]string, len(rs))
	superseded := 0
	for i := range rs {
		ids[i] = rs[i].ID()
		j, ok := best[ids[i]]
		switch {
		case !ok:
			best[ids[i]] = i
		case rs[i].Revision > rs[j].Revision:
			best[ids[i]] = i
			superseded++
		default:
			superseded++
		}
	}
	if superseded == 0 {
		return rs
	}
	out := make([]metrics.Result, 0, len(best))
	for i := range rs {
		if best[ids[i]] == i {
			out = append(out, rs[i])
		}
	}
	return out
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
