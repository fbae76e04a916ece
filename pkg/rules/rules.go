// Package rules is the detector's rule model and its pure evaluation code:
// threshold rules with `for` durations, rate of change, absence, patterns
// over raw events (sequence, repetition, negation) and streaming anomaly
// detection. It does no I/O, so the live detector and a backtest run the
// same code on the same inputs and get the same alerts.
//
// Every evaluation is driven by event time only (window bounds, sample and
// event timestamps, watermarks), never by the wall clock: a history replayed
// as fast as possible gives the alerts it gave in real time.
package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// Kind is the kind of a rule.
type Kind string

// Rule kinds.
const (
	// KindThreshold compares a metric value with a threshold (Prometheus
	// `expr > x` with `for:`).
	KindThreshold Kind = "threshold"
	// KindChange compares a metric value with its value in the previous
	// window or the same window a day earlier, in percent.
	KindChange Kind = "change"
	// KindAbsence fires when a metric series, or the events of an entity,
	// stop arriving for a duration (heartbeats).
	KindAbsence Kind = "absence"
	// KindSequence fires when event A is followed by event B of the same
	// entity within a duration.
	KindSequence Kind = "sequence"
	// KindRepetition fires when an entity produces N events A within a duration.
	KindRepetition Kind = "repetition"
	// KindNegation fires when event A of an entity is not followed by event B
	// within a duration; it fires when the watermark passes the deadline.
	KindNegation Kind = "negation"
	// KindAnomaly scores every point of a metric series with the streaming
	// detector of anomaly.go and fires when the score reaches the threshold.
	KindAnomaly Kind = "anomaly"
)

// Sources a metric rule reads.
const (
	// SourceWindows is window results on metrics.windows (complete ones only).
	SourceWindows = "windows"
	// SourceSamples is metric_sample events on events.raw.
	SourceSamples = "samples"
	// SourceEvents is raw events on events.raw (patterns, event absence).
	SourceEvents = "events"
)

// Change references.
const (
	ComparePrevious = "previous"
	CompareDayAgo   = "day_ago"
)

// Day is the offset of CompareDayAgo, ms.
const Day = int64(24 * time.Hour / time.Millisecond)

var ops = map[string]func(v, t float64) bool{
	">":  func(v, t float64) bool { return v > t },
	">=": func(v, t float64) bool { return v >= t },
	"<":  func(v, t float64) bool { return v < t },
	"<=": func(v, t float64) bool { return v <= t },
	"==": func(v, t float64) bool { return v == t },
	"!=": func(v, t float64) bool { return v != t },
}

var nameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Duration is a time.Duration written as a Go duration string ("90s",
// "5m", "24h") in YAML and JSON.
type Duration time.Duration

// Ms returns the duration in milliseconds.
func (d Duration) Ms() int64 { return time.Duration(d).Milliseconds() }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 90s, 5m, 1h): %w", n.Line, n.Value, err)
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Step is one step of a pattern: an event type and field equality matchers
// (field names as in metrics.Field: page, status, path, ...). In YAML a bare
// string is a step matching the type only.
type Step struct {
	Type  events.Type       `yaml:"type" json:"type"`
	Match map[string]string `yaml:"match,omitempty" json:"match,omitempty"`

	pairs []pair // Match, sorted, for fast matching
}

// pair is one equality matcher.
type pair struct{ name, value string }

// sortedPairs returns m as pairs sorted by name.
func sortedPairs(m map[string]string) []pair {
	ps := make([]pair, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ps = append(ps, pair{k, m[k]})
	}
	return ps
}

// UnmarshalYAML accepts a bare type name or a mapping.
func (s *Step) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Type = events.Type(n.Value)
		return nil
	}
	type plain Step
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Step(p)
	return nil
}

// AnomalyConfig tunes a KindAnomaly rule; zero values take the defaults of
// DefaultAnomalyConfig.
type AnomalyConfig struct {
	// Warmup is the number of points the model learns from before it
	// scores (scores are 0 meanwhile).
	Warmup int `yaml:"warmup,omitempty" json:"warmup,omitempty"`
	// Season is the period of the daily (or other) pattern; "0s" with
	// NoSeason disables the seasonal baseline.
	Season Duration `yaml:"season,omitempty" json:"season,omitempty"`
	// NoSeason disables the seasonal baseline.
	NoSeason bool `yaml:"no_season,omitempty" json:"no_season,omitempty"`
}

