-- Stripe connections and the webhook event ledger.

CREATE TABLE stripe_connections (
    project_id   TEXT NOT NULL REFERENCES projects (id),
    mode         TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    account_id   TEXT NOT NULL,
    origin       TEXT NOT NULL,
    snapshot     TEXT NOT NULL,
    connected_at BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, mode)
);
CREATE INDEX stripe_connections_by_account ON stripe_connections (account_id);

CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    account      TEXT,
    livemode     BOOLEAN NOT NULL,
    created      BIGINT NOT NULL,
    payload      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);
CREATE INDEX webhook_events_pending ON webhook_events (processed_at, received_at);
