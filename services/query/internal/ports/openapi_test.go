package ports_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

const openAPIYAML = "../../../../api/openapi/query.yml"

// TestOpenAPI checks that the served document is the YAML converted to
// JSON (UPDATE_OPENAPI=1 rewrites it) and that it documents every route the
// server registers under /api/v1.
func TestOpenAPI(t *testing.T) {
	src, err := os.ReadFile(openAPIYAML)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(src, &doc))
	want, err := json.MarshalIndent(doc, "", "  ")
	require.NoError(t, err)
	want = append(want, '\n')
	if os.Getenv("UPDATE_OPENAPI") != "" {
		require.NoError(t, os.WriteFile(filepath.Join("openapi.json"), want, 0o644))
		return
	}
	require.JSONEq(t, string(want), string(ports.OpenAPIJSON), "run UPDATE_OPENAPI=1 go test ./internal/ports -run TestOpenAPI")

	// Every route in http.go's Register doc comment is documented.
	code, err := os.ReadFile("http.go")
	require.NoError(t, err)
	paths := doc["paths"].(map[string]any)
	var routes []string
	for _, m := range regexp.MustCompile(`(?m)^//\tGET (/api/v1/[a-z/{}]+)`).FindAllStringSubmatch(string(code), -1) {
		routes = append(routes, m[1])
		_, documented := paths[m[1]]
		require.True(t, documented, "route %s not in %s", m[1], openAPIYAML)
	}
	require.True(t, slices.ContainsFunc(routes, func(r string) bool { return strings.HasSuffix(r, "/events") }))
}
