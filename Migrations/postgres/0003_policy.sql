-- Role bindings: a role on one object of an org (and everything below it).
CREATE TABLE bindings (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'service_account')),
    subject_id UUID NOT NULL,
    -- The object below the org ('' for the org itself, else '/<type>:<id>...').
    resource_path TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    audit_event_id UUID,
    UNIQUE (org_id, subject_type, subject_id, resource_path)
);
CREATE INDEX bindings_subject ON bindings (subject_type, subject_id);
