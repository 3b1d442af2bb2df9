-- The intents job looks for intents older than a bound (a node died between the intent and
-- the certificate) every few minutes; a partial index keeps that read to the handful of rows
-- in 'intent' instead of every certificate ever issued.
CREATE INDEX certificates_intents ON certificates (created_at) WHERE state = 'intent';
