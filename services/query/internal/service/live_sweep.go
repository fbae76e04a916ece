package service

import (
	"context"
	"log/slog"
	"time"
)

// LiveSweepInterval is how often RunLiveSweep sweeps the live view.
const LiveSweepInterval = time.Minute

// RunLiveSweep removes, every LiveSweepInterval until ctx is done, the
// label sets of the live view whose latest window ended more than
// cfg.LiveRetention before their metric's newest window end (see
// adapters.RedisLiveRepository.SweepLive), for every defined metric.
// Failures are logged; the next sweep tries again. It returns nil at once
// when LiveRetention is 0 (sweeping disabled).
func (s *Service) RunLiveSweep(ctx context.Context, logger *slog.Logger) error {
	if s.cfg.LiveRetention <= 0 {
		return nil
	}
	tick := time.NewTicker(LiveSweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			n, err := s.storage.Live.SweepLive(ctx, s.metricNames, s.cfg.LiveRetention)
			if err != nil && ctx.Err() == nil {
				logger.Warn("live view sweep failed", "removed", n, "error", err.Error())
				continue
			}
			if n > 0 {
				logger.Debug("live view swept", "removed", n)
			}
		}
	}
}
