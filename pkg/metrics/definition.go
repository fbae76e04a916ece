package metrics

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// Aggregations a definition can compute. The first aggregation a definition
// lists is its headline: it decides Result.Value.
const (
	// AggCount counts the events of the window.
	AggCount = "count"
	// AggSum sums the value field.
	AggSum = "sum"
	// AggMin and AggMax are the extremes of the value field.
	AggMin = "min"
	AggMax = "max"
	// AggAvg is Sum / Count of the value field.
	AggAvg = "avg"
	// AggRate is Count per second of window length (throughput).
	AggRate = "rate"
	// AggDistinct estimates the number of distinct values of the distinct
	// field with HyperLogLog (see DistinctRelativeError).
	AggDistinct = "distinct"
	// AggP50 .. AggP99 are quantiles of the value field from a DDSketch
	// (see QuantileRelativeAccuracy).
	AggP50 = "p50"
	AggP90 = "p90"
	AggP95 = "p95"
	AggP99 = "p99"
	// AggTopK keeps the TopK.N most frequent values of the TopK.Field with
	// their counts (Space-Saving, see TopKCapacityFactor).
	AggTopK = "topk"
)

// QuantileOf maps the quantile aggregations to their quantile in [0, 1].
var QuantileOf = map[string]float64{AggP50: 0.50, AggP90: 0.90, AggP95: 0.95, AggP99: 0.99}

// Window kinds.
const (
	// WindowTumbling windows are fixed, non-overlapping [k*size, (k+1)*size).
	WindowTumbling = "tumbling"
	// WindowHopping windows have length Size and start every Slide; an event
	// belongs to Size/Slide of them.
	WindowHopping = "hopping"
	// WindowSession windows group the events of one label set that are less
	// than Gap apart; the window is [first event, last event + Gap).
	WindowSession = "session"
)

// WindowSpec is a definition's window.
type WindowSpec struct {
	// Kind is WindowTumbling, WindowHopping or WindowSession.
	Kind string
	// Size is the window length (tumbling, hopping).
	Size time.Duration
	// Slide is the distance between window starts (hopping); Size must be a
	// multiple of it.
	Slide time.Duration
	// Gap is the inactivity gap that closes a session (session).
	Gap time.Duration
}

// Predicate is one field condition of an event filter. Exactly one of
// Equals, In, Prefix or a range (Gte/Gt/Lte/Lt, numeric fields only) is set.
type Predicate struct {
	// Field is an event field name (see StringField and NumberField).
	Field string
	// Equals compares the field's string form.
	Equals *string
	// In holds allowed string forms.
	In []string
	// Prefix matches string forms starting with it.
	Prefix *string
	// Gte, Gt, Lte, Lt bound a numeric field.
	Gte, Gt, Lte, Lt *float64

	str func(*events.Event) string
	num func(*events.Event) float64
}

// TopKSpec configures the topk aggregation.
type TopKSpec struct {
	// Field is the string field whose most frequent values are kept.
	Field string
	// N is how many values a result carries.
	N int
}

// Definition declares one metric: which events it takes, how it groups them,
// what it aggregates and over which windows. The aggregator evaluates it on
// the stream; the batch layer compiles the same definition to SQL. Build it
// with ParseDefinitions (or call Compile on a hand-made one) before use.
type Definition struct {
	// Name is the metric name, [a-z_][a-z0-9_]*.
	Name string
	// Description says what the metric means.
	Description string
	// Types filters events by type; empty takes every type.
	Types []events.Type
	// Where are field predicates that must all hold.
	Where []Predicate
	// GroupBy are event fields (see StringField) whose values become labels.
	GroupBy []string
	// Value is the numeric field (see NumberField) that sum, min, max, avg
	// and quantiles are over; empty when only counting.
	Value string
	// Unit is the value field's unit ("bytes", "ms", "1", "events/s"), for
	// display.
	Unit string
	// Aggregations lists what the metric computes; the first one is the
	// headline (Result.Value). Empty means [count].
	Aggregations []string
	// Distinct is the string field counted by AggDistinct.
	Distinct string
	// TopK configures AggTopK.
	TopK TopKSpec
	// Window is the window kind and size.
	Window WindowSpec
	// OutOfOrderness overrides the service's allowed out-of-orderness when
	// set (> 0).
	OutOfOrderness time.Duration
	// AllowedLateness overrides the service's allowed lateness when set
	// (>= 0 and LatenessSet).
	AllowedLateness time.Duration
	// LatenessSet reports whether AllowedLateness was given.
	LatenessSet bool
	// EarlyInterval overrides the service's early emission interval when
	// set (> 0).
	EarlyInterval time.Duration

	typeMask  uint32
	valueFn   func(*events.Event) float64
	groupFns  []func(*events.Event) string
	distinct  func(*events.Event) string
	topkField func(*events.Event) string
	has       aggSet
}

