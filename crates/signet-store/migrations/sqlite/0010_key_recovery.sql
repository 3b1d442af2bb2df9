-- Key escrow, key recovery under two-agent approval, and witnessed key generation.

-- The escrowed private key of an encryption certificate, written before the certificate is
-- issued so no encryption certificate exists whose key cannot be recovered. The certificate is
-- found later through certificates.spki_sha256. The envelope is CMS EnvelopedData to the key
-- recovery key (krk_id): this table alone opens nothing.
CREATE TABLE escrowed_keys (
    spki_sha256 TEXT PRIMARY KEY CHECK (length(spki_sha256) = 64),
    application TEXT NOT NULL,
    krk_id      TEXT NOT NULL,
    envelope    BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Operators designated as key recovery agents. A designation rather than a new operator role:
-- operators.role has a CHECK that SQLite cannot alter, and an agent keeps their console role.
CREATE TABLE key_recovery_agents (
    operator      TEXT PRIMARY KEY REFERENCES operators (id),
    designated_by TEXT NOT NULL,
    designated_at BIGINT NOT NULL
);

-- A recovery request: pending (no or one approval), approved (two different agents), exported
-- (the key was handed out once, by one of its approvers). version is the compare-and-set
-- counter: every transition writes version + 1 where the previous version still stands.
CREATE TABLE key_recovery_requests (
    id              TEXT PRIMARY KEY,
    serial          TEXT NOT NULL,
    spki_sha256     TEXT NOT NULL REFERENCES escrowed_keys (spki_sha256),
    application     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    requested_at    BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'exported')),
    first_approver  TEXT,
    second_approver TEXT,
    exported_by     TEXT,
    exported_at     BIGINT,
    version         BIGINT NOT NULL CHECK (version >= 0),
    CHECK (second_approver IS NULL OR (first_approver IS NOT NULL AND second_approver <> first_approver)),
    CHECK (state <> 'pending' OR (second_approver IS NULL AND exported_by IS NULL AND exported_at IS NULL)),
    CHECK (state <> 'approved' OR (first_approver IS NOT NULL AND second_approver IS NOT NULL
        AND exported_by IS NULL AND exported_at IS NULL)),
    CHECK (state <> 'exported' OR (first_approver IS NOT NULL AND second_approver IS NOT NULL
        AND exported_at IS NOT NULL AND exported_by IS NOT NULL
        AND exported_by IN (first_approver, second_approver)))
);

-- An RA operator saw the key of a hardware-key certificate generated on the token, in person,
-- where no YubiKey attestation is available. One per application.
CREATE TABLE witnessed_key_generations (
    application  TEXT PRIMARY KEY,
    operator     TEXT NOT NULL,
    witnessed_at BIGINT NOT NULL,
    note         TEXT NOT NULL
);
