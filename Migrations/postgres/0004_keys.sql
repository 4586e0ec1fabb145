-- Service accounts, API keys, and the org key policy.
ALTER TABLE orgs ADD COLUMN max_key_ttl BIGINT;

CREATE TABLE service_accounts (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX service_accounts_org ON service_accounts (org_id);

-- Only SHA-256 of a key's secret is stored; the prefix finds the row.
CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    prefix TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    user_id UUID REFERENCES users(id) ON DELETE CASCADE,
    service_account_id UUID REFERENCES service_accounts(id) ON DELETE CASCADE,
    org_id UUID REFERENCES orgs(id) ON DELETE CASCADE,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    CHECK ((user_id IS NULL) <> (service_account_id IS NULL))
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_service_account ON api_keys (service_account_id);
