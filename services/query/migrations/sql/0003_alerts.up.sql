-- Alert state changes (alerts.Alert). One row per state change; the rows of
-- one alert episode (fingerprint, starts_at) collapse on merge to the
-- latest state: state_rank is 1 pending, 2 firing, 3 resolved, and states
-- only move forward within an episode, so the highest rank is the latest
-- whatever order the records were projected in. Exact reads use FINAL.
-- labels and annotations are aligned arrays sorted by name (no Map on 18.16).
CREATE TABLE IF NOT EXISTS {database}.alerts
(
    fingerprint       String,
    rule              String,
    state             String,
    state_rank        UInt8,
    severity          String,
    label_names       Array(String),
    label_values      Array(String),
    annotation_names  Array(String),
    annotation_values Array(String),
    metric            String,
    value             Float64,
    threshold         Float64,
    starts_at         DateTime,
    starts_at_ms      Int64,
    ends_at_ms        Int64,
    window_start_ms   Int64,
    window_end_ms     Int64
)
ENGINE = ReplacingMergeTree(state_rank)
PARTITION BY toYYYYMM(starts_at)
ORDER BY (fingerprint, starts_at_ms);
