package metrics

import (
	"strconv"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// Aggregations a definition can compute in this version.
const (
	AggCount = "count"
	AggSum   = "sum"
)

// Definition declares one metric: which events it takes, how it groups them,
// what it aggregates and over which windows. The aggregator evaluates it on
// the stream; the batch layer compiles the same definition to SQL.
type Definition struct {
	// Name is the metric name, [a-z_][a-z0-9_]*.
	Name string
	// Types filters events by type; empty takes every type.
	Types []events.Type
	// GroupBy are event fields (see Field) whose values become labels.
	GroupBy []string
	// Value is the numeric field summed by AggSum ("bytes", "latency_ms",
	// "amount"); empty for AggCount.
	Value string
	// Agg is AggCount or AggSum; it decides Result.Value.
	Agg string
	// Window is the tumbling window size.
	Window time.Duration
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

// Matches reports whether the event passes the type filter.
func (d *Definition) Matches(e *events.Event) bool {
	if len(d.Types) == 0 {
		return true
	}
	for _, t := range d.Types {
		if e.Type == t {
			return true
		}
	}
	return false
}

// Labels returns the event's label set for the definition's GroupBy, or nil
// when the definition has no GroupBy.
func (d *Definition) Labels(e *events.Event) map[string]string {
	if len(d.GroupBy) == 0 {
		return nil
	}
	l := make(map[string]string, len(d.GroupBy))
	for _, g := range d.GroupBy {
		l[g] = Field(e, g)
	}
	return l
}

// ValueOf returns the definition's value field of e (0 for AggCount).
func (d *Definition) ValueOf(e *events.Event) float64 {
	switch d.Value {
	case "bytes":
		return float64(e.Bytes)
	case "latency_ms":
		return e.LatencyMs
	case "amount":
		return e.Amount
	}
	return 0
}

// Field returns the string value of an event field by its JSON name, plus
// the derived field status_class ("2xx"...). Unknown fields give "".
func Field(e *events.Event, name string) string {
	switch name {
	case "type":
		return string(e.Type)
	case "key":
		return e.Key
	case "source":
		return e.Source
	case "user_id":
		return e.UserID
	case "session_id":
		return e.SessionID
	case "page":
		return e.Page
	case "product_id":
		return e.ProductID
	case "service":
		return e.Service
	case "endpoint":
		return e.Endpoint
	case "status":
		return strconv.Itoa(e.Status)
	case "status_class":
		return events.StatusClass(e.Status)
	case "client_ip":
		return e.ClientIP
	case "method":
		return e.Method
	case "path":
		return e.Path
	case "protocol":
		return e.Protocol
	}
	return ""
}

// DefaultDefinitions is the built-in metric set of the walking skeleton:
// 1-minute tumbling windows over requests (HTTP access-log and service
// requests) and events.
func DefaultDefinitions() []Definition {
	req := []events.Type{events.TypeHTTPRequest, events.TypeServiceRequest}
	behaviour := []events.Type{events.TypePageView, events.TypeClick, events.TypeAddCart, events.TypePurchase, events.TypeSearch}
	m := time.Minute
	return []Definition{
		{Name: "requests", Types: req, Agg: AggCount, Window: m},
		{Name: "requests_by_status", Types: req, GroupBy: []string{"status"}, Agg: AggCount, Window: m},
		{Name: "requests_by_status_class", Types: req, GroupBy: []string{"status_class"}, Agg: AggCount, Window: m},
		{Name: "bytes", Types: []events.Type{events.TypeHTTPRequest}, Value: "bytes", Agg: AggSum, Window: m},
		{Name: "bytes_by_status_class", Types: []events.Type{events.TypeHTTPRequest}, GroupBy: []string{"status_class"}, Value: "bytes", Agg: AggSum, Window: m},
		{Name: "events_by_type", GroupBy: []string{"type"}, Agg: AggCount, Window: m},
		{Name: "requests_by_client", Types: []events.Type{events.TypeHTTPRequest}, GroupBy: []string{"client_ip"}, Agg: AggCount, Window: m},
		{Name: "events_by_user", Types: behaviour, GroupBy: []string{"user_id"}, Agg: AggCount, Window: m},
	}
}
