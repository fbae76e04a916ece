package adapters

import (
	"context"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// windowNativeBlock is the metric_windows columns (windowColumns order) as
// column buffers for a Native-format insert, reused across inserts like
// eventNativeBlock.
type windowNativeBlock struct {
	nativeBlock
	metricCol, keys, kinds                  wireStr
	names, values                           wireStrArr
	starts                                  proto.ColDateTime
	startMs, endMs, revisions, counts, wmMs proto.ColInt64
	shards                                  proto.ColInt32
	completes                               proto.ColUInt8
	sums, mins, maxs, vals                  proto.ColFloat64
	scratch                                 []string // sorted label names of one result
}

func newWindowNativeBlock() *windowNativeBlock {
	b := &windowNativeBlock{}
	// Same order as windowColumns.
	b.cols = []proto.InputColumn{
		{Name: "metric", Data: &b.metricCol}, {Name: "labels_key", Data: &b.keys}, {Name: "label_names", Data: &b.names},
		{Name: "label_values", Data: &b.values}, {Name: "window_start", Data: &b.starts}, {Name: "window_start_ms", Data: &b.startMs},
		{Name: "window_end_ms", Data: &b.endMs}, {Name: "shard", Data: &b.shards}, {Name: "complete", Data: &b.completes},
		{Name: "kind", Data: &b.kinds}, {Name: "revision", Data: &b.revisions}, {Name: "count", Data: &b.counts},
		{Name: "sum", Data: &b.sums}, {Name: "min", Data: &b.mins}, {Name: "max", Data: &b.maxs}, {Name: "value", Data: &b.vals},
		{Name: "watermark_ms", Data: &b.wmMs},
	}
	return b
}

// append adds w as the next row: the values InsertWindows's clickhouse-go
// path writes.
func (b *windowNativeBlock) append(w *metrics.Result) {
	b.metricCol.Append(w.Metric)
	b.keys.Append(metrics.LabelsKey(w.Labels))
	b.scratch = appendSortedPairs(&b.names, &b.values, w.Labels, b.scratch)
	b.starts.AppendRaw(proto.DateTime(dateTimeSec(w.WindowStart)))
	b.startMs.Append(w.WindowStart)
	b.endMs.Append(w.WindowEnd)
	b.shards.Append(w.Shard)
	var complete uint8
	if w.Complete {
		complete = 1
	}
	b.completes.Append(complete)
	b.kinds.Append(w.Kind)
	b.revisions.Append(w.Revision)
	b.counts.Append(w.Count)
	b.sums.Append(w.Sum)
	b.mins.Append(w.Min)
	b.maxs.Append(w.Max)
	b.vals.Append(w.Value)
	b.wmMs.Append(w.Watermark)
	b.rows++
}

// insertNative writes rs as one Native-format insert over HTTP, in a block
// taken from (and returned to) r's free list.
func (r *ClickHouseWindowRepository) insertNative(ctx context.Context, rs []metrics.Result) error {
	b := r.blocks.get(newWindowNativeBlock)
	defer func() {
		b.reset()
		r.blocks.put(b)
	}()
	for i := range rs {
		b.append(&rs[i])
	}
	data, err := b.encode()
	if err != nil {
		return err
	}
	return r.http.insertNative(ctx, r.table, windowColumns, data, len(rs))
}
