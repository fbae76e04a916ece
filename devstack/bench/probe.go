package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Probe metric and rule: a probe is a service_request whose service label
// is unique, so its series appears in latency_by_service (grouped by
// service, complete per shard) exactly when the aggregator has counted it
// and the query service has stored the result. A breach probe carries
// BreachLatencyMs, above the threshold of the bench_probe_breach rule the
// benchmark installs, so it fires one alert of its own.
const (
	ProbeMetric     = "latency_by_service"
	BreachRule      = "bench_probe_breach"
	BreachLatencyMs = 1e7
	breachThreshold = 1e6
)

// ProbeRecord is one probe: when it was sent (seconds since the start of
// the run) and how long until it was seen (ms); Arrived is false for a
// probe not seen within the probe timeout.
type ProbeRecord struct {
	T         float64 `json:"t_s"`
	LatencyMs float64 `json:"latency_ms"`
	Arrived   bool    `json:"arrived"`
}

type probe struct {
	sentAt time.Time
	seenAt time.Time
}

// prober sends a live probe and a breach probe every interval (sendLoop),
// polls GET /api/v1/live for live probes (poll) and takes webhook
// deliveries for breach probes (ServeHTTP). Its methods are safe for
// concurrent use.
type prober struct {
	client     *http.Client
	collector  string
	query      string
	runStart   time.Time
	eventTime  func() int64 // the generator's current event time, ms
	accepted   int64        // probe events the collector accepted
	mu         sync.Mutex
	live       map[string]*probe // by service label
	breach     map[string]*probe
	liveOrder  []string
	breachOrdr []string
}

func newProber(client *http.Client, collector, query string, runStart time.Time, eventTime func() int64) *prober {
	return &prober{client: client, collector: collector, query: query, runStart: runStart, eventTime: eventTime,
		live: map[string]*probe{}, breach: map[string]*probe{}}
}

// sendLoop sends a live and a breach probe every interval until ctx ends.
// It returns the first send error, if any.
func (p *prober) sendLoop(ctx context.Context, phase string, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var firstErr error
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return firstErr
		case <-tick.C:
		}
		live := "probe-" + phase + "-" + strconv.Itoa(n)
		if err := p.send(ctx, live, 1, p.live, &p.liveOrder); err != nil && firstErr == nil {
			firstErr = err
		}
		breach := "breach-" + phase + "-" + strconv.Itoa(n)
		if err := p.send(ctx, breach, BreachLatencyMs, p.breach, &p.breachOrdr); err != nil && firstErr == nil {
			firstErr = err
		}
	}
}

// await waits until no probe is outstanding or timeout has passed.
func (p *prober) await(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && p.outstanding() > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// send posts one probe event; it counts as sent when the collector
// accepted it.
func (p *prober) send(ctx context.Context, service string, latencyMs float64, into map[string]*probe, order *[]string) error {
	ev := []map[string]any{{
		"event_id": "bench-" + service, "type": "service_request", "event_time": p.eventTime(),
		"service": service, "endpoint": "/bench/probe", "status": 200, "latency_ms": latencyMs,
	}}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	// Not cancelled with ctx: a probe cut off in flight could still be
	// accepted, and then it would be counted but not expected.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, p.collector+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	p.mu.Lock()
	into[service] = &probe{sentAt: sent}
	*order = append(*order, service)
	p.mu.Unlock()
	resp, err := p.client.Do(req)
	if err != nil {
		p.forget(service, into, order)
		return fmt.Errorf("probe %s: %w", service, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		p.forget(service, into, order)
		return fmt.Errorf("probe %s: collector answered %s: %s", service, resp.Status, b)
	}
	p.mu.Lock()
	p.accepted++
	p.mu.Unlock()
	return nil
}

func (p *prober) forget(service string, into map[string]*probe, order *[]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(into, service)
	for i, s := range *order {
		if s == service {
			*order = append((*order)[:i], (*order)[i+1:]...)
			break
		}
	}
}

func (p *prober) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range []map[string]*probe{p.live, p.breach} {
		for _, pr := range m {
			if pr.seenAt.IsZero() {
				n++
			}
		}
	}
	return n
}

// poll asks GET /api/v1/live?metric=ProbeMetric&filter=service=<probe>
// for each live probe not yet seen, every interval until ctx ends, and
// marks the probes it shows. One request per probe, each for its own
// label set: the probe metric gains two label sets a second (live and
// breach probes), and reading all of them ten times a second cost the
// query service, Redis and this process more than the pipeline under
// test (BenchmarkLiveResults in the query service).
func (p *prober) poll(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, service := range p.unseenLive() {
			shown, err := p.liveShows(ctx, service)
			if err != nil {
				break // the query service is busy; the next poll tries again
			}
			if shown {
				now := time.Now()
				p.mu.Lock()
				if pr := p.live[service]; pr != nil && pr.seenAt.IsZero() {
					pr.seenAt = now
				}
				p.mu.Unlock()
			}
		}
	}
}

// unseenLive returns the live probes sent and not yet seen, oldest first.
func (p *prober) unseenLive() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.liveOrder {
		if pr := p.live[s]; pr != nil && pr.seenAt.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// liveShows reports whether the live API shows service's series of
// ProbeMetric.
func (p *prober) liveShows(ctx context.Context, service string) (bool, error) {
	q := url.Values{"metric": {ProbeMetric}, "filter": {"service=" + service}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.query+"/api/v1/live?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET /api/v1/live: %s", resp.Status)
	}
	var body struct {
		Metrics []struct {
			Labels map[string]string `json:"labels"`
		} `json:"metrics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return false, fmt.Errorf("GET /api/v1/live: %w", err)
	}
	for _, m := range body.Metrics {
		if m.Labels["service"] == service {
			return true, nil
		}
	}
	return false, nil
}

// ServeHTTP is the webhook receiver: it takes an Alertmanager v4 payload
// and marks the breach probes its alerts name (label service).
func (p *prober) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var body struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	for _, a := range body.Alerts {
		if pr := p.breach[a.Labels["service"]]; pr != nil && pr.seenAt.IsZero() {
			pr.seenAt = now
		}
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// records returns the live and breach probes sent since the last call, in
// the order sent, and forgets them.
func (p *prober) records() (live, breach []ProbeRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conv := func(m map[string]*probe, order []string) []ProbeRecord {
		out := make([]ProbeRecord, 0, len(order))
		for _, s := range order {
			pr := m[s]
			rec := ProbeRecord{T: pr.sentAt.Sub(p.runStart).Seconds()}
			if !pr.seenAt.IsZero() {
				rec.Arrived = true
				rec.LatencyMs = float64(pr.seenAt.Sub(pr.sentAt).Microseconds()) / 1000
			}
			out = append(out, rec)
		}
		return out
	}
	live, breach = conv(p.live, p.liveOrder), conv(p.breach, p.breachOrdr)
	p.live, p.breach, p.liveOrder, p.breachOrdr = map[string]*probe{}, map[string]*probe{}, nil, nil
	return live, breach
}

// takeAccepted returns the probe events accepted since the last call.
func (p *prober) takeAccepted() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.accepted
	p.accepted = 0
	return n
}

// latencies returns the latencies of the arrived probes and the number lost.
func latencies(recs []ProbeRecord) (ms []float64, lost int) {
	for _, r := range recs {
		if r.Arrived {
			ms = append(ms, r.LatencyMs)
		} else {
			lost++
		}
	}
	return ms, lost
}
