-- Each server sweeps for credentials revoked by another process (`chatpay token revoke`,
-- `chatpay user reset-password`, another instance): `SELECT … WHERE revoked_at >= $1` every
-- second, which this index keeps cheap however many sessions and scoped tokens accumulate.
CREATE INDEX tokens_by_revoked_at ON tokens (revoked_at);
