-- Certificate Management Center (issue #5): subscribers' soft tokens and recovery questions.

-- A subscriber account (an application reference) has at most one active soft token and at
-- most one pending (shown, not yet registered) one: a replacement waits beside the token it
-- replaces until its registration code arrives.
CREATE TABLE soft_tokens (
    serial       TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    -- The TOTP seed, base32: the server must compute codes, so it cannot be hashed.
    secret       TEXT NOT NULL,
    algorithm    TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256')),
    digits       BIGINT NOT NULL CHECK (digits IN (6, 8)),
    pin_phc      TEXT CHECK (pin_phc IS NULL OR pin_phc LIKE '$argon2id$%'),
    -- The newest accepted step; it only moves forward, so no code works twice.
    last_step    BIGINT CHECK (last_step >= 0),
    created_at   BIGINT NOT NULL,
    CHECK ((state = 'active') = (last_step IS NOT NULL))
);
CREATE UNIQUE INDEX soft_tokens_account_state ON soft_tokens (account, state);

-- Answers are normalized and hashed with Argon2id like passwords, never stored in clear.
CREATE TABLE recovery_questions (
    account    TEXT NOT NULL,
    position   BIGINT NOT NULL CHECK (position >= 0),
    question   BIGINT NOT NULL CHECK (question >= 0),
    answer_phc TEXT NOT NULL CHECK (answer_phc LIKE '$argon2id$%'),
    PRIMARY KEY (account, position)
);

-- A new lockout scope for recovery answers.
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_scope_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_scope_check CHECK (scope IN (
    'operator-password', 'operator-totp', 'applicant-password', 'activation-code',
    'subscriber-password', 'subscriber-totp', 'password-reset', 'subscriber-recovery'
));
