-- Password reset by emailed single-use links (issue #4).

-- The applicant's email, lowercased by the store, so a reset request finds its accounts by
-- address without reading every form. Filled from the forms already stored.
ALTER TABLE applications ADD COLUMN email_lower TEXT;
UPDATE applications SET email_lower = lower(form::json -> 'applicant' ->> 'email');
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

-- A new outbox kind for the reset email.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN (
    'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
    'deadline-reminder', 'expired', 'rejected', 'password-reset'
));
