-- The rest of the OpenID provider (SPEC §14). A session remembers the client it was opened for
-- and the scope granted (NULL: Portcullis's own login), so a refresh keeps both. A client may
-- choose its ID-token algorithm, its token lifetimes (NULL: the server's), a claim template,
-- and a service account of its org to act as in the client_credentials grant.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
ALTER TABLE oauth_clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
-- Clients registered before RS256 existed got ES256 ID tokens: their relying parties may expect it.
UPDATE oauth_clients SET id_token_alg = 'ES256';
ALTER TABLE oauth_clients ADD COLUMN access_token_lifetime INTEGER;
ALTER TABLE oauth_clients ADD COLUMN refresh_token_lifetime INTEGER;
ALTER TABLE oauth_clients ADD COLUMN claim_template TEXT;
-- When the secret was last replaced: client_credentials tokens issued before are void.
ALTER TABLE oauth_clients ADD COLUMN secret_rotated_at INTEGER;
ALTER TABLE oauth_clients ADD COLUMN service_account_id TEXT REFERENCES service_accounts(id) ON DELETE SET NULL;
-- organization=<org_id>: the org a login was scoped to, kept for the tokens a refresh issues.
ALTER TABLE oauth_codes ADD COLUMN org_id TEXT;
ALTER TABLE oauth_sessions ADD COLUMN org_id TEXT;
ALTER TABLE oauth_sessions ADD COLUMN auth_time INTEGER;
