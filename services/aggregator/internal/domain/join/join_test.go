package join_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/profiles"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
)

// rec encodes p as a profiles record value.
func rec(t testing.TB, p profiles.Profile) []byte {
	t.Helper()
	p.V = profiles.SchemaVersion
	b, err := profiles.Encode(&p)
	require.NoError(t, err)
	return b
}

func user(id, segment, plan, country string) profiles.Profile {
	return profiles.Profile{Type: profiles.TypeUser, ID: id, Segment: segment, Plan: plan, Country: country}
}

func TestEnrichSeesTheVersionOfItsProcessing(t *testing.T) {
	t.Parallel()
	tab := join.NewTable(0)
	j := join.NewJoiner(join.Settings{Table: tab})
	ctx := context.Background()

	require.NoError(t, tab.Apply(0, 0, "user/u1", rec(t, user("u1", "free", "basic", "DE"))))
	require.NoError(t, tab.Apply(1, 0, "product/p1", rec(t, profiles.Profile{Type: profiles.TypeProduct, ID: "p1", Category: "books", Price: 3})))
	require.NoError(t, tab.Apply(2, 0, "service/checkout", rec(t, profiles.Profile{Type: profiles.TypeService, ID: "checkout", Team: "payments", Tier: "1"})))

	before := []events.Event{
		{Type: events.TypePurchase, UserID: "u1", ProductID: "p1"},
		{Type: events.TypeServiceRequest, Service: "checkout"},
	}
	require.NoError(t, j.Enrich(ctx, 0, before))
	require.Equal(t, events.Enrichment{UserSegment: "free", UserPlan: "basic", UserCountry: "DE", ProductCategory: "books"}, before[0].Enriched)
	require.Equal(t, events.Enrichment{ServiceTeam: "payments", ServiceTier: "1"}, before[1].Enriched)

	// The update: events after it see the new version, those before keep
	// what they saw.
	require.NoError(t, tab.Apply(0, 1, "user/u1", rec(t, user("u1", "gold", "pro", ""))))
	after := []events.Event{{Type: events.TypePageView, UserID: "u1"}}
	require.NoError(t, j.Enrich(ctx, 0, after))
	require.Equal(t, events.Enrichment{UserSegment: "gold", UserPlan: "pro"}, after[0].Enriched)
	require.Equal(t, "free", before[0].Enriched.UserSegment)

	// A tombstone removes the attributes.
	require.NoError(t, tab.Apply(0, 2, "user/u1", nil))
	gone := []events.Event{{Type: events.TypePageView, UserID: "u1", Enriched: events.Enrichment{UserSegment: "stale"}}}
	require.NoError(t, j.Enrich(ctx, 0, gone))
	require.Equal(t, events.Enrichment{}, gone[0].Enriched)

	st := j.Stats()
	require.Equal(t, int64(3), st.UserLookups)
	require.Equal(t, int64(1), st.UserMisses)
	require.Equal(t, int64(1), st.ProductLookups)
	require.Equal(t, int64(0), st.ProductMisses)
	require.Equal(t, 2, st.Table.Entries)
	require.Equal(t, int64(1), st.Table.Tombstones)
	require.Equal(t, map[int32]int64{0: 3, 1: 1, 2: 1}, tab.Positions())
}

func TestUnknownProfilesPassThroughAndAreCounted(t *testing.T) {
	t.Parallel()
	tab := join.NewTable(0)
	require.NoError(t, tab.Apply(0, 0, "user/known", rec(t, user("known", "gold", "", ""))))
	j := join.NewJoiner(join.Settings{Table: tab, GeoIP: loadSample(t)})
	evs := []events.Event{
		{ID: "a", Type: events.TypePageView, UserID: "known"},
		{ID: "b", Type: events.TypePageView, UserID: "stranger", ProductID: "nope"},
		{ID: "c", Type: events.TypeServiceRequest, Service: "unknown-svc"},
		{ID: "d", Type: events.TypeHTTPRequest, ClientIP: "203.0.113.9"},
		{ID: "e", Type: events.TypeHTTPRequest, ClientIP: "8.8.8.8"},
	}
	require.NoError(t, j.Enrich(context.Background(), 3, evs))
	require.Len(t, evs, 5, "nothing is dropped")
	require.Equal(t, "gold", evs[0].Enriched.UserSegment)
	require.Equal(t, events.Enrichment{}, evs[1].Enriched)
	require.Equal(t, events.Enrichment{}, evs[2].Enriched)
	require.Equal(t, "NL", evs[3].Enriched.ClientCountry)
	require.Empty(t, evs[4].Enriched.ClientCountry)
	st := j.Stats()
	require.Equal(t, join.Stats{
		Table:       st.Table,
		UserLookups: 2, UserMisses: 1, ProductLookups: 1, ProductMisses: 1,
		ServiceLookups: 1, ServiceMisses: 1, IPLookups: 2, IPMisses: 1,
	}, st)
}

