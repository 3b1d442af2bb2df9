-- Enterprise accounts (issue #5): the subscribers who manage an organization's devices in the
-- Certificate Management Center. The organization is its duplicate-detection key, as in
-- organizations.org_key.
CREATE TABLE enterprise_users (
    organization_key TEXT NOT NULL,
    account          TEXT NOT NULL,
    added_by         TEXT NOT NULL,
    added_at         BIGINT NOT NULL,
    PRIMARY KEY (organization_key, account)
);
