-- Groups and overrides (SPEC §17). A group lives in one org; parent_id makes a tree (the
-- domain refuses cycles and depth over 8). Names are unique among siblings, compared
-- case-folded: parent_key is the parent's id, or '' at the top, so the unique key sees NULL parents as equal.
CREATE TABLE groups (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    parent_id UUID REFERENCES groups(id) ON DELETE CASCADE,
    parent_key TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    audit_event_id UUID,
    UNIQUE (org_id, parent_key, name_key)
);
CREATE INDEX groups_org ON groups (org_id);

-- A user's or service account's membership of a group (child groups are members through parent_id).
CREATE TABLE group_members (
    group_id UUID NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    member_type TEXT NOT NULL CHECK (member_type IN ('user', 'service_account')),
    member_id UUID NOT NULL,
    expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    audit_event_id UUID,
    PRIMARY KEY (group_id, member_type, member_id)
);
CREATE INDEX group_members_member ON group_members (member_type, member_id, org_id);

-- An explicit allow or deny of one permission on a resource and below, for a user, a service
-- account or a group.
CREATE TABLE overrides (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'service_account', 'group')),
    subject_id UUID NOT NULL,
    resource_path TEXT NOT NULL,
    permission TEXT NOT NULL,
    effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    expires_at TIMESTAMPTZ,
    reason TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    audit_event_id UUID,
    UNIQUE (org_id, subject_type, subject_id, resource_path, permission)
);
CREATE INDEX overrides_subject ON overrides (subject_type, subject_id);

-- Bindings may name a group.
ALTER TABLE bindings DROP CONSTRAINT bindings_subject_type_check;
ALTER TABLE bindings ADD CONSTRAINT bindings_subject_type_check CHECK (subject_type IN ('user', 'service_account', 'group'));
