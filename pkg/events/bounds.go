package events

import (
	"fmt"
	"math"
	"time"
)

// MaxTime is the latest event time any consumer of events.raw accepts
// (2100-01-01T00:00:00Z, ms since the epoch), so that one absurd event
// cannot wreck a partition's state: an event dated in the year 9999 would
// move the aggregator's watermark past every real window and make all
// later events of its partition late. How far ahead of its receive time a
// client's event may be is the collector's configured bound
// (COLLECTOR_MAX_EVENT_SKEW); this one is absolute, so it holds for
// records that did not come through the collector too.
const MaxTime int64 = 4_102_444_800_000

// CheckBounds reports the first value of a decoded event that no consumer
// can use: an event time not after the epoch or after MaxTime; a negative
// amount (behaviour events), latency (service requests) or byte count
// (HTTP requests); a sample value that is not finite. Validate refuses all
// of these too, so the collector never writes such an event. It is
// cheap (no allocation unless it fails) and runs on every event of every
// events.raw record (DecodeBatch), where a failure makes the record poison.
// The error is a *FieldError wrapping ErrInvalid.
func (e *Event) CheckBounds() error {
	if e.Time <= 0 {
		return &FieldError{Field: "event_time", Reason: "missing or not after the epoch"}
	}
	if err := e.checkFuture(); err != nil {
		return err
	}
	// The fields of the event's kind only, as Validate checks them.
	switch k := e.Type.Kind(); {
	case k == KindBehaviour && e.Amount < 0:
		return &FieldError{Field: "amount", Reason: "negative"}
	case k == KindServiceRequest && e.LatencyMs < 0:
		return &FieldError{Field: "latency_ms", Reason: "negative"}
	case k == KindHTTPRequest && e.Bytes < 0:
		return &FieldError{Field: "bytes", Reason: "negative"}
	case k == KindMetricSample && (math.IsNaN(e.Value) || math.IsInf(e.Value, 0)):
		return &FieldError{Field: "value", Reason: "not a finite number"}
	}
	return nil
}

// checkFuture reports an event time after MaxTime.
func (e *Event) checkFuture() error {
	if e.Time > MaxTime {
		return &FieldError{Field: "event_time", Reason: fmt.Sprintf("%s is after %s", fmtMillis(e.Time), fmtMillis(MaxTime))}
	}
	return nil
}

func fmtMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
