// Package loadgen generates realistic, deterministic traffic for
// Streamwatch's collector and keeps an exact tally of what it generated, so
// tests and benchmarks can check counts end to end.
//
// The traffic mixes three kinds, in proportions from Config:
//   - a clickstream: Zipf-distributed users, pages and products in sessions
//     that run page_view → (search | click)* → add_cart → purchase with funnel
//     drop-off, the shape of the seed platform's simulated producer;
//   - service requests: log-normal latencies and a configurable error rate;
//   - access-log lines in Apache combined format;
//   - metric samples: a cpu_percent gauge per host every SampleInterval of
//     event time, with a daily (24 h sinusoidal) pattern plus noise.
//
// Incidents (latency spike, error burst, traffic drop, one abusive client)
// are injected on a schedule in event time, so alert rules fire.
//
// Event time is synthetic: event i has time Start + i/EventsPerSecond, so a
// run is the same whether it is sent at a fixed rate or as fast as possible.
// The same Config (including Seed) always yields the same events.
package loadgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Incident kinds.
const (
	// LatencySpike multiplies service-request latencies by Magnitude.
	LatencySpike = "latency_spike"
	// ErrorBurst sets the service-request error rate to Magnitude (0..1).
	ErrorBurst = "error_burst"
	// TrafficDrop drops the fraction Magnitude (0..1) of events; event time
	// still advances, so the drop shows as a dip in the rate.
	TrafficDrop = "traffic_drop"
	// AbusiveClient adds Magnitude access-log requests per minute from
	// ClientIP on top of the normal traffic.
	AbusiveClient = "abusive_client"
)

// Incident is one scheduled anomaly, in event time relative to Config.Start.
type Incident struct {
	Kind      string
	At        time.Duration
	Duration  time.Duration
	Magnitude float64
	// ClientIP is the abusive client's address (AbusiveClient only).
	ClientIP string
}

// Config sets the shape of the traffic. Zero fields take the defaults of
// DefaultConfig except Seed.
type Config struct {
	// Seed makes the run reproducible.
	Seed uint64
	// Start is the event time of the first event.
	Start time.Time
	// EventsPerSecond is the event-time rate of the base traffic.
	EventsPerSecond float64
	// Users, Pages and Products are the sizes of the Zipf populations.
	Users, Pages, Products int
	// ZipfS is the Zipf exponent (> 1): larger is more skewed.
	ZipfS float64
	// Services are the service names of service requests.
	Services []string
	// ErrorRate is the baseline fraction of 5xx service requests.
	ErrorRate float64
	// LatencyMedianMs and LatencySigma parameterise the log-normal latency:
	// exp(N(ln median, sigma²)).
	LatencyMedianMs, LatencySigma float64
	// ServiceShare and AccessLogShare are the fractions of base events that
	// are service requests and access-log lines; the rest is clickstream.
	ServiceShare, AccessLogShare float64
	// SampleHosts is how many hosts report the cpu_percent gauge; 0 sends no
	// samples.
	SampleHosts int
	// SampleInterval is each host's reporting interval in event time.
	SampleInterval time.Duration
	// Incidents are injected on schedule.
	Incidents []Incident
}

// DefaultConfig is the seed platform's smallest setting scaled up: 100
// events/s of clickstream, service requests and access-log lines.
func DefaultConfig(seed uint64, start time.Time) Config {
	return Config{
		Seed: seed, Start: start, EventsPerSecond: 100,
		Users: 10_000, Pages: 200, Products: 1_000, ZipfS: 1.2,
		Services:  []string{"checkout", "search", "catalog", "auth"},
		ErrorRate: 0.01, LatencyMedianMs: 80, LatencySigma: 0.6,
		ServiceShare: 0.3, AccessLogShare: 0.3,
		SampleHosts: 4, SampleInterval: 10 * time.Second,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.EventsPerSecond <= 0 {
		errs = append(errs, errors.New("EventsPerSecond must be positive"))
	}
	if c.Users < 1 || c.Pages < 1 || c.Products < 1 {
		errs = append(errs, errors.New("Users, Pages and Products must be at least 1"))
	}
	if c.ZipfS <= 1 {
		errs = append(errs, fmt.Errorf("ZipfS %g must be > 1", c.ZipfS))
	}
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("Services is empty"))
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 || c.ServiceShare < 0 || c.AccessLogShare < 0 || c.ServiceShare+c.AccessLogShare > 1 {
		errs = append(errs, errors.New("ErrorRate and the shares must be fractions, the shares summing to at most 1"))
	}
	if c.SampleHosts < 0 || (c.SampleHosts > 0 && c.SampleInterval < time.Millisecond) {
		errs = append(errs, errors.New("SampleHosts must be >= 0 and SampleInterval >= 1ms when hosts report"))
	}
	for i, in := range c.Incidents {
		switch in.Kind {
		case LatencySpike, ErrorBurst, TrafficDrop:
		case AbusiveClient:
			if in.ClientIP == "" {
				errs = append(errs, fmt.Errorf("incident %d: abusive_client needs ClientIP", i))
			}
		default:
			errs = append(errs, fmt.Errorf("incident %d: unknown kind %q", i, in.Kind))
		}
	}
	return errors.Join(errs...)
}

