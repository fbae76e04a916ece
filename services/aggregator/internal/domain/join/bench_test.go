package join_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/profiles"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
)

const benchProfiles = 1_000_000

// benchTable returns a table of 1,000,000 profiles: 900,000 users (8
// segments, 3 plans, 20 countries), 99,000 products (40 categories) and
// 1,000 services, plus the heap it took in bytes.
func benchTable(b *testing.B) (*join.Table, uint64) {
	b.Helper()
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	tab := join.NewTable(0)
	rng := rand.New(rand.NewPCG(1, 2))
	countries := []string{"DE", "FR", "US", "NL", "GB", "ES", "IT", "PL", "SE", "NO", "DK", "FI", "AT", "CH", "BE", "CZ", "PT", "IE", "JP", "BR"}
	for i := 0; i < benchProfiles; i++ {
		var p profiles.Profile
		switch {
		case i < 900_000:
			p = profiles.Profile{Type: profiles.TypeUser, ID: "u" + strconv.Itoa(i), Segment: "seg" + strconv.Itoa(rng.IntN(8)),
				Plan: []string{"free", "pro", "team"}[rng.IntN(3)], Country: countries[rng.IntN(len(countries))]}
		case i < 999_000:
			p = profiles.Profile{Type: profiles.TypeProduct, ID: "p" + strconv.Itoa(i), Category: "cat" + strconv.Itoa(rng.IntN(40)), Price: 9.5}
		default:
			p = profiles.Profile{Type: profiles.TypeService, ID: "svc" + strconv.Itoa(i), Team: "team" + strconv.Itoa(rng.IntN(30)), Tier: strconv.Itoa(rng.IntN(3))}
		}
		p.V = profiles.SchemaVersion
		v, err := profiles.Encode(&p)
		if err != nil {
			b.Fatal(err)
		}
		if err := tab.Apply(int32(i%6), int64(i/6), p.Key(), v); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	return tab, m1.HeapAlloc - m0.HeapAlloc
}

// BenchmarkEnrich is the join's cost per event with 1,000,000 profiles in
// the table: 500-event batches as the aggregator enriches them (behaviour
// events with a user, half with a product, 10% unknown users; service
// requests; access-log requests with a client IP looked up in the sample
// IP ranges). It reports ns/event, events per CPU second (the machine is
// shared), the table's heap per profile and its own estimate.
func BenchmarkEnrich(b *testing.B) {
	tab, heap := benchTable(b)
	j := join.NewJoiner(join.Settings{Table: tab, GeoIP: loadSample(b)})
	rng := rand.New(rand.NewPCG(3, 4))
	const batch = 500
	evs := make([]events.Event, batch)
	for i := range evs {
		switch i % 10 {
		case 8:
			evs[i] = events.Event{Type: events.TypeServiceRequest, Service: "svc" + strconv.Itoa(999_000+rng.IntN(1000))}
		case 9:
			evs[i] = events.Event{Type: events.TypeHTTPRequest, ClientIP: []string{"203.0.113.7", "66.249.73.135", "8.8.8.8", "2001:db8::1"}[rng.IntN(4)]}
		default:
			u := rng.IntN(1_000_000) // 10% beyond the 900,000 users
			evs[i] = events.Event{Type: events.TypePageView, UserID: "u" + strconv.Itoa(u)}
			if i%2 == 0 {
				evs[i].ProductID = "p" + strconv.Itoa(900_000+rng.IntN(99_000))
			}
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if err := j.Enrich(ctx, 0, evs); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
	b.ReportMetric(float64(b.N*batch)/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(heap)/benchProfiles, "heap-B/profile")
	b.ReportMetric(float64(tab.Stats().Bytes)/benchProfiles, "gauge-B/profile")
}

// cpuTime returns the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
