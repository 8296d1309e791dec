-- A project's publishable key: safe to ship in a web page, it can only create checkouts for the
-- project's sellable prices, from the origins listed (a JSON array of "https://host[:port]").
CREATE TABLE publishable_keys (
    project_id      TEXT PRIMARY KEY REFERENCES projects (id),
    key             TEXT NOT NULL UNIQUE,
    allowed_origins TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