// Item is one generated unit: a JSON event for POST /v1/events, or an
// access-log line for POST /v1/logs.
type Item struct {
	// Event is set for JSON events (a map that encodes as the collector's
	// input schema).
	Event map[string]any
	// Line is set for access-log lines (no trailing newline).
	Line string
	// Time is the event time.
	Time time.Time
	// Type is the event type the collector will record.
	Type string
	// ClientIP and Status describe requests (access-log lines and service
	// requests; ClientIP only for access-log lines).
	ClientIP string
	Status   int
}

// Generator yields Items. It is not safe for concurrent use.
type Generator struct {
	cfg            Config
	rng            *rand.Rand
	users          *rand.Zipf
	pages          *rand.Zipf
	products       *rand.Zipf
	i              int64 // base events generated
	abuseSent      map[int]int64
	sessions       map[int]*session
	pendingAbusive []Item // abusive requests and samples due before the next base event
	nextSample     time.Duration
	tally          Tally
}

type session struct {
	id    string
	step  int
	carts int
}

// New returns a generator for cfg. It fails when cfg is invalid.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen config: %w", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5ee0))
	return &Generator{
		cfg:       cfg,
		rng:       rng,
		users:     rand.NewZipf(rng, cfg.ZipfS, 1, uint64(cfg.Users-1)),
		pages:     rand.NewZipf(rng, cfg.ZipfS, 1, uint64(cfg.Pages-1)),
		products:  rand.NewZipf(rng, cfg.ZipfS, 1, uint64(cfg.Products-1)),
		abuseSent: map[int]int64{},
		sessions:  map[int]*session{},
		tally:     newTally(),
	}, nil
}

// Tally returns what the generator has produced so far.
func (g *Generator) Tally() *Tally { return &g.tally }

// Next returns the next item. Items come in event-time order except that an
// abusive client's extra requests are interleaved at their own times.
func (g *Generator) Next() Item {
	for {
		if n := len(g.pendingAbusive); n > 0 {
			it := g.pendingAbusive[0]
			g.pendingAbusive = g.pendingAbusive[1:]
			g.tally.add(it)
			return it
		}
		t := g.cfg.Start.Add(time.Duration(float64(g.i) / g.cfg.EventsPerSecond * float64(time.Second)))
		g.i++
		g.scheduleAbuse(t)
		g.scheduleSamples(t)
		if drop := g.active(TrafficDrop, t); drop != nil && g.rng.Float64() < drop.Magnitude {
			g.tally.Dropped++
			continue
		}
		var it Item
		switch r := g.rng.Float64(); {
		case r < g.cfg.ServiceShare:
			it = g.serviceRequest(t)
		case r < g.cfg.ServiceShare+g.cfg.AccessLogShare:
			it = g.accessLine(t, g.clientIP())
		default:
			it = g.click(t)
		}
		g.tally.add(it)
		return it
	}
}

// active returns the incident of kind active at event time t, or nil.
func (g *Generator) active(kind string, t time.Time) *Incident {
	off := t.Sub(g.cfg.Start)
	for i := range g.cfg.Incidents {
		in := &g.cfg.Incidents[i]
		if in.Kind == kind && off >= in.At && off < in.At+in.Duration {
			return in
		}
	}
	return nil
}

// scheduleAbuse queues the abusive clients' requests due up to t. An
// incident of Magnitude m per minute sends request k at k × (1 min / m) into
// it, so floor(m × elapsed / 1 min) + 1 are due after elapsed time (capped
// at m × Duration / 1 min), computed exactly rather than summed.
func (g *Generator) scheduleAbuse(t time.Time) {
	off := t.Sub(g.cfg.Start)
	for i := range g.cfg.Incidents {
		in := &g.cfg.Incidents[i]
		if in.Kind != AbusiveClient || off < in.At || off >= in.At+in.Duration {
			continue
		}
		total := int64(in.Magnitude * float64(in.Duration) / float64(time.Minute))
		due := min(total, int64(in.Magnitude*float64(off-in.At)/float64(time.Minute))+1)
		for ; g.abuseSent[i] < due; g.abuseSent[i]++ {
			g.pendingAbusive = append(g.pendingAbusive, g.accessLine(t, in.ClientIP))
		}
	}
}

