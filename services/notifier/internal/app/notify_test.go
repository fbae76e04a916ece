package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/delivery"
)

// hook is a webhook endpoint on loopback that fails the first failN calls.
type hook struct {
	mu     sync.Mutex
	failN  int
	calls  int
	bodies []adapters.WebhookMessage
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.calls <= h.failN {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var m adapters.WebhookMessage
	if err := json.Unmarshal(b, &m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.bodies = append(h.bodies, m)
}

func alertMsg(t *testing.T, a alerts.Alert) *message.Message {
	t.Helper()
	b, err := json.Marshal(a)
	require.NoError(t, err)
	return message.NewMessage("x", b)
}

func firing() alerts.Alert {
	labels := map[string]string{"alertname": "high_request_rate_client", "client_ip": "75.97.9.59", "severity": "warning"}
	return alerts.Alert{
		V: 1, Fingerprint: alerts.Fingerprint("high_request_rate_client", labels), Rule: "high_request_rate_client",
		State: alerts.StateFiring, Severity: "warning", Labels: labels,
		Annotations: map[string]string{"summary": "client 75.97.9.59 made 108 requests"},
		Value:       108, Threshold: 100, StartsAt: 1431936300000,
	}
}

func TestFlakyWebhookGetsExactlyOneDelivery(t *testing.T) {
	t.Parallel()
	h := &hook{failN: 3}
	srv := httptest.NewServer(h)
	defer srv.Close()
	rdb := redistest.Start(t)
	n := app.NewNotify([]app.Receiver{
		adapters.NewWebhook("webhook", srv.URL, "http://sw", time.Second),
		adapters.NewRecentList(rdb, "alerts:recent", 100),
	}, 5)
	st := n.NewState(0)
	ctx := context.Background()
	_, err := n.Apply(ctx, st, alertMsg(t, firing()), 0)
	require.NoError(t, err)
	// The same state change again (a redelivered record): nothing is sent.
	_, err = n.Apply(ctx, st, alertMsg(t, firing()), 1)
	require.NoError(t, err)

	require.Equal(t, 4, h.calls)
	require.Len(t, h.bodies, 1)
	m := h.bodies[0]
	require.Equal(t, "4", m.Version)
	require.Equal(t, "firing", m.Status)
	require.Equal(t, "webhook", m.Receiver)
	require.Equal(t, "http://sw", m.ExternalURL)
	require.Len(t, m.Alerts, 1)
	require.Equal(t, "75.97.9.59", m.Alerts[0].Labels["client_ip"])
	require.Equal(t, time.Date(2015, 5, 18, 8, 5, 0, 0, time.UTC), m.Alerts[0].StartsAt)
	require.True(t, m.Alerts[0].EndsAt.IsZero())
	require.Equal(t, firing().Fingerprint, m.Alerts[0].Fingerprint)

	recent, err := rdb.LRange(ctx, "alerts:recent", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, recent, 1)
}

func TestUnreachableWebhookIsTransient(t *testing.T) {
	t.Parallel()
	h := &hook{failN: 1 << 30}
	srv := httptest.NewServer(h)
	defer srv.Close()
	n := app.NewNotify([]app.Receiver{adapters.NewWebhook("webhook", srv.URL, "", time.Second)}, 2)
	st := n.NewState(0)
	_, err := n.Apply(context.Background(), st, alertMsg(t, firing()), 0)
	require.ErrorContains(t, err, "receiver webhook")
	a := firing()
	require.False(t, st.Seen(a.ID()), "not marked sent: the record will be redelivered")
}

func TestRecentListIsIdempotentAndCapped(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	ctx := context.Background()
	r := adapters.NewRecentList(rdb, "alerts:recent", 3)
	a := firing()
	for range 2 {
		require.NoError(t, r.Notify(ctx, a))
	}
	n, err := rdb.LLen(ctx, "alerts:recent").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	for i := range 5 {
		b := firing()
		b.StartsAt += int64(i+1) * 60000
		require.NoError(t, r.Notify(ctx, b))
	}
	items, err := rdb.LRange(ctx, "alerts:recent", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, items, 3)
	var newest alerts.Alert
	require.NoError(t, json.Unmarshal([]byte(items[0]), &newest))
	require.Equal(t, firing().StartsAt+5*60000, newest.StartsAt, "newest first")
}

func TestOnlyFiringIsDelivered(t *testing.T) {
	t.Parallel()
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	n := app.NewNotify([]app.Receiver{adapters.NewWebhook("webhook", srv.URL, "", time.Second)}, 1)
	st := delivery.NewState()
	res := firing()
	res.State = alerts.StateResolved
	res.EndsAt = res.StartsAt + 60000
	_, err := n.Apply(context.Background(), st, alertMsg(t, res), 0)
	require.NoError(t, err)
	require.Zero(t, h.calls)
	_, err = n.Apply(context.Background(), st, message.NewMessage("x", []byte("{not json")), 1)
	require.Error(t, err)
}
