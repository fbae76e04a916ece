package rule_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/detector/internal/domain/rule"
)

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	rs, err := rule.Parse("defaults", []byte(rule.Defaults))
	require.NoError(t, err)
	require.Len(t, rs, 2)
}

func TestParseErrorsNameFileLineAndReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad op", "rules:\n  - name: a\n    metric: m\n    op: \"=>\"\n", `r.yaml:2: rule "a": unknown op "=>"`},
		{"bad severity", "rules:\n  - name: a\n    metric: m\n    op: \">\"\n  - name: b\n    metric: m\n    op: \">\"\n    severity: loud\n", `r.yaml:5: rule "b": unknown severity "loud"`},
		{"unknown key", "rules:\n  - name: a\n    metrc: m\n", "field metrc not found"},
		{"duplicate", "rules:\n  - {name: a, metric: m, op: \">\"}\n  - {name: a, metric: m, op: \">\"}\n", `r.yaml:3: rule "a": duplicate name`},
		{"bad template", "rules:\n  - {name: a, metric: m, op: \">\", annotations: {summary: \"{{ .Value \"}}\n", `annotation "summary"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := rule.Parse("r.yaml", []byte(tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
}
