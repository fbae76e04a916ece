// Command streamwatch-bench runs Streamwatch's end-to-end benchmark on the
// embedded stack (see package devstack/bench) and writes
// bench/results/<date>-<host>.md, .json and PNG plots.
//
//	streamwatch-bench                      # 60 s per phase (the target duration)
//	streamwatch-bench -duration 20s        # a short run
//	streamwatch-bench -duration 10m        # flat-throughput check, rates per minute
//	streamwatch-bench -render bench/results/2026-11-21-vm.json  # report and plots again
//
// It needs redis-server and clickhouse-server (as `make test` does), Go to
// build the services, and optionally perf for CPU profiles.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/streamwatch/streamwatch/devstack/bench"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		cfg      bench.Config
		out      string
		logLevel string
	)
	flag.StringVar(&cfg.Repo, "repo", "", "checkout to build the services from (default: the directory holding go.work above the working directory)")
	flag.StringVar(&out, "out", "", "results directory (default: <repo>/bench/results)")
	flag.StringVar(&cfg.DataDir, "data", "", "stack data directory (default: a temporary directory, removed after the results are written)")
	flag.StringVar(&cfg.BinDir, "bin", "", "prebuilt service binaries (default: build them)")
	flag.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "sending time of each phase")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", bench.DefaultDrainTimeout, "longest wait after sending for every event to be counted")
	flag.IntVar(&cfg.Workers, "workers", 4, "concurrent generator requests")
	flag.IntVar(&cfg.Batch, "batch", 1000, "items per generator request")
	flag.Float64Var(&cfg.MaxEPS, "max-eps", bench.DefaultMaxEPS, "first event-time rate of the max phase (events per second of event time; then the rate accepted, every 5 s)")
	partitions := flag.Int("partitions", 6, "partitions per topic")
	flag.Int64Var(&cfg.CeilingEvents, "ceiling-events", bench.DefaultCeilingEvents, "events moved by the broker-only ceiling run")
	flag.BoolVar(&cfg.Profile, "profile", true, "perf CPU profile of every service during the half phase (needs perf)")
	flag.DurationVar(&cfg.ProfileSeconds, "profile-duration", bench.DefaultProfileSeconds, "length of each profile")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&cfg.Note, "note", "", "free text for the report (e.g. the commit of -bin's binaries)")
	render := flag.String("render", "", "only render the report and plots again from this result JSON (next to it)")
	flag.Parse()
	if *render != "" {
		return rerender(*render)
	}
	cfg.Partitions = int32(*partitions)

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-bench: -log-level:", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.Repo == "" {
		repo, err := findRepo()
		if err != nil {
			fmt.Fprintln(os.Stderr, "streamwatch-bench:", err)
			return 2
		}
		cfg.Repo = repo
	}
	if out == "" {
		out = filepath.Join(cfg.Repo, "bench", "results")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.DataDir == "" {
		// Removing ClickHouse's files takes long on a busy disk: only after
		// the results are written.
		tmp, err := os.MkdirTemp("", "streamwatch-bench-data-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "streamwatch-bench:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		cfg.DataDir = tmp
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-bench:", err)
		return 1
	}
	files, err := bench.WriteResults(res, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-bench: write results:", err)
		return 1
	}
	for _, f := range files {
		fmt.Println(f)
	}
	for _, t := range res.Targets {
		fmt.Printf("%-18s %-13s %s\n", t.Name, t.Status, t.Measured)
	}
	return 0
}

// rerender writes the report and plots of a result JSON again, next to
// it, with this build's per-minute rates, rendering and target
// evaluation.
func rerender(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-bench:", err)
		return 1
	}
	var res bench.Result
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(os.Stderr, "streamwatch-bench: %s: %v\n", path, err)
		return 1
	}
	bench.Recount(&res)
	res.Targets = bench.Targets(&res)
	files, err := bench.WriteResults(&res, filepath.Dir(path))
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-bench:", err)
		return 1
	}
	for _, f := range files {
		fmt.Println(f)
	}
	return 0
}

// findRepo returns the nearest directory at or above the working directory
// that holds go.work.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: give -repo")
		}
		dir = parent
	}
}
