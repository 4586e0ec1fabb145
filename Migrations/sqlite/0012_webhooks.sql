-- Webhooks (SPEC §16). An endpoint belongs to an org (its admins') or to the platform (org_id
-- NULL: the root's; it hears every event). Secrets are sealed with the master key, not hashed:
-- signing needs them. During a rotation the previous secret also signs until its time is up.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event_types TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    sealed_secret TEXT NOT NULL,
    sealed_previous_secret TEXT,
    previous_secret_until INTEGER,
    -- One node at a time sends an endpoint's queue, in order: it holds the lease.
    leased_by TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id);

-- An audited change some endpoint wants, written in the change's own transaction under the
-- single writer: seq order is commit order.
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    at INTEGER NOT NULL,
    org_id TEXT,
    payload TEXT NOT NULL
);

-- One event for one endpoint; sent in seq order per endpoint. The last attempt's outcome is
-- kept on the row: the endpoint's delivery log.
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_seq INTEGER NOT NULL REFERENCES webhook_events(seq) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status INTEGER,
    last_latency_ms INTEGER,
    last_response TEXT,
    last_error TEXT
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, state, seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);
