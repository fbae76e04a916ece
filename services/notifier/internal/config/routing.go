package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// Routing is the notifier's routing file (NOTIFIER_CONFIG_FILE), in the
// shape of Alertmanager's configuration: a routing tree, inhibition rules,
// receivers and named mute time intervals. docs/notifier.md documents it.
type Routing struct {
	Route             RouteConfig          `yaml:"route"`
	InhibitRules      []InhibitRuleConfig  `yaml:"inhibit_rules"`
	Receivers         []ReceiverConfig     `yaml:"receivers"`
	MuteTimeIntervals []MuteIntervalConfig `yaml:"mute_time_intervals"`
}

// RouteConfig is one node of the routing tree. Unset fields are inherited
// from the parent; the root's defaults are group_wait 30s, group_interval
// 5m, repeat_interval 4h (Alertmanager's).
type RouteConfig struct {
	Receiver          string            `yaml:"receiver"`
	Match             map[string]string `yaml:"match"`
	MatchRE           map[string]string `yaml:"match_re"`
	Continue          bool              `yaml:"continue"`
	GroupBy           []string          `yaml:"group_by"`
	GroupWait         *time.Duration    `yaml:"group_wait"`
	GroupInterval     *time.Duration    `yaml:"group_interval"`
	RepeatInterval    *time.Duration    `yaml:"repeat_interval"`
	MuteTimeIntervals []string          `yaml:"mute_time_intervals"`
	Routes            []RouteConfig     `yaml:"routes"`
}

// InhibitRuleConfig mutes alerts matching target_match(_re) while an alert
// matching source_match(_re) fires with the same values of the equal labels.
type InhibitRuleConfig struct {
	SourceMatch   map[string]string `yaml:"source_match"`
	SourceMatchRE map[string]string `yaml:"source_match_re"`
	TargetMatch   map[string]string `yaml:"target_match"`
	TargetMatchRE map[string]string `yaml:"target_match_re"`
	Equal         []string          `yaml:"equal"`
}

// MuteIntervalConfig is a named set of recurring windows.
type MuteIntervalConfig struct {
	Name          string               `yaml:"name"`
	TimeIntervals []TimeIntervalConfig `yaml:"time_intervals"`
}

// TimeIntervalConfig is a recurring window: weekdays ("monday",
// "monday:friday"), times ({start_time: "02:00", end_time: "04:00"}) and
// an IANA location (default UTC).
type TimeIntervalConfig struct {
	Weekdays []string          `yaml:"weekdays"`
	Times    []TimeRangeConfig `yaml:"times"`
	Location string            `yaml:"location"`
}

// TimeRangeConfig is [start_time, end_time) as HH:MM; end_time may be 24:00.
type TimeRangeConfig struct {
	StartTime string `yaml:"start_time"`
	EndTime   string `yaml:"end_time"`
}

// ReceiverConfig is a named receiver with its integrations.
type ReceiverConfig struct {
	Name            string           `yaml:"name"`
	WebhookConfigs  []WebhookConfig  `yaml:"webhook_configs"`
	SlackConfigs    []SlackConfig    `yaml:"slack_configs"`
	DingTalkConfigs []DingTalkConfig `yaml:"dingtalk_configs"`
	EmailConfigs    []EmailConfig    `yaml:"email_configs"`
	RedisConfigs    []RedisConfig    `yaml:"redis_configs"`
}

