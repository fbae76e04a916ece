package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// hook is a webhook endpoint on loopback that fails the first failN calls
// with 502.
type hook struct {
	mu     sync.Mutex
	failN  int
	calls  int
	bodies []adapters.WebhookMessage
	at     []time.Time
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.calls <= h.failN {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	var m adapters.WebhookMessage
	if err := json.Unmarshal(b, &m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.bodies = append(h.bodies, m)
	h.at = append(h.at, time.Now())
}

func (h *hook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

func start(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func deliveryMsg(t *testing.T, integration string, seq int) *message.Message {
	t.Helper()
	labels := map[string]string{"alertname": "cpu", "service": "api"}
	n := dispatch.Notification{
		V: 1, ID: "g1:" + string(rune('0'+seq)), GroupKey: `0:{alertname="cpu"}`, Receiver: "team", Integration: integration,
		Status: "firing", GroupLabels: map[string]string{"alertname": "cpu"},
		Alerts: []dispatch.NotifiedAlert{{Alert: alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("cpu", labels), Rule: "cpu",
			State: "firing", Labels: labels, StartsAt: 1431936300000}}},
	}
	b, err := json.Marshal(n)
	require.NoError(t, err)
	m := message.NewMessage(app.DeliveryID(&n), b)
	m.Metadata.Set(app.MetaIntegration, integration)
	return m
}

// bus is an in-memory Watermill pub/sub recording the outcome and
// dead-letter topics.
func bus(t *testing.T) (*gochannel.GoChannel, <-chan *message.Message, <-chan *message.Message) {
	t.Helper()
	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1000}, watermill.NopLogger{})
	t.Cleanup(func() { _ = pubsub.Close() })
	outcomes, err := pubsub.Subscribe(context.Background(), messaging.TopicNotifications)
	require.NoError(t, err)
	dlq, err := pubsub.Subscribe(context.Background(), messaging.DLQ(messaging.TopicNotifierDeliveries))
	require.NoError(t, err)
	return pubsub, outcomes, dlq
}

func drain(ch <-chan *message.Message, wait time.Duration) []dispatch.Outcome {
	var out []dispatch.Outcome
	for {
		select {
		case m := <-ch:
			m.Ack()
			var oc dispatch.Outcome
			_ = json.Unmarshal(m.Payload, &oc)
			out = append(out, oc)
		case <-time.After(wait):
			return out
		}
	}
}

func TestFlakyReceiverGetsExactlyOneDelivery(t *testing.T) {
	t.Parallel()
	h := &hook{failN: 3}
	pub, outcomes, _ := bus(t)
	done := adapters.NewRedisDone(redistest.Start(t), "t:")
	d := app.NewDeliverer(app.DeliverSettings{
		Integration: "team/webhook/0", Timeout: time.Second, MaxTries: 5, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}, adapters.NewWebhook(start(t, h), "", 0), done, pub, nil)

	require.NoError(t, d.Handle(deliveryMsg(t, "team/webhook/0", 1)))
	require.Equal(t, 4, h.calls)
	require.Len(t, h.bodies, 1)
	require.Equal(t, "g1:1", h.bodies[0].NotificationID)
	ocs := drain(outcomes, 100*time.Millisecond)
	var kinds, ids []string
	for _, oc := range ocs {
		kinds, ids = append(kinds, oc.Kind), append(ids, oc.ID)
	}
	require.Equal(t, []string{"retried", "retried", "retried", "sent"}, kinds)
	require.Equal(t, "g1:1/team/webhook/0:sent", ids[3])
	require.Equal(t, 4, ocs[3].Attempt)
	require.Contains(t, ocs[0].Error, "502")

	// The record redelivered (a crash before the ack): not sent again, the
	// same outcome re-published; a record of another integration: skipped.
	require.NoError(t, d.Handle(deliveryMsg(t, "team/webhook/0", 1)))
	require.NoError(t, d.Handle(deliveryMsg(t, "team/slack/0", 2)))
	require.Equal(t, 4, h.calls)
	again := drain(outcomes, 100*time.Millisecond)
	require.Len(t, again, 1)
	require.Equal(t, ocs[3].ID, again[0].ID)
}

func TestDeadReceiverEndsInDeadLetterWithoutBlockingOthers(t *testing.T) {
	t.Parallel()
	dead, healthy := &hook{failN: 1 << 30}, &hook{}
	pub, outcomes, dlq := bus(t)
	done := adapters.NewRedisDone(redistest.Start(t), "t:")
	deliverers := map[string]*app.Deliverer{
		"team/webhook/0": app.NewDeliverer(app.DeliverSettings{
			Integration: "team/webhook/0", Timeout: time.Second, MaxTries: 3, InitialBackoff: 300 * time.Millisecond,
		}, adapters.NewWebhook(start(t, dead), "", 0), done, pub, nil),
		"team/webhook/1": app.NewDeliverer(app.DeliverSettings{
			Integration: "team/webhook/1", Timeout: time.Second, MaxTries: 3, InitialBackoff: 300 * time.Millisecond,
		}, adapters.NewWebhook(start(t, healthy), "", 0), done, pub, nil),
	}
	// Each integration consumes the queue on its own, as its own consumer
	// group does in the service.
	queue := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = queue.Close() })
	var wg sync.WaitGroup
	var mu sync.Mutex
	finished := map[string]time.Time{}
	for name, d := range deliverers {
		ch, err := queue.Subscribe(context.Background(), messaging.TopicNotifierDeliveries)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				m := <-ch
				require.NoError(t, d.Handle(m))
				m.Ack()
			}
			mu.Lock()
			finished[name] = time.Now()
			mu.Unlock()
		}()
	}
	for i, name := range []string{"team/webhook/0", "team/webhook/1", "team/webhook/0", "team/webhook/1"} {
		require.NoError(t, queue.Publish(messaging.TopicNotifierDeliveries, deliveryMsg(t, name, i)))
	}
	wg.Wait()

	require.Equal(t, 2, healthy.count())
	require.Zero(t, dead.count())
	require.Equal(t, 6, dead.calls, "3 tries for each of its 2 notifications")
	require.True(t, finished["team/webhook/1"].Before(finished["team/webhook/0"]),
		"the healthy integration finished while the dead one was still retrying")
	require.True(t, healthy.at[1].Before(finished["team/webhook/0"]))

	var dl []*message.Message
	for len(dl) < 2 {
		select {
		case m := <-dlq:
			m.Ack()
			dl = append(dl, m)
		case <-time.After(2 * time.Second):
			t.Fatalf("dead-letter records: %d, want 2", len(dl))
		}
	}
	sort.Slice(dl, func(i, j int) bool { return dl[i].UUID < dl[j].UUID })
	require.Equal(t, "g1:0/team/webhook/0:dlq", dl[0].UUID)
	require.Equal(t, "g1:2/team/webhook/0:dlq", dl[1].UUID)
	require.Equal(t, "answered 502 Bad Gateway", dl[0].Metadata.Get(messaging.MetaError))
	require.Equal(t, "team/webhook/0", dl[0].Metadata.Get(app.MetaIntegration))
	var n dispatch.Notification
	require.NoError(t, json.Unmarshal(dl[0].Payload, &n))
	require.Equal(t, "g1:0", n.ID)

	kinds := map[string]int{}
	for _, oc := range drain(outcomes, 100*time.Millisecond) {
		kinds[oc.Integration+" "+oc.Kind]++
	}
	require.Equal(t, map[string]int{
		"team/webhook/0 retried": 4, "team/webhook/0 failed": 2, "team/webhook/1 sent": 2,
	}, kinds)
}

