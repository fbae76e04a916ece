package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Timestamp is an event time in client input: an RFC 3339 string
// ("2015-05-17T10:05:03Z", fractional seconds allowed) or a JSON number of
// milliseconds since the epoch. It holds milliseconds since the epoch.
type Timestamp int64

// UnmarshalJSON accepts an RFC 3339 string or a number of milliseconds.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		*t = Timestamp(ts.UnixMilli())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("%s is neither an RFC 3339 string nor milliseconds", string(b))
	}
	*t = Timestamp(int64(f))
	return nil
}

// Input is an event as a client sends it to POST /v1/events. Field names are
// those of Event; event_time may be a string or a number (see Timestamp);
// event_id and v are optional. key and receive_time belong to the collector
// and are refused as unknown fields.
type Input struct {
	V          int               `json:"v"`
	ID         string            `json:"event_id"`
	Type       Type              `json:"type"`
	Time       Timestamp         `json:"event_time"`
	Source     string            `json:"source"`
	UserID     string            `json:"user_id"`
	SessionID  string            `json:"session_id"`
	Page       string            `json:"page"`
	ProductID  string            `json:"product_id"`
	Amount     float64           `json:"amount"`
	Query      string            `json:"query"`
	Properties map[string]string `json:"properties"`
	Service    string            `json:"service"`
	Endpoint   string            `json:"endpoint"`
	LatencyMs  float64           `json:"latency_ms"`
	Status     int               `json:"status"`
	ClientIP   string            `json:"client_ip"`
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Protocol   string            `json:"protocol"`
	Bytes      int64             `json:"bytes"`
	Referrer   string            `json:"referrer"`
	UserAgent  string            `json:"user_agent"`
	Series     string            `json:"series"`
	Labels     map[string]string `json:"labels"`
	Value      float64           `json:"value"`
}

// ParseInput decodes one client event (a JSON object), fills in what the
// collector owns (schema version, receive time, entity key, and a UUIDv7
// event id when the client gave none) and validates it.
//
// receive is the collector's receive time. The error wraps ErrInvalid and
// names the field: a syntax error, a field of the wrong JSON type, an unknown
// field, or a failed Validate.
func ParseInput(data []byte, receive time.Time) (Event, error) {
	var in Input
	s := string(data) // the event's strings slice this copy
	if end, _, ok := DecodeInput(s, 0, &in); ok && SkipSpace(s, end) == len(s) {
		return in.Event(receive)
	}
	return parseInputStd(data, receive)
}

// parseInputStd is ParseInput with encoding/json only: the path for
// whatever DecodeInput does not handle, and the reference it is fuzzed
// against.
func parseInputStd(data []byte, receive time.Time) (Event, error) {
	var in Input
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Event{}, describeJSONError(err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	return in.Event(receive)
}

// Event turns the input into a validated Event (see ParseInput).
func (in *Input) Event(receive time.Time) (Event, error) {
	var e Event
	if err := in.EventTo(&e, receive); err != nil {
		return Event{}, err
	}
	return e, nil
}

// EventTo is Event writing into *e, which must be zero (it saves copying
// an Event on hot paths). On error *e holds a partial event.
func (in *Input) EventTo(e *Event, receive time.Time) error {
	*e = Event{
		V: in.V, ID: in.ID, Type: in.Type, Time: int64(in.Time), ReceiveTime: receive.UnixMilli(),
		Source: in.Source, UserID: in.UserID, SessionID: in.SessionID, Page: in.Page,
		ProductID: in.ProductID, Amount: in.Amount, Query: in.Query, Properties: in.Properties,
		Service: in.Service, Endpoint: in.Endpoint, LatencyMs: in.LatencyMs, Status: in.Status,
		ClientIP: in.ClientIP, Method: in.Method, Path: in.Path, Protocol: in.Protocol,
		Bytes: in.Bytes, Referrer: in.Referrer, UserAgent: in.UserAgent,
		Series: in.Series, Labels: in.Labels, Value: in.Value,
	}
	if e.V == 0 {
		e.V = SchemaVersion
	}
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("assign event id: %w", err)
		}
		e.ID = id.String()
	}
	e.Key = e.EntityKey()
	return e.Validate()
}

// describeJSONError turns encoding/json errors into messages that name the
// field and the expected type, wrapped in ErrInvalid.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Errorf("%w: expected a JSON object, got %s", ErrInvalid, typeErr.Value)
		}
		return &FieldError{Field: field, Reason: fmt.Sprintf("expected %s, got %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: malformed JSON at byte %d: %s", ErrInvalid, syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated or empty JSON", ErrInvalid)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(f, `"`), Reason: "unknown field (schema v1)"}
	}
	if strings.Contains(msg, "Timestamp") || strings.Contains(msg, "RFC 3339") {
		return &FieldError{Field: "event_time", Reason: strings.TrimPrefix(msg, "json: ")}
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(msg, "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return goKind
}

// SampleInput is a metric sample as a client sends it to POST /v1/samples:
// a series name, labels, a value and a timestamp (RFC 3339 string or ms).
type SampleInput struct {
	Series    string            `json:"series"`
	Labels    map[string]string `json:"labels"`
	Value     *float64          `json:"value"`
	Timestamp Timestamp         `json:"timestamp"`
}

// ParseSample decodes one client sample (a JSON object with series, labels,
// value and timestamp; unknown fields are errors) into a validated
// metric_sample Event. Its id is deterministic — "s:" + FNV-1a 64 of the
// series key + ":" + the timestamp in ms — so a series re-sent (a replay)
// deduplicates sample by sample. Errors wrap ErrInvalid and name the field.
func ParseSample(data []byte, receive time.Time) (Event, error) {
	var in SampleInput
	s := string(data) // the event's strings slice this copy
	if end, _, ok := DecodeSample(s, 0, &in); ok && SkipSpace(s, end) == len(s) {
		return in.Event(receive)
	}
	return parseSampleStd(data, receive)
}

// parseSampleStd is ParseSample with encoding/json only (see
// parseInputStd).
func parseSampleStd(data []byte, receive time.Time) (Event, error) {
	var in SampleInput
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Event{}, describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	return in.Event(receive)
}

// Event turns the sample into a validated metric_sample Event (see
// ParseSample).
func (in *SampleInput) Event(receive time.Time) (Event, error) {
	if in.Value == nil {
		return Event{}, &FieldError{Field: "value", Reason: "missing"}
	}
	if in.Timestamp <= 0 {
		return Event{}, &FieldError{Field: "timestamp", Reason: "missing or not after the epoch"}
	}
	e := Event{
		V: SchemaVersion, Type: TypeMetricSample, Time: int64(in.Timestamp), ReceiveTime: receive.UnixMilli(),
		Series: in.Series, Labels: in.Labels, Value: *in.Value,
	}
	e.Key = e.EntityKey()
	h := fnv.New64a()
	h.Write([]byte(e.Key))
	e.ID = fmt.Sprintf("s:%016x:%d", h.Sum64(), e.Time)
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}
