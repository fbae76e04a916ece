-- Raw events, one row per event (events.Event schema v1). A replayed event
-- has the same (type, event_time, event_id) and collapses on merge; queries
-- that must be exact read with FINAL. properties is stored as two aligned
-- arrays (no Map on ClickHouse 18.16); event_time_ms keeps the millisecond
-- event time beside the DateTime (no DateTime64 on 18.16).
CREATE TABLE IF NOT EXISTS {database}.events
(
    event_id          String,
    type              String,
    event_time        DateTime,
    event_time_ms     Int64,
    receive_time_ms   Int64,
    v                 UInt16,
    key               String,
    source            String,
    user_id           String,
    session_id        String,
    page              String,
    product_id        String,
    amount            Float64,
    query             String,
    properties_keys   Array(String),
    properties_values Array(String),
    service           String,
    endpoint          String,
    latency_ms        Float64,
    status            Int32,
    client_ip         String,
    method            String,
    path              String,
    protocol          String,
    bytes             Int64,
    referrer          String,
    user_agent        String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (type, event_time, event_id);
