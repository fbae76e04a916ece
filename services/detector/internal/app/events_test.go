package app_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/services/detector/internal/app"
)

func batch(t *testing.T, offset int64, evs ...events.Event) *message.Message {
	t.Helper()
	b, err := events.EncodeBatch(evs)
	require.NoError(t, err)
	msg := message.NewMessage("m", b)
	msg.SetContext(messaging.ContextWithPosition(t.Context(), 2, offset))
	return msg
}

func decodeAlerts(t *testing.T, payloads [][]byte) []alerts.Alert {
	t.Helper()
	var out []alerts.Alert
	for _, p := range payloads {
		var a alerts.Alert
		require.NoError(t, json.Unmarshal(p, &a))
		out = append(out, a)
	}
	return out
}

func TestDetectEventsPatternsSamplesAndReload(t *testing.T) {
	t.Parallel()
	file, err := rules.Parse("r.yaml", []byte(`rules:
  - {name: abandoned, kind: negation, events: [add_cart, purchase], within: 1m}
  - {name: hot, metric: cpu, source: samples, op: ">", threshold: 90, severity: critical}
`))
	require.NoError(t, err)
	live, err := app.NewRules(file)
	require.NoError(t, err)
	d := app.NewDetectEvents(live, 5*time.Second)
	st := d.NewState(2)
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixMilli()
	cart := events.Event{V: 1, ID: "c1", Type: events.TypeAddCart, UserID: "u1", Key: "u1", Time: t0}
	s1, err := events.ParseSample([]byte(`{"series":"cpu","labels":{"host":"a"},"value":95,"timestamp":`+jsonInt(t0+1000)+`}`), time.Now())
	require.NoError(t, err)
	outs, err := d.Apply(t.Context(), st, batch(t, 1, cart, s1), 1)
	require.NoError(t, err)
	var payloads [][]byte
	for _, o := range outs {
		payloads = append(payloads, o.Payload)
	}
	got := decodeAlerts(t, payloads)
	require.Len(t, got, 1)
	require.Equal(t, "hot", got[0].Rule)
	require.Equal(t, "a", got[0].Labels["host"])

	// Watermark passes the cart's deadline (1m + 5s of out-of-orderness):
	// the negation fires; the sample alert resolves on a normal sample.
	s2, err := events.ParseSample([]byte(`{"series":"cpu","labels":{"host":"a"},"value":10,"timestamp":`+jsonInt(t0+66_000)+`}`), time.Now())
	require.NoError(t, err)
	outs, err = d.Apply(t.Context(), st, batch(t, 2, s2), 2)
	require.NoError(t, err)
	payloads = nil
	for _, o := range outs {
		payloads = append(payloads, o.Payload)
	}
	got = decodeAlerts(t, payloads)
	var names []string
	for _, a := range got {
		names = append(names, a.Rule+":"+a.State)
	}
	require.ElementsMatch(t, []string{"hot:resolved", "abandoned:firing", "abandoned:resolved"}, names)

	// A rule deleted through the rules topic stops firing at once.
	require.NoError(t, live.Apply(rules.Change{V: 1, Op: rules.OpDelete, ID: "hot"}))
	s3, err := events.ParseSample([]byte(`{"series":"cpu","labels":{"host":"a"},"value":99,"timestamp":`+jsonInt(t0+70_000)+`}`), time.Now())
	require.NoError(t, err)
	outs, err = d.Apply(t.Context(), st, batch(t, 3, s3), 3)
	require.NoError(t, err)
	require.Empty(t, outs)

	_, err = d.Apply(t.Context(), st, batch(t, 4), 4)
	require.NoError(t, err)
	bad := message.NewMessage("x", []byte("{"))
	bad.SetContext(messaging.ContextWithPosition(t.Context(), 2, 5))
	_, err = d.Apply(t.Context(), st, bad, 5)
	require.True(t, messaging.IsPermanent(err))
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
