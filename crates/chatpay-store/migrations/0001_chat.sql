-- Tokens, projects and their conversations. Written to run unchanged on SQLite and PostgreSQL.
-- Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES tokens (id),
    name       TEXT NOT NULL,
    backend    BOOLEAN NOT NULL,
    mode       TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    created_at BIGINT NOT NULL
);
CREATE INDEX projects_by_token ON projects (token_id, created_at);

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL UNIQUE REFERENCES projects (id),
    last_seq   BIGINT NOT NULL,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE frames (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq             BIGINT NOT NULL,
    reply_to        TEXT,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX frames_by_reply ON frames (conversation_id, reply_to) WHERE reply_to IS NOT NULL;
