package rules_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

// The backtest gives the alerts the live path gives on the same history,
// whatever the order the history is read in.
func TestBacktestMatchesLive(t *testing.T) {
	t.Parallel()
	s := set(t, `rules:
  - {name: busy, metric: requests_by_client, op: ">", threshold: 100}
  - {name: abandoned, kind: negation, events: [add_cart, purchase], within: 1m}
`)
	ip := func(v string) map[string]string { return map[string]string{"client_ip": v} }
	pts := []rules.Point{*win("requests_by_client", ip("b"), 3, 120), *win("requests_by_client", ip("a"), 1, 150), *win("requests_by_client", ip("a"), 2, 5)}
	evs := []events.Event{*ev("p", events.TypePurchase, "u2", 20*sec), *ev("c", events.TypeAddCart, "u1", 0), *ev("d", events.TypeAddCart, "u2", 10*sec), *ev("x", events.TypePageView, "u3", 200*sec)}
	got := rules.Backtest(s, pts, evs, 0)
	var names []string
	for _, a := range got {
		names = append(names, a.Rule+":"+a.State+":"+a.Labels["client_ip"]+a.Labels["entity"])
	}
	require.Equal(t, []string{
		"busy:firing:a", "busy:resolved:a", "busy:firing:b",
		"abandoned:firing:u1", "abandoned:resolved:u1",
	}, names)
	require.Equal(t, alerts.StateResolved, got[1].State)
}
