package metrics_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// FuzzParseDefinitions checks the metric-definition parser: it never
// panics or hangs (YAML aliases included); every error wraps
// ErrInvalidDefinition and starts with the file name, so a user sees
// where the problem is; every accepted set has named, distinct metrics and
// parses again to the same names. Seed corpus: the built-in set, the
// invalid test file and testdata/fuzz/FuzzParseDefinitions.
func FuzzParseDefinitions(f *testing.F) {
	for _, path := range []string{"defaults.yaml", "testdata/invalid.yaml"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"metrics:\n  - name: m\n    types: [click]\n    aggregations: [count]\n    window: {kind: tumbling, size: 1m}\n",
		"metrics:\n  - name: m\n    types: [http_request]\n    value: bytes\n    aggregations: [p99, topk]\n    topk: {field: path, n: 5}\n    window: {kind: hopping, size: 5m, slide: 1m}\n",
		"metrics:\n  - name: s\n    types: [page_view]\n    group_by: [user_id]\n    aggregations: [count]\n    window: {kind: session, gap: 30m}\n    where: {status: {gte: 500}}\n",
		"metrics: &a [*a]\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nmetrics: [*b, *b]\n",
		"metrics:\n  - name: m\n    window: {kind: tumbling, size: -1s}\n",
		"", "---\n", "metrics: {}", "\t",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := metrics.ParseDefinitions("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, metrics.ErrInvalidDefinition) {
				t.Fatalf("error %q does not wrap ErrInvalidDefinition", err)
			}
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(defs) == 0 {
			t.Fatal("no error and no definitions")
		}
		names := map[string]bool{}
		for _, d := range defs {
			if d.Name == "" || names[d.Name] {
				t.Fatalf("empty or duplicate name %q", d.Name)
			}
			names[d.Name] = true
		}
		again, err := metrics.ParseDefinitions("fuzz.yaml", data)
		if err != nil || len(again) != len(defs) {
			t.Fatalf("second parse differs: %d definitions, %v", len(again), err)
		}
	})
}
