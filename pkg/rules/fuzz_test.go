package rules_test

import (
	"strings"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/rules"
)

// FuzzParse checks the rule parser: it never panics or hangs (YAML aliases
// included); every error starts with the file name; every accepted file
// compiles into a Set (so the detector can load what Parse accepts), and
// every rule round-trips through the rules topic's change record. Seed
// corpus: the built-in rules, the error cases of parse_test.go and
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		rules.DefaultRules,
		"rules:\n  - name: a\n    metric: m\n    op: \">\"\n    threshold: 1\n    for: 1m\n    match: {x: y}\n    annotations: {summary: \"{{ .Value }}\"}\n",
		"rules:\n  - {name: a, kind: sequence, events: [click, purchase], within: 1m, by: user_id}\n",
		"rules:\n  - {name: a, kind: repetition, events: [click], count: 3, within: 1m}\n",
		"rules:\n  - {name: a, kind: absence, metric: m, for: 5m}\n",
		"rules:\n  - {name: a, kind: anomaly, metric: m, threshold: 0.5}\n",
		"rules:\n  - {name: a, kind: magic}\n",
		"rules:\n  - {name: a, metric: m, op: \">\", annotations: {summary: \"{{ .Value \"}}\n",
		"rules: &r [*r]\n",
		"rules:\n  - name: a\n    metrc: m\n", "", "rules: 5",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := rules.Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		if _, err := rules.NewSet(rs); err != nil {
			t.Fatalf("Parse accepted rules that NewSet refuses: %v", err)
		}
		for i := range rs {
			b, err := rules.EncodeChange(rules.Change{Op: rules.OpUpsert, ID: rs[i].Name, Rule: &rs[i]})
			if err != nil {
				t.Fatalf("encode rule %q: %v", rs[i].Name, err)
			}
			if _, err := rules.DecodeChange(b); err != nil {
				t.Fatalf("rule %q does not survive the rules topic: %v", rs[i].Name, err)
			}
		}
	})
}
