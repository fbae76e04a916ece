-- Rules and silences as the rules and silences topics carry them (the
-- admin API publishes every change there; the detector and the notifier
-- build their configuration from the topics). One row per change; the
-- latest version per id wins (rules: the change time; silences:
-- updated_at). A deleted rule or an expired silence keeps its last row
-- with deleted = 1 / op = 'expire'. The record itself is kept as JSON.
CREATE TABLE IF NOT EXISTS {database}.rules
(
    id         String,
    deleted    UInt8,
    at_ms      Int64,
    record     String,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
CREATE TABLE IF NOT EXISTS {database}.silences
(
    id         String,
    op         String,
    starts_at  Int64,
    ends_at    Int64,
    updated_at Int64,
    created_by String,
    record     String,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