// Delivery are the settings every integration has.
type Delivery struct {
	// SendResolved sends resolved notifications (default true, except the
	// Redis list).
	SendResolved *bool `yaml:"send_resolved"`
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxTries bounds attempts before the dead-letter topic (default
	// NOTIFIER_MAX_TRIES).
	MaxTries int `yaml:"max_tries"`
}

// WebhookConfig posts the v4 webhook payload. The URL is a secret: give
// "${ENV_VAR}" or url_file.
type WebhookConfig struct {
	Delivery  `yaml:",inline"`
	URL       string `yaml:"url"`
	URLFile   string `yaml:"url_file"`
	MaxAlerts int    `yaml:"max_alerts"`
}

// SlackConfig posts to a Slack incoming webhook (api_url is a secret).
type SlackConfig struct {
	Delivery   `yaml:",inline"`
	APIURL     string `yaml:"api_url"`
	APIURLFile string `yaml:"api_url_file"`
	Channel    string `yaml:"channel"`
	Username   string `yaml:"username"`
}

// DingTalkConfig posts markdown to a DingTalk robot (url and the optional
// signing secret are secrets).
type DingTalkConfig struct {
	Delivery   `yaml:",inline"`
	URL        string `yaml:"url"`
	URLFile    string `yaml:"url_file"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	Title      string `yaml:"title"`
}

// EmailConfig sends mail over SMTP (auth_password is a secret).
type EmailConfig struct {
	Delivery         `yaml:",inline"`
	To               []string `yaml:"to"`
	From             string   `yaml:"from"`
	Smarthost        string   `yaml:"smarthost"`
	AuthUsername     string   `yaml:"auth_username"`
	AuthPassword     string   `yaml:"auth_password"`
	AuthPasswordFile string   `yaml:"auth_password_file"`
	// TLS is starttls (default: STARTTLS required), tls (implicit TLS,
	// "SMTPS") or none.
	TLS string `yaml:"tls"`
	// CAFile is a PEM bundle trusted for the server certificate (default:
	// the system pool).
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the TLS server name (default: the smarthost's).
	ServerName string `yaml:"server_name"`
}

// RedisConfig keeps the latest alerts in a Redis list (newest first).
type RedisConfig struct {
	Delivery `yaml:",inline"`
	Key      string `yaml:"key"`
	Limit    int64  `yaml:"limit"`
}

// LookupEnv reads an environment variable (os.LookupEnv in production).
type LookupEnv func(string) (string, bool)

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// Secret resolves a secret field: value must be "${VAR}" (read through
// lookup) or empty with file naming a file (its content, trimmed). A
// literal value is refused: secrets never live in the YAML. The error
// names the field, never the value.
func Secret(field, value, file string, lookup LookupEnv) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("%s: give %s or %s_file, not both", field, field, field)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", field, err)
		}
		return strings.TrimSpace(string(b)), nil
	case value == "":
		return "", nil
	}
	m := envRef.FindStringSubmatch(value)
	if m == nil {
		return "", fmt.Errorf("%s: plain-text secrets are not allowed in the YAML; use \"${ENV_VAR}\" or %s_file", field, field)
	}
	v, ok := lookup(m[1])
	if !ok || v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", field, m[1])
	}
	return v, nil
}

// ParseRouting decodes a routing file; unknown fields are errors.
func ParseRouting(data []byte) (Routing, error) {
	var r Routing
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return Routing{}, fmt.Errorf("routing file: %w", err)
	}
	return r, nil
}

// LoadRouting reads and decodes the routing file at path.
func LoadRouting(path string) (Routing, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Routing{}, fmt.Errorf("routing file: %w", err)
	}
	return ParseRouting(b)
}

// DefaultRouting is the built-in routing when no file is given: one
// receiver "default" with the webhook NOTIFIER_WEBHOOK_URL (when set;
// firing notifications only, as before routing existed) and the Redis list
// NOTIFIER_RECENT_KEY; alerts grouped by alertname, group_wait 0 (a new
// group's first alert goes out at once, as before routing existed; in
// event time an alert may fire and resolve in the same instant, and a
// group_wait would then send nothing), group_interval 1m, repeat_interval
// 4h.
func DefaultRouting(c *Config) Routing {
	gw, gi, ri := time.Duration(0), time.Minute, 4*time.Hour
	f := false
	rc := ReceiverConfig{Name: "default", RedisConfigs: []RedisConfig{{Key: c.RecentKey, Limit: c.RecentLimit}}}
	if c.WebhookURL != "" {
		rc.WebhookConfigs = []WebhookConfig{{
			Delivery: Delivery{SendResolved: &f, Timeout: c.WebhookTimeout}, URL: "${NOTIFIER_WEBHOOK_URL}",
		}}
	}
	return Routing{
		Route: RouteConfig{
			Receiver: "default", GroupBy: []string{"alertname"}, GroupWait: &gw, GroupInterval: &gi, RepeatInterval: &ri,
		},
		Receivers: []ReceiverConfig{rc},
	}
}

// Dispatch builds the dispatcher's configuration: the routing tree with
// inherited settings, inhibition rules, mute intervals, and which
// receivers want resolved notifications. It reports every problem.
func (r *Routing) Dispatch() (dispatch.Config, error) {
	var errs []error
	names := map[string]ReceiverConfig{}
	sendResolved := map[string]bool{}
	for _, rc := range r.Receivers {
		if rc.Name == "" {
			errs = append(errs, errors.New("receivers: a receiver has no name"))
			continue
		}
		if _, dup := names[rc.Name]; dup {
			errs = append(errs, fmt.Errorf("receivers: %q defined twice", rc.Name))
		}
		names[rc.Name] = rc
		sendResolved[rc.Name] = rc.anySendResolved()
	}
	mutes := map[string][]dispatch.TimeInterval{}
	for _, m := range r.MuteTimeIntervals {
		var tis []dispatch.TimeInterval
		for i, tc := range m.TimeIntervals {
			ti, err := tc.build()
			if err != nil {
				errs = append(errs, fmt.Errorf("mute_time_intervals %q[%d]: %w", m.Name, i, err))
			}
			tis = append(tis, ti)
		}
		mutes[m.Name] = tis
	}
	gw, gi, ri := 30*time.Second, 5*time.Minute, 4*time.Hour
	root := RouteConfig{GroupWait: &gw, GroupInterval: &gi, RepeatInterval: &ri}
	if len(r.Route.Match)+len(r.Route.MatchRE) > 0 {
		errs = append(errs, errors.New("route: the root route must not have matchers (it matches every alert)"))
	}
	tree, err := r.Route.build("0", &root)
	errs = append(errs, err)
	tree.Walk(func(rt *dispatch.Route) {
		if _, ok := names[rt.Receiver]; !ok && rt.Receiver != "" {
			errs = append(errs, fmt.Errorf("route %s: unknown receiver %q", rt.ID, rt.Receiver))
		}
	})
	var inhibit []dispatch.InhibitRule
	for i, ir := range r.InhibitRules {
		src, err1 := silences.FromMaps(ir.SourceMatch, ir.SourceMatchRE)
		tgt, err2 := silences.FromMaps(ir.TargetMatch, ir.TargetMatchRE)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, fmt.Errorf("inhibit_rules[%d]: %w", i, err))
		}
		inhibit = append(inhibit, dispatch.InhibitRule{Source: src, Target: tgt, Equal: ir.Equal})
	}
	cfg := dispatch.Config{Route: tree, Inhibit: inhibit, MuteIntervals: mutes, SendResolved: sendResolved}
	errs = append(errs, cfg.Validate())
	return cfg, errors.Join(errs...)
}

func (rc *RouteConfig) build(id string, parent *RouteConfig) (*dispatch.Route, error) {
	eff := *rc
	if eff.Receiver == "" {
		eff.Receiver = parent.Receiver
	}
	if eff.GroupBy == nil {
		eff.GroupBy = parent.GroupBy
	}
	if eff.GroupWait == nil {
		eff.GroupWait = parent.GroupWait
	}
	if eff.GroupInterval == nil {
		eff.GroupInterval = parent.GroupInterval
	}
	if eff.RepeatInterval == nil {
		eff.RepeatInterval = parent.RepeatInterval
	}
	if eff.MuteTimeIntervals == nil {
		eff.MuteTimeIntervals = parent.MuteTimeIntervals
	}
	ms, err := silences.FromMaps(rc.Match, rc.MatchRE)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("route %s: %w", id, err))
	}
	out := &dispatch.Route{
		ID: id, Matchers: ms, Receiver: eff.Receiver, Continue: rc.Continue,
		GroupWait: *eff.GroupWait, GroupInterval: *eff.GroupInterval, RepeatInterval: *eff.RepeatInterval,
		MuteTimeIntervals: eff.MuteTimeIntervals,
	}
	for _, g := range eff.GroupBy {
		if g == "..." {
			out.GroupByAll = true
		} else {
			out.GroupBy = append(out.GroupBy, g)
		}
	}
	for i := range rc.Routes {
		c, err := rc.Routes[i].build(id+"."+strconv.Itoa(i), &eff)
		errs = append(errs, err)
		out.Routes = append(out.Routes, c)
	}
	return out, errors.Join(errs...)
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func (tc *TimeIntervalConfig) build() (dispatch.TimeInterval, error) {
	var ti dispatch.TimeInterval
	var errs []error
	for _, w := range tc.Weekdays {
		from, to, isRange := strings.Cut(strings.ToLower(w), ":")
		a, ok1 := weekdays[from]
		b, ok2 := a, true
		if isRange {
			b, ok2 = weekdays[to]
		}
		if !ok1 || !ok2 || b < a {
			errs = append(errs, fmt.Errorf("weekdays: %q is not a weekday or an ascending range (monday:friday)", w))
			continue
		}
		for d := a; d <= b; d++ {
			ti.Weekdays = append(ti.Weekdays, d)
		}
	}
	for _, t := range tc.Times {
		s, err1 := minutes(t.StartTime)
		e, err2 := minutes(t.EndTime)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, err)
			continue
		}
		if e <= s {
			errs = append(errs, fmt.Errorf("times: end_time %s not after start_time %s", t.EndTime, t.StartTime))
		}
		ti.Times = append(ti.Times, dispatch.TimeRange{Start: s, End: e})
	}
	if tc.Location != "" {
		loc, err := time.LoadLocation(tc.Location)
		if err != nil {
			errs = append(errs, fmt.Errorf("location: %w", err))
		}
		ti.Location = loc
	}
	return ti, errors.Join(errs...)
}

func minutes(hhmm string) (int, error) {
	h, m, ok := strings.Cut(hhmm, ":")
	hi, err1 := strconv.Atoi(h)
	mi, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hi < 0 || mi < 0 || mi > 59 || hi*60+mi > 24*60 {
		return 0, fmt.Errorf("time %q: want HH:MM between 00:00 and 24:00", hhmm)
	}
	return hi*60 + mi, nil
}

func (rc *ReceiverConfig) anySendResolved() bool {
	def := func(d Delivery, dflt bool) bool {
		if d.SendResolved == nil {
			return dflt
		}
		return *d.SendResolved
	}
	any := false
	for _, c := range rc.WebhookConfigs {
		any = any || def(c.Delivery, true)
	}
	for _, c := range rc.SlackConfigs {
		any = any || def(c.Delivery, true)
	}
	for _, c := range rc.DingTalkConfigs {
		any = any || def(c.Delivery, true)
	}
	for _, c := range rc.EmailConfigs {
		any = any || def(c.Delivery, true)
	}
	for _, c := range rc.RedisConfigs {
		any = any || def(c.Delivery, false)
	}
	return any
}
