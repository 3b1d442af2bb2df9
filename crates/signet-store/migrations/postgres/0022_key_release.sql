-- A key may be certified once; a failed intent releases it. The unique index on the key used
-- to say so with `state <> 'failed'`, which every stored certificate changes; a flag that only
-- a failure sets keeps the condition on something issuance leaves alone (as on SQLite, where
-- it spares a page of the index written again for every certificate).
ALTER TABLE certificates ADD COLUMN key_released BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE certificates SET key_released = TRUE WHERE state = 'failed';
ALTER TABLE certificates ADD CONSTRAINT certificates_key_released CHECK (key_released = (state = 'failed'));
DROP INDEX certificates_key;
CREATE UNIQUE INDEX certificates_key ON certificates (spki_sha256) WHERE NOT key_released;
