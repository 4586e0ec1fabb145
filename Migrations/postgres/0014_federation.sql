-- Federated and passwordless sign-in (SPEC §15). An upstream provider's client secret is sealed
-- with the master key (the token request needs it). An identity is (provider, subject): the
-- unique key is what stops one upstream account from reaching two Portcullis accounts.
CREATE TABLE identity_providers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('github', 'google', 'oidc')),
    display_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    scopes TEXT NOT NULL,
    issuer TEXT,
    web_base_url TEXT,
    api_base_url TEXT,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE user_identities (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL REFERENCES identity_providers(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    UNIQUE (provider_id, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- A browser between leaving for an upstream and coming back, under the hash of its state.
CREATE TABLE upstream_flows (
    state_hash TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    link_user_id UUID,
    invite_token_hash TEXT,
    return_to TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX upstream_flows_expires ON upstream_flows (expires_at);

-- Mailed sign-in codes, one per asking flow; the hash covers the code and the flow's token.
CREATE TABLE sign_in_codes (
    flow_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sign_in_codes_expires ON sign_in_codes (expires_at);
-- An address's misses of the last day are summed on every try.
CREATE INDEX sign_in_codes_email ON sign_in_codes (email, created_at);
