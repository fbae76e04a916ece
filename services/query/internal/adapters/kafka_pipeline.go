package adapters

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/pipeline"
)

var _ query.PipelineReader = (*KafkaPipeline)(nil)

// KafkaPipeline reads consumer lag and topic sizes from the Kafka brokers
// with franz-go's admin client. Safe for concurrent use; Close it.
type KafkaPipeline struct {
	client *kgo.Client
	admin  *kadm.Client
}

// NewKafkaPipeline returns a reader on brokers (host:port). The client
// connects lazily, so an unreachable broker shows up in PipelineHealth.
func NewKafkaPipeline(brokers []string) (*KafkaPipeline, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("streamwatch-query-pipeline"))
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	return &KafkaPipeline{client: cl, admin: kadm.NewClient(cl)}, nil
}

// Close releases the client.
func (k *KafkaPipeline) Close() error {
	k.client.Close()
	return nil
}

// PipelineHealth implements query.PipelineReader. Lag of a group is, per
// topic, the sum over partitions of end offset − committed offset (kadm's
// Lag; a partition without a commit counts from its start offset); only
// groups with members are listed. Record counts are end − start offsets
// summed over partitions. Any broker error fails the whole snapshot.
func (k *KafkaPipeline) PipelineHealth(ctx context.Context) (pipeline.Health, error) {
	var h pipeline.Health
	listed, err := k.admin.ListGroups(ctx)
	if err != nil {
		return h, fmt.Errorf("list groups: %w", err)
	}
	if groups := listed.Groups(); len(groups) > 0 {
		lags, err := k.admin.Lag(ctx, groups...)
		if err != nil {
			return h, fmt.Errorf("group lag: %w", err)
		}
		for name, l := range lags {
			if len(l.Members) == 0 {
				continue
			}
			if err := l.Error(); err != nil {
				return h, fmt.Errorf("lag of group %s: %w", name, err)
			}
			g := pipeline.GroupLag{Group: name}
			for topic, parts := range l.Lag {
				var sum int64
				for _, p := range parts {
					if p.Err != nil {
						return h, fmt.Errorf("lag of group %s on %s/%d: %w", name, topic, p.Partition, p.Err)
					}
					sum += p.Lag
				}
				g.Topics = append(g.Topics, pipeline.TopicLag{Topic: topic, Lag: sum})
				g.Total += sum
			}
			sort.Slice(g.Topics, func(i, j int) bool { return g.Topics[i].Topic < g.Topics[j].Topic })
			h.Groups = append(h.Groups, g)
		}
		sort.Slice(h.Groups, func(i, j int) bool { return h.Groups[i].Group < h.Groups[j].Group })
	}

	topics, err := k.admin.ListTopics(ctx)
	if err != nil {
		return h, fmt.Errorf("list topics: %w", err)
	}
	var counted []string
	for _, t := range topics.Names() {
		if t == messaging.TopicEventsLate || strings.HasSuffix(t, ".dlq") {
			counted = append(counted, t)
		}
	}
	if len(counted) == 0 {
		return h, nil
	}
	sizes, err := k.topicRecords(ctx, counted)
	if err != nil {
		return h, err
	}
	sort.Strings(counted)
	for _, t := range counted {
		if t == messaging.TopicEventsLate {
			h.LateRecords = sizes[t]
			continue
		}
		h.DLQ = append(h.DLQ, pipeline.TopicRecords{Topic: t, Records: sizes[t]})
	}
	return h, nil
}

// topicRecords returns end − start offsets summed over the partitions of
// each topic.
func (k *KafkaPipeline) topicRecords(ctx context.Context, topics []string) (map[string]int64, error) {
	starts, err := k.admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	ends, err := k.admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	if err := starts.Error(); err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	out := make(map[string]int64, len(topics))
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			out[o.Topic] += o.Offset - s.Offset
		}
	})
	return out, nil
}
