package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// TestDeadLetterSendsPoisonOnAndGoesOn runs a router handler that fails
// permanently on one record and panics on another: both land on the
// dead-letter topic with the error, the source topic and the handler name,
// and the records after them are still handled.
func TestDeadLetterSendsPoisonOnAndGoesOn(t *testing.T) {
	t.Parallel()
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16, Persistent: true}, watermill.NopLogger{})
	defer ps.Close()
	router, err := messaging.NewRouter(nil)
	require.NoError(t, err)
	handled := make(chan string, 16)
	router.AddConsumerHandler("test.handler", "in", ps, func(msg *message.Message) error {
		switch string(msg.Payload) {
		case "poison":
			return messaging.Permanent(errors.New("cannot decode"))
		case "crash":
			panic("boom")
		}
		handled <- string(msg.Payload)
		return nil
	}).AddMiddleware(messaging.DeadLetter(ps, "in", nil))
	dlq, err := ps.Subscribe(t.Context(), messaging.DLQ("in"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	for _, p := range []string{"ok-1", "poison", "crash", "ok-2"} {
		require.NoError(t, ps.Publish("in", message.NewMessage(watermill.NewUUID(), []byte(p))))
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case p := <-handled:
			got[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("valid records handled: %v, want ok-1 and ok-2", got)
		}
	}
	require.Equal(t, map[string]bool{"ok-1": true, "ok-2": true}, got)
	dead := map[string]string{}
	for range 2 {
		select {
		case m := <-dlq:
			m.Ack()
			dead[string(m.Payload)] = m.Metadata.Get(messaging.MetaError)
			require.Equal(t, "in", m.Metadata.Get(messaging.MetaSourceTopic))
			require.Equal(t, "test.handler", m.Metadata.Get(messaging.MetaConsumer))
		case <-time.After(10 * time.Second):
			t.Fatalf("dead-lettered: %v, want poison and crash", dead)
		}
	}
	require.Equal(t, map[string]string{"poison": "cannot decode", "crash": "handler panic: boom"}, dead)
}
