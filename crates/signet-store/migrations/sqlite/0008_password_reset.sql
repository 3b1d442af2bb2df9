-- Password reset by emailed single-use links (issue #4).

-- The applicant's email, lowercased by the store, so a reset request finds its accounts by
-- address without reading every form. Filled from the forms already stored.
ALTER TABLE applications ADD COLUMN email_lower TEXT;
UPDATE applications SET email_lower = lower(json_extract(form, '$.applicant.email'));
CREATE INDEX applications_email ON applications (email_lower);

-- One row per emailed link. Only the SHA-256 of the link's token is kept.
CREATE TABLE password_resets (
    token_digest TEXT PRIMARY KEY CHECK (length(token_digest) = 64),
    account      TEXT NOT NULL,
    email        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL CHECK (expires_at > created_at),
    used_at      BIGINT
);
CREATE INDEX password_resets_account ON password_resets (account, created_at);

-- A new outbox kind for the reset email. SQLite cannot alter a CHECK, so the table is rebuilt
-- with its rows (ids kept, so AUTOINCREMENT continues after them).
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN (
        'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
        'deadline-reminder', 'expired', 'rejected', 'password-reset'
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
