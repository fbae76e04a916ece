package metrics_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

func TestDefaultsParseAndKeepTheSkeletonNames(t *testing.T) {
	t.Parallel()
	defs, err := metrics.Defaults()
	require.NoError(t, err)
	byName := map[string]metrics.Definition{}
	for _, d := range defs {
		byName[d.Name] = d
	}
	for name, want := range map[string]struct {
		groupBy  []string
		headline string
	}{
		"requests": {nil, "count"}, "requests_by_status": {[]string{"status"}, "count"},
		"requests_by_status_class": {[]string{"status_class"}, "count"}, "bytes": {nil, "sum"},
		"bytes_by_status_class": {[]string{"status_class"}, "sum"}, "events_by_type": {[]string{"type"}, "count"},
		"requests_by_client": {[]string{"client_ip"}, "count"}, "events_by_user": {[]string{"user_id"}, "count"},
		"error_rate": {nil, "avg"}, "throughput": {nil, "rate"}, "distinct_users": {nil, "distinct"},
		"latency_p95_by_service": {[]string{"service"}, "p95"}, "latency_p99_by_service": {[]string{"service"}, "p99"},
		"latency_by_service": {[]string{"service"}, "avg"}, "top_pages": {nil, "count"},
		"events_by_page": {[]string{"page"}, "count"}, "events_by_product": {[]string{"product_id"}, "count"},
		"requests_success": {nil, "count"}, "requests_errors": {nil, "count"},
	} {
		d, ok := byName[name]
		require.True(t, ok, name)
		require.Equal(t, want.groupBy, d.GroupBy, name)
		require.Equal(t, want.headline, d.Headline(), name)
	}
	rc, req := byName["requests_by_client"], byName["requests"]
	require.True(t, rc.Complete())
	require.False(t, req.Complete())
}

func TestParseReportsFileLineAndReason(t *testing.T) {
	t.Parallel()
	_, err := metrics.LoadDefinitions("testdata/invalid.yaml")
	require.ErrorIs(t, err, metrics.ErrInvalidDefinition)
	require.ErrorContains(t, err, `testdata/invalid.yaml:5: metric "bad_agg"`)
	require.ErrorContains(t, err, `unknown aggregation "median"`)
	require.ErrorContains(t, err, `testdata/invalid.yaml:9: metric "bad_window"`)
	require.ErrorContains(t, err, "must be a multiple of slide")

	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":       {"metrics:\n  - name: a\n    windw: {size: 1m}\n", `f.yaml:3: unknown key "windw"`},
		"unknown nested":    {"metrics:\n  - name: a\n    window: {size: 1m, sise: 2m}\n", `f.yaml:3: unknown key "sise"`},
		"unknown top":       {"metric:\n  - name: a\n", `f.yaml:1: unknown key "metric"`},
		"duplicate":         {"metrics:\n  - name: a\n    window: {size: 1m}\n  - name: a\n    window: {size: 1m}\n", `f.yaml:4: metric "a": name already defined at line 2`},
		"bad field":         {"metrics:\n  - name: a\n    group_by: [colour]\n    window: {size: 1m}\n", `group_by: unknown field "colour"`},
		"bad type":          {"metrics:\n  - name: a\n    types: [tweet]\n    window: {size: 1m}\n", `unknown event type "tweet"`},
		"sum needs value":   {"metrics:\n  - name: a\n    aggregations: [sum]\n    window: {size: 1m}\n", "value: required"},
		"range on string":   {"metrics:\n  - name: a\n    where: [{field: page, gte: 3}]\n    window: {size: 1m}\n", "a range needs a numeric field"},
		"two predicates":    {"metrics:\n  - name: a\n    where: [{field: page, equals: x, prefix: y}]\n    window: {size: 1m}\n", "exactly one of"},
		"distinct no field": {"metrics:\n  - name: a\n    aggregations: [distinct]\n    window: {size: 1m}\n", "distinct:"},
		"session size":      {"metrics:\n  - name: a\n    window: {kind: session, gap: 1m, size: 1m}\n", "not for session windows"},
		"bad duration":      {"metrics:\n  - name: a\n    window: {size: soon}\n", "f.yaml"},
		"empty":             {"", "empty document"},
		"bad name":          {"metrics:\n  - name: Bad-Name\n    window: {size: 1m}\n", "does not match"},
	} {
		_, err := metrics.ParseDefinitions("f.yaml", []byte(tc.yaml))
		require.ErrorIs(t, err, metrics.ErrInvalidDefinition, name)
		require.ErrorContains(t, err, tc.want, name)
	}
}

