// Package app holds the collector's use cases: ingesting client events
// (JSON array or NDJSON) and web-server access logs. Each use case parses
// and validates every item, keeps the valid ones even when others are
// invalid, and publishes the valid ones to events.raw, returning only once
// the broker acknowledged them.
//
// The package does no HTTP and knows no Kafka client: it declares the one
// interface it needs, EventPublisher.
package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// EventPublisher publishes validated events to a topic and returns once the
// broker acknowledged all of them (messaging.BatchPublisher does). On error
// some events may have been written; the client retries and consumers
// deduplicate by event id. After a nil return an implementation keeps no
// reference to evs (the caller reuses the slice). Implementations are safe
// for concurrent use.
type EventPublisher interface {
	PublishEvents(ctx context.Context, topic string, evs []events.Event) error
}

// Topic is the topic the collector publishes to.
const Topic = messaging.TopicEventsRaw

// ErrUnavailable is wrapped by the error of a use case whose events could not
// be published: nothing of the request counts as accepted and the client
// should retry the whole request.
var ErrUnavailable = errors.New("event log unavailable")

// ErrBody is wrapped by the error of a use case that could not read its
// request body; the read error (e.g. *http.MaxBytesError) is wrapped too.
var ErrBody = errors.New("read request body")

// RequestError is a problem with a request as a whole, not with one of its
// items (no items, a malformed JSON array, an unsupported log format). The
// request is refused and nothing is published. Error returns Reason.
type RequestError struct {
	// Reason is the human-readable problem.
	Reason string
}

// Error returns the reason.
func (e *RequestError) Error() string { return e.Reason }

func requestErrorf(format string, args ...any) error {
	return &RequestError{Reason: fmt.Sprintf(format, args...)}
}

// Rejection is one item of a request that was not accepted.
type Rejection struct {
	// Position locates the item: for events the 0-based index in the array or
	// the 0-based NDJSON line index; for logs the 1-based line number in the
	// source.
	Position int64
	// Err says why; ErrorMessage renders it.
	Err error
}

// ErrorMessage returns the rejection reason on one line: the messages of
// joined errors (several invalid fields) are separated by "; ".
func (r Rejection) ErrorMessage() string { return oneLine(r.Err) }

// Result is the outcome of a request whose accepted events were published.
type Result struct {
	// Accepted is the number of events published (and acknowledged).
	Accepted int
	// Rejected lists the invalid items in input order; empty when none.
	Rejected []Rejection
}

// Application is the set of collector use cases.
type Application struct {
	// IngestEvents ingests client events (POST /v1/events).
	IngestEvents *IngestEventsHandler
	// IngestSamples ingests metric samples (POST /v1/samples) as
	// metric_sample events; same body forms and answers as IngestEvents.
	IngestSamples *IngestEventsHandler
	// IngestLogs ingests access-log lines (POST /v1/logs).
	IngestLogs *IngestLogsHandler
}

// New returns the collector use cases publishing through pub, checking
// every item against limits. now is the clock for receive times; nil means
// time.Now.
func New(pub EventPublisher, now func() time.Time, limits Limits) Application {
	if now == nil {
		now = time.Now
	}
	return Application{
		IngestEvents:  &IngestEventsHandler{pub: pub, now: now, limits: limits},
		IngestSamples: &IngestEventsHandler{pub: pub, now: now, limits: limits, parse: events.ParseSample, fast: fastSample},
		IngestLogs:    &IngestLogsHandler{pub: pub, now: now, limits: limits},
	}
}

// publish sends evs to Topic; a failure wraps ErrUnavailable.
func publish(ctx context.Context, pub EventPublisher, evs []events.Event) error {
	if err := pub.PublishEvents(ctx, Topic, evs); err != nil {
		return fmt.Errorf("%w: publish %d events to %s: %w", ErrUnavailable, len(evs), Topic, err)
	}
	return nil
}

// oneLine renders err with joined errors separated by "; ".
func oneLine(err error) string {
	if joined, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // only a top-level join is flattened; wrapped ones keep their prefix
		errs := joined.Unwrap()
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, oneLine(e))
		}
		return strings.Join(msgs, "; ")
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
