// Package silences defines the records an operator sends to the notifier:
// silences (on the silences topic) and acknowledgements (on the acks
// topic), and the label matchers they use. The query service's admin API
// publishes them; the notifier consumes them. The JSON schema is documented
// in docs/notifier.md.
package silences

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Schema is the value of the schema metadata on silences records.
const Schema = "silences.silence.v1"

// AckSchema is the value of the schema metadata on acks records.
const AckSchema = "silences.ack.v1"

// Matcher operators, as in Alertmanager and PromQL.
const (
	OpEqual     = "="
	OpNotEqual  = "!="
	OpRegexp    = "=~"
	OpNotRegexp = "!~"
)

// Matcher matches one label. A missing label has the value "", so
// {name="x", value="", op="="} matches alerts without label x.
type Matcher struct {
	// Name is the label name.
	Name string `json:"name"`
	// Value is the value or, for =~ and !~, an RE2 regular expression that
	// must match the whole label value (it is anchored as ^(?:value)$).
	Value string `json:"value"`
	// Op is one of =, !=, =~, !~; empty means =.
	Op string `json:"op,omitempty"`

	re *regexp.Regexp
}

// NewMatcher returns a compiled matcher. It fails on an unknown operator,
// an empty name or a regular expression that does not compile.
func NewMatcher(name, op, value string) (Matcher, error) {
	m := Matcher{Name: name, Op: op, Value: value}
	if err := m.compile(); err != nil {
		return Matcher{}, err
	}
	return m, nil
}

func (m *Matcher) compile() error {
	if m.Name == "" {
		return errors.New("matcher: empty label name")
	}
	switch m.Op {
	case "", OpEqual, OpNotEqual:
		return nil
	case OpRegexp, OpNotRegexp:
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return fmt.Errorf("matcher %s%s%q: %w", m.Name, m.Op, m.Value, err)
		}
		m.re = re
		return nil
	default:
		return fmt.Errorf("matcher %s: unknown operator %q (want =, !=, =~ or !~)", m.Name, m.Op)
	}
}

// Matches reports whether labels satisfy the matcher. A regex matcher that
// was decoded but not compiled is compiled on first use; an invalid one
// matches nothing (Validate reports it).
func (m *Matcher) Matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case "", OpEqual:
		return v == m.Value
	case OpNotEqual:
		return v != m.Value
	case OpRegexp, OpNotRegexp:
		if m.re == nil && m.compile() != nil {
			return false
		}
		return m.re.MatchString(v) == (m.Op == OpRegexp)
	}
	return false
}

// String renders the matcher as name op "value".
func (m *Matcher) String() string {
	op := m.Op
	if op == "" {
		op = OpEqual
	}
	return fmt.Sprintf("%s%s%q", m.Name, op, m.Value)
}

// Matchers is a conjunction: it matches when every matcher does (an empty
// list matches everything).
type Matchers []Matcher

// Matches reports whether labels satisfy every matcher.
func (ms Matchers) Matches(labels map[string]string) bool {
	for i := range ms {
		if !ms[i].Matches(labels) {
			return false
		}
	}
	return true
}

