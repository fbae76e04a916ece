// Command streamwatch-gen sends realistic, deterministic traffic to a
// Streamwatch collector and prints what it sent (its exact tally) and what
// the collector accepted, as JSON.
//
//	streamwatch-gen -url http://127.0.0.1:8080 -items 100000 -rate 0
//	streamwatch-gen -items 6000 -rate 100          # the seed platform's 100 events/s
//	streamwatch-gen -incidents demo -items 200000  # with a scheduled incident of each kind
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streamwatch/streamwatch/devstack/loadgen"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		url       = flag.String("url", "http://127.0.0.1:8080", "collector base URL")
		seed      = flag.Uint64("seed", 1, "random seed: the same seed sends the same traffic")
		items     = flag.Int64("items", 10_000, "events and log lines to send")
		rateFlag  = flag.Float64("rate", 0, "wall-clock items per second; 0 = as fast as possible")
		eps       = flag.Float64("eps", 100, "event-time rate: events per second of event time")
		startFlag = flag.String("start", "", "event time of the first event (RFC 3339); default now minus the span of the run")
		batch     = flag.Int("batch", 1000, "items per HTTP request")
		workers   = flag.Int("workers", 4, "concurrent HTTP requests")
		incidents = flag.String("incidents", "", `incident schedule: "" for none, "demo" for one of each kind`)
		tallyOut  = flag.String("tally", "", "write the exact tally as JSON to this file")
		key       = flag.String("key", os.Getenv("STREAMWATCH_API_KEY"), "collector API key with the ingest scope (default $STREAMWATCH_API_KEY; streamwatch-dev prints one)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	span := time.Duration(float64(*items) / *eps * float64(time.Second))
	start := time.Now().Add(-span).Truncate(time.Second)
	if *startFlag != "" {
		t, err := time.Parse(time.RFC3339, *startFlag)
		if err != nil {
			fmt.Fprintln(os.Stderr, "streamwatch-gen: -start:", err)
			return 2
		}
		start = t
	}
	cfg := loadgen.DefaultConfig(*seed, start)
	cfg.EventsPerSecond = *eps
	switch *incidents {
	case "":
	case "demo":
		cfg.Incidents = demoIncidents(span)
	default:
		fmt.Fprintf(os.Stderr, "streamwatch-gen: -incidents %q: want \"\" or \"demo\"\n", *incidents)
		return 2
	}
	g, err := loadgen.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-gen:", err)
		return 2
	}
	rep, err := loadgen.Send(ctx, g, loadgen.SendOptions{
		CollectorURL: *url, Items: *items, Batch: *batch, Workers: *workers, Rate: *rateFlag, APIKey: *key,
	})
	out := map[string]any{"report": rep, "items_per_second": rep.ItemsPerSecond(), "tally_total": g.Tally().Total}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
	if *tallyOut != "" {
		b, _ := json.MarshalIndent(g.Tally(), "", "  ")
		if werr := os.WriteFile(*tallyOut, b, 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "streamwatch-gen: write tally:", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamwatch-gen:", err)
		return 1
	}
	return 0
}

// demoIncidents spreads one incident of each kind over the run's span.
func demoIncidents(span time.Duration) []loadgen.Incident {
	slot := max(span/5, 2*time.Minute)
	return []loadgen.Incident{
		{Kind: loadgen.LatencySpike, At: slot, Duration: time.Minute, Magnitude: 20},
		{Kind: loadgen.ErrorBurst, At: 2 * slot, Duration: time.Minute, Magnitude: 0.3},
		{Kind: loadgen.TrafficDrop, At: 3 * slot, Duration: time.Minute, Magnitude: 0.8},
		{Kind: loadgen.AbusiveClient, At: 4 * slot, Duration: time.Minute, Magnitude: 300, ClientIP: "203.0.113.66"},
	}
}