func TestFilterPredicates(t *testing.T) {
	t.Parallel()
	defs, err := metrics.ParseDefinitions("f.yaml", []byte(`
metrics:
  - name: m
    types: [http_request]
    where:
      - {field: status, gte: 400, lt: 500}
      - {field: method, in: [GET, HEAD]}
      - {field: path, prefix: /api/}
      - {field: status_class, equals: 4xx}
    window: {size: 1m}
`))
	require.NoError(t, err)
	d := &defs[0]
	ok := events.Event{Type: events.TypeHTTPRequest, Status: 404, Method: "GET", Path: "/api/x"}
	require.True(t, d.Matches(&ok))
	for name, mut := range map[string]func(*events.Event){
		"type":   func(e *events.Event) { e.Type = events.TypeServiceRequest },
		"range":  func(e *events.Event) { e.Status = 500 },
		"in":     func(e *events.Event) { e.Method = "POST" },
		"prefix": func(e *events.Event) { e.Path = "/x/api/" },
	} {
		e := ok
		mut(&e)
		require.False(t, d.Matches(&e), name)
	}
}

// TestQuantileSketchAccuracy checks DDSketch's relative-error guarantee on
// 1M values of a heavy-tailed (log-normal) distribution, also after merging
// sketches of disjoint halves through their binary form.
func TestQuantileSketchAccuracy(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 1_000_000
	vals := make([]float64, n)
	a, b := metrics.NewQuantiles(), metrics.NewQuantiles()
	for i := range vals {
		vals[i] = math.Exp(rng.NormFloat64()*1.5 + 3) // latencies around 20 ms, tail to seconds
		if i%2 == 0 {
			a.Add(vals[i])
		} else {
			b.Add(vals[i])
		}
	}
	enc, err := b.MarshalBinary()
	require.NoError(t, err)
	b2, err := metrics.DecodeQuantiles(enc)
	require.NoError(t, err)
	require.NoError(t, a.Merge(b2))
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*n))-1]
		got := a.Quantile(q)
		require.LessOrEqual(t, math.Abs(got-exact)/exact, metrics.QuantileRelativeAccuracy, "q=%v exact=%v got=%v", q, exact, got)
	}
}

// TestDistinctSketchAccuracy checks the HyperLogLog estimate of 1M distinct
// values (and of a merge of two overlapping halves) against 3 standard
// errors, and small cardinalities against exactness ± 1%.
func TestDistinctSketchAccuracy(t *testing.T) {
	t.Parallel()
	a, b := metrics.NewDistinct(), metrics.NewDistinct()
	const n = 1_000_000
	for i := range n {
		k := fmt.Sprintf("user-%d", i)
		if i < 600_000 {
			a.Add(k)
		}
		if i >= 400_000 {
			b.Add(k)
		}
		if i%3 == 0 {
			a.Add(k) // repeats do not count
		}
	}
	enc, err := b.MarshalBinary()
	require.NoError(t, err)
	b2, err := metrics.DecodeDistinct(enc)
	require.NoError(t, err)
	require.NoError(t, a.Merge(b2))
	require.InEpsilon(t, n, float64(a.Estimate()), 3*metrics.DistinctRelativeError)

	small := metrics.NewDistinct()
	for i := range 1000 {
		small.Add(strings.Repeat("x", i%7) + fmt.Sprint(i))
	}
	require.InEpsilon(t, 1000, float64(small.Estimate()), 0.01)
}

func TestTopKExactBelowCapacityAndHeavyHittersAbove(t *testing.T) {
	t.Parallel()
	tk := metrics.NewTopK(30)
	rng := rand.New(rand.NewPCG(5, 6))
	exact := map[string]int64{}
	for range 100_000 {
		var k string
		if rng.IntN(2) == 0 {
			k = fmt.Sprintf("hot%d", rng.IntN(3)) // three heavy hitters, ~1/6 each
		} else {
			k = fmt.Sprintf("cold%d", rng.IntN(5000))
		}
		exact[k]++
		tk.Add(k)
	}
	top := tk.Top(3)
	require.Len(t, top, 3)
	for _, kc := range top {
		require.True(t, strings.HasPrefix(kc.Key, "hot"), kc.Key)
		require.GreaterOrEqual(t, kc.Count, exact[kc.Key], "space-saving overestimates")
		require.LessOrEqual(t, kc.Count-kc.Err, exact[kc.Key], "count − err is a lower bound")
	}
	small := metrics.NewTopK(10)
	for _, k := range []string{"a", "b", "a", "c", "a", "b"} {
		small.Add(k)
	}
	require.Equal(t, []metrics.KeyCount{{Key: "a", Count: 3}, {Key: "b", Count: 2}}, small.Top(2))
}

