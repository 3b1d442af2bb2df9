-- Certificates from intent to issued (or failed); the lifecycle is a closed enum.
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,
    profile           TEXT NOT NULL,
    subject           TEXT NOT NULL,
    spki_sha256       TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('intent', 'issued', 'failed')),
    der               BLOB,
    not_before        BIGINT,
    not_after         BIGINT,
    requested_by      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason BIGINT CHECK (revocation_reason BETWEEN 0 AND 10 AND revocation_reason <> 7),
    CHECK ((state = 'issued') = (der IS NOT NULL)),
    CHECK (revoked_at IS NULL OR state = 'issued')
);
-- A key may be certified once; a failed intent releases it.
CREATE UNIQUE INDEX certificates_key ON certificates (spki_sha256) WHERE state <> 'failed';
CREATE INDEX certificates_revoked ON certificates (not_after) WHERE revoked_at IS NOT NULL;

CREATE TABLE crl_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    number BIGINT NOT NULL
);
INSERT INTO crl_state (id, number) VALUES (1, 0);

CREATE TABLE api_keys (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('ra-operator', 'ra-administrator')),
    created_at   BIGINT NOT NULL
);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
-- The chain head: updating it first in every writing transaction serializes appends.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
