-- Enrollment (issue #3): applicant organizations, applications, and the notification outbox.

-- Organizations are unique by their duplicate-detection key (OrganizationKey: case, punctuation
-- and legal-form spellings folded), so "Acme, Inc." and "ACME Inc" are one row.
CREATE TABLE organizations (
    org_key    TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    -- The name lowercased by the store: case-insensitive substring search on both backends
    -- (ILIKE is PostgreSQL-only).
    name_lower TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per application: the checked form and the state's evidence as JSON; the state name is
-- a closed list (ALL_STATE_NAMES, kept equal by a unit test in src/applications.rs).
CREATE TABLE applications (
    id           TEXT PRIMARY KEY,
    form         TEXT NOT NULL,
    -- The applicant account password as an Argon2id PHC string, never the password itself.
    password_phc TEXT NOT NULL CHECK (password_phc LIKE '$argon2id$%'),
    submitted_at BIGINT NOT NULL,
    -- Optimistic concurrency: every transition saves only over the revision it was made from.
    revision     BIGINT NOT NULL CHECK (revision >= 0),
    state        TEXT NOT NULL CHECK (state IN (
        'submitted', 'email-verified', 'forms-received', 'officer-confirmed', 'identity-verified',
        'first-approved', 'approved', 'token-shipped', 'certificates-ready', 'retrieved',
        'rejected', 'expired', 'withdrawn'
    )),
    state_data   TEXT NOT NULL,
    -- ApplicationState::is_open as the domain decided it, so which states are open is not
    -- repeated in SQL; the deadline job pages through the partial index below.
    is_open      BIGINT NOT NULL CHECK (is_open IN (0, 1)),
    updated_at   BIGINT NOT NULL
);
CREATE INDEX applications_open ON applications (id) WHERE is_open = 1;

-- Applicant emails, queued in the same transaction as the change they announce. The dedup key
-- makes re-queuing (the deadline job re-running) a no-op. A sent row is kept, body redacted,
-- so its key still suppresses duplicates.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key  TEXT NOT NULL UNIQUE,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body_text  TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN (
        'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
        'deadline-reminder', 'expired', 'rejected'
    )),
    queued_at  BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
