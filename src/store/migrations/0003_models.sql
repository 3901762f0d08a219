-- RevoVoice schema, version 3: trained intent models (issue 5). Portable SQL: see store.h.

-- Versions of intent classifiers trained through POST /api/voice-ai/train-model. `model` holds
-- the bytes of rv_intent_save(); `labels` is a JSON object of intent -> example count. At most
-- one row is active: the model calls and /api/voice-ai/understand use (none: the built-in one).
CREATE TABLE intent_models (
    id @ID@,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,                  -- 1, 2, ... per name
    model @BLOB@ NOT NULL,
    size_bytes INTEGER NOT NULL,
    n_examples INTEGER NOT NULL,
    n_holdout INTEGER NOT NULL,
    holdout_accuracy REAL,                     -- NULL when nothing was held out
    temperature REAL NOT NULL,
    n_features INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    include_builtin INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 0,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    activated_at TEXT,
    UNIQUE (name, version)
);
CREATE INDEX intent_models_active ON intent_models(active);
