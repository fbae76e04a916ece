package window

import "errors"

// MaxTopN bounds the n of a top-N query.
const MaxTopN = 1000

// TopKQuery asks for the n values of label By with the largest value of a
// metric, summed over the windows starting in [From, To) (latest revision
// of each, all shards, all other labels), after Filters. Build it with
// NewTopKQuery; the zero value is not valid.
type TopKQuery struct {
	metric  string
	by      string
	from    int64
	to      int64
	n       int
	filters []Filter
}

// NewTopKQuery validates a top-N query: metric and by are names, 0 <= from <
// to <= MaxTimeMs, 1 <= n <= MaxTopN, filters as for NewSeriesQuery. Every
// problem is reported, joined; each is a *ParamError.
func NewTopKQuery(metric, by string, from, to int64, n int, filters []Filter) (TopKQuery, error) {
	var errs []error
	errs = append(errs, CheckMetric(metric), checkName("by", by), CheckRange(from, to))
	if n < 1 || n > MaxTopN {
		errs = append(errs, InvalidParam("n", "%d is outside 1..%d", n, MaxTopN))
	}
	merged, err := mergeFilters(filters)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return TopKQuery{}, err
	}
	return TopKQuery{metric: metric, by: by, from: from, to: to, n: n, filters: merged}, nil
}

// CheckRange validates a [from, to) range in ms: both within
// 0..MaxTimeMs and from < to; errors name "from" and "to".
func CheckRange(from, to int64) error {
	var errs []error
	if from < 0 || from > MaxTimeMs {
		errs = append(errs, InvalidParam("from", "%d ms is outside 1970-01-01..2106-02-07", from))
	}
	if to < 0 || to > MaxTimeMs {
		errs = append(errs, InvalidParam("to", "%d ms is outside 1970-01-01..2106-02-07", to))
	}
	if from >= to {
		errs = append(errs, InvalidParam("to", "must be after from (from=%d, to=%d)", from, to))
	}
	return errors.Join(errs...)
}

// Metric is the metric name.
func (q TopKQuery) Metric() string { return q.metric }

// By is the label whose values are ranked.
func (q TopKQuery) By() string { return q.by }

// From is the range start, ms (inclusive).
func (q TopKQuery) From() int64 { return q.from }

// To is the range end, ms (exclusive).
func (q TopKQuery) To() int64 { return q.to }

// N is how many label values to return.
func (q TopKQuery) N() int { return q.n }

// Filters are the label filters, one per label.
func (q TopKQuery) Filters() []Filter { return q.filters }

// TopKEntry is one ranked label value with its summed value and the number
// of events counted (sum of the windows' counts).
type TopKEntry struct {
	Key   string
	Value float64
	Count int64
}
