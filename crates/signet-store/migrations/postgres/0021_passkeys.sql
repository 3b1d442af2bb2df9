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
    static_state  BYTEA NOT NULL,
    dynamic_state BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_owner ON passkeys (owner, created_at);

-- A notice when the way a subscriber signs in changes.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN (
    'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
    'deadline-reminder', 'expired', 'rejected', 'password-reset', 'forms-deficient', 'certificate-revoked',
    'certificate-renewed', 'certificate-expiring', 'sign-in-changed'
));