func TestMergePartials(t *testing.T) {
	t.Parallel()
	mk := func(shard int32, vals []float64, users []string, kind string) metrics.Result {
		q, d := metrics.NewQuantiles(), metrics.NewDistinct()
		r := metrics.Result{V: 1, Metric: "m", WindowStart: 0, WindowEnd: 60_000, Shard: shard, Kind: kind, Revision: 1, Agg: metrics.AggP50, Quantiles: map[string]float64{"p50": 0}}
		for i, v := range vals {
			q.Add(v)
			if i == 0 || v < r.Min {
				r.Min = v
			}
			r.Max = max(r.Max, v)
			r.Sum += v
			r.Count++
		}
		for _, u := range users {
			d.Add(u)
		}
		r.QuantileSketch, _ = q.MarshalBinary()
		r.DistinctSketch, _ = d.MarshalBinary()
		return r
	}
	m, err := metrics.MergePartials([]metrics.Result{
		mk(0, []float64{1, 2, 3}, []string{"a", "b"}, metrics.KindFinal),
		mk(1, []float64{100, 200, 300, 400}, []string{"b", "c"}, metrics.KindRevised),
	})
	require.NoError(t, err)
	require.EqualValues(t, 7, m.Count)
	require.InDelta(t, 1006.0, m.Sum, 1e-9)
	require.InDelta(t, 1.0, m.Min, 0)
	require.InDelta(t, 400.0, m.Max, 0)
	require.InEpsilon(t, 100, m.Value, metrics.QuantileRelativeAccuracy, "median of 1,2,3,100,200,300,400")
	require.InDelta(t, 3.0, m.Distinct, 0)
	require.Equal(t, metrics.KindRevised, m.Kind)
	require.True(t, m.Complete)

	other := mk(2, []float64{1}, nil, metrics.KindFinal)
	other.WindowStart = 1
	_, err = metrics.MergePartials([]metrics.Result{mk(0, []float64{1}, nil, metrics.KindFinal), other})
	require.ErrorIs(t, err, metrics.ErrNotMergeable)
}

// TestDistinctDensify: a sparse sketch past the size limit is encoded dense
// (16 KiB of registers), estimates within the stated error before and after,
// keeps counting, and decodes to the same estimate; a small one stays
// sparse and unchanged.
func TestDistinctDensify(t *testing.T) {
	t.Parallel()
	d := metrics.NewDistinct()
	for i := range 3000 {
		d.Add(fmt.Sprint("u", i))
	}
	sparse, err := d.MarshalBinaryDensify(1 << 20)
	require.NoError(t, err)
	require.Less(t, len(sparse), 16_384, "below the limit: still sparse")
	require.InEpsilon(t, 3000, float64(d.Estimate()), 3*metrics.DistinctRelativeError)

	dense, err := d.MarshalBinaryDensify(100)
	require.NoError(t, err)
	require.Greater(t, len(dense), 16_384, "past the limit: 16 KiB of dense registers")
	same, err := d.MarshalBinaryDensify(100)
	require.NoError(t, err)
	require.Equal(t, dense, same, "a dense sketch stays as it is")
	require.InEpsilon(t, 3000, float64(d.Estimate()), 3*metrics.DistinctRelativeError)
	for i := range 100_000 {
		d.Add(fmt.Sprint("u", i))
	}
	require.InEpsilon(t, 100_000, float64(d.Estimate()), 3*metrics.DistinctRelativeError)
	again, err := d.MarshalBinaryDensify(0)
	require.NoError(t, err)
	back, err := metrics.DecodeDistinct(again)
	require.NoError(t, err)
	require.Equal(t, d.Estimate(), back.Estimate())
}

// TestTopKAllRestores: the unsorted All, fed back with AddCount, restores a
// table that reports the same top keys and then evicts the same key.
func TestTopKAllRestores(t *testing.T) {
	t.Parallel()
	a := metrics.NewTopK(8)
	for i := range 200 {
		a.Add(fmt.Sprint("k", i%13, "-", i%3))
	}
	b := metrics.NewTopK(8)
	for kc := range a.All() {
		b.AddCount(kc.Key, kc.Count, kc.Err)
	}
	require.Equal(t, a.Entries(), b.Entries())
	a.Add("new")
	b.Add("new")
	require.Equal(t, a.Entries(), b.Entries())
}

// TestLabelsOfKeyInvertsAppendGroupKey: for every built-in definition and
// events of every kind (empty values included), the labels rebuilt from
// the group key equal Labels of the event.
func TestLabelsOfKeyInvertsAppendGroupKey(t *testing.T) {
	t.Parallel()
	defs, err := metrics.Defaults()
	require.NoError(t, err)
	multi, err := metrics.ParseDefinitions("f.yaml", []byte(`
metrics:
  - name: by_three
    group_by: [service, status_class, client_ip]
    window: {size: 1m}
`))
	require.NoError(t, err)
	defs = append(defs, multi...)
	evs := []events.Event{
		{V: 1, ID: "a", Type: events.TypeHTTPRequest, Time: 1, ClientIP: "10.0.0.1", Method: "GET", Path: "/x", Status: 503, Bytes: 5},
		{V: 1, ID: "b", Type: events.TypeServiceRequest, Time: 1, Service: "pay", Endpoint: "/api", Status: 200, LatencyMs: 3},
		{V: 1, ID: "c", Type: events.TypePurchase, Time: 1, UserID: "u1", Page: "/p", ProductID: "prod-1", Amount: 2},
		{V: 1, ID: "d", Type: events.TypePageView, Time: 1, UserID: "", Page: ""},
	}
	groups := 0
	for i := range defs {
		d := &defs[i]
		for j := range evs {
			key := string(d.AppendGroupKey(nil, &evs[j]))
			require.Equal(t, d.Labels(&evs[j]), d.LabelsOfKey(key), "%s, event %s", d.Name, evs[j].ID)
			if len(d.GroupBy) > 1 {
				groups++
			}
		}
	}
	require.Positive(t, groups, "some definition groups by several fields")
}
