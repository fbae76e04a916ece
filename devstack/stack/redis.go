package stack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis runs redis-server on 127.0.0.1:port with its append-only file
// under dir (fsync every second, Redis's default), and returns once it answers PING. On failure the process is
// stopped.
func startRedis(ctx context.Context, logger *slog.Logger, bin, dir, logPath string, port int) (*process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--appendonly", "yes",
		"--save", "",
		// The checkpoints write a lot: with Redis's defaults (rewrite at
		// 100 % growth past 64 MB) the AOF was rewritten every ~30 s under
		// the benchmark's load, each time compressing the whole dataset
		// (lzf_compress and rdbSaveObject were ~17 % of redis's CPU).
		// Rewrite less often: the AOF may grow to 4x its base, 256 MB at
		// least, before it is compacted.
		"--auto-aof-rewrite-percentage", "300",
		"--auto-aof-rewrite-min-size", "256mb",
		// A rewrite writes the dataset as an RDB preamble. Most of it is
		// the aggregator's event-id hashes and sketches, which LZF cannot
		// shrink: rewriting the 200 MB dataset of a 10-minute benchmark
		// took 2.6 s of a core with compression and 1.0 s without, for a
		// file 2 % larger. Under load those rewrites took 5-14 s each and
		// every live probe over 1 s waited during one.
		"--rdbcompression", "no",
		"--daemonize", "no",
	}
	proc, err := startProcess(logger, "redis", bin, args, os.Environ(), logPath)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(&redis.Options{
		Addr:        hostPort(port),
		DialTimeout: time.Second,
		MaxRetries:  -1,
	})
	defer client.Close()
	err = pollUntil(ctx, proc, 20*time.Millisecond, func(ctx context.Context) error {
		return client.Ping(ctx).Err()
	})
	if err != nil {
		proc.kill()
		return nil, fmt.Errorf("redis on port %d not ready: %w", port, err)
	}
	return proc, nil
}
