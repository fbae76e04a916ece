package service_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
	"github.com/streamwatch/streamwatch/services/notifier/internal/service"
)

func TestBuildIntegrations(t *testing.T) {
	t.Parallel()
	r, err := config.ParseRouting([]byte(`
route: {receiver: team}
receivers:
  - name: team
    webhook_configs: [{url: "${HOOK}", timeout: 2s}]
    slack_configs: [{api_url: "${SLACK}", max_tries: 9}]
    dingtalk_configs: [{url: "${DING}"}]
    email_configs: [{to: [a@example.com], from: b@example.com, smarthost: "smtp.example.com:587", auth_username: u, auth_password: "${PW}"}]
    redis_configs: [{key: "alerts:recent"}]
`))
	require.NoError(t, err)
	cfg := config.Config{MaxTries: 5}
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"HOOK": "http://127.0.0.1/h", "SLACK": "https://hooks.slack.com/x", "DING": "https://oapi.dingtalk.com/robot/send?access_token=t", "PW": "pw"}[k]
		return v, ok
	}
	built, refs, err := service.BuildIntegrations(&r, &cfg, nil, lookup)
	require.NoError(t, err)
	require.Equal(t, []app.IntegrationRef{
		{Name: "team/webhook/0", SendResolved: true}, {Name: "team/slack/0", SendResolved: true},
		{Name: "team/dingtalk/0", SendResolved: true}, {Name: "team/email/0", SendResolved: true},
		{Name: "team/redis/0", SendResolved: false},
	}, refs["team"])
	require.Equal(t, 2*time.Second, built[0].Timeout)
	require.Equal(t, uint(5), built[0].MaxTries)
	require.Equal(t, uint(9), built[1].MaxTries)
	require.Equal(t, service.DefaultTimeout, built[1].Timeout)
}

func TestBuildIntegrationsRefusesPlainSecretsWithoutPrintingThem(t *testing.T) {
	t.Parallel()
	r, err := config.ParseRouting([]byte(`
route: {receiver: team}
receivers:
  - name: team
    webhook_configs: [{url: "https://hooks.example.com/T0K3N"}]
    email_configs: [{to: [a@example.com], from: b@example.com, smarthost: "smtp.example.com:587", auth_password: "hunter2"}]
`))
	require.NoError(t, err)
	_, _, err = service.BuildIntegrations(&r, &config.Config{MaxTries: 1}, nil, func(string) (string, bool) { return "", false })
	require.ErrorContains(t, err, "receiver team/webhook/0: url: plain-text secrets are not allowed")
	require.ErrorContains(t, err, "receiver team/email/0: auth_password: plain-text secrets are not allowed")
	require.NotContains(t, err.Error(), "T0K3N")
	require.NotContains(t, err.Error(), "hunter2")
}

func TestDefaultRoutingIsTheFormerBehaviour(t *testing.T) {
	t.Parallel()
	cfg := config.Config{WebhookURL: "http://127.0.0.1:9/hook", WebhookTimeout: 5 * time.Second, RecentKey: "alerts:recent", RecentLimit: 100, MaxTries: 5}
	r, err := service.Routing(&cfg)
	require.NoError(t, err)
	d, err := r.Dispatch()
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"default": false}, d.SendResolved, "firing only, as before")
	require.Zero(t, d.Route.GroupWait, "the first alert goes out at once, as before")
	_, refs, err := service.BuildIntegrations(&r, &cfg, nil, func(k string) (string, bool) {
		return cfg.WebhookURL, k == "NOTIFIER_WEBHOOK_URL"
	})
	require.NoError(t, err)
	require.Equal(t, []app.IntegrationRef{{Name: "default/webhook/0"}, {Name: "default/redis/0"}}, refs["default"])
}
