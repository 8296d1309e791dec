-- Every Stripe write chatpay makes, recorded before it is made: its idempotency key (derived from
-- chatpay's own ids, so the same operation always sends the same key), what to ask Stripe
-- (`request`, JSON owned by the server), and how it ended (`result`, Stripe's answer or its
-- refusal). A write is recorded in the same transaction as the change that asks for it and
-- marked `done` in the same transaction as its result is applied; one still `pending` after a
-- crash is issued again, with the same key, by whichever instance claims it: `owner` holds it
-- until `lease_until` (milliseconds), renewed while the call runs; after a failure that may pass,
-- `lease_until` is when it is tried again and `owner` is empty.

CREATE TABLE operations (
    idempotency_key TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    mode            TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    -- Set when a conversation's turn made the call (the conversation re-issues it itself).
    conversation_id TEXT,
    kind            TEXT NOT NULL,
    request         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    -- Stripe's answer (done), its refusal (failed), or the last error while pending.
    result          TEXT,
    owner           TEXT,
    lease_until     BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX operations_pending ON operations (lease_until) WHERE status = 'pending';
