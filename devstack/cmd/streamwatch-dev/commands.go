package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamwatch/streamwatch/devstack/internal/demo"
	"github.com/streamwatch/streamwatch/devstack/stack"
)

// config is what the flags of up and demo set.
type config struct {
	opts        stack.Options
	closeWait   time.Duration
	logFile     string        // demo: access log to replay
	demoTimeout time.Duration // demo: wait for the query API to count everything
}

// parseFlags parses the flags of the subcommand name.
func parseFlags(name string, args []string, stderr io.Writer, level *slog.LevelVar) (config, error) {
	fs := flag.NewFlagSet("streamwatch-dev "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      config
		services string
		debug    bool
		env      = envFlag{}
	)
	fs.StringVar(&cfg.opts.DataDir, "data", "./.data", "data `directory`: broker, Redis and ClickHouse state and all logs; reused by the next run")
	fs.StringVar(&cfg.opts.BinDir, "bin", "./bin", "`directory` with the service binaries (go build -o bin/ ./services/*/cmd/*)")
	partitions := fs.Int("partitions", stack.DefaultPartitions, "partitions per topic")
	fs.StringVar(&services, "services", strings.Join(stack.ServiceNames(), ","), "comma-separated services to start; empty for none")
	fs.Var(env, "env", "extra service environment as `service:KEY=VALUE` (repeatable), e.g. notifier:NOTIFIER_WEBHOOK_URL=http://127.0.0.1:9999/hook")
	fs.BoolVar(&cfg.opts.FixedPorts, "fixed-ports", true, "use the well-known ports (broker 9092, Redis 6379, ClickHouse 9000/8123, services 8080-8084) where free")
	fs.StringVar(&cfg.opts.LogLevel, "log-level", stack.DefaultLogLevel, "LOG_LEVEL of the services")
	fs.DurationVar(&cfg.opts.ReadyTimeout, "ready-timeout", stack.DefaultReadyTimeout, "how long each service gets to answer GET /readyz with 200")
	fs.DurationVar(&cfg.opts.StopTimeout, "stop-timeout", stack.DefaultStopTimeout, "how long each process gets between SIGTERM and SIGKILL")
	fs.BoolVar(&debug, "debug", false, "log debug events")
	if name == "demo" {
		fs.StringVar(&cfg.logFile, "log", "testdata/apache_logs", "Apache combined-format access log to replay")
		fs.DurationVar(&cfg.demoTimeout, "wait", 3*time.Minute, "how long to wait for the query API to count every accepted line")
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return config{}, errUsage
	}
	if *partitions < 1 || *partitions > 1<<20 {
		fmt.Fprintf(stderr, "-partitions %d: want 1 or more\n", *partitions)
		return config{}, errUsage
	}
	cfg.opts.Partitions = int32(*partitions)
	cfg.opts.Services = []string{}
	for s := range strings.SplitSeq(services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.opts.Services = append(cfg.opts.Services, s)
		}
	}
	cfg.opts.ServiceEnv = env
	cfg.closeWait = cfg.opts.StopTimeout + 20*time.Second
	if debug {
		level.Set(slog.LevelDebug)
	}
	return cfg, nil
}

// envFlag collects -env service:KEY=VALUE.
type envFlag map[string]map[string]string

