// Package rule holds the detector's threshold rules: their YAML form, their
// validation, and their evaluation against window results. No I/O.
package rule

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// Comparison operators a threshold rule may use.
var ops = map[string]func(v, t float64) bool{
	">":  func(v, t float64) bool { return v > t },
	">=": func(v, t float64) bool { return v >= t },
	"<":  func(v, t float64) bool { return v < t },
	"<=": func(v, t float64) bool { return v <= t },
	"==": func(v, t float64) bool { return v == t },
	"!=": func(v, t float64) bool { return v != t },
}

var nameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Threshold fires when a window result of Metric whose labels match Match
// compares true with Threshold, like a Prometheus alerting rule
// `metric{match} op threshold`.
type Threshold struct {
	// Name identifies the rule; part of the alert fingerprint.
	Name string `yaml:"name"`
	// Metric is the metric name of the window results to evaluate.
	Metric string `yaml:"metric"`
	// Match holds label equality matchers; empty matches every label set.
	Match map[string]string `yaml:"match"`
	// Op is one of > >= < <= == !=.
	Op string `yaml:"op"`
	// Threshold is compared with the result's value.
	Threshold float64 `yaml:"threshold"`
	// Severity is info, warning or critical.
	Severity string `yaml:"severity"`
	// Labels are added to the alert's labels.
	Labels map[string]string `yaml:"labels"`
	// Annotations are text/template strings over .Labels, .Value,
	// .Threshold, .Metric and .WindowStart (RFC 3339).
	Annotations map[string]string `yaml:"annotations"`
	// Early evaluates early (still open) window results too. The default
	// evaluates final and revised results only, so the alert carries the
	// window's whole value.
	Early bool `yaml:"early"`

	line      int
	templates map[string]*template.Template
	compare   func(v, t float64) bool
}

// File is the YAML document of a rules file.
type File struct {
	Rules []Threshold `yaml:"rules"`
}

// Parse decodes and validates a rules file. name is used in error messages
// ("rules.yaml:12: rule \"x\": unknown op \"=>\""). Unknown keys are errors.
// It returns every problem found, joined.
func Parse(name string, data []byte) ([]Threshold, error) {
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
		if err := r.compile(); err != nil {
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

func (r *Threshold) compile() error {
	var errs []error
	if !nameRe.MatchString(r.Name) {
		errs = append(errs, fmt.Errorf("name %q must match %s", r.Name, nameRe))
	}
	if !nameRe.MatchString(r.Metric) {
		errs = append(errs, fmt.Errorf("metric %q must match %s", r.Metric, nameRe))
	}
	var ok bool
	if r.compare, ok = ops[r.Op]; !ok {
		errs = append(errs, fmt.Errorf("unknown op %q (one of > >= < <= == !=)", r.Op))
	}
	switch r.Severity {
	case alerts.SeverityInfo, alerts.SeverityWarning, alerts.SeverityCritical:
	case "":
		r.Severity = alerts.SeverityWarning
	default:
		errs = append(errs, fmt.Errorf("unknown severity %q (info, warning or critical)", r.Severity))
	}
	r.templates = map[string]*template.Template{}
	for k, v := range r.Annotations {
		t, err := template.New(k).Option("missingkey=zero").Parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("annotation %q: %w", k, err))
			continue
		}
		r.templates[k] = t
	}
	return errors.Join(errs...)
}

// Applies reports whether the rule evaluates result r: same metric, labels
// matching, complete (partial per-shard values would compare wrongly) and of
// an evaluated kind.
func (r *Threshold) Applies(res *metrics.Result) bool {
	if res.Metric != r.Metric || !res.Complete {
		return false
	}
	if res.Kind == metrics.KindEarly && !r.Early {
		return false
	}
	for k, v := range r.Match {
		if res.Labels[k] != v {
			return false
		}
	}
	return true
}

// Breached reports whether value breaches the threshold.
func (r *Threshold) Breached(value float64) bool { return r.compare(value, r.Threshold) }

// AlertLabels returns the result's labels plus the rule's labels, alertname
// (the rule name) and severity.
func (r *Threshold) AlertLabels(res *metrics.Result) map[string]string {
	l := make(map[string]string, len(res.Labels)+len(r.Labels)+2)
	for k, v := range res.Labels {
		l[k] = v
	}
	for k, v := range r.Labels {
		l[k] = v
	}
	l["alertname"] = r.Name
	l["severity"] = r.Severity
	return l
}

// Annotate renders the annotation templates for a breach. A template that
// fails to render yields its error text, so an alert is never lost to a
// template bug.
func (r *Threshold) Annotate(res *metrics.Result, labels map[string]string) map[string]string {
	data := map[string]any{
		"Labels": labels, "Value": res.Value, "Threshold": r.Threshold, "Metric": res.Metric,
		"WindowStart": timeRFC3339(res.WindowStart),
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

// Defaults are the built-in rules: the seed platform's high-frequency rule,
// more than 100 requests from one client IP, or 100 events from one user,
// within one minute.
const Defaults = `rules:
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
