-- Lambda batch layer. batch_runs: one row per state of a run (running,
-- done, failed); the highest version is the current state (read FINAL).
-- metrics lists the metrics the run recomputed, skipped those it could
-- not (e.g. session windows). [from_ms, to_ms) is the event-time range
-- whose whole windows the run covers.
CREATE TABLE IF NOT EXISTS {database}.batch_runs
(
    run_id      String,
    from_ms     Int64,
    to_ms       Int64,
    metrics     Array(String),
    skipped     Array(String),
    status      String,
    windows     UInt64,
    started_ms  Int64,
    finished_ms Int64,
    error       String,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY run_id;
-- The batch view: one row per run, metric, window and label set (whole
-- values, no shards), as the batch job recomputed them from raw events.
CREATE TABLE IF NOT EXISTS {database}.metric_windows_batch
(
    run_id          String,
    metric          String,
    labels_key      String,
    label_names     Array(String),
    label_values    Array(String),
    window_start    DateTime,
    window_start_ms Int64,
    window_end_ms   Int64,
    count           Int64,
    sum             Float64,
    min             Float64,
    max             Float64,
    value           Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (metric, window_start_ms, window_end_ms, labels_key, run_id);
