-- The RA's stock of provisioned hardware tokens and the single-use challenges their shipment
-- keys answer at retrieval.

-- A token provisioned before shipping: its shipment key's public half (the key itself never
-- leaves the token) and its transport PINs sealed under the CA host's sealing key, never in
-- clear. Shipping binds it to one application; retrieval records what was delivered onto it,
-- so a lost answer is delivered again instead of issued twice.
CREATE TABLE stock_tokens (
    serial         TEXT PRIMARY KEY,
    model          TEXT NOT NULL,
    manufacturer   TEXT NOT NULL,
    shipment_key   BYTEA NOT NULL,
    sealed_pins    BYTEA NOT NULL,
    provisioned_at BIGINT NOT NULL,
    provisioned_by TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('in-stock', 'shipped', 'retrieved', 'lost', 'retired')),
    application    TEXT,
    delivery       TEXT,
    updated_at     BIGINT NOT NULL,
    CHECK (state NOT IN ('shipped', 'retrieved') OR application IS NOT NULL),
    CHECK (state NOT IN ('in-stock', 'retired') OR application IS NULL),
    CHECK ((state = 'retrieved') = (delivery IS NOT NULL))
);
-- One token serves one application.
CREATE UNIQUE INDEX stock_tokens_application ON stock_tokens (application);

CREATE TABLE shipment_challenges (
    nonce       TEXT PRIMARY KEY,
    application TEXT NOT NULL,
    serial      TEXT NOT NULL REFERENCES stock_tokens (serial),
    expires_at  BIGINT NOT NULL
);

-- A witnessed key generation names the token it happened on; retrieval checks it.
ALTER TABLE witnessed_key_generations ADD COLUMN token_serial TEXT;
