package adapters

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// eventNativeBlock is the events table's columns (eventColumns order) as
// ch-go column buffers for a Native-format insert. Reset keeps every
// buffer, so a block reused across inserts stops allocating once it has
// held the largest insert.
type eventNativeBlock struct {
	nativeBlock
	ids, types, keys, sources, users, sessions, pages, products, queries wireStr
	services, endpoints, ips, methods, paths, protos, refs, agents       wireStr
	times                                                                proto.ColDateTime
	timeMs, recvMs, bytes                                                proto.ColInt64
	vs                                                                   proto.ColUInt16
	amounts, latencies                                                   proto.ColFloat64
	statuses                                                             proto.ColInt32
	propKeys, propValues                                                 wireStrArr
	scratch                                                              []string        // sorted property keys of one event
	order                                                                []*events.Event // the rows of one insert in key order
}

func newEventNativeBlock() *eventNativeBlock {
	b := &eventNativeBlock{}
	// Same order as eventColumns.
	b.cols = []proto.InputColumn{
		{Name: "event_id", Data: &b.ids}, {Name: "type", Data: &b.types}, {Name: "event_time", Data: &b.times},
		{Name: "event_time_ms", Data: &b.timeMs}, {Name: "receive_time_ms", Data: &b.recvMs}, {Name: "v", Data: &b.vs},
		{Name: "key", Data: &b.keys}, {Name: "source", Data: &b.sources}, {Name: "user_id", Data: &b.users},
		{Name: "session_id", Data: &b.sessions}, {Name: "page", Data: &b.pages}, {Name: "product_id", Data: &b.products},
		{Name: "amount", Data: &b.amounts}, {Name: "query", Data: &b.queries},
		{Name: "properties_keys", Data: &b.propKeys}, {Name: "properties_values", Data: &b.propValues},
		{Name: "service", Data: &b.services}, {Name: "endpoint", Data: &b.endpoints}, {Name: "latency_ms", Data: &b.latencies},
		{Name: "status", Data: &b.statuses}, {Name: "client_ip", Data: &b.ips}, {Name: "method", Data: &b.methods},
		{Name: "path", Data: &b.paths}, {Name: "protocol", Data: &b.protos}, {Name: "bytes", Data: &b.bytes},
		{Name: "referrer", Data: &b.refs}, {Name: "user_agent", Data: &b.agents},
	}
	return b
}

// append adds e as the next row: the same values as eventBlock.set.
func (b *eventNativeBlock) append(e *events.Event) {
	b.ids.Append(e.ID)
	b.types.Append(string(e.Type))
	b.times.AppendRaw(proto.DateTime(dateTimeSec(e.Time)))
	b.timeMs.Append(e.Time)
	b.recvMs.Append(e.ReceiveTime)
	b.vs.Append(uint16(min(max(e.V, 0), 1<<16-1)))
	b.keys.Append(e.Key)
	b.sources.Append(e.Source)
	b.users.Append(e.UserID)
	b.sessions.Append(e.SessionID)
	b.pages.Append(e.Page)
	b.products.Append(e.ProductID)
	b.amounts.Append(e.Amount)
	b.queries.Append(e.Query)
	b.scratch = appendSortedPairs(&b.propKeys, &b.propValues, e.Properties, b.scratch)
	b.services.Append(e.Service)
	b.endpoints.Append(e.Endpoint)
	b.latencies.Append(e.LatencyMs)
	b.statuses.Append(int32(e.Status))
	b.ips.Append(e.ClientIP)
	b.methods.Append(e.Method)
	b.paths.Append(e.Path)
	b.protos.Append(e.Protocol)
	b.bytes.Append(e.Bytes)
	b.refs.Append(e.Referrer)
	b.agents.Append(e.UserAgent)
	b.rows++
}

// insertNative writes the n events of groups over HTTP in Native format:
// one insert, or r.split concurrent inserts of about n/r.split rows each
// when n reaches r.split*r.splitMin (ClickHouse 18.16 parses and sorts one
// insert on one thread, so a single insert leaves the second core idle).
// Split inserts are not atomic together: after an error some rows may be
// stored, and the caller's retry writes them again, which the table's
// ReplacingMergeTree key collapses like any replay.
func (r *ClickHouseEventRepository) insertNative(ctx context.Context, groups [][]events.Event, n int) error {
	if r.split < 2 || n < r.split*r.splitMin {
		return r.insertNativePart(ctx, groups, n)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, part := range splitGroups(groups, n, r.split) {
		g.Go(func() error { return r.insertNativePart(gctx, part.groups, part.rows) })
	}
	return g.Wait()
}

// insertNativePart writes the n events of groups as one insert, in a block
// taken from (and returned to) r's free list.
func (r *ClickHouseEventRepository) insertNativePart(ctx context.Context, groups [][]events.Event, n int) error {
	b := r.blocks.get(newEventNativeBlock)
	defer func() {
		b.reset()
		r.blocks.put(b)
	}()
	// In the table's sort key order: ClickHouse 18.16 then skips sorting
	// the block (MergeTreeDataWriterBlocksAlreadySorted), about a third
	// of its CPU for an unsorted 100,000-row insert. Stable, so that of two
	// rows with one key the later stays later (the one
	// ReplacingMergeTree keeps), as in the server's own stable sort.
	rows := b.order[:0]
	for _, evs := range groups {
		for j := range evs {
			rows = append(rows, &evs[j])
		}
	}
	if !slices.IsSortedFunc(rows, compareEventKey) {
		slices.SortStableFunc(rows, compareEventKey)
	}
	for _, e := range rows {
		b.append(e)
	}
	clear(rows)
	b.order = rows[:0]
	data, err := b.encode()
	if err != nil {
		return err
	}
	return r.http.insertNative(ctx, r.table, eventColumns, data, n)
}

// compareEventKey orders events as the events table's sort key (type,
// event_time as the stored DateTime seconds, event_id), strings bytewise
// as ClickHouse compares them.
func compareEventKey(a, b *events.Event) int {
	if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
		return c
	}
	if c := cmp.Compare(dateTimeSec(a.Time), dateTimeSec(b.Time)); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// rowsPart is a share of a split insert.
type rowsPart[T any] struct {
	groups [][]T
	rows   int
}

// splitGroups cuts groups (n rows in all) into at most k parts of about
// n/k rows each, in order; a group is cut only where a part fills up.
func splitGroups[T any](groups [][]T, n, k int) []rowsPart[T] {
	size := (n + k - 1) / k
	parts := make([]rowsPart[T], 0, k)
	var cur rowsPart[T]
	for _, g := range groups {
		for len(g) > 0 {
			take := len(g)
			if len(parts) < k-1 { // the last part takes the rest
				take = min(take, size-cur.rows)
			}
			cur.groups = append(cur.groups, g[:take])
			cur.rows += take
			g = g[take:]
			if cur.rows == size && len(parts) < k-1 {
				parts = append(parts, cur)
				cur = rowsPart[T]{}
			}
		}
	}
	if cur.rows > 0 {
		parts = append(parts, cur)
	}
	return parts
}
