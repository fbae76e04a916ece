package adapters_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/services/detector/internal/adapters"
)

// TestRulesConsumerSurvivesBrokerRestart is the regression test of a bug
// the fault suite found: the broker restarting made the rules consumer
// return its partition consumers' connection errors, which stopped the
// whole detector. Now the consumer keeps following the topic through the
// restart and applies the changes published after it.
func TestRulesConsumerSurvivesBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded broker twice")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	start := func() *kfake.Cluster {
		var c *kfake.Cluster
		require.Eventually(t, func() bool {
			c, err = kfake.NewCluster(kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(2, messaging.TopicRules))
			return err == nil
		}, 10*time.Second, 100*time.Millisecond, "start broker: %v", err)
		return c
	}
	cluster := start()
	defer func() { cluster.Close() }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	publish := func(id string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordRetries(5))
		require.NoError(t, err)
		defer cl.Close()
		b, err := rules.EncodeChange(rules.Change{Op: rules.OpUpsert, ID: id,
			Rule: &rules.Rule{Name: id, Metric: "requests", Op: ">", Threshold: 1}})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: messaging.TopicRules, Key: []byte(id), Value: b}).FirstErr())
	}
	publish("before_restart")

	applied := make(chan string, 8)
	rc := adapters.NewRulesConsumer(config.Kafka{Brokers: []string{addr}}, messaging.TopicRules,
		func(c rules.Change) error { applied <- c.ID; return nil }, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	loaded := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- rc.Run(ctx, loaded) }()
	waitFor := func(id string) {
		t.Helper()
		select {
		case got := <-applied:
			require.Equal(t, id, got)
		case err := <-done:
			t.Fatalf("the rules consumer stopped: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatalf("change %s not applied", id)
		}
	}
	waitFor("before_restart")
	<-loaded

	cluster.Close()
	time.Sleep(500 * time.Millisecond) // the consumer sees the connection drop
	cluster = start()
	publish("after_restart")
	waitFor("after_restart")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
