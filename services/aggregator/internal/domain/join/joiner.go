package join

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// HighWatermarks returns the end offset (the offset the next record will
// get) of every partition of the profiles topic. The Kafka adapter
// implements it; the package that uses it declares it.
type HighWatermarks interface {
	HighWatermarks(ctx context.Context) (map[int32]int64, error)
}

// Settings configure a Joiner.
type Settings struct {
	// Table is the profiles table the adapter keeps up to date.
	Table *Table
	// GeoIP maps client IPs to countries; nil leaves client.country empty.
	GeoIP *GeoIP
	// Ends supplies the profiles topic's end offsets for the catch-up
	// barrier; nil disables the barrier (tests that fill the table first).
	Ends HighWatermarks
	// BarrierTimeout bounds one wait of the barrier; after it Enrich fails
	// with a transient error and the record is redelivered. <= 0: 30 s.
	BarrierTimeout time.Duration
}

// Joiner enriches events of events.raw partitions with the table's
// profiles and the client IP's country (events.Event.Enriched).
//
// Guarantee (docs/join.md): the profile versions a partition's events see
// never go back, across restarts, crashes and rebalances. Every time a
// partition's state is (re)loaded (Loaded), its next Enrich first waits
// until the table has read the profiles topic up to the end offsets of that
// moment, so it sees at least every version any earlier owner of the
// partition could have seen. Safe for concurrent use by the partitions of
// one instance.
type Joiner struct {
	s Settings

	mu      sync.Mutex
	pending map[int32]bool // partitions loaded since their last barrier

	users, products, services, ips lookupCounter
}

type lookupCounter struct{ lookups, misses atomic.Int64 }

// NewJoiner returns a Joiner over s.Table.
func NewJoiner(s Settings) *Joiner {
	if s.BarrierTimeout <= 0 {
		s.BarrierTimeout = 30 * time.Second
	}
	return &Joiner{s: s, pending: map[int32]bool{}}
}

// Table returns the joiner's table.
func (j *Joiner) Table() *Table { return j.s.Table }

// Loaded records that partition's state was (re)loaded from its checkpoint:
// its next Enrich waits for the table to catch up first.
func (j *Joiner) Loaded(partition int32) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending[partition] = true
}

// Enrich sets evs[i].Enriched from the table as it is now (one consistent
// version for the whole batch: the table does not change during the call)
// and the IP ranges. Events whose user, product or service has no profile
// (or whose client IP is in no range) keep empty fields and are counted
// (Stats). It returns an error only when the catch-up barrier after a load
// could not complete (no end offsets, or the table did not reach them
// within BarrierTimeout): a transient error, the record is redelivered.
func (j *Joiner) Enrich(ctx context.Context, partition int32, evs []events.Event) error {
	if err := j.barrier(ctx, partition); err != nil {
		return err
	}
	var users, products, services, ips [2]int64 // lookups, misses
	t := j.s.Table
	t.mu.RLock()
	um, pm, sm := t.byType[0], t.byType[1], t.byType[2]
	for i := range evs {
		e := &evs[i]
		e.Enriched = events.Enrichment{}
		if e.UserID != "" {
			users[0]++
			if a, ok := um[e.UserID]; ok {
				e.Enriched.UserSegment, e.Enriched.UserPlan, e.Enriched.UserCountry = t.values[a[0]], t.values[a[1]], t.values[a[2]]
			} else {
				users[1]++
			}
		}
		if e.ProductID != "" {
			products[0]++
			if a, ok := pm[e.ProductID]; ok {
				e.Enriched.ProductCategory = t.values[a[0]]
			} else {
				products[1]++
			}
		}
		if e.Service != "" {
			services[0]++
			if a, ok := sm[e.Service]; ok {
				e.Enriched.ServiceTeam, e.Enriched.ServiceTier = t.values[a[0]], t.values[a[1]]
			} else {
				services[1]++
			}
		}
	}
	t.mu.RUnlock()
	if g := j.s.GeoIP; g != nil {
		for i := range evs {
			if ip := evs[i].ClientIP; ip != "" {
				ips[0]++
				if evs[i].Enriched.ClientCountry = g.Country(ip); evs[i].Enriched.ClientCountry == "" {
					ips[1]++
				}
			}
		}
	}
	for _, c := range [...]struct {
		c *lookupCounter
		n [2]int64
	}{{&j.users, users}, {&j.products, products}, {&j.services, services}, {&j.ips, ips}} {
		if c.n[0] > 0 {
			c.c.lookups.Add(c.n[0])
			c.c.misses.Add(c.n[1])
		}
	}
	return nil
}

func (j *Joiner) barrier(ctx context.Context, partition int32) error {
	j.mu.Lock()
	pending := j.pending[partition]
	j.mu.Unlock()
	if !pending || j.s.Ends == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, j.s.BarrierTimeout)
	defer cancel()
	end, err := j.s.Ends.HighWatermarks(ctx)
	if err != nil {
		return fmt.Errorf("join barrier of partition %d: end offsets of the profiles topic: %w", partition, err)
	}
	if err := j.s.Table.WaitFor(ctx, end); err != nil {
		return fmt.Errorf("join barrier of partition %d: %w", partition, err)
	}
	j.mu.Lock()
	delete(j.pending, partition)
	j.mu.Unlock()
	return nil
}

// Stats are the join's counters since start, for gauges and logs.
type Stats struct {
	// Table is the profiles table's size and counters.
	Table TableStats
	// UserLookups, ProductLookups, ServiceLookups and IPLookups count the
	// events that named a user, product, service or client IP;
	// the *Misses fields count those left without attributes (no profile,
	// or no IP range).
	UserLookups, UserMisses       int64
	ProductLookups, ProductMisses int64
	ServiceLookups, ServiceMisses int64
	IPLookups, IPMisses           int64
}

// Stats returns the counters. Safe for concurrent use.
func (j *Joiner) Stats() Stats {
	return Stats{
		Table:       j.s.Table.Stats(),
		UserLookups: j.users.lookups.Load(), UserMisses: j.users.misses.Load(),
		ProductLookups: j.products.lookups.Load(), ProductMisses: j.products.misses.Load(),
		ServiceLookups: j.services.lookups.Load(), ServiceMisses: j.services.misses.Load(),
		IPLookups: j.ips.lookups.Load(), IPMisses: j.ips.misses.Load(),
	}
}
