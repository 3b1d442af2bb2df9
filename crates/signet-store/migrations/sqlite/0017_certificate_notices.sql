-- Three outbox kinds for the subscriber's certificates: revoked, renewed, expiring soon.
-- SQLite cannot alter a CHECK, so the table is rebuilt with its rows (ids kept, so
-- AUTOINCREMENT continues after them).
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN (
        'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
        'deadline-reminder', 'expired', 'rejected', 'password-reset', 'forms-deficient', 'certificate-revoked',
        'certificate-renewed', 'certificate-expiring'
    )),
    queued_at       BIGINT NOT NULL,
    sent_at         BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at BIGINT,
    last_error      TEXT
);
INSERT INTO outbox_new (id, dedup_key, recipient, subject, body_text, kind, queued_at, sent_at, attempts, next_attempt_at, last_error)
    SELECT id, dedup_key, recipient, subject, body_text, kind, queued_at, sent_at, attempts, next_attempt_at, last_error FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
