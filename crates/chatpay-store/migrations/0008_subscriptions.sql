-- Subscriptions, per project and mode, as Stripe's fresh reads make them. `data` is the
-- subscription with its invoices as JSON (owned by chatpay-core's `billing`); the columns beside
-- it are what the store looks them up by. `version` moves by one on every change, so a change
-- computed from an older read is refused (the same rule as orders).

CREATE TABLE subscriptions (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id),
    mode           TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    account_id     TEXT NOT NULL,
    status         TEXT NOT NULL,
    -- Lowercased, for entitlement lookups.
    customer_email TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX subscriptions_by_status ON subscriptions (project_id, mode, status, created_at);
CREATE INDEX subscriptions_by_email ON subscriptions (project_id, mode, customer_email);

-- Orders by customer, for entitlements (lowercased; filled as orders are read again).
ALTER TABLE orders ADD COLUMN customer_email TEXT;
CREATE INDEX orders_by_email ON orders (project_id, mode, customer_email);
