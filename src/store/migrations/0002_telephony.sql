-- RevoVoice schema, version 2: telephony (issue 3). Portable SQL: see src/store/store.h.

-- Inbound routing: a comma list of E.164 numbers ("+14155550100") or SIP user names
-- ("support") whose calls the campaign answers. The API keeps each entry unique across
-- campaigns; only active campaigns route.
ALTER TABLE campaigns ADD COLUMN inbound_numbers TEXT NOT NULL DEFAULT '';

-- Transfers to a human: where to, how (blind | bridged), how it went (refer_sent, accepted,
-- failed_<sip status>, dialing_agent, bridged, busy, no_answer, ...), and the whisper said to
-- the agent before a bridged transfer (played | none | unavailable | failed).
ALTER TABLE calls ADD COLUMN transfer_target TEXT;
ALTER TABLE calls ADD COLUMN transfer_mode TEXT;
ALTER TABLE calls ADD COLUMN transfer_outcome TEXT;
ALTER TABLE calls ADD COLUMN transfer_whisper TEXT;

-- Rows still open (no ended_at) are found at start to close what a crash left behind.
CREATE INDEX calls_open ON calls(ended_at);
