package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// startBroker starts a one-broker in-process kfake cluster on
// 127.0.0.1:port that persists to dir. kfake reloads topics, records,
// committed offsets and producer state from dir when dir/meta.json exists,
// and writes its full state back on Close, so the cluster must be closed
// (not just abandoned) for the next run to see everything. Topics it does
// not know are created on first use with the given partition count, as a
// real Kafka does by default.
func startBroker(logger *slog.Logger, dir string, port int, partitions int32) (*kfake.Cluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	c, err := kfake.NewCluster(
		kfake.Ports(port), // one port, so one broker
		kfake.DataDir(dir),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.AllowAutoTopicCreation(),
		kfake.WithLogger(kfakeLogger{logger}),
	)
	if err != nil {
		return nil, fmt.Errorf("broker on port %d: %w", port, err)
	}
	return c, nil
}

// createTopics creates topics with the given partition count and replication
// factor 1, and the configs of messaging.TopicConfigs (the profiles topic
// is compacted). Topics that already exist (a reused data directory) are
// kept as they are; a different partition count is logged, not changed.
func createTopics(ctx context.Context, logger *slog.Logger, brokers []string, partitions int32, topics []string) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)

	var plain []string
	var created []kadm.CreateTopicResponse
	for _, t := range topics {
		cfg := messaging.TopicConfigs(t) // e.g. the compacted profiles topic
		if cfg == nil {
			plain = append(plain, t)
			continue
		}
		configs := map[string]*string{}
		for k, v := range cfg {
			configs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopics(ctx, partitions, 1, configs, t)
		if err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
		created = append(created, resp.Sorted()...)
	}
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, plain...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	created = append(created, resp.Sorted()...)
	var errs []error
	for _, t := range created {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.Topic, t.Err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range details.Sorted() {
		if t.Err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Topic, t.Err))
			continue
		}
		if n := int32(len(t.Partitions)); n != partitions {
			logger.Warn("topic kept with a different partition count", "topic", t.Topic, "partitions", n, "configured", partitions)
		}
	}
	return errors.Join(errs...)
}

// kfakeLogger forwards kfake's warnings and errors to slog; its info and
// debug messages (one per request) are dropped.
type kfakeLogger struct{ logger *slog.Logger }

// Logf implements kfake.Logger.
func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	default:
		return
	}
	l.logger.Log(context.Background(), lvl, "broker", "message", fmt.Sprintf(format, args...))
}
