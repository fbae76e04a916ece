package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
)

func env(m map[string]string) config.LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFullRoutingFile(t *testing.T) {
	t.Parallel()
	r, err := config.LoadRouting("../../testdata/notifier.yaml")
	require.NoError(t, err)
	d, err := r.Dispatch()
	require.NoError(t, err)

	root := d.Route
	require.Equal(t, "0", root.ID)
	require.Equal(t, "team", root.Receiver)
	require.Equal(t, 30*time.Second, root.GroupWait)
	require.Len(t, root.Routes, 2)
	pager, dba := root.Routes[0], root.Routes[1]
	require.Equal(t, "0.0", pager.ID)
	require.True(t, pager.Continue)
	require.Equal(t, []string{"service"}, pager.GroupBy)
	require.Equal(t, time.Duration(0), pager.GroupWait)
	require.Equal(t, 5*time.Minute, pager.GroupInterval, "inherited")
	require.Equal(t, []string{"nights"}, dba.MuteTimeIntervals)
	staging := dba.Routes[0]
	require.Equal(t, "0.1.0", staging.ID)
	require.Equal(t, []string{"nights"}, staging.MuteTimeIntervals, "inherited")
	require.Equal(t, []string{"alertname"}, staging.GroupBy, "inherited through dba")

	got := func(labels map[string]string) []string {
		var ids []string
		for _, rt := range root.Match(labels) {
			ids = append(ids, rt.ID+"->"+rt.Receiver)
		}
		return ids
	}
	require.Equal(t, []string{"0.0->pager", "0.1->dba"}, got(map[string]string{"severity": "critical", "service": "db"}))
	require.Equal(t, []string{"0.1.0->team"}, got(map[string]string{"service": "cache", "env": "staging"}))
	require.Equal(t, []string{"0->team"}, got(map[string]string{"service": "dbx"}), "regex is anchored")

	require.Len(t, d.Inhibit, 1)
	require.Equal(t, []string{"service"}, d.Inhibit[0].Equal)
	nights := d.MuteIntervals["nights"][0]
	berlin, _ := time.LoadLocation("Europe/Berlin")
	require.True(t, nights.Contains(time.Date(2026, 11, 23, 2, 30, 0, 0, berlin)), "Monday 02:30 Berlin")
	require.True(t, nights.Contains(time.Date(2026, 11, 23, 1, 30, 0, 0, time.UTC)), "01:30 UTC is 02:30 in Berlin")
	require.False(t, nights.Contains(time.Date(2026, 11, 23, 3, 30, 0, 0, time.UTC)), "03:30 UTC is 04:30 in Berlin")
	require.False(t, nights.Contains(time.Date(2026, 11, 22, 2, 30, 0, 0, berlin)), "Sunday")
	require.Equal(t, map[string]bool{"team": true, "pager": true, "dba": false}, d.SendResolved)
}

func TestSecretsComeFromEnvOrFilesOnly(t *testing.T) {
	t.Parallel()
	lookup := env(map[string]string{"HOOK": "https://h.example/x?token=abc"})
	v, err := config.Secret("url", "${HOOK}", "", lookup)
	require.NoError(t, err)
	require.Equal(t, "https://h.example/x?token=abc", v)

	_, err = config.Secret("url", "https://h.example/x?token=abc", "", lookup)
	require.ErrorContains(t, err, "plain-text secrets are not allowed")
	require.NotContains(t, err.Error(), "token=abc")
	_, err = config.Secret("auth_password", "${MISSING}", "", lookup)
	require.ErrorContains(t, err, "MISSING is not set")
	_, err = config.Secret("url", "${HOOK}", "/x", lookup)
	require.ErrorContains(t, err, "not both")

	f := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(f, []byte("hunter2\n"), 0o600))
	v, err = config.Secret("auth_password", "", f, lookup)
	require.NoError(t, err)
	require.Equal(t, "hunter2", v)
}

func TestInvalidRoutingReportsEveryProblem(t *testing.T) {
	t.Parallel()
	r, err := config.ParseRouting([]byte(`
route:
  receiver: nobody
  match: {a: b}
  routes:
    - match_re: {service: "("}
      mute_time_intervals: [weekend]
mute_time_intervals:
  - name: nights
    time_intervals:
      - weekdays: [funday]
        times: [{start_time: "04:00", end_time: "02:00"}]
        location: Mars/Olympus
receivers:
  - name: team
`))
	require.NoError(t, err)
	_, err = r.Dispatch()
	for _, want := range []string{
		"root route must not have matchers", `unknown receiver "nobody"`, "route 0.0: matcher service=~",
		`unknown mute_time_interval "weekend"`, `"funday" is not a weekday`, "end_time 02:00 not after", "location:",
	} {
		require.ErrorContains(t, err, want)
	}
	_, err = config.ParseRouting([]byte("route: {receiver: x}\nrecievers: []\n"))
	require.ErrorContains(t, err, "recievers")
}
