package rules

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// Field returns an event field by its JSON name as a string (numbers in
// decimal; properties.<name> reads a property, labels.<name> a sample
// label); "" when the event has no such field.
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
	case "query":
		return e.Query
	case "service":
		return e.Service
	case "endpoint":
		return e.Endpoint
	case "status":
		if e.Status == 0 {
			return ""
		}
		return strconv.Itoa(e.Status)
	case "client_ip":
		return e.ClientIP
	case "method":
		return e.Method
	case "path":
		return e.Path
	case "protocol":
		return e.Protocol
	case "referrer":
		return e.Referrer
	case "user_agent":
		return e.UserAgent
	case "series":
		return e.Series
	}
	if k, ok := strings.CutPrefix(name, "properties."); ok {
		return e.Properties[k]
	}
	if k, ok := strings.CutPrefix(name, "labels."); ok {
		return e.Labels[k]
	}
	return ""
}

// matches reports whether e is an event of the step.
func (s *Step) matches(e *events.Event) bool {
	if e.Type != s.Type {
		return false
	}
	for k, v := range s.Match {
		if Field(e, k) != v {
			return false
		}
	}
	return true
}

// Partial is a partial match of one pattern rule for one entity: the event
// times (ms) and ids matched so far, in event-time order.
type Partial struct {
	Rule   string            `json:"rule"`
	Labels map[string]string `json:"labels"`
	Times  []int64           `json:"times"`
	IDs    []string          `json:"ids"`
	// Expires is when the partial can no longer complete (sequence,
	// repetition) or fires (negation): the first time + Within, ms.
	Expires int64 `json:"expires"`
}

// Silence is the event absence state of one rule and entity.
type Silence struct {
	Rule     string            `json:"rule"`
	Labels   map[string]string `json:"labels"`
	LastSeen int64             `json:"last_seen"`
	Firing   *alerts.Alert     `json:"firing,omitempty"`
}

// EventState is the state of pattern and event absence rules for one
// events.raw partition. It is plain data (JSON). Partial matches are
// bounded by the entities with a match in progress (each holds at most
// Count times) and are dropped once the watermark passes their expiry.
type EventState struct {
	// MaxTime is the largest event time seen, ms.
	MaxTime int64 `json:"max_time"`
	// Watermark is MaxTime − the allowed out-of-orderness, ms.
	Watermark int64 `json:"watermark"`
	// Partials by rule name + "\xff" + entity.
	Partials map[string]*Partial `json:"partials"`
	// NextExpiry is the smallest Expires of Partials (0 when none), so
	// most watermark moves cost nothing.
	NextExpiry int64 `json:"next_expiry,omitempty"`
	// Silences by rule name + "\xff" + entity.
	Silences map[string]*Silence `json:"silences,omitempty"`
}

// NewEventState returns an empty state.
func NewEventState() *EventState {
	return &EventState{Partials: map[string]*Partial{}, Silences: map[string]*Silence{}}
}

// entity returns the pattern's entity labels and key for e: the event's
// entity key plus the rule's By fields.
func (r *Rule) entity(e *events.Event) (map[string]string, string) {
	labels := map[string]string{"entity": e.Key}
	key := r.Name + "\xff" + e.Key
	for _, f := range r.By {
		v := Field(e, f)
		labels[strings.ReplaceAll(f, ".", "_")] = v
		key += "\xff" + v
	}
	return labels, key
}

