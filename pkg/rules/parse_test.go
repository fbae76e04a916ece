package rules_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/rules"
)

func TestParseErrorsNameFileLineAndReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad op", "rules:\n  - name: a\n    metric: m\n    op: \"=>\"\n", `r.yaml:2: rule "a": unknown op "=>"`},
		{"bad severity", "rules:\n  - {name: a, metric: m, op: \">\"}\n  - name: b\n    metric: m\n    op: \">\"\n    severity: loud\n", `r.yaml:3: rule "b": unknown severity "loud"`},
		{"unknown key", "rules:\n  - name: a\n    metrc: m\n", "field metrc not found"},
		{"duplicate", "rules:\n  - {name: a, metric: m, op: \">\"}\n  - {name: a, metric: m, op: \">\"}\n", `r.yaml:3: rule "a": duplicate name`},
		{"bad template", "rules:\n  - {name: a, metric: m, op: \">\", annotations: {summary: \"{{ .Value \"}}\n", `annotation "summary"`},
		{"bad duration", "rules:\n  - {name: a, metric: m, op: \">\", for: 5 minutes}\n", `"5 minutes" is not a duration`},
		{"unknown kind", "rules:\n  - {name: a, kind: magic}\n", `unknown kind "magic"`},
		{"sequence needs two events", "rules:\n  - {name: a, kind: sequence, events: [click], within: 1m}\n", "needs 2 events, got 1"},
		{"unknown event type", "rules:\n  - {name: a, kind: repetition, events: [tap], count: 3, within: 1m}\n", `unknown event type "tap"`},
		{"repetition count", "rules:\n  - {name: a, kind: repetition, events: [click], count: 1, within: 1m}\n", "count >= 2"},
		{"absence needs for", "rules:\n  - {name: a, kind: absence, metric: m}\n", "needs for > 0"},
		{"anomaly threshold", "rules:\n  - {name: a, kind: anomaly, metric: m, threshold: 2}\n", "must be in (0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := rules.Parse("r.yaml", []byte(tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
}
