// Package service wires the aggregator: the windowing operator on events.raw
// run by the shared stream service (Kafka, Redis checkpoints, HTTP health).
package service

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/adapters/profilestream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/config"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

// Group is the aggregator's consumer group and checkpoint namespace. Never
// rename it: a new group starts from empty state and re-reads events.raw.
const Group = "aggregator.windows"

// Run runs the aggregator until ctx is done, then shuts down gracefully. It
// returns an error when a dependency cannot be set up or a component fails.
// Besides the shared pipeline metrics it exports the state gauges (open
// windows, state size, watermark delay per partition) and the late-event
// counter.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	defs, err := loadDefinitions(cfg.MetricsFile)
	if err != nil {
		return err
	}
	logger.Info("metric definitions loaded", "count", len(defs), "file", cmp.Or(cfg.MetricsFile, metrics.DefaultsFile))
	joiner, loader, err := newJoin(cfg, logger)
	if err != nil {
		return err
	}
	defer loader.Close()
	op := app.NewAggregate(app.Settings{
		Definitions: defs,
		Join:        joiner,
		Window: window.Config{
			OutOfOrderness:  cfg.Window.OutOfOrderness.Milliseconds(),
			AllowedLateness: cfg.Window.AllowedLateness.Milliseconds(),
			IdleTimeout:     cfg.Window.IdleTimeout.Milliseconds(),
			EarlyInterval:   cfg.Window.EmitInterval.Milliseconds(),
			ScanStep:        cfg.Window.FinalsStep,
			ScanPause:       cfg.Window.FinalsPause.Milliseconds(),
		},
	})
	unregister, err := observeGauges(op, time.Now)
	if err != nil {
		return err
	}
	defer func() { _ = unregister() }()
	counted, err := newCountingOperator(op)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return loader.Run(gctx) })
	g.Go(func() error {
		return stream.RunService(gctx, stream.ServiceConfig{
			Name: "aggregator", HTTP: cfg.HTTP, Kafka: cfg.Kafka, Redis: cfg.Redis,
			Group: Group, Topic: messaging.TopicEventsRaw, TickInterval: cfg.Window.EmitInterval,
			MaxBatchRecords: MaxBatchRecords, CommitInterval: cfg.CommitInterval,
		}, counted, logger)
	})
	err = g.Wait()
	st := joiner.Stats()
	logger.Info("join stopped", "profiles", st.Table.Entries, "bytes", st.Table.Bytes, "overflow", st.Table.Overflow,
		"user_lookups", st.UserLookups, "user_misses", st.UserMisses, "product_lookups", st.ProductLookups,
		"product_misses", st.ProductMisses, "service_lookups", st.ServiceLookups, "service_misses", st.ServiceMisses,
		"ip_lookups", st.IPLookups, "ip_misses", st.IPMisses)
	return err
}

// MaxBatchRecords is the most events.raw records of one partition the
// aggregator applies with one checkpoint commit (stream.HandleBatch): a
// window that many records of the batch touch is written to Redis once,
// not once per record, and the outputs go out in one produce round. With
// no backlog a batch is the one record that arrived, or, with
// AGG_COMMIT_INTERVAL set, the records of one interval.
const MaxBatchRecords = 100

// newJoin builds the stream-table join (docs/join.md): the profiles table,
// the loader that feeds it from the profiles topic, and the IP ranges of
// cfg.Join.GeoIPFile. The caller closes the loader.
func newJoin(cfg config.Config, logger *slog.Logger) (*join.Joiner, *profilestream.Loader, error) {
	var geo *join.GeoIP
	if cfg.Join.GeoIPFile != "" {
		f, err := os.Open(cfg.Join.GeoIPFile)
		if err != nil {
			return nil, nil, fmt.Errorf("AGG_GEOIP_FILE: %w", err)
		}
		geo, err = join.ParseGeoIP(cfg.Join.GeoIPFile, f)
		_ = f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("AGG_GEOIP_FILE: %w", err)
		}
		logger.Info("ip ranges loaded", "file", cfg.Join.GeoIPFile, "ranges", geo.Len())
	}
	table := join.NewTable(cfg.Join.MaxEntries)
	loader, err := profilestream.New(cfg.Kafka, table, logger)
	if err != nil {
		return nil, nil, err
	}
	return join.NewJoiner(join.Settings{Table: table, GeoIP: geo, Ends: loader, BarrierTimeout: cfg.Join.BarrierTimeout}), loader, nil
}

// loadDefinitions returns the definitions of path, or the built-in set when
// path is empty. Errors name the file, line and reason.
func loadDefinitions(path string) ([]metrics.Definition, error) {
	if path == "" {
		return metrics.Defaults()
	}
	return metrics.LoadDefinitions(path)
}
