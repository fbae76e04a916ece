// Package windowresults reads the metrics.windows topic as the integration
// suites check it: the latest revision of every window result.
package windowresults

import (
	"context"
	"fmt"
	"sort"
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

// Totals is the count and sum of a window summed over shards.
type Totals struct {
	Count int64
	Sum   float64
}

// Sum adds the count and sum of every result that key maps to a K (ok
// false leaves the result out), so per-shard partials become whole
// windows.
func Sum[K comparable](latest map[string]metrics.Result, key func(r *metrics.Result) (K, bool)) map[K]Totals {
	got := map[K]Totals{}
	for _, r := range latest {
		k, ok := key(&r)
		if !ok {
			continue
		}
		x := got[k]
		x.Count += r.Count
		x.Sum += r.Sum
		got[k] = x
	}
	return got
}

// Equal reports whether got has exactly want's keys with the same counts
// and sums (within 1e-6).
func Equal[K comparable](want, got map[K]Totals) bool {
	if len(want) != len(got) {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.Count != w.Count || g.Sum-w.Sum > 1e-6 || w.Sum-g.Sum > 1e-6 {
			return false
		}
	}
	return true
}

// Diff lists, sorted, the windows whose totals differ between want and got
// and those got has beyond want, one line each, for a test failure.
func Diff[K comparable](want, got map[K]Totals) []string {
	var bad []string
	for k, w := range want {
		if g := got[k]; !Equal(map[K]Totals{k: w}, map[K]Totals{k: g}) {
			bad = append(bad, fmt.Sprintf("%+v: want %+v, got %+v", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("%+v: unexpected %+v", k, g))
		}
	}
	sort.Strings(bad)
	return bad
}
