// Package dispatch is the notifier's core, after Prometheus Alertmanager
// (dispatch/route.go, dispatch/dispatch.go, notify/notify.go's dedup
// stage, inhibit/inhibit.go, silence matching, timeinterval): a routing
// tree sends each alert to aggregation groups; each group is flushed after
// group_wait, then every group_interval, and a flush emits a notification
// when something changed or repeat_interval passed. Silences, inhibition
// rules, mute windows and acknowledgements filter what a flush sends.
//
// Unlike Alertmanager, a firing alert that was notified keeps its place in
// its group until its resolution has been delivered, even if it is silenced
// or inhibited meanwhile (prometheus/alertmanager#226), and a mute window
// delays a flush instead of dropping it.
//
// The package does no I/O and reads no clock: time is the State's clock,
// moved by Advance (see docs/notifier.md for how the service drives it).
package dispatch

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/streamwatch/streamwatch/pkg/silences"
)

// Route is a node of the routing tree. Children inherit unset fields from
// their parent when the tree is built (see the config package).
type Route struct {
	// ID is the node's path in the tree ("0", "0.1", "0.1.0"): stable as
	// long as the tree's shape is, and part of every group key.
	ID string
	// Matchers select the alerts of this node (all must match).
	Matchers silences.Matchers
	// Receiver names the receiver of this node's groups.
	Receiver string
	// GroupBy are the labels whose values form a group; GroupByAll groups
	// by every label (Alertmanager's "...").
	GroupBy    []string
	GroupByAll bool
	// GroupWait is how long a new group waits before its first flush.
	GroupWait time.Duration
	// GroupInterval is the time between flushes of a group.
	GroupInterval time.Duration
	// RepeatInterval is how long an unchanged, unacknowledged notification
	// waits before it is sent again.
	RepeatInterval time.Duration
	// MuteTimeIntervals name intervals during which flushes are delayed.
	MuteTimeIntervals []string
	// Continue lets matching go on to the next sibling after a match.
	Continue bool
	// Routes are the children, tried in order.
	Routes []*Route
}

// Match returns the routes an alert with labels goes to: the deepest
// matching nodes, depth first, stopping at the first matching child
// without Continue; the node itself when no child matches; nil when the
// node does not match. This is Alertmanager's dispatch.Route.Match.
func (r *Route) Match(labels map[string]string) []*Route {
	if !r.Matchers.Matches(labels) {
		return nil
	}
	var all []*Route
	for _, c := range r.Routes {
		m := c.Match(labels)
		all = append(all, m...)
		if m != nil && !c.Continue {
			break
		}
	}
	if len(all) == 0 {
		all = append(all, r)
	}
	return all
}

// Walk calls fn for r and every descendant, depth first.
func (r *Route) Walk(fn func(*Route)) {
	fn(r)
	for _, c := range r.Routes {
		c.Walk(fn)
	}
}

// groupLabels returns the labels of labels that form r's group.
func (r *Route) groupLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	if r.GroupByAll {
		for k, v := range labels {
			out[k] = v
		}
		return out
	}
	for _, k := range r.GroupBy {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// groupKey is the route id plus the sorted group labels, as Alertmanager's
// "{route}:{labels}" group key.
func groupKey(routeID string, gl map[string]string) string {
	ks := make([]string, 0, len(gl))
	for k := range gl {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	b.WriteString(routeID)
	b.WriteString(":{")
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, gl[k])
	}
	b.WriteByte('}')
	return b.String()
}

// InhibitRule mutes target alerts while a source alert fires whose Equal
// labels have the same values (Alertmanager's inhibit rule).
type InhibitRule struct {
	Source silences.Matchers
	Target silences.Matchers
	Equal  []string
}

// TimeRange is [Start, End) in minutes after local midnight.
type TimeRange struct{ Start, End int }

// TimeInterval is a recurring window: on Weekdays (all when empty) during
// any of Times (all day when empty), in Location (UTC when nil).
type TimeInterval struct {
	Weekdays []time.Weekday
	Times    []TimeRange
	Location *time.Location
}

// Contains reports whether t falls in the interval.
func (ti TimeInterval) Contains(t time.Time) bool {
	loc := ti.Location
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	if len(ti.Weekdays) > 0 {
		ok := false
		for _, d := range ti.Weekdays {
			ok = ok || d == t.Weekday()
		}
		if !ok {
			return false
		}
	}
	if len(ti.Times) == 0 {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	for _, r := range ti.Times {
		if m >= r.Start && m < r.End {
			return true
		}
	}
	return false
}

// Config is the static input of a Dispatcher.
type Config struct {
	// Route is the root of the routing tree; it must have a receiver and
	// no matchers.
	Route *Route
	// Inhibit are the inhibition rules.
	Inhibit []InhibitRule
	// MuteIntervals are the named mute windows routes refer to.
	MuteIntervals map[string][]TimeInterval
	// SendResolved tells, per receiver name, whether it wants resolved
	// notifications (true when any of its integrations does).
	SendResolved map[string]bool
}

// Validate checks the tree: a root receiver, positive intervals, known
// mute interval names.
func (c *Config) Validate() error {
	if c.Route == nil {
		return errors.New("no route")
	}
	var errs []error
	if c.Route.Receiver == "" {
		errs = append(errs, errors.New("route: the root needs a receiver"))
	}
	c.Route.Walk(func(r *Route) {
		if r.Receiver == "" {
			errs = append(errs, fmt.Errorf("route %s: no receiver", r.ID))
		}
		if r.GroupInterval <= 0 || r.RepeatInterval <= 0 || r.GroupWait < 0 {
			errs = append(errs, fmt.Errorf("route %s: group_interval and repeat_interval must be > 0, group_wait >= 0", r.ID))
		}
		for _, n := range r.MuteTimeIntervals {
			if _, ok := c.MuteIntervals[n]; !ok {
				errs = append(errs, fmt.Errorf("route %s: unknown mute_time_interval %q", r.ID, n))
			}
		}
	})
	return errors.Join(errs...)
}
