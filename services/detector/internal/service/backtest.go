package service

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/services/detector/internal/adapters"
)

// Backtest runs `detector backtest --rule FILE --from T --to T`: it
// evaluates the rules of FILE over the window results and raw events stored
// in ClickHouse with the live detector's code (rules.Backtest) and writes
// every alert state change it would have emitted to stdout, one JSON object
// per line, then a summary line to stderr. Times are RFC 3339 or ms since
// the epoch. ClickHouse is CLICKHOUSE_ADDR / CLICKHOUSE_DATABASE /
// CLICKHOUSE_USER / CLICKHOUSE_PASSWORD unless flags say otherwise. It
// returns the process exit code: 0 done, 1 failure, 2 bad usage.
func Backtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detector backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ruleFile := fs.String("rule", "", "YAML rules file to backtest (required)")
	fromS := fs.String("from", "", "start of the history, RFC 3339 or ms (required)")
	toS := fs.String("to", "", "end of the history (exclusive), RFC 3339 or ms (required)")
	addr := fs.String("clickhouse", envOr("CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native address")
	db := fs.String("database", envOr("CLICKHOUSE_DATABASE", "streamwatch"), "ClickHouse database")
	ooo := fs.Duration("out-of-orderness", 5*time.Second, "the live detector's DETECTOR_OUT_OF_ORDERNESS")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	from, errFrom := parseTime(*fromS)
	to, errTo := parseTime(*toS)
	if err := errors.Join(errFrom, errTo); err != nil || *ruleFile == "" || to <= from {
		fmt.Fprintln(stderr, "detector backtest: --rule, --from and --to are required, with from < to:", err)
		fs.Usage()
		return 2
	}
	rs, err := LoadRules(*ruleFile)
	if err != nil {
		fmt.Fprintln(stderr, "detector backtest:", err)
		return 2
	}
	set, err := rules.NewSet(rs)
	if err != nil {
		fmt.Fprintln(stderr, "detector backtest:", err)
		return 2
	}
	hist, err := adapters.NewClickHouseHistory(ctx, *addr, *db, os.Getenv("CLICKHOUSE_USER"), os.Getenv("CLICKHOUSE_PASSWORD"))
	if err != nil {
		fmt.Fprintln(stderr, "detector backtest:", err)
		return 1
	}
	defer hist.Close()
	points, err := hist.Windows(ctx, set.WindowMetrics(), from, to)
	if err != nil {
		fmt.Fprintln(stderr, "detector backtest:", err)
		return 1
	}
	evs, err := hist.Events(ctx, set.EventTypes(), from, to)
	if err != nil {
		fmt.Fprintln(stderr, "detector backtest:", err)
		return 1
	}
	changes := rules.Backtest(set, points, evs, ooo.Milliseconds())
	enc := json.NewEncoder(stdout)
	firing := 0
	for i := range changes {
		if changes[i].State == "firing" {
			firing++
		}
		if err := enc.Encode(&changes[i]); err != nil {
			fmt.Fprintln(stderr, "detector backtest:", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "backtest: %d rules, %d window results, %d events: %d alerts would have fired (%d state changes)\n",
		set.Len(), len(points), len(evs), firing, len(changes))
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parseTime reads RFC 3339 or integer ms since the epoch.
func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC 3339 nor ms since the epoch", s)
	}
	return t.UnixMilli(), nil
}
