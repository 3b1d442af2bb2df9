-- Operator console sign-in (issue #3): RA operator accounts, and the failure counts behind the
-- lockouts on every secret a person types.

CREATE TABLE operators (
    id              TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('ra-operator', 'ra-administrator')),
    -- The console password as an Argon2id PHC string, never the password itself.
    password_phc    TEXT NOT NULL CHECK (password_phc LIKE '$argon2id$%'),
    -- The TOTP seed in base32, in clear. Unlike a password it cannot be hashed: the server must
    -- compute the codes to check them. What protects it is what protects this database (file
    -- mode 0600 or PostgreSQL's role grants, and backups kept like the CA's key material), and
    -- that a seed alone signs no one in: the Argon2id password and its lockout stand in front.
    -- A stolen seed is revoked by re-enrolling the operator.
    totp_secret     TEXT NOT NULL,
    totp_algorithm  TEXT NOT NULL CHECK (totp_algorithm IN ('SHA1', 'SHA256')),
    totp_digits     BIGINT NOT NULL CHECK (totp_digits IN (6, 8)),
    -- The last TOTP time step accepted; only later steps are, which makes every code single-use
    -- across all nodes (the update is a compare-and-set on this column).
    last_totp_step  BIGINT CHECK (last_totp_step >= 0),
    disabled        BIGINT NOT NULL CHECK (disabled IN (0, 1)),
    created_at      BIGINT NOT NULL
);

-- Consecutive failures per (scope, subject); a success deletes the row. The subject need not
-- exist (a guessed operator id is counted like a real one), so lockouts reveal no accounts.
CREATE TABLE login_attempts (
    scope              TEXT NOT NULL CHECK (scope IN (
        'operator-password', 'operator-totp', 'applicant-password', 'activation-code',
        'subscriber-password', 'subscriber-totp', 'password-reset'
    )),
    subject            TEXT NOT NULL,
    failures           BIGINT NOT NULL CHECK (failures > 0),
    last_failure       BIGINT NOT NULL,
    -- A timed lock ends at locked_until; until_unlocked = 1 is a lock only an administrator ends.
    locked_until       BIGINT,
    until_unlocked     BIGINT NOT NULL CHECK (until_unlocked IN (0, 1)),
    CHECK (until_unlocked = 0 OR locked_until IS NULL),
    PRIMARY KEY (scope, subject)
);
