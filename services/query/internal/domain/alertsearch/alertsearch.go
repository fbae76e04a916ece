// Package alertsearch is the query service's model of an alert search over
// the alerts projection (the latest state of every alert episode). It does
// no I/O.
package alertsearch

import (
	"errors"
	"slices"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// StateRank orders the states of one episode: they only move forward
// (pending → firing → resolved, or pending → resolved), so the highest
// rank is the latest state whatever order records arrive in. 0 for an
// unknown state.
func StateRank(state string) uint8 {
	switch state {
	case alerts.StatePending:
		return 1
	case alerts.StateFiring:
		return 2
	case alerts.StateResolved:
		return 3
	}
	return 0
}

// Query is a validated alert search. Build it with NewQuery.
type Query struct {
	states, severities []string
	labels             []window.Filter
	from, to           int64
	limit              int
}

// NewQuery validates a search for alert episodes whose latest state is one
// of states, whose severity is one of severities (any when empty), whose
// labels match every filter (several values of one label: any of them),
// that started in [from, to) ms (to 0: no upper bound), newest first, at
// most limit (0: DefaultLimit). Every problem is reported, joined; each is
// a *window.ParamError.
func NewQuery(states, severities []string, labels []window.Filter, from, to int64, limit int) (Query, error) {
	var errs []error
	for _, s := range states {
		if StateRank(s) == 0 {
			errs = append(errs, window.InvalidParam("state", "%q is not pending, firing or resolved", s))
		}
	}
	for _, s := range severities {
		if s != alerts.SeverityInfo && s != alerts.SeverityWarning && s != alerts.SeverityCritical {
			errs = append(errs, window.InvalidParam("severity", "%q is not info, warning or critical", s))
		}
	}
	if to == 0 {
		to = window.MaxTimeMs
	}
	errs = append(errs, window.CheckRange(from, to))
	merged, err := window.MergeFilters(labels)
	errs = append(errs, err)
	switch {
	case limit < 1 || limit > MaxLimit:
		errs = append(errs, window.InvalidParam("limit", "%d is outside 1..%d", limit, MaxLimit))
	}
	if err := errors.Join(errs...); err != nil {
		return Query{}, err
	}
	return Query{states: dedup(states), severities: dedup(severities), labels: merged, from: from, to: to, limit: limit}, nil
}

func dedup(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// States are the accepted latest states; empty means all.
func (q Query) States() []string { return q.states }

// Severities are the accepted severities; empty means all.
func (q Query) Severities() []string { return q.severities }

// Labels are the label filters, one per label.
func (q Query) Labels() []window.Filter { return q.labels }

// From is the earliest starts_at, ms (inclusive).
func (q Query) From() int64 { return q.from }

// To is the starts_at bound, ms (exclusive).
func (q Query) To() int64 { return q.to }

// Limit is the most alerts returned.
func (q Query) Limit() int { return q.limit }
