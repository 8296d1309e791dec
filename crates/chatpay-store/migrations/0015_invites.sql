-- A teammate's invite: a one-time link that lets one person create their email and password
-- sign-in in the workspace. The link's code is stored only as its SHA-256 hash; it works once
-- (`used_at`, with the person it made) and until `expires_at`.
CREATE TABLE invites (
    id          TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    code_hash   TEXT NOT NULL UNIQUE,
    created_by  TEXT REFERENCES people (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    person_id   TEXT REFERENCES people (id)
);
