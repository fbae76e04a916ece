-- One row per window result emission (metrics.Result). Rows of one window
-- (metric, start, end, label set, shard) collapse to the highest revision; exact
-- reads use FINAL. labels are two aligned arrays sorted by name, labels_key
-- is metrics.LabelsKey of the same set.
CREATE TABLE IF NOT EXISTS {database}.metric_windows
(
    metric          String,
    labels_key      String,
    label_names     Array(String),
    label_values    Array(String),
    window_start    DateTime,
    window_start_ms Int64,
    window_end_ms   Int64,
    shard           Int32,
    complete        UInt8,
    kind            String,
    revision        Int64,
    count           Int64,
    sum             Float64,
    min             Float64,
    max             Float64,
    value           Float64,
    watermark_ms    Int64
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(window_start)
ORDER BY (metric, window_start_ms, window_end_ms, labels_key, shard);
