-- chatpay's own webhooks to a builder's app: one endpoint per project (the URL and the secret
-- that signs each delivery), and an outbox of events. A turn that changes someone's access
-- writes its events here in the same transaction as its frames, so an event exists exactly when
-- the turn committed; a background task delivers them, retrying until a 2xx or it gives up.

CREATE TABLE app_webhooks (
    project_id TEXT PRIMARY KEY REFERENCES projects (id),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE app_events (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    type            TEXT NOT NULL,
    -- The exact JSON body sent (the same bytes on every attempt).
    payload         TEXT NOT NULL,
    -- Order within the project: each project's events are delivered oldest first.
    seq             BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    -- Milliseconds; NULL once delivered or given up.
    next_attempt_at BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX app_events_pending ON app_events (project_id, seq) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX app_events_due ON app_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