// Rule is one alerting rule. Which fields apply depends on Kind; Compile
// checks them. Rules are values: the YAML file, the rules topic and the
// backtest API all carry this shape.
type Rule struct {
	// Name identifies the rule (the alertname label); [a-z_][a-z0-9_]*.
	Name string `yaml:"name" json:"name"`
	// Kind is the rule kind; empty means threshold.
	Kind Kind `yaml:"kind,omitempty" json:"kind,omitempty"`
	// Source is windows (default for metric rules) or samples for metric
	// rules, events for patterns and event absence.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	// Metric is the window metric or sample series the rule reads.
	Metric string `yaml:"metric,omitempty" json:"metric,omitempty"`
	// Match holds label equality matchers on the series (metric rules) or
	// field equality matchers on events (event absence).
	Match map[string]string `yaml:"match,omitempty" json:"match,omitempty"`
	// Op and Threshold: threshold rules compare the value, change rules the
	// change in percent ((v - ref) / |ref| * 100), anomaly rules the score
	// (op >=, default threshold 0.5: Numenta's likelihood 0.99999).
	Op        string  `yaml:"op,omitempty" json:"op,omitempty"`
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// For is how long, in event time, the condition must hold before the
	// alert fires (threshold, change); for absence, how long the series or
	// entity must be silent.
	For Duration `yaml:"for,omitempty" json:"for,omitempty"`
	// KeepFiringFor keeps a firing alert firing this long after the
	// condition stopped holding (Prometheus keep_firing_for), so one episode
	// gives one alert. Anomaly rules default to 1h.
	KeepFiringFor Duration `yaml:"keep_firing_for,omitempty" json:"keep_firing_for,omitempty"`
	// Compare is previous or day_ago (change rules).
	Compare string `yaml:"compare,omitempty" json:"compare,omitempty"`
	// Steps are the pattern's events: [A, B] for sequence and negation, [A]
	// for repetition; absence of events uses [A].
	Steps []Step `yaml:"events,omitempty" json:"events,omitempty"`
	// Within bounds a pattern in event time (inclusive).
	Within Duration `yaml:"within,omitempty" json:"within,omitempty"`
	// Count is N for repetition.
	Count int `yaml:"count,omitempty" json:"count,omitempty"`
	// By adds event fields to the entity key of a pattern (e.g. [page] for
	// "identical clicks").
	By []string `yaml:"by,omitempty" json:"by,omitempty"`
	// Anomaly tunes anomaly rules.
	Anomaly AnomalyConfig `yaml:"anomaly,omitempty" json:"anomaly,omitzero"`
	// Severity is info, warning (default) or critical.
	Severity string `yaml:"severity,omitempty" json:"severity,omitempty"`
	// Labels are added to the alert's labels.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Annotations are text/template strings over .Labels, .Value, .Score,
	// .Threshold, .Metric, .Rule and .StartsAt (RFC 3339).
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
	// Early evaluates early (still open) window results too; the default
	// evaluates final and revised results, so alerts carry whole windows.
	Early bool `yaml:"early,omitempty" json:"early,omitempty"`

	line      int
	matchers  []pair
	compare   func(v, t float64) bool
	templates map[string]*template.Template
}

// Line is the rule's line in its YAML file (0 when not from a file).
func (r *Rule) Line() int { return r.line }

// EventRule reports whether the rule reads events.raw (patterns, event
// absence and sample rules) rather than metrics.windows.
func (r *Rule) EventRule() bool { return r.Source == SourceEvents || r.Source == SourceSamples }

// Pattern reports whether the rule is a sequence, repetition or negation.
func (r *Rule) Pattern() bool {
	return r.Kind == KindSequence || r.Kind == KindRepetition || r.Kind == KindNegation
}