// Apply applies one event to the pattern and event absence rules, in event
// arrival order (per entity, the order of its partition), and returns the
// alert state changes. Each match is one alert episode: a firing change
// and, at once, its resolution (StartsAt = first matched event, EndsAt =
// the completing event or, for negation, the deadline). Call Advance with
// the new watermark after a batch of events.
func (st *EventState) Apply(set *Set, e *events.Event) []alerts.Alert {
	if e.Time > st.MaxTime {
		st.MaxTime = e.Time
	}
	var out []alerts.Alert
	for _, r := range set.patterns[e.Type] {
		labels, key := r.entity(e)
		p := st.Partials[key]
		w := r.Within.Ms()
		switch r.Kind {
		case KindSequence:
			if p != nil && r.Steps[1].matches(e) && e.Time >= p.Times[0] && e.Time-p.Times[0] <= w {
				out = append(out, matched(r, p, e.Time, e.ID)...)
				delete(st.Partials, key)
				p = nil
			}
			if r.Steps[0].matches(e) && (p == nil || e.Time >= p.Times[0]) {
				st.put(key, &Partial{Rule: r.Name, Labels: labels, Times: []int64{e.Time}, IDs: []string{e.ID}, Expires: e.Time + w})
			}
		case KindRepetition:
			if !r.Steps[0].matches(e) {
				continue
			}
			if p == nil {
				p = &Partial{Rule: r.Name, Labels: labels}
			}
			if slices.Contains(p.IDs, e.ID) {
				continue // a re-sent event counts once
			}
			i, _ := slices.BinarySearch(p.Times, e.Time)
			p.Times = slices.Insert(p.Times, i, e.Time)
			p.IDs = slices.Insert(p.IDs, i, e.ID)
			cut := 0
			for cut < len(p.Times) && p.Times[cut] < p.Times[len(p.Times)-1]-w {
				cut++
			}
			p.Times, p.IDs = p.Times[cut:], p.IDs[cut:]
			if len(p.Times) >= r.Count {
				last := p.Times[len(p.Times)-1]
				out = append(out, matched(r, p, last, "")...)
				delete(st.Partials, key)
				continue
			}
			p.Expires = p.Times[0] + w
			st.put(key, p)
		case KindNegation:
			if p != nil && r.Steps[1].matches(e) && e.Time >= p.Times[0] && e.Time <= p.Expires {
				delete(st.Partials, key) // followed in time: no alert
				p = nil
			}
			if r.Steps[0].matches(e) && p == nil {
				st.put(key, &Partial{Rule: r.Name, Labels: labels, Times: []int64{e.Time}, IDs: []string{e.ID}, Expires: e.Time + w})
			}
		}
	}
	for _, r := range set.absent {
		if !r.Steps[0].matches(e) {
			continue
		}
		labels, key := r.entity(e)
		s := st.Silences[key]
		if s == nil {
			s = &Silence{Rule: r.Name, Labels: labels}
			st.Silences[key] = s
		}
		if e.Time > s.LastSeen {
			s.LastSeen = e.Time
		}
		if s.Firing != nil && e.Time >= s.Firing.StartsAt {
			a := *s.Firing
			a.State, a.EndsAt = alerts.StateResolved, e.Time
			s.Firing = nil
			out = append(out, a)
		}
	}
	return out
}

func (st *EventState) put(key string, p *Partial) {
	st.Partials[key] = p
	if st.NextExpiry == 0 || p.Expires < st.NextExpiry {
		st.NextExpiry = p.Expires
	}
}

// Advance sets the watermark to MaxTime − outOfOrderness (ms; it never
// moves back) and returns what it decides, sorted by key: negations whose
// deadline passed without B fire (and resolve), expired partial matches
// are dropped, and silent entities of absence rules fire.
func (st *EventState) Advance(set *Set, outOfOrderness int64) []alerts.Alert {
	if wm := st.MaxTime - outOfOrderness; wm > st.Watermark {
		st.Watermark = wm
	}
	wm := st.Watermark
	var out []alerts.Alert
	if st.NextExpiry != 0 && wm > st.NextExpiry {
		var due []string
		st.NextExpiry = 0
		for key, p := range st.Partials {
			r := set.Rule(p.Rule)
			switch {
			case r == nil || !r.Pattern():
				delete(st.Partials, key)
			case wm > p.Expires && r.Kind == KindNegation:
				due = append(due, key)
			case wm > p.Expires:
				delete(st.Partials, key)
			case st.NextExpiry == 0 || p.Expires < st.NextExpiry:
				st.NextExpiry = p.Expires
			}
		}
		slices.Sort(due)
		for _, key := range due {
			p := st.Partials[key]
			out = append(out, matched(set.Rule(p.Rule), p, p.Expires, "")...)
			delete(st.Partials, key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(st.Silences)) {
		s := st.Silences[key]
		r := set.Rule(s.Rule)
		if r == nil || r.Kind != KindAbsence || r.Source != SourceEvents {
			delete(st.Silences, key)
			continue
		}
		if s.Firing == nil && wm > s.LastSeen+r.For.Ms() {
			labels := r.alertLabels(s.Labels)
			a := alerts.Alert{
				V: 1, Fingerprint: alerts.Fingerprint(r.Name, labels), Rule: r.Name, Kind: string(r.Kind),
				State: alerts.StateFiring, Severity: r.Severity, Labels: labels, StartsAt: s.LastSeen,
				Threshold: float64(r.For.Ms()),
			}
			a.Annotations = r.annotate(&a)
			s.Firing = &a
			out = append(out, a)
		}
	}
	return out
}

// matched returns the firing and resolved changes of one pattern match
// from the partial p completed at end (ms) by event id (if any).
func matched(r *Rule, p *Partial, end int64, id string) []alerts.Alert {
	labels := r.alertLabels(p.Labels)
	ids := slices.Clone(p.IDs)
	if id != "" {
		ids = append(ids, id)
	}
	a := alerts.Alert{
		V: 1, Fingerprint: alerts.Fingerprint(r.Name, labels), Rule: r.Name, Kind: string(r.Kind),
		State: alerts.StateFiring, Severity: r.Severity, Labels: labels, Value: float64(len(ids)),
		Threshold: float64(r.Within.Ms()), StartsAt: p.Times[0], EventIDs: ids,
	}
	a.Annotations = r.annotate(&a)
	res := a
	res.Labels = maps.Clone(labels)
	res.State, res.EndsAt = alerts.StateResolved, end
	return []alerts.Alert{a, res}
}

func sortStrings(s []string) { slices.Sort(s) }
