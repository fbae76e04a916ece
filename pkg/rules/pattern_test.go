package rules_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

const sec = int64(1000)

func ev(id string, typ events.Type, user string, t int64) *events.Event {
	return &events.Event{V: 1, ID: id, Type: typ, UserID: user, Key: user, Time: t}
}

// feed applies events one by one, advancing the watermark (no
// out-of-orderness) after each, and returns every change.
func feed(st *rules.EventState, s *rules.Set, evs ...*events.Event) []alerts.Alert {
	var out []alerts.Alert
	for _, e := range evs {
		out = append(out, st.Apply(s, e)...)
		out = append(out, st.Advance(s, 0)...)
	}
	return out
}

func TestSequenceWindowEdges(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: buy, kind: sequence, events: [add_cart, purchase], within: 60s}\n")
	// B exactly T after A matches (within is inclusive).
	st := rules.NewEventState()
	out := feed(st, s, ev("a", events.TypeAddCart, "u1", 1000), ev("b", events.TypePurchase, "u1", 1000+60*sec))
	require.Equal(t, []string{alerts.StateFiring, alerts.StateResolved}, states(out))
	require.Equal(t, []string{"a", "b"}, out[0].EventIDs)
	require.Equal(t, "u1", out[0].Labels["entity"])
	require.Equal(t, int64(1000), out[0].StartsAt)
	require.Equal(t, 1000+60*sec, out[1].EndsAt)
	// One millisecond later does not.
	st = rules.NewEventState()
	require.Empty(t, feed(st, s, ev("a", events.TypeAddCart, "u1", 1000), ev("b", events.TypePurchase, "u1", 1001+60*sec)))
	// B before A, or another entity's B, does not.
	st = rules.NewEventState()
	require.Empty(t, feed(st, s, ev("b", events.TypePurchase, "u1", 500), ev("a", events.TypeAddCart, "u1", 1000), ev("c", events.TypePurchase, "u2", 2000)))
	// The A is consumed: a second B needs a new A.
	st = rules.NewEventState()
	out = feed(st, s, ev("a", events.TypeAddCart, "u1", 0), ev("b", events.TypePurchase, "u1", sec), ev("c", events.TypePurchase, "u1", 2*sec))
	require.Len(t, out, 2)
	require.Empty(t, st.Partials)
}

func TestRepetitionWindowEdgesAndBy(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: triple, kind: repetition, events: [click], count: 3, within: 60s, by: [page]}\n")
	click := func(id, page string, t int64) *events.Event {
		e := ev(id, events.TypeClick, "u1", t)
		e.Page = page
		return e
	}
	st := rules.NewEventState()
	out := feed(st, s, click("1", "/a", 0), click("2", "/a", 30*sec), click("3", "/a", 60*sec))
	require.Equal(t, []string{alerts.StateFiring, alerts.StateResolved}, states(out))
	require.Equal(t, "/a", out[0].Labels["page"])
	require.InDelta(t, 3, out[0].Value, 0)
	// Spread over 60.001 s: no match; different pages: no match.
	st = rules.NewEventState()
	require.Empty(t, feed(st, s, click("1", "/a", 0), click("2", "/a", 30*sec), click("3", "/a", 60*sec+1)))
	st = rules.NewEventState()
	require.Empty(t, feed(st, s, click("1", "/a", 0), click("2", "/b", sec), click("3", "/a", 2*sec)))
}

func TestNegationFiresOnWatermark(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: abandoned, kind: negation, events: [add_cart, purchase], within: 30m}\n")
	min30 := 30 * 60 * sec
	st := rules.NewEventState()
	require.Empty(t, feed(st, s, ev("a", events.TypeAddCart, "u1", 0)))
	// Another entity's events move the watermark to exactly the deadline:
	// not yet (B may still come at the deadline).
	require.Empty(t, feed(st, s, ev("x", events.TypePageView, "u2", min30)))
	out := feed(st, s, ev("y", events.TypePageView, "u2", min30+1))
	require.Equal(t, []string{alerts.StateFiring, alerts.StateResolved}, states(out))
	require.Equal(t, int64(0), out[0].StartsAt)
	require.Equal(t, min30, out[1].EndsAt)
	require.Equal(t, []string{"a"}, out[0].EventIDs)

	// Followed at the deadline: no alert, ever.
	st = rules.NewEventState()
	require.Empty(t, feed(st, s, ev("a", events.TypeAddCart, "u1", 0), ev("b", events.TypePurchase, "u1", min30), ev("z", events.TypePageView, "u2", 10*min30)))

	// Out-of-orderness delays the decision.
	st = rules.NewEventState()
	st.Apply(s, ev("a", events.TypeAddCart, "u1", 0))
	st.Apply(s, ev("y", events.TypePageView, "u2", min30+5*sec))
	require.Empty(t, st.Advance(s, 10*sec))
	st.Apply(s, ev("b", events.TypePurchase, "u1", min30-sec)) // late but within out-of-orderness
	require.Empty(t, st.Advance(s, 10*sec))
	require.Empty(t, st.Partials)
}

func TestEventAbsence(t *testing.T) {
	t.Parallel()
	s := set(t, "rules:\n  - {name: no_heartbeat, kind: absence, events: [{type: service_request, match: {endpoint: /health}}], for: 1m}\n")
	hb := func(id string, t int64) *events.Event {
		return &events.Event{V: 1, ID: id, Type: events.TypeServiceRequest, Service: "api", Key: "api", Endpoint: "/health", Status: 200, Time: t}
	}
	other := &events.Event{V: 1, ID: "o", Type: events.TypeServiceRequest, Service: "db", Key: "db", Endpoint: "/q", Status: 200, Time: 61 * sec}
	st := rules.NewEventState()
	require.Empty(t, feed(st, s, hb("1", 0)))
	out := feed(st, s, other)
	require.Equal(t, []string{alerts.StateFiring}, states(out))
	require.Equal(t, "api", out[0].Labels["entity"])
	out = feed(st, s, hb("2", 90*sec))
	require.Equal(t, []string{alerts.StateResolved}, states(out))
}
