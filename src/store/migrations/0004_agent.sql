-- RevoVoice schema, version 4: the voice agent (issues 4 and 5). Portable SQL: see store.h.

-- Callbacks the caller asked for ("call me tomorrow at 3"): due_at in UTC for the scheduler,
-- local_time as the caller said it, with its offset.
CREATE TABLE callbacks (
    id @ID@,
    call_id BIGINT REFERENCES calls(id) ON DELETE SET NULL,
    lead_id BIGINT REFERENCES leads(id) ON DELETE CASCADE,
    campaign_id BIGINT REFERENCES campaigns(id) ON DELETE CASCADE,
    due_at TEXT NOT NULL,
    local_time TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled')),
    created_at TEXT NOT NULL
);
CREATE INDEX callbacks_due ON callbacks(status, due_at);
CREATE INDEX callbacks_lead ON callbacks(lead_id);