// aggSet records which state a definition's windows need.
type aggSet struct {
	value, distinct, quantiles, topk bool
}

// Headline returns the headline aggregation (the first listed).
func (d *Definition) Headline() string {
	if len(d.Aggregations) == 0 {
		return AggCount
	}
	return d.Aggregations[0]
}

// NeedsValue, NeedsDistinct, NeedsQuantiles and NeedsTopK report which
// per-window state the definition's aggregations need.
func (d *Definition) NeedsValue() bool     { return d.has.value }
func (d *Definition) NeedsDistinct() bool  { return d.has.distinct }
func (d *Definition) NeedsQuantiles() bool { return d.has.quantiles }
func (d *Definition) NeedsTopK() bool      { return d.has.topk }

// Compile validates the definition and prepares its field accessors. Errors
// name the field and the reason, joined when there are several.
func (d *Definition) Compile() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if !NameRe.MatchString(d.Name) {
		bad("name %q does not match %s", d.Name, NameRe)
	}
	d.typeMask = 0
	for _, t := range d.Types {
		if t.Kind() == events.KindUnknown {
			bad("types: unknown event type %q", t)
			continue
		}
		d.typeMask |= 1 << typeIndex(t)
	}
	for i := range d.Where {
		if err := d.Where[i].compile(); err != nil {
			bad("where[%d]: %v", i, err)
		}
	}
	d.groupFns = d.groupFns[:0]
	seen := map[string]bool{}
	for _, g := range d.GroupBy {
		fn, ok := StringField(g)
		switch {
		case !ok:
			bad("group_by: unknown field %q", g)
		case !NameRe.MatchString(LabelName(g)):
			bad("group_by: %q is not a label name", g)
		case seen[g]:
			bad("group_by: %q listed twice", g)
		}
		seen[g] = true
		d.groupFns = append(d.groupFns, fn)
	}
	d.valueFn = nil
	if d.Value != "" {
		fn, ok := NumberField(d.Value)
		if !ok {
			bad("value: %q is not a numeric field (one of %s)", d.Value, strings.Join(numberFieldNames, ", "))
		}
		d.valueFn = fn
	}
	d.has = aggSet{}
	if len(d.Aggregations) == 0 {
		d.Aggregations = []string{AggCount}
	}
	dup := map[string]bool{}
	for _, a := range d.Aggregations {
		if dup[a] {
			bad("aggregations: %q listed twice", a)
		}
		dup[a] = true
		switch a {
		case AggCount, AggRate:
		case AggSum, AggMin, AggMax, AggAvg:
			d.has.value = true
		case AggP50, AggP90, AggP95, AggP99:
			d.has.value, d.has.quantiles = true, true
		case AggDistinct:
			d.has.distinct = true
		case AggTopK:
			d.has.topk = true
		default:
			bad("aggregations: unknown aggregation %q (one of count, sum, min, max, avg, rate, distinct, p50, p90, p95, p99, topk)", a)
		}
	}
	if d.has.value && d.valueFn == nil && d.Value == "" {
		bad("value: required by the aggregations %v", d.Aggregations)
	}
	d.distinct = nil
	if d.has.distinct {
		fn, ok := StringField(d.Distinct)
		if !ok {
			bad("distinct: %q is not a field (required by the distinct aggregation)", d.Distinct)
		}
		d.distinct = fn
	} else if d.Distinct != "" {
		bad("distinct: set but the distinct aggregation is not listed")
	}
	d.topkField = nil
	if d.has.topk {
		fn, ok := StringField(d.TopK.Field)
		if !ok {
			bad("topk.field: %q is not a field (required by the topk aggregation)", d.TopK.Field)
		}
		if d.TopK.N < 1 || d.TopK.N > 1000 {
			bad("topk.n: %d is not in 1..1000", d.TopK.N)
		}
		d.topkField = fn
	} else if d.TopK.Field != "" {
		bad("topk: set but the topk aggregation is not listed")
	}
	w := &d.Window
	switch w.Kind {
	case WindowTumbling, "":
		w.Kind = WindowTumbling
		if w.Size < time.Second || w.Size%time.Millisecond != 0 {
			bad("window.size: %s must be at least 1s and whole milliseconds", w.Size)
		}
		if w.Slide != 0 || w.Gap != 0 {
			bad("window: slide and gap are for hopping and session windows")
		}
	case WindowHopping:
		if w.Size < time.Second || w.Slide < time.Second || w.Slide%time.Millisecond != 0 || w.Size%time.Millisecond != 0 {
			bad("window: hopping size %s and slide %s must be at least 1s and whole milliseconds", w.Size, w.Slide)
		} else if w.Size%w.Slide != 0 || w.Size/w.Slide > 60 {
			bad("window: hopping size %s must be a multiple of slide %s, at most 60 times it", w.Size, w.Slide)
		}
		if w.Gap != 0 {
			bad("window.gap: only for session windows")
		}
	case WindowSession:
		if w.Gap < time.Second || w.Gap%time.Millisecond != 0 {
			bad("window.gap: %s must be at least 1s and whole milliseconds", w.Gap)
		}
		if w.Size != 0 || w.Slide != 0 {
			bad("window: size and slide are not for session windows")
		}
	default:
		bad("window.kind: unknown kind %q (tumbling, hopping or session)", w.Kind)
	}
	if d.OutOfOrderness < 0 {
		bad("out_of_orderness: %s is negative", d.OutOfOrderness)
	}
	if d.AllowedLateness < 0 {
		bad("allowed_lateness: %s is negative", d.AllowedLateness)
	}
	if d.EarlyInterval < 0 {
		bad("early_interval: %s is negative", d.EarlyInterval)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidDefinition, strings.Join(errs, "; "))
	}
	return nil
}