// Compile compiles every matcher in place and reports every invalid one.
func (ms Matchers) Compile() error {
	var errs []error
	for i := range ms {
		if err := ms[i].compile(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FromMaps builds matchers from Alertmanager-style match (equality) and
// match_re (regex) maps, sorted by name for a stable order.
func FromMaps(eq, re map[string]string) (Matchers, error) {
	var ms Matchers
	var errs []error
	for _, k := range sortedKeys(eq) {
		m, err := NewMatcher(k, OpEqual, eq[k])
		errs = append(errs, err)
		ms = append(ms, m)
	}
	for _, k := range sortedKeys(re) {
		m, err := NewMatcher(k, OpRegexp, re[k])
		errs = append(errs, err)
		ms = append(ms, m)
	}
	return ms, errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Silence operations.
const (
	// OpUpsert creates a silence or replaces the one with the same id.
	OpUpsert = "upsert"
	// OpExpire ends a silence now (its EndsAt becomes ExpiredAt).
	OpExpire = "expire"
)

// Silence is one record on the silences topic, keyed by ID. Times are
// milliseconds since the epoch (UTC) on the notifier's clock (see
// docs/notifier.md: event time, which follows wall time in live operation).
type Silence struct {
	// V is the schema version, 1.
	V int `json:"v"`
	// ID identifies the silence; an upsert with a known ID replaces it.
	ID string `json:"id"`
	// Op is upsert (default) or expire.
	Op string `json:"op,omitempty"`
	// Matchers select the alerts the silence mutes (all must match; at
	// least one is required).
	Matchers Matchers `json:"matchers"`
	// StartsAt is when the silence begins, ms.
	StartsAt int64 `json:"starts_at"`
	// EndsAt is when it ends, ms; 0 only with UntilResolved.
	EndsAt int64 `json:"ends_at,omitempty"`
	// UntilResolved keeps the silence until every alert it has muted is
	// resolved (it expires the first time no firing alert matches it after
	// it matched one). EndsAt, if set too, still bounds it.
	UntilResolved bool `json:"until_resolved,omitempty"`
	// CreatedBy names who created it (required).
	CreatedBy string `json:"created_by"`
	// Comment says why.
	Comment string `json:"comment,omitempty"`
	// UpdatedAt orders versions of one silence, ms: a record older than the
	// stored version is ignored. For an expire it is the expiry time.
	UpdatedAt int64 `json:"updated_at"`
}

// Validate checks the record and compiles its matchers.
func (s *Silence) Validate() error {
	var errs []error
	if s.V != 1 {
		errs = append(errs, fmt.Errorf("schema version %d (this build reads 1)", s.V))
	}
	if strings.TrimSpace(s.ID) == "" {
		errs = append(errs, errors.New("missing id"))
	}
	switch s.Op {
	case "", OpUpsert:
		if len(s.Matchers) == 0 {
			errs = append(errs, errors.New("no matchers (a silence must select something)"))
		}
		if s.CreatedBy == "" {
			errs = append(errs, errors.New("missing created_by"))
		}
		if s.EndsAt == 0 && !s.UntilResolved {
			errs = append(errs, errors.New("ends_at required unless until_resolved"))
		}
		if s.EndsAt != 0 && s.EndsAt <= s.StartsAt {
			errs = append(errs, fmt.Errorf("ends_at %d not after starts_at %d", s.EndsAt, s.StartsAt))
		}
		errs = append(errs, s.Matchers.Compile())
	case OpExpire:
	default:
		errs = append(errs, fmt.Errorf("unknown op %q (want upsert or expire)", s.Op))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid silence %q: %w", s.ID, err)
	}
	return nil
}

// Ack is one record on the acks topic, keyed by Fingerprint: someone
// acknowledged an alert episode. An acknowledged alert is no longer repeated
// (repeat_interval) but its resolution is still sent.
type Ack struct {
	// V is the schema version, 1.
	V int `json:"v"`
	// ID identifies the acknowledgement (deduplication key).
	ID string `json:"id"`
	// Fingerprint is the alert's fingerprint (pkg/alerts).
	Fingerprint string `json:"fingerprint"`
	// StartsAt is the episode (alerts.Alert.StartsAt) acknowledged, ms; 0
	// acknowledges whatever episode is current.
	StartsAt int64 `json:"starts_at,omitempty"`
	// By names who acknowledged (required).
	By string `json:"by"`
	// At is when, ms.
	At int64 `json:"at"`
	// Comment is free text.
	Comment string `json:"comment,omitempty"`
}

// Validate checks the record.
func (a *Ack) Validate() error {
	var errs []error
	if a.V != 1 {
		errs = append(errs, fmt.Errorf("schema version %d (this build reads 1)", a.V))
	}
	if a.ID == "" {
		errs = append(errs, errors.New("missing id"))
	}
	if a.Fingerprint == "" {
		errs = append(errs, errors.New("missing fingerprint"))
	}
	if a.By == "" {
		errs = append(errs, errors.New("missing by"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid ack %q: %w", a.ID, err)
	}
	return nil
}
