// Package events defines the versioned event schema that every Streamwatch
// service shares: the Event record carried on the events.raw topic, the
// validation of client input, and the batch record codec.
//
// Schema versions: v1 is the current version. A consumer accepts every
// version up to SchemaVersion; a record with a newer version is a permanent
// error (it goes to the dead-letter topic).
package events

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// SchemaVersion is the version of Event written by this build.
const SchemaVersion = 1

// Type names the kind of an event. It decides which typed fields are required.
type Type string

// Event types accepted by the collector.
const (
	// Behaviour events: what a user did on a site or an app.
	TypePageView Type = "page_view"
	TypeClick    Type = "click"
	TypeAddCart  Type = "add_cart"
	TypePurchase Type = "purchase"
	TypeSearch   Type = "search"
	// TypeServiceRequest is one request served by a service (status, latency).
	TypeServiceRequest Type = "service_request"
	// TypeHTTPRequest is one request from a web-server access log.
	TypeHTTPRequest Type = "http_request"
	// TypeMetricSample is one reading of a gauge: a series name, labels, a
	// value and the event time (added in v1 without a version change: older
	// consumers never see it unless they read the type).
	TypeMetricSample Type = "metric_sample"
)

// Kind groups event types by the typed fields they carry.
type Kind int

// Kinds of events.
const (
	KindUnknown Kind = iota
	KindBehaviour
	KindServiceRequest
	KindHTTPRequest
	KindMetricSample
)

// Kind returns the kind of the type, KindUnknown for an unknown type.
func (t Type) Kind() Kind {
	switch t {
	case TypePageView, TypeClick, TypeAddCart, TypePurchase, TypeSearch:
		return KindBehaviour
	case TypeServiceRequest:
		return KindServiceRequest
	case TypeHTTPRequest:
		return KindHTTPRequest
	case TypeMetricSample:
		return KindMetricSample
	}
	return KindUnknown
}

// Types lists every accepted event type, for error messages and docs.
var Types = []Type{TypePageView, TypeClick, TypeAddCart, TypePurchase, TypeSearch, TypeServiceRequest, TypeHTTPRequest, TypeMetricSample}

// Event is one validated event as it travels on events.raw (schema v1).
//
// Times are milliseconds since the Unix epoch, UTC. The fields after Source
// are typed per Kind; fields of other kinds are zero. Key is the entity key
// that decides the Kafka partition: the user for behaviour events, the
// service for service requests and the client IP for HTTP requests, so all
// events of one entity stay in order in one partition.
type Event struct {
	// V is the schema version the event was written with (1).
	V int `json:"v"`
	// ID is the event id: client-given, derived from the source position
	// (access logs), or a UUIDv7 assigned by the collector. Consumers
	// deduplicate by it.
	ID string `json:"event_id"`
	// Type is the event type.
	Type Type `json:"type"`
	// Time is the event time in ms since the epoch (UTC).
	Time int64 `json:"event_time"`
	// ReceiveTime is when the collector received the event, ms since the epoch.
	ReceiveTime int64 `json:"receive_time"`
	// Key is the entity key (user id, service name or client IP).
	Key string `json:"key"`
	// Source names where the event came from (e.g. a log file name); optional.
	Source string `json:"source,omitempty"`

	// Behaviour fields.
	UserID     string            `json:"user_id,omitempty"`
	SessionID  string            `json:"session_id,omitempty"`
	Page       string            `json:"page,omitempty"`
	ProductID  string            `json:"product_id,omitempty"`
	Amount     float64           `json:"amount,omitempty"`
	Query      string            `json:"query,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`

	// Service request fields (Status is shared with HTTP requests).
	Service   string  `json:"service,omitempty"`
	Endpoint  string  `json:"endpoint,omitempty"`
	LatencyMs float64 `json:"latency_ms,omitempty"`
	Status    int     `json:"status,omitempty"`

	// HTTP access-log request fields.
	ClientIP  string `json:"client_ip,omitempty"`
	Method    string `json:"method,omitempty"`
	Path      string `json:"path,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Referrer  string `json:"referrer,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`

	// Metric sample fields: the series name ([a-z_][a-z0-9_]*), its labels
	// and the reading.
	Series string            `json:"series,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value,omitempty"`

	// Enriched holds what the aggregator's stream-table join added (see
	// Enrichment); it is never serialized, so it is empty everywhere else.
	Enriched Enrichment `json:"-"`
}

