-- The product catalog, per project and mode, and its sync runs.

CREATE TABLE catalogs (
    project_id TEXT NOT NULL REFERENCES projects (id),
    mode       TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    -- Bumped by every change; a sync applies only on top of the version it read.
    version    BIGINT NOT NULL,
    synced_at  BIGINT,
    report     TEXT,
    PRIMARY KEY (project_id, mode)
);

CREATE TABLE catalog_products (
    project_id  TEXT NOT NULL,
    mode        TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    -- The product with its prices, as JSON.
    data        TEXT NOT NULL,
    -- When this data was read from Stripe (microseconds): older reads never overwrite newer ones.
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, mode, product_id)
);

CREATE TABLE catalog_runs (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'failed', 'done')),
    -- products, then prices, then apply.
    phase       TEXT NOT NULL,
    -- The last object id read in the phase: a resumed run continues after it.
    cursor      TEXT,
    requests    BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    error       TEXT
);
CREATE INDEX catalog_runs_open ON catalog_runs (project_id, mode, status);

CREATE TABLE catalog_staging (
    run_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    data       TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, kind, object_id)
);
