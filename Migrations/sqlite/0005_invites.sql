-- Platform invites, org invites, single-use e-mail tokens and the mail outbox.
CREATE TABLE platform_invites (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
    token_hash TEXT NOT NULL UNIQUE,
    inviter_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX platform_invites_email ON platform_invites (email);

-- 'expired' is never stored: it is read off expires_at, so lists are never stale.
CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'declined', 'revoked')),
    dormant BOOLEAN NOT NULL DEFAULT FALSE,
    token_hash TEXT NOT NULL UNIQUE,
    inviter_id TEXT,
    platform_invite_id TEXT REFERENCES platform_invites(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX invites_org ON invites (org_id, created_at);
CREATE INDEX invites_email ON invites (email);

-- Password-reset and e-mail-verification tokens: hashed, purpose-bound, single use.
CREATE TABLE action_tokens (
    token_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('password_reset', 'verify_email')),
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

-- Mail written in the same transaction as its cause; a sender delivers and retries it.
-- 'variables' (which may hold a link with a token) is cleared once the mail is sent.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    template TEXT NOT NULL,
    variables TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER,
    sent_at INTEGER,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (sent_at, next_attempt_at);
