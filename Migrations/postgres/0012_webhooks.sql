-- Webhooks (SPEC §16). An endpoint belongs to an org (its admins') or to the platform (org_id
-- NULL: the root's; it hears every event). Secrets are sealed with the master key, not hashed:
-- signing needs them. During a rotation the previous secret also signs until its time is up.
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY,
    org_id UUID REFERENCES orgs(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event_types TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    sealed_secret TEXT NOT NULL,
    sealed_previous_secret TEXT,
    previous_secret_until TIMESTAMPTZ,
    -- One node at a time sends an endpoint's queue, in order: it holds the lease.
    leased_by TEXT,
    lease_until TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id);

-- An audited change some endpoint wants, written in the change's own transaction under the
-- change log's order lock: seq order is commit order.
CREATE TABLE webhook_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    type TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    org_id UUID,
    payload TEXT NOT NULL
);

-- One event for one endpoint; sent in seq order per endpoint. The last attempt's outcome is
-- kept on the row: the endpoint's delivery log.
CREATE TABLE webhook_deliveries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_seq BIGINT NOT NULL REFERENCES webhook_events(seq) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    last_status BIGINT,
    last_latency_ms BIGINT,
    last_response TEXT,
    last_error TEXT
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, state, seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);
