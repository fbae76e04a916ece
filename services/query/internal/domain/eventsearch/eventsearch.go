// Package eventsearch is the query service's model of a raw event search:
// a validated query (time range, types, field filters, page size) and the
// opaque cursor that pages through its results in a stable order. It does
// no I/O.
//
// Order: ascending (event_time_ms, type, event_id), the events table's key
// refined to milliseconds. It is total (event_id is unique per type and
// time after deduplication), so a cursor holding the last row's three
// values resumes exactly after it, even while new events arrive.
package eventsearch

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// Limits of one search.
const (
	// DefaultLimit is the page size when none is given.
	DefaultLimit = 100
	// MaxLimit bounds the page size.
	MaxLimit = 1000
	// MaxFilters bounds the field filters of one search.
	MaxFilters = 16
	// MaxValueLen bounds a filter value, in bytes.
	MaxValueLen = 1024
	// PropertyPrefix marks a filter on a free-form property:
	// "properties.NAME".
	PropertyPrefix = "properties."
)

// Fields maps the filterable event fields (JSON names of events.Event) to
// their column in the events table. Only these names, and
// properties.NAME with NAME matching propertyRule, reach SQL, and only as
// fixed column names or bound arguments.
var Fields = map[string]string{
	"key": "key", "source": "source", "user_id": "user_id", "session_id": "session_id", "page": "page",
	"product_id": "product_id", "query": "query", "service": "service", "endpoint": "endpoint",
	"status": "status", "client_ip": "client_ip", "method": "method", "path": "path",
	"protocol": "protocol", "referrer": "referrer", "user_agent": "user_agent", "event_id": "event_id",
}

// NumericFields are the Fields whose column is numeric; their filter value
// must be an integer.
var NumericFields = map[string]bool{"status": true}

var (
	propertyRule = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,128}$`)
	integerRule  = regexp.MustCompile(`^-?[0-9]{1,10}$`)
)

// Filter keeps the events whose Field equals Value. Field is a key of
// Fields, or PropertyPrefix + a property name (Column is then "").
type Filter struct {
	Field    string
	Column   string
	Property string
	Value    string
}

// Cursor is the position after the last event of a page.
type Cursor struct {
	TimeMs int64  `json:"t"`
	Type   string `json:"y"`
	ID     string `json:"i"`
}

// Encode returns the cursor as an opaque URL-safe string.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c) // a struct of plain fields always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor returned by Encode; anything else is a
// *window.ParamError for "cursor".
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 4096 {
		return Cursor{}, window.InvalidParam("cursor", "not a cursor returned by this API")
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		return Cursor{}, window.InvalidParam("cursor", "not a cursor returned by this API")
	}
	return c, nil
}

// Query is a validated event search. Build it with NewQuery.
type Query struct {
	from, to int64
	types    []string
	filters  []Filter
	limit    int
	after    *Cursor
}

// NewQuery validates a search: events with from <= event time < to (ms),
// of one of types (any when empty), matching every filter ("FIELD=VALUE";
// several on one field mean any of them), at most limit per page (1..MaxLimit), after cursor ("" for the first page). Every problem is
// reported, joined; each is a *window.ParamError.
func NewQuery(from, to int64, types []string, filters []string, limit int, cursor string) (Query, error) {
	q := Query{from: from, to: to, limit: limit}
	errs := []error{window.CheckRange(from, to)}
	for _, t := range types {
		if events.Type(t).Kind() == events.KindUnknown {
			errs = append(errs, window.InvalidParam("type", "%q is not an event type (%s)", t, typeList()))
			continue
		}
		if !slices.Contains(q.types, t) {
			q.types = append(q.types, t)
		}
	}
	if len(filters) > MaxFilters {
		errs = append(errs, window.InvalidParam("field", "%d filters, at most %d", len(filters), MaxFilters))
	}
	for _, raw := range filters {
		f, err := parseFilter(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		q.filters = append(q.filters, f)
	}
	switch {
	case limit < 1 || limit > MaxLimit:
		errs = append(errs, window.InvalidParam("limit", "%d is outside 1..%d", limit, MaxLimit))
	}
	if cursor != "" {
		c, err := DecodeCursor(cursor)
		errs = append(errs, err)
		q.after = &c
	}
	if err := errors.Join(errs...); err != nil {
		return Query{}, err
	}
	slices.SortStableFunc(q.filters, func(a, b Filter) int { return strings.Compare(a.Field, b.Field) })
	return q, nil
}

func parseFilter(raw string) (Filter, error) {
	name, value, ok := strings.Cut(raw, "=")
	if !ok {
		return Filter{}, window.InvalidParam("field", "%q is not FIELD=VALUE", raw)
	}
	if len(value) > MaxValueLen {
		return Filter{}, window.InvalidParam("field", "value of %s longer than %d bytes", name, MaxValueLen)
	}
	if prop, isProp := strings.CutPrefix(name, PropertyPrefix); isProp {
		if !propertyRule.MatchString(prop) {
			return Filter{}, window.InvalidParam("field", "%q is not a property name ([A-Za-z0-9_.-], 1..128 bytes)", prop)
		}
		return Filter{Field: name, Property: prop, Value: value}, nil
	}
	col, known := Fields[name]
	if !known {
		return Filter{}, window.InvalidParam("field", "%q is not a filterable field (%s, or %sNAME)", name, fieldList(), PropertyPrefix)
	}
	if NumericFields[name] && !integerRule.MatchString(value) {
		return Filter{}, window.InvalidParam("field", "%s=%q: value must be an integer", name, value)
	}
	return Filter{Field: name, Column: col, Value: value}, nil
}

func typeList() string {
	names := make([]string, len(events.Types))
	for i, t := range events.Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func fieldList() string {
	names := make([]string, 0, len(Fields))
	for k := range Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// From is the range start, ms (inclusive).
func (q Query) From() int64 { return q.from }

// To is the range end, ms (exclusive).
func (q Query) To() int64 { return q.to }

// Types are the accepted event types; empty means all.
func (q Query) Types() []string { return q.types }

// Filters are the field filters sorted by field; filters on one field are
// alternatives (OR), different fields all must hold (AND).
func (q Query) Filters() []Filter { return q.filters }

// Limit is the page size.
func (q Query) Limit() int { return q.limit }

// After is the cursor to resume after, nil on the first page.
func (q Query) After() *Cursor { return q.after }

// Page is one page of results and the cursor of the next page ("" when
// this page is the last).
type Page struct {
	Events []events.Event
	Next   string
}
