// Package batch is the Lambda batch layer's model: it compiles the metric
// definitions the aggregator evaluates on the stream (pkg/metrics) into
// ClickHouse SQL over the raw events table, for whole windows, and
// describes batch runs. It does no I/O.
//
// The compiled statement reads events FINAL (each event once, as the
// aggregator's dedup does), applies the definition's type filter and
// predicates, assigns each event to its windows (tumbling: one; hopping:
// size/slide of them, with arrayJoin), and aggregates per window and label
// set. Derived fields follow pkg/metrics: status_class, is_error,
// is_success. Exactness differs from the speed layer on purpose for the
// sketch aggregations: distinct is uniqExact (the stream uses HyperLogLog)
// and quantiles are quantileExact (the stream uses DDSketch), so their
// divergence is the sketches' error; count, sum, min, max, avg and rate
// must agree exactly.
//
// Not compiled: session windows (their extent depends on the whole event
// sequence of a label set, not on a window grid); such definitions are
// reported as skipped.
package batch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// ErrNotCompilable is wrapped when a definition has no batch form.
var ErrNotCompilable = errors.New("definition has no batch form")

// stringExpr maps metrics.StringField names to SQL over the events table.
var stringExpr = map[string]string{
	"type": "type", "key": "key", "source": "source", "user_id": "user_id", "session_id": "session_id",
	"page": "page", "product_id": "product_id", "query": "query", "service": "service", "endpoint": "endpoint",
	"status":       "toString(status)",
	"status_class": "if(status >= 100 AND status < 600, concat(toString(intDiv(status, 100)), 'xx'), 'other')",
	"client_ip":    "client_ip", "method": "method", "path": "path", "protocol": "protocol",
	"bytes": "toString(bytes)", "is_error": "if(status >= 500, '1', '0')", "is_success": "if(status >= 100 AND status < 400, '1', '0')",
}

// numberExpr maps metrics.NumberField names to SQL.
var numberExpr = map[string]string{
	"status": "toFloat64(status)", "bytes": "toFloat64(bytes)", "latency_ms": "latency_ms", "amount": "amount",
	"is_error": "if(status >= 500, 1., 0.)", "is_success": "if(status >= 100 AND status < 400, 1., 0.)",
}

// Query is one compiled definition: SQL and its bound arguments. Its rows
// are (window_start_ms Int64, window_end_ms Int64, labels Array(String) in
// Definition.GroupBy order, count UInt64, sum Float64, min Float64, max
// Float64, value Float64).
type Query struct {
	Metric string
	// GroupBy are the label names, in the order of the labels column.
	GroupBy []string
	// SQL reads the events table with FINAL: exact whatever the table's
	// parts are.
	SQL string
	// MergedSQL is SQL without FINAL (same arguments). It is exact only
	// while the parts it reads hold no key twice, see Deduplicated.
	MergedSQL string
	Args      []any
	// ReadFromMs and ReadToMs bound the event times the query reads:
	// [ReadFromMs, ReadToMs).
	ReadFromMs, ReadToMs int64
	// SpanFromMs and SpanToMs bound the event times the whole plan (every
	// chunk of this metric) reads: [SpanFromMs, SpanToMs).
	SpanFromMs, SpanToMs int64
}