// Compile fills defaults and checks the rule; it must be called (Parse and
// NewSet do) before the rule is evaluated. It returns every problem joined.
func (r *Rule) Compile() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if r.Kind == "" {
		r.Kind = KindThreshold
	}
	if !nameRe.MatchString(r.Name) {
		add("name %q must match %s", r.Name, nameRe)
	}
	switch r.Severity {
	case alerts.SeverityInfo, alerts.SeverityWarning, alerts.SeverityCritical:
	case "":
		r.Severity = alerts.SeverityWarning
	default:
		add("unknown severity %q (info, warning or critical)", r.Severity)
	}
	metricRule := func() {
		if r.Source == "" {
			r.Source = SourceWindows
		}
		if r.Source != SourceWindows && r.Source != SourceSamples {
			add("source %q must be windows or samples for a %s rule", r.Source, r.Kind)
		}
		if !nameRe.MatchString(r.Metric) {
			add("metric %q must match %s", r.Metric, nameRe)
		}
	}
	compareOp := func(def string) {
		if r.Op == "" {
			r.Op = def
		}
		var ok bool
		if r.compare, ok = ops[r.Op]; !ok {
			add("unknown op %q (one of > >= < <= == !=)", r.Op)
		}
	}
	switch r.Kind {
	case KindThreshold:
		metricRule()
		compareOp("")
	case KindChange:
		metricRule()
		compareOp(">")
		if r.Compare == "" {
			r.Compare = ComparePrevious
		}
		if r.Compare != ComparePrevious && r.Compare != CompareDayAgo {
			add("compare %q must be previous or day_ago", r.Compare)
		}
	case KindAbsence:
		if r.Source == SourceEvents || len(r.Steps) > 0 {
			r.Source = SourceEvents
			if len(r.Steps) != 1 {
				add("an event absence rule needs exactly one event in events, got %d", len(r.Steps))
			}
		} else {
			metricRule()
		}
		if r.For <= 0 {
			add("an absence rule needs for > 0")
		}
	case KindAnomaly:
		metricRule()
		if r.Threshold == 0 {
			r.Threshold = 0.5
		}
		compareOp(">=")
		if r.Threshold <= 0 || r.Threshold > 1 {
			add("anomaly threshold %v must be in (0, 1]", r.Threshold)
		}
		if r.KeepFiringFor == 0 {
			r.KeepFiringFor = Duration(time.Hour)
		}
		if r.Anomaly.Warmup < 0 {
			add("anomaly warmup %d is negative", r.Anomaly.Warmup)
		}
	case KindSequence, KindNegation, KindRepetition:
		if r.Source == "" {
			r.Source = SourceEvents
		}
		if r.Source != SourceEvents {
			add("source %q must be events for a %s rule", r.Source, r.Kind)
		}
		want := 2
		if r.Kind == KindRepetition {
			want = 1
			if r.Count < 2 {
				add("a repetition rule needs count >= 2, got %d", r.Count)
			}
		}
		if len(r.Steps) != want {
			add("a %s rule needs %d events, got %d", r.Kind, want, len(r.Steps))
		}
		if r.Within <= 0 {
			add("a %s rule needs within > 0", r.Kind)
		}
	default:
		add("unknown kind %q (threshold, change, absence, sequence, repetition, negation or anomaly)", r.Kind)
	}
	for i := range r.Steps {
		if r.Steps[i].Type.Kind() == events.KindUnknown {
			add("events[%d]: unknown event type %q", i, r.Steps[i].Type)
		}
		r.Steps[i].pairs = sortedPairs(r.Steps[i].Match)
	}
	r.matchers = sortedPairs(r.Match)
	if r.Kind != KindRepetition && r.Count != 0 {
		add("count applies to repetition rules only")
	}
	r.templates = map[string]*template.Template{}
	for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
		t, err := template.New(k).Option("missingkey=zero").Parse(r.Annotations[k])
		if err != nil {
			add("annotation %q: %w", k, err)
			continue
		}
		r.templates[k] = t
	}
	return errors.Join(errs...)
}

// breached compares v with the threshold using the rule's op.
func (r *Rule) breached(v float64) bool { return r.compare(v, r.Threshold) }

// matchLabels reports whether labels satisfy the rule's matchers.
func (r *Rule) matchLabels(labels map[string]string) bool {
	for _, m := range r.matchers {
		if labels[m.name] != m.value {
			return false
		}
	}
	return true
}

// alertLabels returns labels plus the rule's labels, alertname and severity.
func (r *Rule) alertLabels(labels map[string]string) map[string]string {
	l := make(map[string]string, len(labels)+len(r.Labels)+2)
	maps.Copy(l, labels)
	maps.Copy(l, r.Labels)
	l["alertname"] = r.Name
	l["severity"] = r.Severity
	return l
}

// annotate renders the annotation templates. A template that fails to
// render yields its error text, so an alert is never lost to a template bug.
func (r *Rule) annotate(a *alerts.Alert) map[string]string {
	if len(r.templates) == 0 {
		return nil
	}
	data := map[string]any{
		"Labels": a.Labels, "Value": a.Value, "Score": a.Score, "Threshold": r.Threshold,
		"Metric": a.Metric, "Rule": r.Name, "StartsAt": time.UnixMilli(a.StartsAt).UTC().Format(time.RFC3339),
		"WindowStart": time.UnixMilli(a.WindowStart).UTC().Format(time.RFC3339),
	}
	out := make(map[string]string, len(r.templates))
	for k, t := range r.templates {
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			out[k] = "template error: " + err.Error()
			continue
		}
		out[k] = b.String()
	}
	return out
}

// File is the YAML document of a rules file.
type File struct {
	Rules []Rule `yaml:"rules"`
}

