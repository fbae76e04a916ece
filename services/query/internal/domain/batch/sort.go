package batch

import (
	"cmp"
	"slices"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

func sortDivergences(d []Divergence) {
	slices.SortFunc(d, func(a, b Divergence) int {
		return cmp.Or(cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End),
			cmp.Compare(metrics.LabelsKey(a.Labels), metrics.LabelsKey(b.Labels)))
	})
}
