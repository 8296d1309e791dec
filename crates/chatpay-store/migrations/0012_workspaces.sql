-- Workspaces own projects; API tokens, people and their browser sessions belong to one and see
-- all of its projects. An existing database moves as it was: each token becomes a workspace
-- (`wsp_` and the token id's random part, named as the token was) holding the projects it
-- created, so nobody sees a project they could not see before.
--
-- Every credential is a row of `tokens`, told apart by `kind`: `api` (a named API token),
-- `session` (a person's browser session, sliding: `expires_at` moves on use) and `scoped` (a
-- short-lived token a platform mints, limited to one workspace or one `project_id`). A
-- credential is never deleted: it is revoked (`revoked_at`), so `projects.token_id` (the
-- credential that created the project) always names a row.

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

INSERT INTO workspaces (id, name, created_at)
SELECT 'wsp_' || substr(id, 5), name, created_at FROM tokens;

CREATE TABLE people (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

ALTER TABLE tokens ADD COLUMN workspace_id TEXT REFERENCES workspaces (id);
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
ALTER TABLE tokens ADD COLUMN person_id TEXT REFERENCES people (id);
ALTER TABLE tokens ADD COLUMN project_id TEXT REFERENCES projects (id);
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
UPDATE tokens SET workspace_id = 'wsp_' || substr(id, 5);
CREATE INDEX tokens_by_workspace ON tokens (workspace_id, kind, created_at);

ALTER TABLE projects ADD COLUMN workspace_id TEXT REFERENCES workspaces (id);
UPDATE projects SET workspace_id = 'wsp_' || substr(token_id, 5);
CREATE INDEX projects_by_workspace ON projects (workspace_id, created_at);
