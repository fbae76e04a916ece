package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamwatch/streamwatch/services/query/internal/adapters"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/config"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// RunID returns a batch run id for a run started at t: "b" + UTC
// yyyymmddThhmmss.mmm.
func RunID(t time.Time) string { return "b" + t.UTC().Format("20060102T150405.000") }

// RunBatch connects to ClickHouse (migrating when cfg.Migrate) and runs
// the batch job once over [fromMs, toMs) for every definition (or those
// named in only); it is the body of `query batch`.
func RunBatch(ctx context.Context, cfg config.Config, fromMs, toMs int64, only []string, logger *slog.Logger) (batch.Run, error) {
	defs, err := cfg.Batch.Definitions()
	if err != nil {
		return batch.Run{}, err
	}
	ch, err := adapters.OpenClickHouse(ctx, cfg.ClickHouse)
	if err != nil {
		return batch.Run{}, err
	}
	defer ch.Close()
	if cfg.Migrate {
		if err := migrations.Up(ctx, ch, cfg.ClickHouse.Database, logger); err != nil {
			return batch.Run{}, fmt.Errorf("migrate clickhouse: %w", err)
		}
	}
	job := command.NewRunBatchHandler(adapters.NewClickHouseBatchRepository(ch, cfg.ClickHouse.Database), defs).
		WithPlan(cfg.Batch.Chunk, cfg.Batch.Parallelism)
	return job.Handle(ctx, RunID(time.Now()), fromMs, toMs, only)
}

// RunBatchSchedule runs the batch job every cfg.Batch.Interval over the
// event-time range [now - Delay - Range, now - Delay) until ctx is done.
// A failed run is logged and the schedule continues. It returns nil when
// the schedule is disabled (Interval 0).
func (s *Service) RunBatchSchedule(ctx context.Context, logger *slog.Logger) error {
	b := s.cfg.Batch
	if b.Interval <= 0 {
		return nil
	}
	tick := time.NewTicker(b.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			to := now.Add(-b.Delay).UnixMilli()
			run, err := s.app.Commands.RunBatch.Handle(ctx, RunID(now), to-b.Range.Milliseconds(), to, nil)
			if err != nil {
				logger.Error("scheduled batch run failed", "run", run.ID, "error", err.Error())
				continue
			}
			logger.Info("scheduled batch run done", "run", run.ID, "windows", run.Windows, "metrics", len(run.Metrics))
		}
	}
}
