-- RevoVoice schema, version 1. Portable SQL: see src/store/store.h for the rules and the
-- @ID@ / @BLOB@ macros. Time stamps are ISO 8601 UTC text; JSON documents are text.

CREATE TABLE users (
    id @ID@,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'supervisor', 'manager', 'admin')),
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_login_at TEXT
);

CREATE TABLE api_keys (
    id @ID@,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    prefix TEXT NOT NULL,              -- first characters of the key, shown in lists
    key_hash TEXT NOT NULL UNIQUE,     -- hex BLAKE2b-256 of the whole key
    role TEXT NOT NULL CHECK (role IN ('viewer', 'supervisor', 'manager', 'admin')),
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE flows (
    id @ID@,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'scripted' CHECK (kind IN ('scripted', 'llm')),
    definition TEXT NOT NULL DEFAULT '{}',   -- JSON flow document
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE campaigns (
    id @ID@,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'active', 'paused', 'completed', 'archived')),
    flow_id BIGINT REFERENCES flows(id) ON DELETE SET NULL,
    voice TEXT NOT NULL DEFAULT 'flite:rms',
    language TEXT NOT NULL DEFAULT 'en-US',
    caller_id TEXT NOT NULL DEFAULT '',
    trunk TEXT NOT NULL DEFAULT '',
    default_country TEXT NOT NULL DEFAULT 'US',
    timezone TEXT NOT NULL DEFAULT 'America/New_York',
    calling_window_start TEXT NOT NULL DEFAULT '09:00',   -- lead's local time
    calling_window_end TEXT NOT NULL DEFAULT '20:00',
    calling_days TEXT NOT NULL DEFAULT 'mon,tue,wed,thu,fri',
    max_concurrent INTEGER NOT NULL DEFAULT 5 CHECK (max_concurrent >= 1),
    calls_per_minute INTEGER NOT NULL DEFAULT 30 CHECK (calls_per_minute >= 1),
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    retry_delay_minutes INTEGER NOT NULL DEFAULT 60 CHECK (retry_delay_minutes >= 0),
    retry_on TEXT NOT NULL DEFAULT 'no_answer,busy,failed,machine',
    amd_policy TEXT NOT NULL DEFAULT 'hangup'
        CHECK (amd_policy IN ('off', 'hangup', 'voicemail', 'continue')),
    voicemail_message TEXT NOT NULL DEFAULT '',
    recording_policy TEXT NOT NULL DEFAULT 'never'
        CHECK (recording_policy IN ('never', 'always', 'on_demand')),
    require_consent INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}',     -- JSON: anything else per campaign
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE leads (
    id @ID@,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,                      -- E.164
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    timezone TEXT NOT NULL DEFAULT '',
    custom_fields TEXT NOT NULL DEFAULT '{}', -- JSON object of the other CSV columns
    status TEXT NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'queued', 'dialing', 'in_call', 'callback', 'retry', 'completed',
                          'failed', 'dnc', 'converted')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_disposition TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (campaign_id, phone)
);
CREATE INDEX leads_due ON leads(campaign_id, status, next_attempt_at);

CREATE TABLE calls (
    id @ID@,
    campaign_id BIGINT REFERENCES campaigns(id) ON DELETE SET NULL,
    lead_id BIGINT REFERENCES leads(id) ON DELETE SET NULL,
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    channel TEXT NOT NULL DEFAULT 'sip' CHECK (channel IN ('sip', 'twilio')),
    sip_call_id TEXT,
    twilio_call_sid TEXT,
    from_uri TEXT NOT NULL DEFAULT '',
    to_uri TEXT NOT NULL DEFAULT '',
    trunk TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'created',
    disposition TEXT,
    hangup_cause TEXT,
    hangup_by TEXT,
    amd_result TEXT,
    codec TEXT,
    created_at TEXT NOT NULL,
    ringing_at TEXT,
    answered_at TEXT,
    ended_at TEXT,
    duration_ms INTEGER,
    recording_path TEXT,
    rtp_stats TEXT NOT NULL DEFAULT '{}',    -- JSON: packets, lost, jitter
    latency TEXT NOT NULL DEFAULT '{}',      -- JSON: latency marks summary
    summary TEXT,
    extracted TEXT NOT NULL DEFAULT '{}',    -- JSON: fields extracted in the call
    dtmf TEXT NOT NULL DEFAULT ''
);
CREATE INDEX calls_campaign ON calls(campaign_id, created_at);
CREATE INDEX calls_lead ON calls(lead_id);
CREATE INDEX calls_sip ON calls(sip_call_id);

CREATE TABLE call_turns (
    id @ID@,
    call_id BIGINT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    speaker TEXT NOT NULL CHECK (speaker IN ('agent', 'caller', 'system')),
    text TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    ended_at TEXT,
    intent TEXT,
    confidence REAL,
    entities TEXT NOT NULL DEFAULT '[]',     -- JSON array
    emotion TEXT NOT NULL DEFAULT '{}',      -- JSON object
    barge_in INTEGER NOT NULL DEFAULT 0,
    heard_ms INTEGER,
    latency TEXT NOT NULL DEFAULT '{}',      -- JSON: per-turn latency marks
    UNIQUE (call_id, seq)
);

CREATE TABLE dnc (
    id @ID@,
    phone TEXT NOT NULL UNIQUE,               -- E.164
    reason TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'api',       -- api, call, import
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE consents (
    id @ID@,
    phone TEXT NOT NULL,
    campaign_id BIGINT REFERENCES campaigns(id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'call',
    granted INTEGER NOT NULL DEFAULT 1,
    source TEXT NOT NULL DEFAULT '',
    evidence TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX consents_phone ON consents(phone);

CREATE TABLE webhooks (
    id @ID@,
    name TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '["call.ended"]',  -- JSON array of event names
    secret TEXT NOT NULL,                     -- HMAC-SHA256 signing secret
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE outbox (
    id @ID@,
    webhook_id BIGINT REFERENCES webhooks(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,                    -- JSON
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);

CREATE TABLE audit_log (
    id @ID@,
    at TEXT NOT NULL,
    actor_user_id BIGINT,
    actor_api_key_id BIGINT,
    actor TEXT NOT NULL,                      -- email, "api-key:<id>" or "cli"
    client_ip TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id BIGINT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at);
