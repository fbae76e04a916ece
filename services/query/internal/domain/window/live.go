package window

import (
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// LiveValue is the latest window of one metric and label set, added up over
// the shards that reported that window.
type LiveValue struct {
	Metric string
	// Labels is the label set; empty (not nil) for none.
	Labels map[string]string
	// WindowStart and WindowEnd bound the window, ms since the epoch.
	WindowStart int64
	WindowEnd   int64
	// Value and Count are summed over the shards at WindowStart.
	Value float64
	Count int64
}

// Latest reduces the latest result per shard of one metric (as the live
// store keeps them) to one LiveValue per label set: the greatest
// WindowStart any shard reported, with Value and Count summed over the
// shards at that start. Shards still at an older window do not contribute.
// Results of other metrics are ignored. The output is sorted by
// metrics.LabelsKey.
func Latest(metric string, results []metrics.Result) []LiveValue {
	type acc struct {
		key string
		v   LiveValue
	}
	byKey := map[string]*acc{}
	for _, r := range results {
		if r.Metric != metric {
			continue
		}
		key := metrics.LabelsKey(r.Labels)
		a, ok := byKey[key]
		if !ok || r.WindowStart > a.v.WindowStart {
			labels := make(map[string]string, len(r.Labels))
			for k, v := range r.Labels {
				labels[k] = v
			}
			byKey[key] = &acc{key: key, v: LiveValue{
				Metric: metric, Labels: labels, WindowStart: r.WindowStart, WindowEnd: r.WindowEnd,
				Value: r.Value, Count: r.Count,
			}}
			continue
		}
		if r.WindowStart == a.v.WindowStart {
			a.v.Value += r.Value
			a.v.Count += r.Count
			a.v.WindowEnd = max(a.v.WindowEnd, r.WindowEnd)
		}
	}
	all := make([]*acc, 0, len(byKey))
	for _, a := range byKey {
		all = append(all, a)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key < all[j].key })
	out := make([]LiveValue, len(all))
	for i, a := range all {
		out[i] = a.v
	}
	return out
}

// MaxLiveMetrics bounds the metrics of one live request.
const MaxLiveMetrics = 50

// LiveMetrics validates the metric names of a live request and removes
// repeats, keeping the first-seen order. It needs 1..MaxLiveMetrics names,
// each a ValidName; problems are *ParamError for "metric", joined.
func LiveMetrics(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, InvalidParam("metric", "missing (give one or more metric=NAME)")
	}
	var errs []error
	seen := map[string]bool{}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if err := CheckMetric(n); err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) > MaxLiveMetrics {
		errs = append(errs, InvalidParam("metric", "more than %d metrics", MaxLiveMetrics))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ParseLabelsKey inverts metrics.LabelsKey: "a=1,b=\"x,y\"" → {a: 1, b:
// x,y}. ok is false when key is not in that form.
func ParseLabelsKey(key string) (map[string]string, bool) {
	out := map[string]string{}
	for key != "" {
		name, rest, found := strings.Cut(key, "=")
		if !found || name == "" {
			return nil, false
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			quoted, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, false
			}
			if value, err = strconv.Unquote(quoted); err != nil {
				return nil, false
			}
			rest = rest[len(quoted):]
		} else {
			i := strings.IndexByte(rest, ',')
			if i < 0 {
				i = len(rest)
			}
			value, rest = rest[:i], rest[i:]
		}
		out[name] = value
		if rest != "" {
			if rest[0] != ',' {
				return nil, false
			}
			rest = rest[1:]
		}
		key = rest
	}
	return out, true
}

// LabelScore is one labels key of a window with its value summed over
// shards.
type LabelScore struct {
	LabelsKey string
	Value     float64
}

// RankBy sums the scores per value of label by (label sets without it
// are left out) and returns the n largest, ties by key.
func RankBy(scores []LabelScore, by string, n int) []TopKEntry {
	sums := map[string]float64{}
	for _, s := range scores {
		labels, ok := ParseLabelsKey(s.LabelsKey)
		if !ok {
			continue
		}
		if v, has := labels[by]; has {
			sums[v] += s.Value
		}
	}
	out := make([]TopKEntry, 0, len(sums))
	for k, v := range sums {
		out = append(out, TopKEntry{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value > out[j].Value
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