func (p *Predicate) compile() error {
	n := 0
	for _, set := range []bool{p.Equals != nil, p.In != nil, p.Prefix != nil, p.Gte != nil || p.Gt != nil || p.Lte != nil || p.Lt != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("field %q: exactly one of equals, in, prefix or a range (gte, gt, lte, lt) must be set", p.Field)
	}
	str, okS := StringField(p.Field)
	num, okN := NumberField(p.Field)
	if !okS && !okN {
		return fmt.Errorf("unknown field %q", p.Field)
	}
	p.str, p.num = str, num
	if (p.Gte != nil || p.Gt != nil || p.Lte != nil || p.Lt != nil) && !okN {
		return fmt.Errorf("field %q: a range needs a numeric field (one of %s)", p.Field, strings.Join(numberFieldNames, ", "))
	}
	if p.str == nil {
		p.str = func(e *events.Event) string { return strconv.FormatFloat(num(e), 'f', -1, 64) }
	}
	return nil
}

func (p *Predicate) match(e *events.Event) bool {
	switch {
	case p.Equals != nil:
		return p.str(e) == *p.Equals
	case p.In != nil:
		v := p.str(e)
		for _, x := range p.In {
			if v == x {
				return true
			}
		}
		return false
	case p.Prefix != nil:
		return strings.HasPrefix(p.str(e), *p.Prefix)
	}
	v := p.num(e)
	return (p.Gte == nil || v >= *p.Gte) && (p.Gt == nil || v > *p.Gt) &&
		(p.Lte == nil || v <= *p.Lte) && (p.Lt == nil || v < *p.Lt)
}

func typeIndex(t events.Type) uint {
	switch t { // the common types without a loop over events.Types
	case events.TypeHTTPRequest:
		return 0
	case events.TypeServiceRequest:
		return 1
	case events.TypePageView:
		return 2
	}
	for i, x := range events.Types {
		if x == t {
			return uint(i) + 3
		}
	}
	return 31
}

