package deploycheck_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

const repo = "../.."

var services = []string{"collector", "aggregator", "detector", "notifier", "query"}

// standard are variables read by libraries (the OTel SDK, automemlimit)
// or the Go runtime, not by our config structs.
var standard = regexp.MustCompile(`^(OTEL_[A-Z_]+|GOMEMLIMIT|AUTOMEMLIMIT|GOGC)$`)

// codeVars returns every environment variable our config structs read,
// from their `env:"NAME"` tags.
func codeVars(t *testing.T) map[string]bool {
	t.Helper()
	tag := regexp.MustCompile("env:\"([A-Z][A-Z0-9_]*)\"")
	vars := map[string]bool{}
	dirs := []string{filepath.Join(repo, "pkg")}
	for _, s := range services {
		dirs = append(dirs, filepath.Join(repo, "services", s))
	}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range tag.FindAllStringSubmatch(string(b), -1) {
				vars[m[1]] = true
			}
			return nil
		})
		require.NoError(t, err)
	}
	require.NotEmpty(t, vars)
	return vars
}

func readmeVars(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "README.md"))
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)`(?: / `([A-Z][A-Z0-9_]*)`)? \\|")
	vars := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		vars[m[1]] = true
		if m[2] != "" {
			vars[m[2]] = true
		}
	}
	require.NotEmpty(t, vars, "README configuration table not found")
	return vars
}

type compose struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		Build       *struct {
			Args map[string]string `yaml:"args"`
		} `yaml:"build"`
	} `yaml:"services"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
	require.NoError(t, err)
	var c compose
	require.NoError(t, yaml.Unmarshal(b, &c))
	return c
}

func keys(m map[string]bool) []string {
	var k []string
	for v := range m {
		k = append(k, v)
	}
	sort.Strings(k)
	return k
}

func TestReadmeTableMatchesCode(t *testing.T) {
	t.Parallel()
	code, readme := codeVars(t), readmeVars(t)
	var undocumented, unknown []string
	for v := range code {
		if !readme[v] {
			undocumented = append(undocumented, v)
		}
	}
	for v := range readme {
		if !code[v] && !standard.MatchString(v) {
			unknown = append(unknown, v)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unknown)
	require.Empty(t, undocumented, "variables the code reads but the README's configuration table lacks")
	require.Empty(t, unknown, "variables in the README's table that no code reads")
}

func TestComposeConfiguresEveryServiceWithKnownVariables(t *testing.T) {
	t.Parallel()
	code := codeVars(t)
	c := loadCompose(t)
	for _, s := range services {
		svc, ok := c.Services[s]
		require.True(t, ok, "service %s missing from docker-compose.yml", s)
		require.NotNil(t, svc.Build, "%s must be built from deployments/Dockerfile", s)
		require.Equal(t, s, svc.Build.Args["SERVICE"])
		require.NotEmpty(t, svc.Environment, "%s has no environment", s)
		for v := range svc.Environment {
			require.True(t, code[v] || standard.MatchString(v), "docker-compose.yml sets %s for %s, which no service reads", v, s)
		}
		for _, must := range []string{"KAFKA_BROKERS", "HTTP_ADDR"} {
			require.Contains(t, keys(boolSet(svc.Environment)), must, s)
		}
	}
	require.Contains(t, c.Services["query"].Environment, "CLICKHOUSE_ADDR")
}

func boolSet(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func TestComposeCreatesEveryTopic(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	init, ok := c.Services["init-topics"]
	require.True(t, ok)
	got := strings.Fields(init.Environment["TOPICS"])
	want := messaging.Topics()
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got, "init-topics must create exactly the topics in pkg/messaging")
}

func TestK8sConfigMapUsesKnownVariables(t *testing.T) {
	t.Parallel()
	code := codeVars(t)
	b, err := os.ReadFile(filepath.Join(repo, "deployments", "k8s", "configmap.yaml"))
	require.NoError(t, err)
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cm))
	for v := range cm.Data {
		require.True(t, code[v] || standard.MatchString(v), "configmap sets %s, which no service reads", v)
	}
	for _, s := range services {
		_, err := os.Stat(filepath.Join(repo, "deployments", "k8s", s+".yaml"))
		require.NoError(t, err, "k8s manifest for %s", s)
	}
}

// TestDockerComposeConfig validates the compose file with docker-compose,
// which needs no engine for `config`. CI installs it; elsewhere the test is
// skipped when the binary is missing.
func TestDockerComposeConfig(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("docker-compose not installed in CI (.ci/run installs it)")
		}
		t.Skip("docker-compose not installed")
	}
	cmd := exec.Command(bin, "-f", filepath.Join(repo, "docker-compose.yml"), "--profile", "demo", "config", "-q")
	cmd.Env = append(os.Environ(), "NOTIFIER_WEBHOOK_URL=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}
