package app

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// MaxBodyJSONDepth bounds the nesting of a whole JSON array body: deeper
// bodies are refused as a whole (items deeper than Limits.MaxJSONDepth but
// within this are rejected one by one).
const MaxBodyJSONDepth = 128

// Limits are the per-item checks every ingest use case applies on top of
// the schema. A zero field disables its check.
type Limits struct {
	// MaxEventBytes bounds one JSON event or sample (bytes of its JSON
	// text); a larger item is rejected on its own.
	MaxEventBytes int
	// MaxJSONDepth bounds the nesting of one JSON item (an event object with
	// a properties object is depth 2); a body's array adds one level.
	MaxJSONDepth int
	// MaxJSONFields bounds the object keys of one JSON item, nested ones
	// included.
	MaxJSONFields int
	// MaxEventAge rejects events whose event time lies further in the past
	// than this, relative to the receive time.
	MaxEventAge time.Duration
	// MaxEventSkew rejects events whose event time lies further in the
	// future than this, relative to the receive time.
	MaxEventSkew time.Duration
}

// checkItem applies the size and shape limits to one JSON item.
func (l Limits) checkItem(item []byte) error {
	if l.MaxEventBytes > 0 && len(item) > l.MaxEventBytes {
		return fmt.Errorf("%w: event is %d bytes, more than the limit of %d (COLLECTOR_MAX_EVENT_BYTES)", events.ErrInvalid, len(item), l.MaxEventBytes)
	}
	err := checkJSONShape(item, l.MaxJSONDepth, l.MaxJSONFields)
	var se *shapeError
	if errors.As(err, &se) {
		setting := "COLLECTOR_MAX_JSON_FIELDS"
		if se.deep {
			setting = "COLLECTOR_MAX_JSON_DEPTH"
		}
		return fmt.Errorf("%w (%s)", err, setting)
	}
	return err
}

// within reports whether an item of n bytes with the given shape passes
// the size and shape limits (checkItem says why not).
func (l Limits) within(n int, sh events.Shape) bool {
	return (l.MaxEventBytes <= 0 || n <= l.MaxEventBytes) &&
		(l.MaxJSONDepth <= 0 || sh.Depth <= l.MaxJSONDepth) &&
		(l.MaxJSONFields <= 0 || sh.Fields <= l.MaxJSONFields)
}

// admit checks a parsed event against the event-time bounds and the API
// key's tenant; an event without a source gets the tenant as its source.
// Errors are *events.FieldError.
func (l Limits) admit(ev *events.Event, receive time.Time, tenant string) error {
	t := time.UnixMilli(ev.Time).UTC()
	if l.MaxEventSkew > 0 && t.After(receive.Add(l.MaxEventSkew)) {
		return &events.FieldError{Field: "event_time", Reason: fmt.Sprintf("%s is more than %s in the future (COLLECTOR_MAX_EVENT_SKEW)", t.Format(time.RFC3339Nano), l.MaxEventSkew)}
	}
	if l.MaxEventAge > 0 && t.Before(receive.Add(-l.MaxEventAge)) {
		return &events.FieldError{Field: "event_time", Reason: fmt.Sprintf("%s is more than %s in the past (COLLECTOR_MAX_EVENT_AGE)", t.Format(time.RFC3339Nano), l.MaxEventAge)}
	}
	if tenant == "" {
		return nil
	}
	if ev.Source == "" {
		ev.Source = tenant
		return nil
	}
	if !InTenant(ev.Source, tenant) {
		return &events.FieldError{Field: "source", Reason: fmt.Sprintf("%q is outside the API key's tenant %q (allowed: %q or %q)", ev.Source, tenant, tenant, tenant+"/...")}
	}
	return nil
}

// InTenant reports whether source belongs to tenant: it is the tenant or
// starts with tenant + "/". Every source belongs to the empty tenant.
func InTenant(source, tenant string) bool {
	return tenant == "" || source == tenant || strings.HasPrefix(source, tenant+"/")
}

// shapeError is a JSON text beyond a depth or field-count limit; it wraps
// events.ErrInvalid.
type shapeError struct {
	deep  bool // nesting, else field count
	limit int
}

func (e *shapeError) Error() string {
	if e.deep {
		return fmt.Sprintf("%s: JSON nested deeper than %d levels", events.ErrInvalid, e.limit)
	}
	return fmt.Sprintf("%s: more than %d JSON fields", events.ErrInvalid, e.limit)
}

// Unwrap makes errors.Is(err, events.ErrInvalid) true.
func (e *shapeError) Unwrap() error { return events.ErrInvalid }

// checkJSONShape walks one JSON text and reports the first limit it
// exceeds: nesting deeper than maxDepth, or more than maxFields object keys
// in all (a ':' outside strings ends a key). It validates no syntax (the
// decoder does) and runs in one pass without allocating. A limit <= 0 is
// not checked.
func checkJSONShape(data []byte, maxDepth, maxFields int) error {
	depth, fields, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if maxDepth > 0 && depth > maxDepth {
				return &shapeError{deep: true, limit: maxDepth}
			}
		case '}', ']':
			depth--
		case ':':
			fields++
			if maxFields > 0 && fields > maxFields {
				return &shapeError{limit: maxFields}
			}
		}
	}
	return nil
}