// Complete reports whether the definition groups by the entity key of every
// event type it takes, so that one events.raw partition holds all events of
// each label set and its per-partition result is the whole value.
func (d *Definition) Complete() bool {
	if len(d.Types) == 0 {
		return false
	}
	for _, t := range d.Types {
		var keyField string
		switch t.Kind() {
		case events.KindBehaviour:
			keyField = "user_id"
		case events.KindServiceRequest:
			keyField = "service"
		case events.KindHTTPRequest:
			keyField = "client_ip"
		default:
			return false
		}
		found := false
		for _, g := range d.GroupBy {
			found = found || g == keyField
		}
		if !found {
			return false
		}
	}
	return true
}

// FilterKey returns a canonical form of the definition's Where predicates:
// two definitions with equal FilterKeys (and types) take the same events.
// The aggregator uses it to compute a sketch once for several metrics.
func (d *Definition) FilterKey() string {
	var b strings.Builder
	num := func(op string, v *float64) {
		if v != nil {
			b.WriteString(op)
			b.WriteString(strconv.FormatFloat(*v, 'g', -1, 64))
		}
	}
	for _, p := range d.Where {
		b.WriteString(strconv.Quote(p.Field))
		switch {
		case p.Equals != nil:
			b.WriteString("=" + strconv.Quote(*p.Equals))
		case p.In != nil:
			b.WriteString(" in")
			for _, v := range p.In {
				b.WriteString(" " + strconv.Quote(v))
			}
		case p.Prefix != nil:
			b.WriteString("^" + strconv.Quote(*p.Prefix))
		}
		num(">=", p.Gte)
		num(">", p.Gt)
		num("<=", p.Lte)
		num("<", p.Lt)
		b.WriteByte(';')
	}
	return b.String()
}

// TypeBit returns the bit of an event type in a definition's type mask, for
// MatchesType: compute it once per event, not once per definition.
func TypeBit(t events.Type) uint32 { return 1 << typeIndex(t) }

// Matches reports whether the event passes the type filter and every
// predicate. The definition must be compiled.
func (d *Definition) Matches(e *events.Event) bool {
	return d.MatchesType(e, TypeBit(e.Type))
}

// AcceptsType reports whether the definition's type filter takes events
// whose TypeBit is typeBit (its field predicates aside), so an engine can
// skip the definitions of other types without looking at the event. The
// definition must be compiled.
func (d *Definition) AcceptsType(typeBit uint32) bool {
	return d.typeMask == 0 || d.typeMask&typeBit != 0
}

// MatchesType is Matches with the event's TypeBit already computed.
func (d *Definition) MatchesType(e *events.Event, typeBit uint32) bool {
	if d.typeMask != 0 && d.typeMask&typeBit == 0 {
		return false
	}
	for i := range d.Where {
		if !d.Where[i].match(e) {
			return false
		}
	}
	return true
}

// Labels returns the event's label set for the definition's GroupBy (label
// names per LabelName), or nil when the definition has no GroupBy.
func (d *Definition) Labels(e *events.Event) map[string]string {
	if len(d.GroupBy) == 0 {
		return nil
	}
	l := make(map[string]string, len(d.GroupBy))
	for _, g := range d.GroupBy {
		l[LabelName(g)] = Field(e, g)
	}
	return l
}

// LabelsOfKey returns the label set whose AppendGroupKey form is key: what
// Labels returns for the events of that key (label names per LabelName, in
// GroupBy order), or nil when the definition has no GroupBy. The values are
// substrings of key. A key is ambiguous only when a value of a definition
// with several group-by fields contains a 0x00 byte (as AppendGroupKey's
// own keys then are); the values are split at the first zero bytes. The
// definition must be compiled.
func (d *Definition) LabelsOfKey(key string) map[string]string {
	if len(d.GroupBy) == 0 {
		return nil
	}
	l := make(map[string]string, len(d.GroupBy))
	last := len(d.GroupBy) - 1
	for i, g := range d.GroupBy {
		v := key
		if i < last {
			if j := strings.IndexByte(key, 0); j >= 0 {
				v, key = key[:j], key[j+1:]
			} else {
				key = ""
			}
		} else {
			v = strings.TrimSuffix(key, "\x00")
		}
		l[LabelName(g)] = v
	}
	return l
}

// AppendGroupKey appends the event's group-by values, each followed by a
// 0x00 byte, to b: a compact key of the label set that allocates nothing
// when b has room. The definition must be compiled.
func (d *Definition) AppendGroupKey(b []byte, e *events.Event) []byte {
	for _, fn := range d.groupFns {
		b = append(b, fn(e)...)
		b = append(b, 0)
	}
	return b
}

