-- The billing portal, per project and mode: how subscribers may cancel there (the project's
-- setting, chosen in the chat or over HTTP), the secret a builder's server signs customer proofs
-- with (so that a static front end may ask for a customer's portal link with the publishable
-- key), and the portal configuration chatpay last made on the connected account: its id, what
-- it was made from (JSON), and a version that numbers each one made (their idempotency keys).

CREATE TABLE portal_settings (
    project_id       TEXT NOT NULL REFERENCES projects (id),
    mode             TEXT NOT NULL,
    cancel_mode      TEXT NOT NULL,
    proof_secret     TEXT NOT NULL,
    account_id       TEXT,
    configuration_id TEXT,
    configuration    TEXT,
    version          BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (project_id, mode)
);
