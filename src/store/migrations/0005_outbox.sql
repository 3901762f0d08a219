-- RevoVoice schema, version 5: the webhook outbox (issue 5, docs/adr/0013-outbox.md).
-- Portable SQL: see src/store/store.h.
--
-- One outbox table holds two kinds of rows:
--   * events (webhook_id NULL): written in the transaction of the change they report; the
--     outbox thread later fans each out to the webhooks subscribed to it (call.ended is first
--     enriched with the post-call analysis) and marks it 'sent';
--   * deliveries (webhook_id set): one event for one webhook, POSTed until it is accepted
--     ('sent'), or given up ('dead', with last_error).
-- 'failed' (allowed by version 1) is not used.

-- The event a delivery carries (its X-RevoVoice-Delivery id is the row's own id).
ALTER TABLE outbox ADD COLUMN event_id BIGINT;
-- A claim's lease: a row being worked on is skipped by other claimers until this time, and
-- is taken again after it when the worker died mid-way (at-least-once).
ALTER TABLE outbox ADD COLUMN locked_until TEXT;
-- The last attempt: when, and the HTTP status it got (NULL: no response).
ALTER TABLE outbox ADD COLUMN last_attempt_at TEXT;
ALTER TABLE outbox ADD COLUMN last_status INTEGER;

CREATE INDEX outbox_event ON outbox(event_id);
CREATE INDEX outbox_webhook ON outbox(webhook_id, status);
