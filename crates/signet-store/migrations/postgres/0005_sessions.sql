-- Web sessions for the portal and the operator console. The cookie carries a random 256-bit
-- token; only its SHA-256 is stored, so a copy of this table cannot be replayed as cookies.
-- Front ends keep no session state in memory: any node serves any request.
CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,
    -- The synchronizer token every form posts back (not a login secret: it only proves the
    -- form came from a page this session loaded).
    csrf       TEXT NOT NULL,
    -- '' while anonymous, else 'applicant:<reference>' or 'operator:<id>'.
    principal  TEXT NOT NULL,
    -- Unfinished work (the application wizard's draft) as JSON.
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
