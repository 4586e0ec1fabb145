-- OpenID clients (relying parties). A platform client has no org; an org's client goes with
-- its org. Only SHA-256 of a confidential client's secret is stored.
CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    scopes TEXT NOT NULL,
    first_party BOOLEAN NOT NULL DEFAULT FALSE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((kind = 'public') = (secret_hash IS NULL))
);
CREATE INDEX oauth_clients_org ON oauth_clients (org_id);
