-- The go-live checklist asks whether a signed live-mode event about the live account is in the
-- ledger; without this index that is a scan of every event ever received.
CREATE INDEX webhook_events_by_account ON webhook_events (account, livemode);
