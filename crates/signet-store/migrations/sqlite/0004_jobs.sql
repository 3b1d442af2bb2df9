-- Background jobs (issue 7): several `signet serve` nodes share one database, and each job runs
-- on the node holding its lease. A node renews its own lease on every run; another node takes
-- it over only once it has expired (the holder stopped or lost the database).
CREATE TABLE job_leases (
    name       TEXT PRIMARY KEY,
    -- The node's id, unique per process run.
    holder     TEXT NOT NULL,
    -- Unix seconds by the injected clock.
    expires_at BIGINT NOT NULL
);

-- Outbox delivery bookkeeping: the relay claims a message by moving next_attempt_at past the
-- send (so a second sender skips it), counts the attempt, and on failure records the error and
-- the backed-off time of the next attempt. NULL next_attempt_at: never tried, due now.
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0);
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