// Parse decodes and compiles a rules file. name is used in error messages
// ("rules.yaml:12: rule \"x\": unknown op \"=>\""). Unknown keys are errors.
// It returns every problem found, joined.
func Parse(name string, data []byte) ([]Rule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := ruleLines(&doc)
	var errs []error
	seen := map[string]bool{}
	for i := range f.Rules {
		r := &f.Rules[i]
		if i < len(lines) {
			r.line = lines[i]
		}
		if err := r.Compile(); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q: %w", name, r.line, r.Name, err))
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q: duplicate name", name, r.line, r.Name))
		}
		seen[r.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f.Rules, nil
}

// ruleLines returns the line of each item of the top-level "rules" sequence.
func ruleLines(doc *yaml.Node) []int {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" {
			var lines []int
			for _, item := range m.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

// Set is an immutable, compiled set of rules indexed for evaluation. It is
// safe for concurrent use.
type Set struct {
	rules    []*Rule
	byMetric map[string][]*Rule // windows rules by metric
	samples  map[string][]*Rule // sample rules by series
	patterns map[events.Type][]*Rule
	absent   []*Rule // event absence rules
	byName   map[string]*Rule
}

// NewSet compiles rules (in order) into a Set. Duplicate names are an error.
func NewSet(rs []Rule) (*Set, error) {
	s := &Set{byMetric: map[string][]*Rule{}, samples: map[string][]*Rule{}, patterns: map[events.Type][]*Rule{}, byName: map[string]*Rule{}}
	var errs []error
	for i := range rs {
		r := rs[i]
		if err := r.Compile(); err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
			continue
		}
		if s.byName[r.Name] != nil {
			errs = append(errs, fmt.Errorf("rule %q: duplicate name", r.Name))
			continue
		}
		rp := &r
		s.rules = append(s.rules, rp)
		s.byName[r.Name] = rp
		switch {
		case r.Source == SourceWindows:
			s.byMetric[r.Metric] = append(s.byMetric[r.Metric], rp)
		case r.Source == SourceSamples:
			s.samples[r.Metric] = append(s.samples[r.Metric], rp)
		case r.Pattern():
			for _, t := range uniqueTypes(r.Steps) {
				s.patterns[t] = append(s.patterns[t], rp)
			}
		case r.Kind == KindAbsence:
			s.absent = append(s.absent, rp)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func uniqueTypes(steps []Step) []events.Type {
	var ts []events.Type
	for _, s := range steps {
		if !slices.Contains(ts, s.Type) {
			ts = append(ts, s.Type)
		}
	}
	return ts
}

// Rules returns the rules in order.
func (s *Set) Rules() []Rule {
	out := make([]Rule, len(s.rules))
	for i, r := range s.rules {
		out[i] = *r
	}
	return out
}

// Rule returns the rule named name, or nil.
func (s *Set) Rule(name string) *Rule { return s.byName[name] }

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// SeedRules are the seed platform's alert rules in this model: error count,
// error rate, average and p95 response time, and per-entity frequency. The
// metric names are those the aggregator's definitions produce.
var SeedRules = `rules:
  - name: high_error_count
    metric: error_count
    op: ">"
    threshold: 10
    severity: warning
    annotations:
      summary: "{{ .Value }} errors in one window (threshold {{ .Threshold }})"
  - name: high_error_rate
    metric: error_rate
    op: ">"
    threshold: 0.05
    severity: critical
  - name: slow_responses
    metric: avg_response_time
    op: ">"
    threshold: 1000
    severity: warning
  - name: slow_p95
    metric: p95_response_time
    op: ">"
    threshold: 2000
    severity: critical
` + DefaultRules[len("rules:\n"):]

// DefaultRules are the detector's built-in rules: more than 100 requests
// from one client IP, or 100 events from one user, within one minute.
const DefaultRules = `rules:
  - name: high_request_rate_client
    metric: requests_by_client
    op: ">"
    threshold: 100
    severity: warning
    annotations:
      summary: "client {{ .Labels.client_ip }} made {{ .Value }} requests in one minute (threshold {{ .Threshold }})"
      window_start: "{{ .WindowStart }}"
  - name: high_event_rate_user
    metric: events_by_user
    op: ">"
    threshold: 100
    severity: warning
    annotations:
      summary: "user {{ .Labels.user_id }} produced {{ .Value }} events in one minute (threshold {{ .Threshold }})"
      window_start: "{{ .WindowStart }}"
`

// WindowMetrics returns the window metrics the set's rules read, sorted.
func (s *Set) WindowMetrics() []string { return slices.Sorted(maps.Keys(s.byMetric)) }

// ReadsWindowMetric reports whether a rule of the set reads window results
// of the metric named by name (bytes, so that a decoder can ask without
// allocating; see metrics.DecodeRecordSelect).
func (s *Set) ReadsWindowMetric(name []byte) bool {
	_, ok := s.byMetric[string(name)]
	return ok
}

// EventTypes returns the event types the set's rules read (pattern and
// absence steps, metric_sample for sample rules), sorted.
func (s *Set) EventTypes() []events.Type {
	var ts []events.Type
	for t := range s.patterns {
		ts = append(ts, t)
	}
	for _, r := range s.absent {
		ts = append(ts, uniqueTypes(r.Steps)...)
	}
	if len(s.samples) > 0 {
		ts = append(ts, events.TypeMetricSample)
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}
