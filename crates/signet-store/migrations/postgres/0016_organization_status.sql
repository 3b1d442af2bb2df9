-- An organization an applicant registers waits for the RA before it is offered to others:
-- pending until an operator confirms it, merges it into a confirmed one (merged_into names
-- that one) or rejects it. The names are OrganizationStatus::ALL_NAMES (kept equal by a unit test
-- in src/organizations.rs). Organizations registered before this were already offered to
-- everyone, so they stay offered: confirmed.
ALTER TABLE organizations ADD COLUMN status TEXT NOT NULL DEFAULT 'confirmed'
    CHECK (status IN ('pending', 'confirmed', 'merged', 'rejected'));
ALTER TABLE organizations ADD COLUMN merged_into TEXT;
ALTER TABLE organizations ADD CONSTRAINT organizations_merged_into
    CHECK ((merged_into IS NOT NULL) = (status = 'merged'));
CREATE INDEX organizations_status ON organizations (status, name_lower);
