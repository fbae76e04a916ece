package metrics_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

func TestEnrichedFieldsGroupAndFilter(t *testing.T) {
	t.Parallel()
	defs, err := metrics.ParseDefinitions("join.yaml", []byte(`metrics:
  - name: purchases_by_segment
    types: [purchase]
    where:
      - {field: product.category, in: [books, games]}
      - {field: user.plan, equals: pro}
    group_by: [user.segment, user.country]
    value: amount
    aggregations: [sum]
    window: {kind: tumbling, size: 1m}
  - name: requests_by_team
    group_by: [service.team, service.tier, client.country]
    window: {kind: tumbling, size: 1m}
`))
	require.NoError(t, err)
	d := defs[0]
	require.True(t, d.UsesEnrichedFields())
	require.False(t, d.Complete(), "a segment's events are spread over every shard")

	e := events.Event{Type: events.TypePurchase, UserID: "u1", Amount: 3, Enriched: events.Enrichment{
		UserSegment: "gold", UserPlan: "pro", UserCountry: "DE", ProductCategory: "books",
	}}
	require.True(t, d.Matches(&e))
	require.Equal(t, map[string]string{"user_segment": "gold", "user_country": "DE"}, d.Labels(&e))
	require.Equal(t, "gold\x00DE\x00", string(d.AppendGroupKey(nil, &e)))

	e.Enriched.ProductCategory = "" // unknown product: filtered out
	require.False(t, d.Matches(&e))
	e.Enriched = events.Enrichment{} // unknown user and product
	require.False(t, d.Matches(&e))

	s := events.Event{Type: events.TypeServiceRequest, Enriched: events.Enrichment{ServiceTeam: "payments", ServiceTier: "1", ClientCountry: "US"}}
	require.Equal(t, map[string]string{"service_team": "payments", "service_tier": "1", "client_country": "US"}, defs[1].Labels(&s))
	require.Equal(t, "payments\x001\x00US\x00", string(defs[1].AppendGroupKey(nil, &s)))
	require.Equal(t, "payments", metrics.Field(&s, "service.team"))
}

func TestEnrichedFieldNamesAreValidatedAtParse(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ yaml, want string }{
		"group_by typo": {"metrics:\n  - name: a\n    group_by: [user.segmnt]\n    window: {size: 1m}\n", `group_by: unknown field "user.segmnt"`},
		"where typo":    {"metrics:\n  - name: a\n    where: [{field: product.categry, equals: x}]\n    window: {size: 1m}\n", `unknown field "product.categry"`},
		"range on text": {"metrics:\n  - name: a\n    where: [{field: service.tier, gte: 1}]\n    window: {size: 1m}\n", `field "service.tier": a range needs a numeric field`},
		"as value":      {"metrics:\n  - name: a\n    value: user.segment\n    aggregations: [sum]\n    window: {size: 1m}\n", `user.segment`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := metrics.ParseDefinitions("f.yaml", []byte(tc.yaml))
			require.ErrorIs(t, err, metrics.ErrInvalidDefinition)
			require.ErrorContains(t, err, tc.want)
		})
	}
	for _, f := range metrics.EnrichedFields {
		require.True(t, metrics.IsEnrichedField(f), f)
		require.Regexp(t, metrics.NameRe, metrics.LabelName(f))
	}
	require.False(t, metrics.IsEnrichedField("user_id"))
}