func TestTableIsBoundedIdempotentAndSkipsPoison(t *testing.T) {
	t.Parallel()
	tab := join.NewTable(2)
	require.NoError(t, tab.Apply(0, 0, "user/a", rec(t, user("a", "s1", "", ""))))
	require.NoError(t, tab.Apply(0, 1, "user/b", rec(t, user("b", "s1", "", ""))))
	require.NoError(t, tab.Apply(0, 2, "user/c", rec(t, user("c", "s2", "", "")))) // refused: full
	require.NoError(t, tab.Apply(0, 3, "user/a", rec(t, user("a", "s3", "", "")))) // updates still apply
	st := tab.Stats()
	require.Equal(t, 2, st.Entries)
	require.Equal(t, int64(1), st.Overflow)
	require.Positive(t, st.Bytes)

	// A redelivered (older) record changes nothing.
	require.NoError(t, tab.Apply(0, 0, "user/a", rec(t, user("a", "old", "", ""))))
	j := join.NewJoiner(join.Settings{Table: tab})
	evs := []events.Event{{UserID: "a"}, {UserID: "c"}}
	require.NoError(t, j.Enrich(context.Background(), 0, evs))
	require.Equal(t, "s3", evs[0].Enriched.UserSegment)
	require.Empty(t, evs[1].Enriched.UserSegment)

	// Poison: an error naming the record, the position moves on.
	for i, bad := range []struct {
		key   string
		value []byte
	}{
		{"nokey", rec(t, user("x", "", "", ""))},
		{"user/x", []byte("{not json")},
		{"user/x", rec(t, user("y", "", "", ""))},
		{"shop/x", nil},
	} {
		err := tab.Apply(1, int64(i), bad.key, bad.value)
		require.ErrorIs(t, err, profiles.ErrInvalid, bad.key)
		require.ErrorContains(t, err, "profiles record 1/")
	}
	require.Equal(t, int64(4), tab.Positions()[1])
}

type ends struct {
	end map[int32]int64
	err error
}

func (e ends) HighWatermarks(context.Context) (map[int32]int64, error) { return e.end, e.err }

func TestBarrierWaitsForTheTableAfterALoad(t *testing.T) {
	t.Parallel()
	tab := join.NewTable(0)
	j := join.NewJoiner(join.Settings{Table: tab, Ends: ends{end: map[int32]int64{0: 2, 1: 0}}, BarrierTimeout: 5 * time.Second})
	ctx := context.Background()

	// Without a load there is no barrier.
	require.NoError(t, j.Enrich(ctx, 7, []events.Event{{UserID: "u"}}))

	j.Loaded(7)
	done := make(chan []events.Event)
	go func() {
		evs := []events.Event{{UserID: "u"}}
		require.NoError(t, j.Enrich(ctx, 7, evs))
		done <- evs
	}()
	require.NoError(t, tab.Apply(0, 0, "user/u", rec(t, user("u", "v1", "", ""))))
	select {
	case <-done:
		t.Fatal("Enrich returned before the table reached the end offsets")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, tab.Apply(0, 1, "user/u", rec(t, user("u", "v2", "", ""))))
	evs := <-done
	require.Equal(t, "v2", evs[0].Enriched.UserSegment, "a reloaded partition sees at least what existed at its load")
}

func TestBarrierFailsTransiently(t *testing.T) {
	t.Parallel()
	tab := join.NewTable(0)
	j := join.NewJoiner(join.Settings{Table: tab, Ends: ends{end: map[int32]int64{0: 5}}, BarrierTimeout: 20 * time.Millisecond})
	j.Loaded(1)
	err := j.Enrich(context.Background(), 1, []events.Event{{UserID: "u"}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "join barrier of partition 1")

	boom := errors.New("broker down")
	j = join.NewJoiner(join.Settings{Table: tab, Ends: ends{err: boom}})
	j.Loaded(1)
	require.ErrorIs(t, j.Enrich(context.Background(), 1, nil), boom)
}
