-- Orders: one per checkout, numbered per project and mode. `data` is the order as JSON (owned
-- by chatpay-core's `orders`); the columns beside it are what the store looks orders up by.
-- `version` moves by one on every change, so a change computed from an older read is refused.

CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id),
    mode           TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    number         BIGINT NOT NULL,
    status         TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    payment_intent TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    data           TEXT NOT NULL,
    UNIQUE (project_id, mode, number)
);
CREATE INDEX orders_by_session ON orders (session_id);
CREATE INDEX orders_by_payment_intent ON orders (payment_intent);
CREATE INDEX orders_by_created ON orders (project_id, mode, created_at);
