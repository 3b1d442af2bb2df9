-- A key may be certified once; a failed intent releases it. The unique index on the key used
-- to say so with `state <> 'failed'`, but storing a certificate changes `state` too, and SQLite
-- then deletes and re-adds the key's index entry: a page of that index, at a random place,
-- written again for every certificate stored. A flag that only a failure sets leaves the entry
-- where the intent put it.
-- SQLite checks an added column's constraint against the rows already there, which are all
-- unreleased at first: it can say that only a failure releases a key, the direction that keeps
-- a key from being certified twice. The statements that fail an intent set both.
ALTER TABLE certificates ADD COLUMN key_released BOOLEAN NOT NULL DEFAULT FALSE
    CHECK (NOT key_released OR state = 'failed');
UPDATE certificates SET key_released = TRUE WHERE state = 'failed';
DROP INDEX certificates_key;
CREATE UNIQUE INDEX certificates_key ON certificates (spki_sha256) WHERE NOT key_released;
