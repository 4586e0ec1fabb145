-- Groups and overrides (SPEC §17). A group lives in one org; parent_id makes a tree (the
-- domain refuses cycles and depth over 8). Names are unique among siblings, compared
-- case-folded: parent_key is the parent's id, or '' at the top, so the unique key sees NULL parents as equal.
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES groups(id) ON DELETE CASCADE,
    parent_key TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    audit_event_id TEXT,
    UNIQUE (org_id, parent_key, name_key)
);
CREATE INDEX groups_org ON groups (org_id);

-- A user's or service account's membership of a group (child groups are members through parent_id).
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    member_type TEXT NOT NULL CHECK (member_type IN ('user', 'service_account')),
    member_id TEXT NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    audit_event_id TEXT,
    PRIMARY KEY (group_id, member_type, member_id)
);
CREATE INDEX group_members_member ON group_members (member_type, member_id, org_id);

-- An explicit allow or deny of one permission on a resource and below, for a user, a service
-- account or a group.
CREATE TABLE overrides (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'service_account', 'group')),
    subject_id TEXT NOT NULL,
    resource_path TEXT NOT NULL,
    permission TEXT NOT NULL,
    effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    expires_at INTEGER,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    audit_event_id TEXT,
    UNIQUE (org_id, subject_type, subject_id, resource_path, permission)
);
CREATE INDEX overrides_subject ON overrides (subject_type, subject_id);

-- Bindings may name a group. SQLite cannot change a CHECK in place: the table is rebuilt.
CREATE TABLE bindings_next (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'service_account', 'group')),
    subject_id TEXT NOT NULL,
    resource_path TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    audit_event_id TEXT,
    UNIQUE (org_id, subject_type, subject_id, resource_path)
);
INSERT INTO bindings_next (id, org_id, subject_type, subject_id, resource_path, role, expires_at, created_at, updated_at, audit_event_id)
    SELECT id, org_id, subject_type, subject_id, resource_path, role, expires_at, created_at, updated_at, audit_event_id FROM bindings;
DROP TABLE bindings;
ALTER TABLE bindings_next RENAME TO bindings;
CREATE INDEX bindings_subject ON bindings (subject_type, subject_id);
