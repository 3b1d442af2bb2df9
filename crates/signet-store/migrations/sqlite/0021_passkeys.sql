-- Passkeys (WebAuthn credentials) as a second factor, for subscribers and operators. Only the
-- public half is kept: the key, its counters and what the owner calls it.
CREATE TABLE passkeys (
    -- The credential id, base64url without padding, as browsers report it.
    credential_id TEXT PRIMARY KEY,
    owner         TEXT NOT NULL CHECK (owner LIKE 'subscriber:%' OR owner LIKE 'operator:%'),
    -- The WebAuthn user handle, random, hex; the same for all of an owner's passkeys.
    user_handle   TEXT NOT NULL CHECK (length(user_handle) = 32),
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 240),
    aaguid        TEXT NOT NULL CHECK (length(aaguid) = 36),
    static_state  BLOB NOT NULL,
    dynamic_state BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX passkeys_owner ON passkeys (owner, created_at);

-- A notice when the way a subscriber signs in changes.
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
        'certificate-renewed', 'certificate-expiring', 'sign-in-changed'
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
