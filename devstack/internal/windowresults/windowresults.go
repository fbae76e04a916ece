// Package windowresults reads the metrics.windows topic as the integration
// suites check it: the latest revision of every window result.
package windowresults

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// Latest consumes metrics.windows from the start and keeps the latest
// revision of every result id. After every poll (at most 2 s) it calls done
// with the results so far, and returns them once done reports true or
// timeout has passed (the caller then compares and reports). It fails t on
// an undecodable record, and when one revision of a result is published
// twice with different counts (outputs must be deterministic).
func Latest(t testing.TB, brokers []string, timeout time.Duration, done func(map[string]metrics.Result) bool) map[string]metrics.Result {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(messaging.TopicMetricsWindows),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	latest := map[string]metrics.Result{}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(rec *kgo.Record) {
			schema := ""
			for _, h := range rec.Headers {
				if h.Key == messaging.MetaSchema {
					schema = string(h.Value)
				}
			}
			rs, err := metrics.DecodeRecord(schema, rec.Value)
			require.NoError(t, err)
			for _, r := range rs {
				if prev, ok := latest[r.ID()]; !ok || r.Revision > prev.Revision {
					latest[r.ID()] = r
				} else if r.Revision == prev.Revision {
					require.Equal(t, prev.Count, r.Count, "revision %d of %s published with two values", r.Revision, r.ID())
				}
			}
		})
		if done(latest) {
			break
		}
	}
	return latest
}
