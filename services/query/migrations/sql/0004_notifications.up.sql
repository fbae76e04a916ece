-- Notification outcomes from the notifications topic, payload kept as the
-- producer's JSON (its schema belongs to the notifier). id is the payload's
-- "id" when it has one, else the record's partition and offset, so a
-- replayed record collapses on merge. Exact reads use FINAL.
CREATE TABLE IF NOT EXISTS {database}.notifications
(
    id          String,
    schema      String,
    key         String,
    received    DateTime,
    received_ms Int64,
    payload     String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received)
ORDER BY id;