// scheduleSamples queues one cpu_percent sample per host for every
// SampleInterval boundary up to t. Samples of one host never share a
// timestamp, so their deterministic ids (series + labels + time) are unique.
func (g *Generator) scheduleSamples(t time.Time) {
	if g.cfg.SampleHosts == 0 {
		return
	}
	for off := t.Sub(g.cfg.Start); g.nextSample <= off; g.nextSample += g.cfg.SampleInterval {
		at := g.cfg.Start.Add(g.nextSample)
		day := float64(at.UTC().Hour()*3600+at.UTC().Minute()*60+at.UTC().Second()) / 86400
		for h := range g.cfg.SampleHosts {
			v := 40 + 25*math.Sin(2*math.Pi*day) + 3*g.rng.NormFloat64() + float64(h)
			g.pendingAbusive = append(g.pendingAbusive, Item{Time: at, Type: "metric_sample", Event: map[string]any{
				"series": "cpu_percent", "labels": map[string]string{"host": "h" + strconv.Itoa(h)},
				"value": math.Round(v*100) / 100, "timestamp": at.UnixMilli(),
			}})
		}
	}
}

func (g *Generator) clientIP() string {
	u := g.users.Uint64()
	b := make([]byte, 0, 15)
	b = append(b, "10."...)
	b = strconv.AppendUint(b, (u>>16)&0xff, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, (u>>8)&0xff, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, u&0xff, 10)
	return string(b)
}

func (g *Generator) serviceRequest(t time.Time) Item {
	svc := g.cfg.Services[g.rng.IntN(len(g.cfg.Services))]
	lat := math.Exp(math.Log(g.cfg.LatencyMedianMs) + g.cfg.LatencySigma*g.rng.NormFloat64())
	if in := g.active(LatencySpike, t); in != nil {
		lat *= in.Magnitude
	}
	errRate := g.cfg.ErrorRate
	if in := g.active(ErrorBurst, t); in != nil {
		errRate = in.Magnitude
	}
	status := 200
	if g.rng.Float64() < errRate {
		status = []int{500, 502, 503}[g.rng.IntN(3)]
	} else if g.rng.IntN(20) == 0 {
		status = 404
	}
	return Item{Time: t, Type: "service_request", Status: status, Event: map[string]any{
		"event_id": g.id(), "type": "service_request", "event_time": t.UnixMilli(),
		"service": svc, "endpoint": "/api/" + svc, "status": status, "latency_ms": math.Round(lat*100) / 100,
	}}
}

func (g *Generator) accessLine(t time.Time, ip string) Item {
	page := g.pages.Uint64()
	status, bytes := 200, 500+g.rng.IntN(50_000)
	switch r := g.rng.IntN(100); {
	case r < 4:
		status, bytes = 304, 0
	case r < 6:
		status, bytes = 404, 200
	case r < 7:
		status, bytes = 500, 100
	}
	// Apache combined format, appended rather than formatted (fmt was a
	// tenth of the generator's CPU; BenchmarkNextRequests).
	b := make([]byte, 0, 128)
	b = append(b, ip...)
	b = append(b, " - - ["...)
	b = t.UTC().AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "GET /page/`...)
	b = strconv.AppendUint(b, page, 10)
	b = append(b, ` HTTP/1.1" `...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(bytes), 10)
	b = append(b, ` "-" "streamwatch-gen/1"`...)
	return Item{Time: t, Line: string(b), Type: "http_request", ClientIP: ip, Status: status}
}

// click advances one user's session through the funnel.
func (g *Generator) click(t time.Time) Item {
	u := int(g.users.Uint64())
	s := g.sessions[u]
	if s == nil || g.rng.IntN(10) == 0 {
		s = &session{id: "s" + strconv.FormatInt(g.i, 36)}
		g.sessions[u] = s
	}
	s.step++
	ev := map[string]any{
		"event_id": g.id(), "event_time": t.UnixMilli(), "user_id": "u" + strconv.Itoa(u),
		"session_id": s.id, "page": "/page/" + strconv.FormatUint(g.pages.Uint64(), 10),
	}
	switch r := g.rng.Float64(); {
	case s.step == 1 || r < 0.45:
		ev["type"] = "page_view"
	case r < 0.60:
		ev["type"] = "search"
		ev["query"] = "q" + strconv.Itoa(g.rng.IntN(100))
	case r < 0.85:
		ev["type"] = "click"
		ev["product_id"] = "p" + strconv.FormatUint(g.products.Uint64(), 10)
	case r < 0.95 || s.carts == 0:
		ev["type"] = "add_cart"
		ev["product_id"] = "p" + strconv.FormatUint(g.products.Uint64(), 10)
		s.carts++
	default:
		ev["type"] = "purchase"
		ev["amount"] = float64(1+g.rng.IntN(300)) - 0.01
		s.carts = 0
	}
	return Item{Time: t, Event: ev, Type: ev["type"].(string)}
}

func (g *Generator) id() string {
	b := make([]byte, 0, 32)
	b = append(b, "gen-"...)
	b = strconv.AppendUint(b, g.cfg.Seed, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, g.i, 10)
	return string(b)
}
