// Package alerts defines the alert state-change record carried on the
// alerts topic, and alert fingerprints.
package alerts

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// Schema is the value of the schema metadata on alerts records.
const Schema = "alerts.alert.v1"

// Alert states, as in Prometheus: pending (condition true, waiting for its
// `for` duration), firing, resolved.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert is one state change of one alert.
//
// Times are milliseconds since the epoch (UTC), in event time: StartsAt is
// the start of the window where the condition first held, EndsAt the end of
// the window where it stopped holding (0 while firing).
type Alert struct {
	V           int               `json:"v"`
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Metric, Value and Threshold describe the breach that set the state.
	Metric    string  `json:"metric,omitempty"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Score is the anomaly score in [0, 1] that set the state (anomaly
	// rules; 0 otherwise).
	Score float64 `json:"score,omitempty"`
	// Kind is the kind of the rule (threshold, change, absence, sequence,
	// repetition, negation, anomaly); empty in records of older builds.
	Kind     string `json:"kind,omitempty"`
	StartsAt int64  `json:"starts_at"`
	EndsAt   int64  `json:"ends_at,omitempty"`
	// WindowStart and WindowEnd link back to the window result (ms).
	WindowStart int64 `json:"window_start,omitempty"`
	WindowEnd   int64 `json:"window_end,omitempty"`
	// EventIDs link a pattern alert back to the events that matched, in
	// event-time order.
	EventIDs []string `json:"event_ids,omitempty"`
}

// ID is the deterministic id of this state change: fingerprint, episode
// start and state. A consumer that sees the same ID twice ignores the second.
func (a *Alert) ID() string {
	return a.Fingerprint + "|" + strconv.FormatInt(a.StartsAt, 10) + "|" + a.State
}

// Fingerprint identifies an alert by its rule and labels, like Alertmanager's
// model.LabelSet.Fingerprint: 64-bit FNV-1a over the rule name and the label
// pairs sorted by name, as 16 hex digits.
func Fingerprint(rule string, labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	h := fnv.New64a()
	h.Write([]byte(rule))
	for _, k := range names {
		h.Write([]byte{0xff})
		h.Write([]byte(k))
		h.Write([]byte{0xfe})
		h.Write([]byte(labels[k]))
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// ErrInvalid is wrapped by Validate errors.
var ErrInvalid = errors.New("invalid alert")

// Validate checks the fields a consumer relies on: version 1, a
// fingerprint, a known state, a start in 1..events.MaxTime and an end (when
// set) not before the start. Errors wrap ErrInvalid.
func (a *Alert) Validate() error {
	switch {
	case a.V != 1:
		return fmt.Errorf("%w: schema version %d (this build reads 1)", ErrInvalid, a.V)
	case a.Fingerprint == "":
		return fmt.Errorf("%w: missing fingerprint", ErrInvalid)
	case a.State != StatePending && a.State != StateFiring && a.State != StateResolved:
		return fmt.Errorf("%w: unknown state %q", ErrInvalid, a.State)
	case a.StartsAt <= 0 || a.StartsAt > events.MaxTime:
		// An absurd start would move the notifier's event-time clock (and
		// every timer on it) years ahead.
		return fmt.Errorf("%w: starts_at %d outside 1..%d (events.MaxTime)", ErrInvalid, a.StartsAt, events.MaxTime)
	case a.EndsAt != 0 && a.EndsAt < a.StartsAt:
		return fmt.Errorf("%w: ends_at %d before starts_at %d", ErrInvalid, a.EndsAt, a.StartsAt)
	}
	return nil
}
