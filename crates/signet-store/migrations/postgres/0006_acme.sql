-- ACME (RFC 8555) for device certificates (issue 5): External Account Binding keys, accounts,
-- orders, authorizations, challenges and replay nonces.

-- One key per enterprise organization binding; the HMAC secret is erased when the key binds its
-- one account, so a copy of this table taken later cannot bind another.
CREATE TABLE acme_eab_keys (
    key_id       TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    -- The DNS domains registered for the organization, as a JSON array.
    domains      TEXT NOT NULL,
    hmac_key     BYTEA,
    account_id   TEXT UNIQUE,
    created_at   BIGINT NOT NULL,
    CHECK ((hmac_key IS NULL) = (account_id IS NOT NULL))
);

CREATE TABLE acme_accounts (
    id         TEXT PRIMARY KEY,
    -- RFC 7638 thumbprint of the account key: one account per key.
    thumbprint TEXT NOT NULL UNIQUE,
    jwk        TEXT NOT NULL,
    eab_key_id TEXT NOT NULL UNIQUE REFERENCES acme_eab_keys (key_id),
    -- mailto: addresses as a JSON array of email addresses.
    contact    TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('valid', 'deactivated')),
    created_at BIGINT NOT NULL
);

-- Pending and ready are derived from the authorizations, so only the progress after them is
-- stored ('authorizing' covers both).
CREATE TABLE acme_orders (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES acme_accounts (id),
    -- The DNS names, sorted, as a JSON array.
    identifiers        TEXT NOT NULL,
    progress           TEXT NOT NULL CHECK (progress IN ('authorizing', 'processing', 'valid', 'invalid')),
    certificate_serial TEXT UNIQUE,
    -- The problem ({"type", "detail"}) that made the order invalid.
    error              TEXT,
    expires_at         BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    CHECK ((progress = 'valid') = (certificate_serial IS NOT NULL)),
    CHECK ((progress = 'invalid') = (error IS NOT NULL))
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, created_at);

CREATE TABLE acme_authorizations (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES acme_orders (id),
    -- Position in the order's sorted names.
    position   BIGINT NOT NULL,
    identifier TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'valid', 'invalid')),
    expires_at BIGINT NOT NULL,
    UNIQUE (order_id, position)
);

-- 'processing' is never stored: validation runs inside the request and stores its outcome.
CREATE TABLE acme_challenges (
    id               TEXT PRIMARY KEY,
    authorization_id TEXT NOT NULL REFERENCES acme_authorizations (id),
    position         BIGINT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('http-01', 'dns-01')),
    token            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'valid', 'invalid')),
    validated_at     BIGINT,
    error            TEXT,
    UNIQUE (authorization_id, position),
    CHECK ((status = 'valid') = (validated_at IS NOT NULL)),
    CHECK ((status = 'invalid') = (error IS NOT NULL))
);

-- Nonces handed out by any node, spent once by a DELETE on any node.
CREATE TABLE acme_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);
