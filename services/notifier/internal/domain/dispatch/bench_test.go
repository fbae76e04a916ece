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
