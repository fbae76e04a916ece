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
	for _, m := range s.pairs {
		if Field(e, m.name) != m.value {
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
	// Expiries indexes Partials by expiry second (Expires truncated to
	// whole seconds, ms): Advance visits only the buckets the watermark
	// passed. Entries may be stale (the partial completed or moved); they
	// are checked and dropped when their bucket is visited.
	Expiries map[int64][]string `json:"expiries,omitempty"`
	// NextExpiry is the smallest key of Expiries (0 when empty).
	NextExpiry int64 `json:"next_expiry,omitempty"`
	// Silences by rule name + "\xff" + entity.
	Silences map[string]*Silence `json:"silences,omitempty"`
}

// NewEventState returns an empty state.
func NewEventState() *EventState {
	return &EventState{Partials: map[string]*Partial{}, Silences: map[string]*Silence{}, Expiries: map[int64][]string{}}
}

// entityKey returns the state key of the pattern's entity for e: rule
// name, the event's entity key and the rule's By fields.
func (r *Rule) entityKey(e *events.Event) string {
	if len(r.By) == 0 {
		return r.Name + "\xff" + e.Key
	}
	var b strings.Builder
	b.WriteString(r.Name)
	b.WriteString("\xff")
	b.WriteString(e.Key)
	for _, f := range r.By {
		b.WriteString("\xff")
		b.WriteString(Field(e, f))
	}
	return b.String()
}

// entityLabels returns the alert labels of the entity of e: entity (the
// entity key) and the By fields (dots become underscores).
func (r *Rule) entityLabels(e *events.Event) map[string]string {
	labels := map[string]string{"entity": e.Key}
	for _, f := range r.By {
		labels[strings.ReplaceAll(f, ".", "_")] = Field(e, f)
	}
	return labels
}

// Apply applies one event to the pattern and event absence rules, in event
// arrival order (per entity, the order of its partition), and returns the
// alert state changes. Each match is one alert episode: a firing change
// and, at once, its resolution (StartsAt = first matched event, EndsAt =
// the completing event or, for negation, the deadline). Call Advance with
// the new watermark after a batch of events.
func (st *EventState) Apply(set *Set, e *events.Event) []alerts.Alert {
	st.init()
	if e.Time > st.MaxTime {
		st.MaxTime = e.Time
	}
	var out []alerts.Alert
	for _, r := range set.patterns[e.Type] {
		if !r.Steps[0].matches(e) && (len(r.Steps) < 2 || !r.Steps[1].matches(e)) {
			continue
		}
		key := r.entityKey(e)
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
				st.put(key, &Partial{Rule: r.Name, Labels: r.entityLabels(e), Times: []int64{e.Time}, IDs: []string{e.ID}, Expires: e.Time + w})
			}
		case KindRepetition:
			if !r.Steps[0].matches(e) {
				continue
			}
			if p == nil {
				p = &Partial{Rule: r.Name, Labels: r.entityLabels(e)}
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
				st.put(key, &Partial{Rule: r.Name, Labels: r.entityLabels(e), Times: []int64{e.Time}, IDs: []string{e.ID}, Expires: e.Time + w})
			}
		}
	}
	for _, r := range set.absent {
		if !r.Steps[0].matches(e) {
			continue
		}
		key := r.entityKey(e)
		s := st.Silences[key]
		if s == nil {
			s = &Silence{Rule: r.Name, Labels: r.entityLabels(e)}
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

// init makes the maps of a state decoded from an empty checkpoint usable.
func (st *EventState) init() {
	if st.Partials == nil {
		st.Partials = map[string]*Partial{}
	}
	if st.Silences == nil {
		st.Silences = map[string]*Silence{}
	}
	if st.Expiries == nil {
		st.Expiries = map[int64][]string{}
	}
}

func (st *EventState) put(key string, p *Partial) {
	st.Partials[key] = p
	bucket := p.Expires / 1000 * 1000
	st.Expiries[bucket] = append(st.Expiries[bucket], key)
	if st.NextExpiry == 0 || bucket < st.NextExpiry {
		st.NextExpiry = bucket
	}
}

// Advance sets the watermark to MaxTime − outOfOrderness (ms; it never
// moves back) and returns what it decides, in deterministic order (by
// expiry second, then key): negations whose deadline passed without B fire
// (and resolve), expired partial matches are dropped, and silent entities
// of absence rules fire. Its cost is that of the expired partials plus the
// number of absence rule entities.
func (st *EventState) Advance(set *Set, outOfOrderness int64) []alerts.Alert {
	st.init()
	if wm := st.MaxTime - outOfOrderness; wm > st.Watermark {
		st.Watermark = wm
	}
	wm := st.Watermark
	var out []alerts.Alert
	for st.NextExpiry != 0 && wm > st.NextExpiry {
		bucket := st.NextExpiry
		keys := st.Expiries[bucket]
		slices.Sort(keys)
		var keep []string
		for i, key := range keys {
			p := st.Partials[key]
			if p == nil || (i > 0 && keys[i-1] == key) || p.Expires/1000*1000 != bucket {
				continue // completed, duplicate or moved to another bucket
			}
			if wm <= p.Expires {
				keep = append(keep, key) // later in this second
				continue
			}
			r := set.Rule(p.Rule)
			if r != nil && r.Kind == KindNegation {
				out = append(out, matched(r, p, p.Expires, "")...)
			}
			delete(st.Partials, key)
		}
		if len(keep) > 0 {
			st.Expiries[bucket] = keep
			break // every later bucket expires later still
		}
		delete(st.Expiries, bucket)
		st.NextExpiry = 0
		for b := range st.Expiries {
			if st.NextExpiry == 0 || b < st.NextExpiry {
				st.NextExpiry = b
			}
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