// Limits on field sizes, in bytes (strings) or entries (maps).
const (
	MaxIDLen         = 128
	MaxStringLen     = 2048
	MaxProperties    = 64
	MaxPropertyBytes = 1024
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid event")

// FieldError names the field that failed validation and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// StatusClass returns "1xx".."5xx" for an HTTP status, or "other".
func StatusClass(status int) string {
	if status >= 100 && status < 600 {
		return fmt.Sprintf("%dxx", status/100)
	}
	return "other"
}

// Validate checks the event against schema v1: a known type, an id, a
// positive event time, and the fields its kind requires. It returns every
// problem joined with errors.Join; each is a *FieldError wrapping ErrInvalid.
// Validate does not change the event.
func (e *Event) Validate() error {
	var errs []error
	add := func(field, reason string) { errs = append(errs, &FieldError{Field: field, Reason: reason}) }
	if e.V < 1 || e.V > SchemaVersion {
		add("v", fmt.Sprintf("unsupported schema version %d (this build reads 1..%d)", e.V, SchemaVersion))
	}
	if e.ID == "" {
		add("event_id", "missing")
	} else if len(e.ID) > MaxIDLen {
		add("event_id", fmt.Sprintf("longer than %d bytes", MaxIDLen))
	}
	if e.Time <= 0 {
		add("event_time", "missing or not after the epoch")
	} else if err := e.checkFuture(); err != nil {
		errs = append(errs, err)
	}
	for _, f := range [...]struct{ name, v string }{
		{"user_id", e.UserID}, {"session_id", e.SessionID}, {"page", e.Page}, {"product_id", e.ProductID},
		{"query", e.Query}, {"service", e.Service}, {"endpoint", e.Endpoint}, {"client_ip", e.ClientIP},
		{"method", e.Method}, {"path", e.Path}, {"protocol", e.Protocol}, {"referrer", e.Referrer},
		{"user_agent", e.UserAgent}, {"source", e.Source},
	} {
		if len(f.v) > MaxStringLen {
			add(f.name, fmt.Sprintf("longer than %d bytes", MaxStringLen))
		}
	}
	if len(e.Properties) > MaxProperties {
		add("properties", fmt.Sprintf("more than %d entries", MaxProperties))
	}
	for k, v := range e.Properties {
		if len(k)+len(v) > MaxPropertyBytes {
			add("properties."+k, fmt.Sprintf("entry longer than %d bytes", MaxPropertyBytes))
		}
	}
	switch e.Type.Kind() {
	case KindBehaviour:
		if e.UserID == "" {
			add("user_id", "required for "+string(e.Type))
		}
		if e.Amount < 0 {
			add("amount", "negative")
		}
	case KindServiceRequest:
		if e.Service == "" {
			add("service", "required for service_request")
		}
		if e.Status < 100 || e.Status > 599 {
			add("status", fmt.Sprintf("%d is not an HTTP status (100..599)", e.Status))
		}
		if e.LatencyMs < 0 {
			add("latency_ms", "negative")
		}
	case KindHTTPRequest:
		if e.ClientIP == "" {
			add("client_ip", "required for http_request")
		} else if _, err := netip.ParseAddr(e.ClientIP); err != nil {
			add("client_ip", fmt.Sprintf("%q is not an IP address", e.ClientIP))
		}
		if e.Method == "" {
			add("method", "required for http_request")
		}
		if e.Status < 100 || e.Status > 599 {
			add("status", fmt.Sprintf("%d is not an HTTP status (100..599)", e.Status))
		}
		if e.Bytes < 0 {
			add("bytes", "negative")
		}
	case KindMetricSample:
		if !IsName(e.Series) {
			add("series", fmt.Sprintf("%q must match %s", e.Series, NameRe))
		}
		if len(e.Labels) > MaxProperties {
			add("labels", fmt.Sprintf("more than %d labels", MaxProperties))
		}
		for k, v := range e.Labels {
			if !IsName(k) {
				add("labels."+k, fmt.Sprintf("label name must match %s", NameRe))
			} else if len(v) > MaxPropertyBytes {
				add("labels."+k, fmt.Sprintf("value longer than %d bytes", MaxPropertyBytes))
			}
		}
		if math.IsNaN(e.Value) || math.IsInf(e.Value, 0) {
			add("value", "not a finite number")
		}
	default:
		names := make([]string, len(Types))
		for i, t := range Types {
			names[i] = string(t)
		}
		if e.Type == "" {
			add("type", "missing (one of "+strings.Join(names, ", ")+")")
		} else {
			add("type", fmt.Sprintf("unknown type %q (one of %s)", e.Type, strings.Join(names, ", ")))
		}
	}
	return errors.Join(errs...)
}

// EntityKey returns the entity key for the event's kind: user id, service
// name or client IP; "" for an unknown kind.
func (e *Event) EntityKey() string {
	switch e.Type.Kind() {
	case KindBehaviour:
		return e.UserID
	case KindServiceRequest:
		return e.Service
	case KindHTTPRequest:
		return e.ClientIP
	case KindMetricSample:
		return SeriesKey(e.Series, e.Labels)
	}
	return ""
}

// NameRe is what names must match: series and label names of samples
// here, and metric and label names of window results and of the query API
// (metrics.NameRe is this one). IsName is the same test without the regexp
// machine.
var NameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// IsName reports whether s matches NameRe: a lower-case ASCII letter or
// '_', then letters, digits and '_'. Consumers run it for the metric and
// every label name of every result they read; with NameRe it was a third
// of the detector's cost per metrics.windows record
// (BenchmarkApplyFinalBatch).
func IsName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// SeriesKey is the entity key of a metric sample: the series name followed
// by its labels sorted by name, as in Prometheus' text format
// (cpu{host="a",core="1"} becomes cpu{core="1",host="a"}), so every sample
// of a series lands in one partition, in order.
func SeriesKey(series string, labels map[string]string) string {
	if len(labels) == 0 {
		return series
	}
	names := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	b.WriteString(series)
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}
