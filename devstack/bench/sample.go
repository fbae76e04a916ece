package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Sample is what the sampler saw at one instant.
type Sample struct {
	// T is seconds since the start of the run.
	T float64 `json:"t_s"`
	// Phase is the phase running (or draining) at T.
	Phase string `json:"phase"`
	// Accepted is the phase's events accepted by the collector so far.
	Accepted int64 `json:"accepted"`
	// Processed is the phase's events counted in the aggregator's
	// events_by_type results stored in ClickHouse so far (-1: unknown).
	Processed int64 `json:"processed"`
	// Lag is the total lag of each consumer group with members, in records.
	Lag map[string]int64 `json:"lag"`
	// Procs are the readings of each process (services, redis, clickhouse,
	// and "bench", this process, which runs the broker and the generator).
	Procs map[string]ProcStat `json:"procs"`
}

// clickHouse runs queries over ClickHouse's HTTP interface.
type clickHouse struct {
	client *http.Client
	url    string // http://host:port
	db     string
}

// int runs a query that returns one integer.
func (c clickHouse) int(ctx context.Context, q string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/?database="+c.db, strings.NewReader(q))
	if err != nil {
		return 0, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("clickhouse: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("clickhouse: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	s := strings.TrimSpace(string(b))
	if s == "" || s == `\N` {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("clickhouse: answer %q is not an integer", s)
	}
	return n, nil
}

// countedInWindows returns the events the aggregator counted in
// events_by_type windows starting in [from, to) ms: the latest revision of
// every window, label set and shard, summed (partials add).
func (c clickHouse) countedInWindows(ctx context.Context, from, to int64) (int64, error) {
	return c.int(ctx, fmt.Sprintf("SELECT sum(c) FROM (SELECT argMax(count, revision) AS c FROM metric_windows"+
		" WHERE metric = 'events_by_type' AND window_start_ms >= %d AND window_start_ms < %d"+
		" GROUP BY window_start_ms, labels_key, shard)", from, to))
}

// storedEvents returns the distinct raw events with event time in [from,
// to) ms.
func (c clickHouse) storedEvents(ctx context.Context, from, to int64) (int64, error) {
	return c.int(ctx, fmt.Sprintf("SELECT count() FROM events FINAL WHERE event_time_ms >= %d AND event_time_ms < %d", from, to))
}

// groupLag returns the total lag of every consumer group with members.
func groupLag(ctx context.Context, adm *kadm.Client) (map[string]int64, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	lags, err := adm.Lag(ctx, listed.Groups()...)
	if err != nil {
		return nil, fmt.Errorf("group lag: %w", err)
	}
	out := map[string]int64{}
	for g, l := range lags {
		if l.State == "Empty" || l.State == "Dead" || l.Error() != nil {
			continue
		}
		out[g] = l.Lag.Total()
	}
	return out, nil
}

// sampler takes a Sample every interval until stopped.
type sampler struct {
	mu      sync.Mutex
	samples []Sample
	phase   string
	window  [2]int64 // the phase's event-time range, ms
	acc     func() int64
}

func (s *sampler) setPhase(name string, window [2]int64, accepted func() int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase, s.window, s.acc = name, window, accepted
}

func (s *sampler) all() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// run samples until ctx ends. pids returns the processes to read.
func (s *sampler) run(ctx context.Context, start time.Time, interval time.Duration, ch clickHouse, adm *kadm.Client, pids func() map[string]int) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		phase, window, acc := s.phase, s.window, s.acc
		s.mu.Unlock()
		if phase == "" {
			continue
		}
		smp := Sample{T: time.Since(start).Seconds(), Phase: phase, Processed: -1, Procs: map[string]ProcStat{}}
		if acc != nil {
			smp.Accepted = acc()
		}
		qctx, cancel := context.WithTimeout(ctx, interval)
		if n, err := ch.countedInWindows(qctx, window[0], window[1]); err == nil {
			smp.Processed = n
		}
		if lag, err := groupLag(qctx, adm); err == nil {
			smp.Lag = lag
		}
		cancel()
		for name, pid := range pids() {
			if pid == 0 {
				continue
			}
			if st, err := ReadProc(pid); err == nil {
				smp.Procs[name] = st
			}
		}
		s.mu.Lock()
		s.samples = append(s.samples, smp)
		s.mu.Unlock()
	}
}

// groupsOf returns the consumer groups named in samples, sorted.
func groupsOf(samples []Sample) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		for g := range s.Lag {
			seen[g] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}
