package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/devstack/loadgen"
	"github.com/streamwatch/streamwatch/devstack/stack"
	"github.com/streamwatch/streamwatch/pkg/rules"
)

// Defaults of Config.
const (
	DefaultDuration       = 60 * time.Second
	DefaultDrainTimeout   = 5 * time.Minute
	DefaultMaxEPS         = 20_000
	DefaultCeilingEvents  = 1_000_000
	DefaultProbeInterval  = time.Second
	DefaultSampleInterval = time.Second
	DefaultProbeTimeout   = 30 * time.Second
	DefaultProfileSeconds = 20 * time.Second
)

// Config configures Run. Zero fields take the defaults above (and
// loadgen.SendOptions' for Workers and Batch).
type Config struct {
	// Repo is the checkout whose services are built and run. Required.
	Repo string
	// BinDir, when set, holds prebuilt service binaries; otherwise they are
	// built into a temporary directory.
	BinDir string
	// DataDir holds the stack's data and logs; "" uses a temporary
	// directory removed at the end.
	DataDir string
	// Duration is the sending time of each phase.
	Duration time.Duration
	// DrainTimeout bounds the wait, after sending, for every accepted event
	// to be counted.
	DrainTimeout time.Duration
	// Workers and Batch are the generator's concurrent requests and items
	// per request.
	Workers, Batch int
	// MaxEPS is the first event-time rate (events per second of event
	// time) of the as-fast-as-possible phase; every 5 s it becomes the rate
	// just accepted. The half phase uses its wall rate.
	MaxEPS float64
	// Partitions of every topic.
	Partitions int32
	// CeilingEvents is how many events the broker-only ceiling run moves.
	CeilingEvents int64
	// Profile takes a perf CPU profile of every service during the half
	// phase (when perf is installed).
	Profile bool
	// ProfileSeconds is the length of each profile.
	ProfileSeconds time.Duration
	// ProbeInterval is the time between probes of each kind.
	ProbeInterval time.Duration
	// SampleInterval is the time between samples of counts, lag and
	// process statistics.
	SampleInterval time.Duration
	// Note is free text recorded in the result (e.g. which commit the
	// prebuilt binaries come from).
	Note string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.MaxEPS <= 0 {
		c.MaxEPS = DefaultMaxEPS
	}
	if c.Partitions <= 0 {
		c.Partitions = stack.DefaultPartitions
	}
	if c.CeilingEvents <= 0 {
		c.CeilingEvents = DefaultCeilingEvents
	}
	if c.ProfileSeconds <= 0 {
		c.ProfileSeconds = DefaultProfileSeconds
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Repo == "" {
		errs = append(errs, errors.New("Repo: empty"))
	}
	if c.Duration < 0 || c.DrainTimeout < 0 || c.ProbeInterval < 0 || c.SampleInterval < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.Duration > 0 && c.Duration < 5*time.Second {
		errs = append(errs, fmt.Errorf("Duration %s: at least 5s", c.Duration))
	}
	if c.MaxEPS < 0 || c.CeilingEvents < 0 || c.Workers < 0 || c.Batch < 0 {
		errs = append(errs, errors.New("MaxEPS, CeilingEvents, Workers and Batch must not be negative"))
	}
	return errors.Join(errs...)
}

// Run starts the embedded stack, runs the max phase, the ceiling and the
// half phase, stops the stack and returns the result (render it with
// WriteResults). An error in one measurement is recorded in the result
// where the others can still go on; errors that leave nothing to report are
// returned.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	cfg.setDefaults()
	log := cfg.Logger
	tmp, err := os.MkdirTemp("", "streamwatch-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(tmp, "data")
	}
	if cfg.BinDir == "" {
		cfg.BinDir = filepath.Join(tmp, "bin")
		log.Info("building services", "bin", cfg.BinDir)
		if err := stack.BuildServices(ctx, cfg.Repo, cfg.BinDir); err != nil {
			return nil, err
		}
	}
	rulesFile, routesFile := filepath.Join(tmp, "rules.yaml"), filepath.Join(tmp, "notifier.yaml")
	if err := os.WriteFile(rulesFile, []byte(probeRules()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(routesFile, []byte(probeRoutes), 0o644); err != nil {
		return nil, err
	}

	res := &Result{Date: time.Now().UTC(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Note: cfg.Note}
	res.Host, _ = os.Hostname()
	res.LoadBefore, _ = LoadAvg()
	res.Config = ConfigJSON{DurationS: cfg.Duration.Seconds(), Workers: cfg.Workers, Batch: cfg.Batch, MaxEPS: cfg.MaxEPS,
		Partitions: cfg.Partitions, CeilingEvents: cfg.CeilingEvents, ProbeIntervalS: cfg.ProbeInterval.Seconds(),
		LivePollS: LivePollInterval.Seconds()}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	runStart := time.Now()
	var evTime atomic.Int64
	pr := newProber(client, "", "", runStart, evTime.Load)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hook := &http.Server{Handler: pr, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hook.Serve(ln) }()
	defer hook.Close()

	log.Info("starting stack", "data", cfg.DataDir)
	st, err := stack.Start(ctx, stack.Options{
		DataDir: cfg.DataDir, BinDir: cfg.BinDir, Partitions: cfg.Partitions, Logger: log,
		// AUTH_MODE=off: the generator, the probes and the pollers send no
		// API key; checking one costs a hash per request of Batch events.
		ServiceEnv: map[string]map[string]string{
			stack.Collector: {"AUTH_MODE": "off"},
			stack.Query:     {"AUTH_MODE": "off"},
			stack.Detector:  {"DETECTOR_RULES_FILE": rulesFile},
			stack.Notifier:  {"NOTIFIER_CONFIG_FILE": routesFile, "BENCH_WEBHOOK_URL": "http://" + ln.Addr().String() + "/hook"},
		},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := st.Close(cctx); err != nil {
			log.Warn("close stack", "error", err.Error())
		}
	}()
	pr.collector, pr.query = st.CollectorURL(), st.QueryURL()

	kcl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer kcl.Close()
	ch := clickHouse{client: client, url: st.ClickHouseHTTPURL(), db: stack.ClickHouseDatabase}
	pids := func() map[string]int {
		m := map[string]int{"bench": os.Getpid(), "redis": st.PID("redis"), "clickhouse": st.PID("clickhouse")}
		for _, s := range st.Services() {
			m[s] = st.PID(s)
		}
		return m
	}
	smp := &sampler{}
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() { smp.run(sctx, runStart, cfg.SampleInterval, ch, kadm.NewClient(kcl), pids) })

	r := &runner{cfg: cfg, st: st, ch: ch, pr: pr, smp: smp, evTime: &evTime, pids: pids, runStart: runStart, lastWall: time.Now(), tmp: tmp}
	maxPhase, err := r.phase(ctx, "max", 0, cfg.MaxEPS, 1, false)
	if err == nil {
		err = ctx.Err() // interrupted: the counts are not final, write nothing
	}
	if err != nil {
		stopSampling()
		sampling.Wait()
		return nil, fmt.Errorf("max phase: %w", err)
	}
	res.Phases = append(res.Phases, maxPhase)

	log.Info("ceiling: broker path alone")
	if src, err := readRawRecords(ctx, st.Brokers(), 64<<20); err != nil {
		res.CeilingError = err.Error()
	} else if c, err := runCeiling(ctx, st.Brokers(), cfg.Partitions, src, cfg.CeilingEvents); err != nil {
		res.CeilingError = err.Error()
	} else {
		res.Ceiling = c
	}

	half := 0.5 * maxPhase.Sustainable
	if half < 1 {
		half = 1
	}
	halfPhase, err := r.phase(ctx, "half", half, half, 2, cfg.Profile)
	if ctx.Err() != nil {
		stopSampling()
		sampling.Wait()
		return nil, fmt.Errorf("half phase: %w", ctx.Err())
	}
	if err != nil {
		res.PhaseErrors = append(res.PhaseErrors, "half: "+err.Error())
	} else {
		res.Phases = append(res.Phases, halfPhase)
	}
	r.reportProfiles(ctx)
	res.Profiles, res.ProfileNote = r.profiles, r.profileNote
	stopSampling()
	sampling.Wait()
	res.Samples = smp.all()
	res.LoadAfter, _ = LoadAvg()
	res.PipelineVsCeiling = Ratio(maxPhase.Sustainable, res.Ceiling.EventsPerSecond)
	res.Targets = Targets(res)
	return res, nil
}

// probeRules is the detector's built-in rules plus the probe rule: it
// fires on early results, so a breach shows while its window is open.
func probeRules() string {
	return rules.DefaultRules + fmt.Sprintf(`  - name: %s
    metric: %s
    op: ">"
    threshold: %g
    early: true
    severity: critical
`, BreachRule, ProbeMetric, float64(breachThreshold))
}

// probeRoutes sends probe alerts, one group per probe, at once to the
// benchmark's webhook, and every other alert to the Redis list only (the
// built-in routing without a webhook).
const probeRoutes = `route:
  receiver: recent
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - match: {alertname: ` + BreachRule + `}
      receiver: bench
      group_by: [alertname, service]
      group_wait: 0s
receivers:
  - name: recent
    redis_configs: [{key: "alerts:recent", limit: 100}]
  - name: bench
    webhook_configs: [{url: "${BENCH_WEBHOOK_URL}", send_resolved: false, max_tries: 1}]
`

// runner holds what the phases share.
type runner struct {
	cfg       Config
	st        *stack.Stack
	ch        clickHouse
	pr        *prober
	smp       *sampler
	evTime    *atomic.Int64
	pids      func() map[string]int
	runStart  time.Time
	lastEvent int64     // end of the previous phase's event time, ms
	lastWall  time.Time // when the previous phase ended
	tmp       string
	profiles  map[string]Profile
	// profileFiles are the perf data files of the half phase by process,
	// reported after it; profileErrs what failed; profileSeconds their
	// length.
	profileFiles   map[string]string
	profileErrs    []string
	profileSeconds float64
	profileNote    string
}

// LivePollInterval is how often the live API is polled for probes: the
// resolution of the live latency. Polling every 20 ms took a quarter of the
// query service's CPU (each poll decodes every stored result of the metric).
const LivePollInterval = 100 * time.Millisecond

// chunking returns the items of one loadgen.Send call and the items per
// request of a phase at rate events/s (0: as fast as possible) with
// workers concurrent requests of at most maxBatch items. As fast as
// possible: two rounds of every worker. Paced: one PaceStep's items,
// spread over the workers (a chunk is sent before the next starts, so one
// slow request must not serialise it).
func chunking(rate float64, workers, maxBatch int) (chunk int64, batch int) {
	if rate <= 0 {
		return int64(2 * workers * maxBatch), maxBatch
	}
	chunk = max(1, int64(rate*PaceStep.Seconds()))
	return chunk, min(maxBatch, max(1, int((chunk+int64(workers)-1)/int64(workers))))
}

// PaceStep is the pacing step of a phase with a rate: every step sends
// rate × PaceStep items at once and then sleeps until the rate allows the
// next. With one-second steps, 50 % of the maximum rate arrived as half a
// second at the full rate and half a second idle, and every probe met the
// burst; a tenth of that keeps the load near steady.
const PaceStep = 100 * time.Millisecond

// adaptEvery is how often the as-fast-as-possible phase sets its
// event-time rate to the rate the collector accepted.
const adaptEvery = 5 * time.Second

// ceilMinute rounds ms up to a whole minute.
func ceilMinute(ms int64) int64 { return (ms + 59_999) / 60_000 * 60_000 }

// phase sends generated traffic for cfg.Duration, at rate items/s (0: as
// fast as the collector accepts), with event time advancing eps events per
// second from a minute boundary after everything earlier (as fast as
// possible: eps is the first guess, then every adaptEvery the rate just
// accepted), then waits until every accepted event is counted or
// DrainTimeout.
func (r *runner) phase(ctx context.Context, name string, rate, eps float64, seed uint64, profile bool) (Phase, error) {
	log := r.cfg.Logger
	now := time.Now()
	// Event time never falls behind how far an idle partition's watermark
	// may have advanced since the last phase (processing time).
	start := ceilMinute(max(now.UnixMilli(), r.lastEvent+now.Sub(r.lastWall).Milliseconds()))
	tr, err := newTraffic(seed, start, eps)
	if err != nil {
		return Phase{}, err
	}
	r.evTime.Store(start)
	var accepted atomic.Int64
	ph := Phase{Name: name, TargetRate: rate, EventTimeStart: start, StartS: now.Sub(r.runStart).Seconds()}
	r.smp.setPhase(name, [2]int64{start, start + 365*24*3600*1000}, accepted.Load)
	before := r.readProcs()
	log.Info("phase start", "phase", name, "rate", rate, "eps", eps, "event_time", time.UnixMilli(start).UTC())

	began := time.Now()
	deadline := began.Add(r.cfg.Duration)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pctx, stopProbes := context.WithDeadline(ctx, deadline)
	defer stopProbes()
	var polling, probing, profiling sync.WaitGroup
	polling.Go(func() { r.pr.poll(pollCtx, LivePollInterval) })
	probing.Go(func() {
		if err := r.pr.sendLoop(pctx, name, r.cfg.ProbeInterval); err != nil {
			log.Warn("probe", "phase", name, "error", err.Error())
		}
	})
	if profile {
		profiling.Go(func() { r.profile(ctx) })
	}

	chunk, batch := chunking(rate, r.cfg.Workers, r.cfg.Batch)
	var sendErrs []error
	segBegan, segAccepted := began, int64(0)
	for k := 0; time.Now().Before(deadline); k++ {
		if rate == 0 && time.Since(segBegan) >= adaptEvery {
			// Event time follows the rate the collector takes.
			if err := tr.restart(max(100, Rate(segAccepted, time.Since(segBegan).Seconds()))); err != nil {
				return Phase{}, err
			}
			segBegan, segAccepted = time.Now(), 0
		}
		rep, err := loadgen.Send(ctx, tr.g, loadgen.SendOptions{
			CollectorURL: r.st.CollectorURL(), Items: chunk, Batch: batch, Workers: r.cfg.Workers,
			Source: fmt.Sprintf("bench-%d-%d", seed, k),
		})
		ph.Sent += rep.Sent
		ph.Accepted += rep.Accepted
		ph.Rejected += rep.Rejected
		ph.Failed += rep.Failed
		accepted.Add(rep.Accepted)
		segAccepted += rep.Accepted
		if err != nil {
			sendErrs = append(sendErrs, err)
			if ctx.Err() != nil {
				break
			}
		}
		r.evTime.Store(tr.eventTime())
		if rate > 0 {
			if wait := time.Until(began.Add(time.Duration(float64(ph.Sent) / rate * float64(time.Second)))); wait > 0 {
				time.Sleep(wait)
			}
		}
	}
	ph.SendSeconds = time.Since(began).Seconds()
	ph.AcceptedRate = Rate(ph.Accepted, ph.SendSeconds)
	if len(sendErrs) > 0 {
		ph.SendErrors = len(sendErrs)
		ph.FirstSendError = sendErrs[0].Error()
	}
	stopProbes()
	probing.Wait()
	ph.Tally = tr.total()
	ph.ProbesAccepted = r.pr.takeAccepted()
	ph.Expected = ph.Tally + ph.ProbesAccepted
	ph.EventRate = tr.eps
	end := ceilMinute(tr.eventTime() + 1)
	ph.EventTimeEnd = end
	r.smp.setPhase(name, [2]int64{start, end}, accepted.Load)

	log.Info("phase sent, draining", "phase", name, "accepted", ph.Accepted, "rate", math.Round(ph.AcceptedRate), "expected", ph.Expected)
	drainCtx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	// The raw-events check (FINAL, expensive) runs only once the windows
	// have it all, so measuring loads ClickHouse little.
	for {
		if counted, err := r.ch.countedInWindows(drainCtx, start, end); err == nil {
			if ph.Counted < ph.Expected && counted >= ph.Expected {
				ph.ProcessedSeconds = time.Since(began).Seconds()
			}
			ph.Counted = counted
		}
		if ph.Counted >= ph.Expected {
			if stored, err := r.ch.storedEvents(drainCtx, start, end); err == nil {
				ph.Stored = stored
				if stored >= ph.Expected {
					break
				}
			}
		}
		select {
		case <-drainCtx.Done():
		case <-time.After(500 * time.Millisecond):
			continue
		}
		break
	}
	if ph.Stored == 0 {
		fctx, fcancel := context.WithTimeout(ctx, time.Minute)
		ph.Stored, _ = r.ch.storedEvents(fctx, start, end)
		fcancel()
	}
	r.pr.await(DefaultProbeTimeout) // probes sent last have had the drain time already
	stopPoll()
	polling.Wait()
	profiling.Wait()
	if ph.ProcessedSeconds == 0 {
		ph.ProcessedSeconds = time.Since(began).Seconds()
		ph.DrainTimedOut = true
	}
	ph.Loss = ph.Expected - ph.Counted
	ph.StoredLoss = ph.Expected - ph.Stored
	ph.ProcessedRate = Rate(ph.Counted, ph.ProcessedSeconds)
	ph.Sustainable = min(ph.AcceptedRate, ph.ProcessedRate)
	ph.EndS = time.Since(r.runStart).Seconds()
	after := r.readProcs()
	ph.Procs = procDeltas(before, after, r.smp.all(), name, ph.Counted)
	live, breach := r.pr.records()
	ph.LiveProbes, ph.BreachProbes = live, breach
	ms, lost := latencies(live)
	ph.LiveLatency = Summarize(ms, lost)
	ms, lost = latencies(breach)
	ph.BreachLatency = Summarize(ms, lost)
	ph.MaxLag = maxLag(r.smp.all(), name)
	ph.PerMinuteAccepted, ph.PerMinuteProcessed = perMinute(r.smp.all(), name, ph.StartS, ph.StartS+ph.SendSeconds)
	r.lastEvent, r.lastWall = end, time.Now()
	log.Info("phase done", "phase", name, "accepted_rate", math.Round(ph.AcceptedRate), "processed_rate", math.Round(ph.ProcessedRate),
		"loss", ph.Loss, "live_p99_ms", ph.LiveLatency.P99, "breach_p99_ms", ph.BreachLatency.P99)
	return ph, nil
}

func (r *runner) readProcs() map[string]ProcStat {
	out := map[string]ProcStat{}
	for name, pid := range r.pids() {
		if pid == 0 {
			continue
		}
		if st, err := ReadProc(pid); err == nil {
			out[name] = st
		}
	}
	return out
}

// profile records a perf profile of every service, Redis and ClickHouse at
// once, starting a fifth into the phase; reportProfiles turns them into
// tops after the phase, so that perf report's work (seconds of CPU per
// process) does not compete with the phase it measures.
func (r *runner) profile(ctx context.Context) {
	if !perfAvailable() {
		r.profileNote = "perf not installed: no profiles"
		return
	}
	d := min(r.cfg.ProfileSeconds, r.cfg.Duration*3/5)
	time.Sleep(r.cfg.Duration / 5)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	r.profileFiles = map[string]string{}
	for _, s := range append(r.st.Services(), "redis", "clickhouse") {
		pid := r.st.PID(s)
		if pid == 0 {
			continue
		}
		wg.Go(func() {
			file, err := recordProfile(ctx, r.tmp, s, pid, d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.profileErrs = append(r.profileErrs, err.Error())
				return
			}
			r.profileFiles[s] = file
		})
	}
	wg.Wait()
	r.profileSeconds = d.Seconds()
	r.profileNote = fmt.Sprintf("perf record -F 299 --call-graph fp, %s per process, all at once, during the half phase (reported after it)", d)
}

// reportProfiles turns the profiles recorded by profile into their tops,
// one process at a time (after the phase: the stack is idle).
func (r *runner) reportProfiles(ctx context.Context) {
	if len(r.profileFiles) == 0 && len(r.profileErrs) == 0 {
		return
	}
	r.profiles = map[string]Profile{}
	for _, s := range slices.Sorted(maps.Keys(r.profileFiles)) {
		p, err := reportProfile(ctx, r.profileFiles[s], 15)
		if err != nil {
			r.profileErrs = append(r.profileErrs, err.Error())
			continue
		}
		p.Seconds = r.profileSeconds
		r.profiles[s] = p
	}
	if len(r.profileErrs) > 0 {
		r.profileNote += "; errors: " + fmt.Sprint(r.profileErrs)
	}
}