// ValueOf returns the definition's value field of e (0 without one). The
// definition must be compiled.
func (d *Definition) ValueOf(e *events.Event) float64 {
	if d.valueFn == nil {
		return 0
	}
	return d.valueFn(e)
}

// DistinctOf returns the field counted by AggDistinct ("" without one).
func (d *Definition) DistinctOf(e *events.Event) string {
	if d.distinct == nil {
		return ""
	}
	return d.distinct(e)
}

// TopKOf returns the field ranked by AggTopK ("" without one).
func (d *Definition) TopKOf(e *events.Event) string {
	if d.topkField == nil {
		return ""
	}
	return d.topkField(e)
}

var numberFieldNames = []string{"status", "bytes", "latency_ms", "amount", "is_error", "is_success"}

// NumberField returns the accessor of a numeric event field: status, bytes,
// latency_ms, amount, and the derived 0/1 fields is_error (status >= 500)
// and is_success (100 <= status < 400), so error_rate is avg(is_error).
func NumberField(name string) (func(*events.Event) float64, bool) {
	switch name {
	case "status":
		return func(e *events.Event) float64 { return float64(e.Status) }, true
	case "bytes":
		return func(e *events.Event) float64 { return float64(e.Bytes) }, true
	case "latency_ms":
		return func(e *events.Event) float64 { return e.LatencyMs }, true
	case "amount":
		return func(e *events.Event) float64 { return e.Amount }, true
	case "is_error":
		return func(e *events.Event) float64 { return b2f(e.Status >= 500) }, true
	case "is_success":
		return func(e *events.Event) float64 { return b2f(e.Status >= 100 && e.Status < 400) }, true
	}
	return nil, false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// StringField returns the accessor of a string event field by its JSON name,
// plus the derived field status_class ("2xx"...), the enriched fields of
// EnrichedFields and the numeric fields in their decimal form.
func StringField(name string) (func(*events.Event) string, bool) {
	switch name {
	case "type":
		return func(e *events.Event) string { return string(e.Type) }, true
	case "key":
		return func(e *events.Event) string { return e.Key }, true
	case "source":
		return func(e *events.Event) string { return e.Source }, true
	case "user_id":
		return func(e *events.Event) string { return e.UserID }, true
	case "session_id":
		return func(e *events.Event) string { return e.SessionID }, true
	case "page":
		return func(e *events.Event) string { return e.Page }, true
	case "product_id":
		return func(e *events.Event) string { return e.ProductID }, true
	case "query":
		return func(e *events.Event) string { return e.Query }, true
	case "service":
		return func(e *events.Event) string { return e.Service }, true
	case "endpoint":
		return func(e *events.Event) string { return e.Endpoint }, true
	case "status":
		return func(e *events.Event) string { return statusString(e.Status) }, true
	case "status_class":
		return func(e *events.Event) string { return statusClass(e.Status) }, true
	case "client_ip":
		return func(e *events.Event) string { return e.ClientIP }, true
	case "method":
		return func(e *events.Event) string { return e.Method }, true
	case "path":
		return func(e *events.Event) string { return e.Path }, true
	case "protocol":
		return func(e *events.Event) string { return e.Protocol }, true
	}
	if fn, ok := enrichedField(name); ok {
		return fn, true
	}
	if fn, ok := NumberField(name); ok {
		return func(e *events.Event) string { return strconv.FormatFloat(fn(e), 'f', -1, 64) }, true
	}
	return nil, false
}

var statusStrings = func() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusString(s int) string {
	if s >= 0 && s < len(statusStrings) {
		return statusStrings[s]
	}
	return strconv.Itoa(s)
}

var statusClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(s int) string {
	if s >= 100 && s < 600 {
		return statusClasses[s/100]
	}
	return "other"
}

// Field returns the string value of an event field by its JSON name, plus
// the derived field status_class ("2xx"...). Unknown fields give "".
func Field(e *events.Event, name string) string {
	if fn, ok := StringField(name); ok {
		return fn(e)
	}
	return ""
}

// WindowMs returns the window length in ms (the gap for sessions).
func (d *Definition) WindowMs() int64 {
	if d.Window.Kind == WindowSession {
		return d.Window.Gap.Milliseconds()
	}
	return d.Window.Size.Milliseconds()
}