// Span returns the whole windows of d inside [fromMs, toMs): the first
// window start and the end of the last window, aligned to the window grid
// (slide for hopping windows). ok is false when no whole window fits.
func Span(d *metrics.Definition, fromMs, toMs int64) (start, end int64, ok bool) {
	size, step := d.Window.Size.Milliseconds(), d.Window.Size.Milliseconds()
	if d.Window.Kind == metrics.WindowHopping {
		step = d.Window.Slide.Milliseconds()
	}
	if size <= 0 || step <= 0 {
		return 0, 0, false
	}
	start = ceilDiv(fromMs, step) * step
	lastStart := floorDiv(toMs-size, step) * step
	if lastStart < start {
		return 0, 0, false
	}
	return start, lastStart + size, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// Compile returns the statement computing d over the events of table
// (database.events, validated) for every whole window inside [fromMs,
// toMs). Every value from the definition is a bound argument; identifiers
// come from the fixed maps above.
func Compile(d *metrics.Definition, table string, fromMs, toMs int64) (Query, error) {
	qs, err := Plan(d, table, fromMs, toMs, 0)
	if err != nil {
		return Query{}, err
	}
	return qs[0], nil
}

// Plan is Compile split into queries over consecutive chunks of window
// starts (<= 0: one query), so that chunks can run in parallel. Chunk
// boundaries are the multiples of chunkMs (rounded to the window grid)
// since the epoch, so 24 h chunks are UTC days, the events table's
// partitions on a UTC server; the first and last chunks may be shorter.
// Each query reads only the events its windows need; a hopping window
// belongs to the chunk of its start.
func Plan(d *metrics.Definition, table string, fromMs, toMs, chunkMs int64) ([]Query, error) {
	if d.Window.Kind == metrics.WindowSession {
		return nil, fmt.Errorf("%w: %s: session windows", ErrNotCompilable, d.Name)
	}
	start, end, ok := Span(d, fromMs, toMs)
	if !ok {
		return nil, fmt.Errorf("%w: %s: no whole %s window in the range", ErrNotCompilable, d.Name, d.Window.Size)
	}
	size, step := d.Window.Size.Milliseconds(), d.Window.Size.Milliseconds()
	if d.Window.Kind == metrics.WindowHopping {
		step = d.Window.Slide.Milliseconds()
	}
	lastStart := end - size
	if chunkMs > 0 {
		chunkMs = max(chunkMs/step, 1) * step
	}
	var out []Query
	for cs := start; cs <= lastStart; {
		ce := lastStart + step // window starts in [cs, ce)
		if chunkMs > 0 {
			ce = min((floorDiv(cs, chunkMs)+1)*chunkMs, ce) // the next boundary, a multiple of step as chunkMs is
		}
		q, err := compileChunk(d, table, cs, ce, min(ce-step+size, end), end)
		if err != nil {
			return nil, err
		}
		q.SpanFromMs, q.SpanToMs = start, end
		out = append(out, q)
		cs = ce
	}
	return out, nil
}

// finalMarker stands for the FINAL modifier in a statement being built
// (a NUL byte never appears in compiled SQL).
const finalMarker = "\x00final\x00"

// compileChunk compiles the windows of d starting in [wsFrom, wsTo) and
// ending by end, from the events in [wsFrom, evTo).
func compileChunk(d *metrics.Definition, table string, wsFrom, wsTo, evTo, end int64) (Query, error) {
	start := wsFrom
	size := d.Window.Size.Milliseconds()
	valueSQL := "0."
	if d.Value != "" {
		v, ok := numberExpr[d.Value]
		if !ok {
			return Query{}, fmt.Errorf("%w: %s: value field %q", ErrNotCompilable, d.Name, d.Value)
		}
		valueSQL = v
	}
	var groupSQL []string
	for _, g := range d.GroupBy {
		s, ok := stringExpr[g]
		if !ok {
			return Query{}, fmt.Errorf("%w: %s: group_by field %q", ErrNotCompilable, d.Name, g)
		}
		groupSQL = append(groupSQL, s)
	}

	var args []any
	var inner strings.Builder
	// Window starts of each event.
	if d.Window.Kind == metrics.WindowHopping {
		slide := d.Window.Slide.Milliseconds()
		n := size / slide
		inner.WriteString("SELECT arrayJoin(arrayMap(i -> (intDiv(event_time_ms, ?) - i) * ?, range(?))) AS ws")
		args = append(args, slide, slide, uint64(n))
	} else {
		inner.WriteString("SELECT intDiv(event_time_ms, ?) * ? AS ws")
		args = append(args, size, size)
	}
	inner.WriteString(", " + valueSQL + " AS v")
	for i, g := range groupSQL {
		inner.WriteString(", " + g + " AS g" + strconv.Itoa(i))
	}
	extra := "''"
	switch {
	case d.NeedsDistinct():
		s, ok := stringExpr[d.Distinct]
		if !ok {
			return Query{}, fmt.Errorf("%w: %s: distinct field %q", ErrNotCompilable, d.Name, d.Distinct)
		}
		extra = s
	}
	inner.WriteString(", " + extra + " AS x")
	inner.WriteString(" FROM " + table + finalMarker + " WHERE event_time >= toDateTime(?) AND event_time <= toDateTime(?)" +
		" AND event_time_ms >= ? AND event_time_ms < ?")
	args = append(args, max(start/1000, 0), max((evTo-1)/1000, 0), start, evTo)
	if len(d.Types) > 0 {
		inner.WriteString(" AND type IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(d.Types)), ", ") + ")")
		for _, t := range d.Types {
			args = append(args, string(t))
		}
	}
	for _, p := range d.Where {
		cond, pargs, err := predicateSQL(p)
		if err != nil {
			return Query{}, fmt.Errorf("%w: %s: %w", ErrNotCompilable, d.Name, err)
		}
		inner.WriteString(" AND " + cond)
		args = append(args, pargs...)
	}

	headline, err := headlineSQL(d, size)
	if err != nil {
		return Query{}, err
	}
	var b strings.Builder
	b.WriteString("SELECT ws, ws + ? AS we, [")
	outer := []any{size}
	for i := range groupSQL {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("g" + strconv.Itoa(i))
	}
	b.WriteString("] AS labels, count() AS c, sum(v) AS s, min(v) AS mn, max(v) AS mx, " + headline + " AS value FROM (")
	b.WriteString(inner.String())
	b.WriteString(") WHERE ws >= ? AND ws < ? AND ws + ? <= ? GROUP BY ws")
	for i := range groupSQL {
		b.WriteString(", g" + strconv.Itoa(i))
	}
	b.WriteString(" ORDER BY ws")
	args = append(outer, args...)
	args = append(args, wsFrom, wsTo, size, end)
	sql := b.String()
	return Query{
		Metric: d.Name, GroupBy: append([]string(nil), d.GroupBy...),
		SQL:       strings.Replace(sql, finalMarker, " FINAL", 1),
		MergedSQL: strings.Replace(sql, finalMarker, "", 1),
		Args:      args, ReadFromMs: start, ReadToMs: evTo,
	}, nil
}

// headlineSQL is the aggregate of the definition's headline aggregation.
func headlineSQL(d *metrics.Definition, sizeMs int64) (string, error) {
	switch a := d.Headline(); a {
	case metrics.AggCount, metrics.AggTopK:
		return "toFloat64(count())", nil
	case metrics.AggSum:
		return "sum(v)", nil
	case metrics.AggMin:
		return "min(v)", nil
	case metrics.AggMax:
		return "max(v)", nil
	case metrics.AggAvg:
		return "avg(v)", nil
	case metrics.AggRate:
		return "count() / " + strconv.FormatFloat(float64(sizeMs)/1000, 'f', -1, 64), nil
	case metrics.AggDistinct:
		return "toFloat64(uniqExact(x))", nil
	default:
		if q, ok := metrics.QuantileOf[a]; ok {
			return "quantileExact(" + strconv.FormatFloat(q, 'f', -1, 64) + ")(v)", nil
		}
		return "", fmt.Errorf("%w: %s: aggregation %q", ErrNotCompilable, d.Name, a)
	}
}

// predicateSQL compiles one predicate of a definition's where list.
func predicateSQL(p metrics.Predicate) (string, []any, error) {
	switch {
	case p.Equals != nil, p.In != nil, p.Prefix != nil:
		s, ok := stringExpr[p.Field]
		if !ok {
			if n, isNum := numberExpr[p.Field]; isNum {
				s = "toString(" + n + ")"
			} else {
				return "", nil, fmt.Errorf("where field %q", p.Field)
			}
		}
		switch {
		case p.Equals != nil:
			return s + " = ?", []any{*p.Equals}, nil
		case p.In != nil:
			if len(p.In) == 0 {
				return "0", nil, nil
			}
			args := make([]any, len(p.In))
			for i, v := range p.In {
				args[i] = v
			}
			return s + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(p.In)), ", ") + ")", args, nil
		default:
			return "substring(" + s + ", 1, length(?)) = ?", []any{*p.Prefix, *p.Prefix}, nil
		}
	}
	n, ok := numberExpr[p.Field]
	if !ok {
		return "", nil, fmt.Errorf("where field %q is not numeric", p.Field)
	}
	var conds []string
	var args []any
	for _, c := range []struct {
		op string
		v  *float64
	}{{">=", p.Gte}, {">", p.Gt}, {"<=", p.Lte}, {"<", p.Lt}} {
		if c.v != nil {
			conds = append(conds, n+" "+c.op+" ?")
			args = append(args, *c.v)
		}
	}
	return "(" + strings.Join(conds, " AND ") + ")", args, nil
}
