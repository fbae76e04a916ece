package dispatch_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// BenchmarkAlertInto1000Groups measures applying one firing alert and one
// flush step with 1000 open groups (group_by client_ip).
func BenchmarkAlertInto1000Groups(b *testing.B) {
	d, err := dispatch.New(dispatch.Config{
		Route: &dispatch.Route{ID: "0", Receiver: "team", GroupBy: []string{"client_ip"},
			GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour},
		SendResolved: map[string]bool{"team": true},
	})
	if err != nil {
		b.Fatal(err)
	}
	st := dispatch.NewState()
	mk := func(i int) alerts.Alert {
		labels := map[string]string{"alertname": "burst", "client_ip": "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)}
		return alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("burst", labels), Rule: "burst", State: "firing",
			Labels: labels, StartsAt: t0 + int64(i)}
	}
	for i := range 1000 {
		d.Alert(st, mk(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d.Alert(st, mk(1000+i%1000))
	}
}

// BenchmarkAlertWithHistory measures applying one alert state change (a
// new episode of one of 3,000 label sets of 5 rules, grouped by alertname)
// to a state that remembers 10,000 other alerts that left their groups
// (the dedup history of 7 days): the cost per record of a minute
// boundary's burst in devstack/bench.
func BenchmarkAlertWithHistory(b *testing.B) {
	d, err := dispatch.New(dispatch.Config{
		Route: &dispatch.Route{ID: "0", Receiver: "team", GroupBy: []string{"alertname"},
			GroupInterval: time.Minute, RepeatInterval: 4 * time.Hour},
		SendResolved: map[string]bool{"team": false},
	})
	if err != nil {
		b.Fatal(err)
	}
	st := dispatch.NewState()
	mk := func(i int, starts int64, state string) alerts.Alert {
		rule := "storm_" + strconv.Itoa(i%5)
		labels := map[string]string{"alertname": rule, "client_ip": "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)}
		a := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint(rule, labels), Rule: rule, State: state,
			Labels: labels, StartsAt: starts}
		if state == alerts.StateResolved {
			a.EndsAt = starts + 1000
		}
		return a
	}
	for i := range 10_000 { // history: fired and resolved, flushed out of their groups
		d.Alert(st, mk(100_000+i, t0, alerts.StateFiring))
	}
	for i := range 10_000 {
		d.Alert(st, mk(100_000+i, t0, alerts.StateResolved))
	}
	d.Advance(st, t0+2*time.Minute.Milliseconds())
	for i := range 3000 {
		d.Alert(st, mk(i, st.Now, alerts.StateFiring))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d.Alert(st, mk(i%3000, st.Now+int64(i/3000+1), alerts.StateFiring))
	}
}
