package app_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

const routingYAML = `
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs: [{url: "${HOOK}"}]
    redis_configs: [{key: "alerts:recent"}]
`

// restart encodes and decodes the state as the checkpoint does, so every
// step below runs on state as a restarted notifier would load it.
func restart(t *testing.T, st *dispatch.State) *dispatch.State {
	t.Helper()
	b, err := json.Marshal(st)
	require.NoError(t, err)
	var out dispatch.State
	require.NoError(t, json.Unmarshal(b, &out))
	return &out
}

func forwarded(t *testing.T, kind string, v any) *message.Message {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	in := message.NewMessage("x", b)
	outs, err := app.NewForward(kind).Apply(context.Background(), struct{}{}, in, 0)
	require.NoError(t, err)
	require.Len(t, outs, 1)
	o := outs[0]
	require.Equal(t, messaging.TopicNotifierDispatch, o.Topic)
	require.Equal(t, "0", o.Metadata[messaging.MetaPartition])
	m := message.NewMessage(o.UUID, o.Payload)
	for k, v := range o.Metadata {
		m.Metadata.Set(k, v)
	}
	return m
}

func TestDispatchOperatorAcrossRestarts(t *testing.T) {
	t.Parallel()
	r, err := config.ParseRouting([]byte(routingYAML))
	require.NoError(t, err)
	dc, err := r.Dispatch()
	require.NoError(t, err)
	d, err := dispatch.New(dc)
	require.NoError(t, err)
	op := app.NewDispatch(d, map[string][]app.IntegrationRef{"team": {
		{Name: "team/webhook/0", SendResolved: true}, {Name: "team/redis/0", SendResolved: false},
	}})
	ctx := context.Background()
	st := op.NewState(0)
	var outs []stream.Output
	apply := func(m *message.Message) {
		o, err := op.Apply(ctx, st, m, 0)
		require.NoError(t, err)
		outs = append(outs, o...)
		st = restart(t, st)
	}
	tick := func(at time.Time) {
		o, _, err := op.Tick(ctx, st, at)
		require.NoError(t, err)
		outs = append(outs, o...)
		st = restart(t, st)
	}
	labels := map[string]string{"alertname": "burst", "client_ip": "10.0.0.1", "severity": "warning"}
	a := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("burst", labels), Rule: "burst", State: "firing", Labels: labels,
		StartsAt: time.Date(2015, 5, 18, 8, 5, 0, 0, time.UTC).UnixMilli()}
	apply(forwarded(t, app.KindAlert, a))
	apply(forwarded(t, app.KindAlert, a)) // a replayed duplicate
	wall := time.Date(2026, 11, 21, 21, 0, 0, 0, time.UTC)
	tick(wall)
	tick(wall.Add(20 * time.Second))
	require.Empty(t, outs, "group_wait not over")
	tick(wall.Add(31 * time.Second))
	require.Len(t, outs, 2, "one record per integration")
	require.Equal(t, "team/webhook/0", outs[0].Key)
	require.Equal(t, "team/redis/0", outs[1].Key)
	for _, o := range outs {
		require.Equal(t, messaging.TopicNotifierDeliveries, o.Topic)
		require.Equal(t, o.Key, o.Metadata[app.MetaIntegration])
		var n dispatch.Notification
		require.NoError(t, json.Unmarshal(o.Payload, &n))
		require.Equal(t, n.ID+"/"+o.Key, o.UUID)
		require.Equal(t, "firing", n.Status)
		require.Len(t, n.Alerts, 1)
	}

	// Silence something else, acknowledge the alert, resolve it: the
	// resolution goes to the webhook only (redis has no send_resolved).
	outs = nil
	apply(forwarded(t, app.KindSilence, silences.Silence{V: 1, ID: "s1", CreatedBy: "ops", UntilResolved: true,
		Matchers: silences.Matchers{{Name: "alertname", Op: "=", Value: "other"}}}))
	apply(forwarded(t, app.KindAck, silences.Ack{V: 1, ID: "k1", Fingerprint: a.Fingerprint, By: "bob"}))
	require.Equal(t, "bob", st.Acks[a.Fingerprint].By)
	require.Equal(t, a.StartsAt, st.Acks[a.Fingerprint].StartsAt, "the current episode")
	res := a
	res.State, res.EndsAt = "resolved", a.StartsAt+3*60_000
	apply(forwarded(t, app.KindAlert, res))
	require.Empty(t, outs, "the resolution waits for the group interval")
	tick(wall.Add(31*time.Second + 3*time.Minute)) // the clock passes 08:08:30
	require.Len(t, outs, 1)
	var n dispatch.Notification
	require.NoError(t, json.Unmarshal(outs[0].Payload, &n))
	require.Equal(t, "team/webhook/0", n.Integration)
	require.Equal(t, "resolved", n.Status)
	require.Empty(t, st.Acks, "the ack left with the alert")
	tick(wall.Add(10 * time.Minute))
	require.Empty(t, st.Groups)

	// Poison on the dispatch topic is permanent.
	bad := message.NewMessage("y", []byte("{"))
	bad.Metadata.Set(app.MetaKind, app.KindAlert)
	_, err = op.Apply(ctx, st, bad, 0)
	require.True(t, messaging.IsPermanent(err))
	// So are decodable but invalid alerts and acks (fault suite: a start in
	// the year 9999 would have moved the dispatcher's clock, and every
	// timer, with it), and the state does not change.
	clock := st.Now
	for kind, payload := range map[string]string{
		app.KindAlert: `{"v":1,"fingerprint":"f","rule":"r","state":"firing","starts_at":253402300799000}`,
		app.KindAck:   `{"v":2,"id":"a","fingerprint":"f","by":"b","at":1}`,
	} {
		m := message.NewMessage("p-"+kind, []byte(payload))
		m.Metadata.Set(app.MetaKind, kind)
		_, err = op.Apply(ctx, st, m, 0)
		require.True(t, messaging.IsPermanent(err), kind)
	}
	require.Equal(t, clock, st.Now, "a refused record does not move the clock")
	_, err = app.NewForward(app.KindSilence).Apply(ctx, struct{}{}, message.NewMessage("z", []byte(`{"v":1,"id":"s"}`)), 0)
	require.ErrorContains(t, err, "no matchers")
	require.True(t, messaging.IsPermanent(err))
}