// TestInvalidDeliveryRecordIsPoison: a delivery record the dispatcher would
// never write (another schema version, a flush time in the year 9999) is a
// permanent error, so DeadLetter moves it to notifier.deliveries.dlq, and
// nothing is sent.
func TestInvalidDeliveryRecordIsPoison(t *testing.T) {
	t.Parallel()
	h := &hook{}
	pub, _, _ := bus(t)
	d := app.NewDeliverer(app.DeliverSettings{Integration: "team/webhook/0", Timeout: time.Second, MaxTries: 1},
		adapters.NewWebhook(start(t, h), "", 0), adapters.NewRedisDone(redistest.Start(t), "t:"), pub, nil)
	for payload, want := range map[string]string{
		`{"v":2,"id":"n1","status":"firing","at":1}`:               "schema version 2",
		`{"v":1,"id":"n2","status":"firing","at":253402300799000}`: "at 253402300799000 outside",
		`{"v":1,"id":"n3","status":"loud","at":1}`:                 `unknown status "loud"`,
	} {
		m := message.NewMessage("x-"+want, []byte(payload))
		m.Metadata.Set(app.MetaIntegration, "team/webhook/0")
		err := d.Handle(m)
		require.True(t, messaging.IsPermanent(err), payload)
		require.ErrorContains(t, err, want)
	}
	require.Zero(t, h.count(), "nothing was sent")
}
