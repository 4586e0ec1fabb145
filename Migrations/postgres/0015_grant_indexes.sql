-- Each org's grants load by org id (a node loads an org on its first decision): without these,
-- group memberships and overrides were read by scanning their whole tables (issue 18).
CREATE INDEX group_members_org ON group_members (org_id);
CREATE INDEX overrides_org ON overrides (org_id);
