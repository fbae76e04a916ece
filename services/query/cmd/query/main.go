// Command query runs the Streamwatch query service: it projects events.raw,
// metrics.windows, alerts and notifications into ClickHouse and Redis and
// serves the REST API. Configuration comes from environment variables
// (internal/config).
//
// Subcommands:
//
//	query                                   run the service
//	query replay [--projection P] [--from T] [--keep-old]
//	                                        rebuild projection P (events, windows, alerts,
//	                                        notifications, rules, silences, or all) from the
//	                                        log, then swap it in
//	query batch --from T --to T [--metric NAME ...]
//	                                        recompute the metric definitions over the raw
//	                                        events of [from, to) into the batch view
//	query healthcheck                       ask the running service's /readyz
//
// T is RFC 3339 or integer milliseconds since the epoch. replay and batch
// print their report as JSON on stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/service"
)

func main() {
	cfg := config.Default()
	level := func(c *config.Config) string { return c.Log.Level }
	if len(os.Args) > 1 && (os.Args[1] == "replay" || os.Args[1] == "batch") {
		parse := replayCommand
		if os.Args[1] == "batch" {
			parse = batchCommand
		}
		run, err := parse(os.Args[2:])
		if err != nil {
			fmt.Fprintf(os.Stderr, "query %s: %v\n", os.Args[1], err)
			os.Exit(boot.ExitConfig)
		}
		os.Exit(boot.Main("query", &cfg, level, run))
	}
	os.Exit(boot.Main("query", &cfg, level, service.Run))
}

// replayCommand parses the replay flags and returns the run function.
func replayCommand(args []string) (func(context.Context, config.Config, *slog.Logger) error, error) {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	projection := fs.String("projection", "all", "events, windows, alerts, notifications, rules, silences or all")
	from := fs.String("from", "", "replay records from this time (RFC 3339 or ms) on top of the live table; default: the whole log")
	keep := fs.Bool("keep-old", false, "keep the replaced table as <table>_old_<run>")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	fromMs := int64(-1)
	if *from != "" {
		ms, err := parseTime(*from)
		if err != nil {
			return nil, fmt.Errorf("--from: %w", err)
		}
		fromMs = ms
	}
	names := []string{*projection}
	if *projection == "all" {
		names = service.Projections
	}
	return func(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
		run := time.Now().UTC().Format("20060102150405")
		var errs []error
		enc := json.NewEncoder(os.Stdout)
		for _, name := range names {
			rep, err := service.RunReplay(ctx, cfg, service.ReplayOptions{Projection: name, FromMs: fromMs, KeepRetired: *keep, Run: run}, logger)
			if err != nil {
				errs = append(errs, fmt.Errorf("replay %s: %w", name, err))
				continue
			}
			_ = enc.Encode(rep)
		}
		return errors.Join(errs...)
	}, nil
}

// metricList collects repeated --metric flags.
type metricList []string

func (m *metricList) String() string     { return fmt.Sprint(*m) }
func (m *metricList) Set(v string) error { *m = append(*m, v); return nil }

// batchCommand parses the batch flags and returns the run function.
func batchCommand(args []string) (func(context.Context, config.Config, *slog.Logger) error, error) {
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	from := fs.String("from", "", "start of the event-time range (RFC 3339 or ms), required")
	to := fs.String("to", "", "end of the event-time range, exclusive (RFC 3339 or ms), required")
	var only metricList
	fs.Var(&only, "metric", "recompute only this metric (repeatable); default: every definition")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	fromMs, errFrom := parseTime(*from)
	toMs, errTo := parseTime(*to)
	if err := errors.Join(errFrom, errTo); err != nil {
		return nil, fmt.Errorf("--from and --to: %w", err)
	}
	if fromMs >= toMs {
		return nil, fmt.Errorf("--to must be after --from")
	}
	return func(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
		run, err := service.RunBatch(ctx, cfg, fromMs, toMs, only, logger)
		_ = json.NewEncoder(os.Stdout).Encode(run)
		return err
	}, nil
}

func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC 3339 nor integer milliseconds", s)
	}
	return t.UnixMilli(), nil
}