// String implements flag.Value.
func (e envFlag) String() string {
	var parts []string
	for svc, vars := range e {
		for k, v := range vars {
			parts = append(parts, svc+":"+k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// Set implements flag.Value.
func (e envFlag) Set(s string) error {
	svc, kv, ok := strings.Cut(s, ":")
	k, v, ok2 := strings.Cut(kv, "=")
	if !ok || !ok2 || svc == "" || k == "" {
		return fmt.Errorf("%q: want service:KEY=VALUE", s)
	}
	if e[svc] == nil {
		e[svc] = make(map[string]string)
	}
	e[svc][k] = v
	return nil
}

// start installs missing packages when it can, starts the stack and prints
// where everything is.
func start(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) (*stack.Stack, error) {
	if err := stack.EnsurePackages(ctx, logger); err != nil {
		return nil, err
	}
	cfg.opts.Logger = logger
	began := time.Now()
	st, err := stack.Start(ctx, cfg.opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "Streamwatch dev stack is up (started in %s).\n\n", time.Since(began).Round(time.Millisecond))
	printAddresses(stdout, st)
	return st, nil
}

// stop closes the stack with a fresh deadline: ctx is usually cancelled by
// then.
func stop(st *stack.Stack, cfg config, stdout io.Writer) error {
	fmt.Fprintln(stdout, "Stopping...")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.closeWait)
	defer cancel()
	if err := st.Close(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Stopped.")
	return nil
}

// up runs the stack until ctx is done.
func up(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) error {
	st, err := start(ctx, cfg, stdout, logger)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
	<-ctx.Done()
	return stop(st, cfg, stdout)
}

// runDemo runs the stack, replays cfg.logFile through the collector, prints
// the hourly counts the query API reports, and runs until ctx is done.
func runDemo(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) (err error) {
	if _, err := os.Stat(cfg.logFile); err != nil {
		return fmt.Errorf("demo log: %w", err)
	}
	for _, need := range []string{stack.Collector, stack.Query} {
		if !slices.Contains(cfg.opts.Services, need) {
			return fmt.Errorf("demo needs the %s service; add it to -services", need)
		}
	}
	st, err := start(ctx, cfg, stdout, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop(st, cfg, stdout)) }()

	if err := replay(ctx, cfg, st, stdout); err != nil && ctx.Err() == nil {
		return err
	}
	if ctx.Err() == nil {
		fmt.Fprintln(stdout)
		printAddresses(stdout, st)
		fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
	}
	<-ctx.Done()
	return nil
}

func replay(ctx context.Context, cfg config, st *stack.Stack, stdout io.Writer) error {
	client := &demo.Client{
		HTTP:         st.Client(),
		CollectorURL: st.CollectorURL(),
		QueryURL:     st.QueryURL(),
	}
	fmt.Fprintf(stdout, "\nReplaying %s through the collector...\n", cfg.logFile)
	began := time.Now()
	r, err := client.Replay(ctx, cfg.logFile, demo.DefaultChunkLines)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Sent %d lines in %s: %d accepted, %d rejected.\n", r.Lines, time.Since(began).Round(time.Millisecond), r.Accepted, len(r.Rejected))
	for i, rej := range r.Rejected {
		if i == 5 {
			fmt.Fprintf(stdout, "  ... and %d more\n", len(r.Rejected)-i)
			break
		}
		fmt.Fprintf(stdout, "  line %d: %s\n", rej.Line, rej.Error)
	}
	if r.Accepted == 0 {
		return errors.New("demo: the collector accepted no line")
	}

	fmt.Fprintf(stdout, "Waiting for the query API to count %d requests between %s and %s...\n",
		r.Accepted, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	wctx, cancel := context.WithTimeout(ctx, cfg.demoTimeout)
	defer cancel()
	q := demo.SeriesQuery{Metric: "requests", From: r.From, To: r.To, Step: "1h"}
	requests, err := client.WaitForTotal(wctx, q, float64(r.Accepted), time.Second)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(stdout, "All %d requests counted %s after the replay started.\n\n", r.Accepted, time.Since(began).Round(time.Millisecond))
	q.Metric, q.GroupBy = "requests_by_status_class", "status_class"
	byClass, err := client.QuerySeries(ctx, q)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return demo.WriteHourlyTable(stdout, requests, byClass)
}

func printAddresses(w io.Writer, st *stack.Stack) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range st.Services() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, st.ServiceURL(name), st.LogPath(name))
	}
	fmt.Fprintf(tw, "  kafka\t%s\t(in-process)\n", strings.Join(st.Brokers(), ","))
	fmt.Fprintf(tw, "  redis\t%s\t%s\n", st.RedisAddr(), st.LogPath("redis"))
	fmt.Fprintf(tw, "  clickhouse\t%s\t%s\n", st.ClickHouseAddr(), st.LogPath("clickhouse"))
	fmt.Fprintf(tw, "  \tclickhouse-client --port %s\t\n", st.ClickHouseAddr()[strings.LastIndexByte(st.ClickHouseAddr(), ':')+1:])
	fmt.Fprintf(tw, "  clickhouse http\t%s\t\n", st.ClickHouseHTTPURL())
	fmt.Fprintf(tw, "  data\t%s\t\n", st.DataDir())
	_ = tw.Flush()
	keys := st.Keys()
	fmt.Fprintf(w, "\n  API keys (generated for this run; the services hold only their SHA-256, in %s):\n", filepath.Join(st.DataDir(), stack.KeysFileName))
	fmt.Fprintf(w, "    ingest  %s\n    read    %s\n    admin   %s   (read + admin)\n", keys.Ingest, keys.Read, keys.Admin)
	if st.QueryURL() != "" {
		fmt.Fprintf(w, "\n  dashboard: %s/?key=%s\n", st.QueryURL(), keys.Read)
		fmt.Fprintf(w, "  e.g. curl -H 'Authorization: Bearer %s' '%s/api/v1/series?metric=requests&from=0&to=%d&step=1h'\n", keys.Read, st.QueryURL(), time.Now().UnixMilli())
	}
	if st.CollectorURL() != "" {
		fmt.Fprintf(w, "       curl -H 'Authorization: Bearer %s' %s/v1/events -d '{\"type\":\"click\",\"user_id\":\"u1\",\"event_time\":%d}'\n", keys.Ingest, st.CollectorURL(), time.Now().UnixMilli())
	}
}
