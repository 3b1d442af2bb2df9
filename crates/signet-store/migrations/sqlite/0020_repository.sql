-- The public certificate repository: certificates are looked up by their subject's email
-- (the rfc822Name), read from the stored subject so that no write path has to fill it in.
-- SQLite can add only a virtual generated column; the index stores it.
ALTER TABLE certificates ADD COLUMN subject_email TEXT
    GENERATED ALWAYS AS (json_extract(subject, '$.email')) VIRTUAL;
CREATE INDEX certificates_subject_email ON certificates (subject_email) WHERE subject_email IS NOT NULL;

-- Accounts whose subscriber chose to publish their identity certificates beside the
-- encryption ones (the default is not to): a row is the choice, made at `since`.
CREATE TABLE published_identities (
    account TEXT PRIMARY KEY,
    since   BIGINT NOT NULL
);
