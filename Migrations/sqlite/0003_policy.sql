-- Role bindings: a role on one object of an org (and everything below it).
CREATE TABLE bindings (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'service_account')),
    subject_id TEXT NOT NULL,
    -- The object below the org ('' for the org itself, else '/<type>:<id>...').
    resource_path TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    audit_event_id TEXT,
    UNIQUE (org_id, subject_type, subject_id, resource_path)
);
CREATE INDEX bindings_subject ON bindings (subject_type, subject_id);
