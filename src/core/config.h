/*
 * Daemon configuration: built-in defaults, then a YAML file, then REVOVOICE_* environment
 * variables, then command-line flags (each later source overrides the earlier). Every key is
 * listed once in config.c's field table, which also drives the environment names and
 * `revovoice config` output; docs/CONFIG.md documents them.
 */
#ifndef RV_CONFIG_H
#define RV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/*
 * One SIP trunk from the `trunks:` list of the config file (file only; no environment form).
 * Outbound calls go to the trunk with the lowest priority number that has room, and fail over
 * to the next on a 5xx answer or a timeout before any response.
 */
struct rv_trunk_cfg {
	char *name;      /* unique; stored on call rows */
	char *host;      /* IP address or DNS name of the provider's proxy */
	int port;        /* 0: 5060 (or DNS SRV/A when host is a name) */
	char *transport; /* udp | tcp */
	char *username;  /* digest user for 401/407 (and REGISTER); empty: none */
	char *password;  /* secret */
	char *caller_id; /* user part or E.164 number put in From; empty: revovoice */
	char *domain;    /* From/To domain; empty: host */
	char *prefix;  /* prepended to dialled numbers (e.g. "+" or a tech prefix); may be empty */
	int max_calls; /* concurrent calls on this trunk; 0: no limit of its own */
	int priority;  /* lower goes first */
	int register_; /* 1: REGISTER to the provider and refresh */
	int expires;   /* REGISTER expiry, seconds */
};

struct rv_config {
	char *data_dir;          /* data.dir: SQLite file, recordings, caches, secrets */
	char *log_level;         /* log.level: debug|info|warn|error */
	char *http_listen;       /* http.listen: HOST:PORT of the API and dashboard */
	int http_threads;        /* http.threads: control-plane worker threads */
	int64_t http_max_body;   /* http.max_body: cap on JSON request bodies, bytes */
	int64_t http_max_upload; /* http.max_upload: cap on CSV uploads, bytes */
	char *http_cors_origins; /* http.cors_origins: comma list, "*" or empty (off) */
	int rate_limit_rps;    /* rate_limit.rps: sustained requests/s per key or address; 0 off */
	int rate_limit_burst;  /* rate_limit.burst: bucket size */
	char *store_driver;    /* store.driver: sqlite | postgres */
	char *store_url;       /* store.url: SQLite path (default DATA/revovoice.db) or libpq URL */
	int store_pool;        /* store.pool: connections in the pool */
	char *auth_jwt_secret; /* auth.jwt_secret: HS256 key; generated into DATA/secrets.json */
	int auth_token_ttl;    /* auth.token_ttl: seconds a login token lives */
	char *default_country; /* leads.default_country: ISO 3166 region for phone numbers */
	char *web_root;        /* web.root: directory of the built dashboard */
	char *sip_listen;      /* sip.listen: HOST:PORT for SIP (telephony); "" or "off": none */
	char *sip_public_addr; /* sip.public_addr: address put in SDP/Contact; "": the listen one */
	char *sip_rtp_ports;   /* sip.rtp_ports: "LO-HI" RTP port range (RTCP uses port + 1) */
	int sip_max_calls;     /* sip.max_calls: concurrent calls; more get 486 (inbound) */
	int sip_no_answer;     /* sip.no_answer_timeout: seconds before an outbound CANCEL */
	int sip_ring_ms;       /* sip.ring_ms: inbound, time between 180 Ringing and 200 OK */
	int sip_max_call_s;    /* sip.max_call_seconds: a call is hung up after this long */
	char *calls_prompt; /* calls.default_prompt: WAV played to answered calls with no agent */
	char *rec_dir;      /* recording.dir: where call WAVs go; "": DATA/recordings */
	char *rec_default;  /* recording.default: never|always|on_demand, when no campaign says */
	char *twilio_sid;   /* twilio.account_sid */
	char *twilio_token; /* twilio.auth_token (secret): REST auth and webhook signatures */
	char *twilio_api_base; /* twilio.api_base: REST base URL (tests point it at a fake) */
	char *twilio_public;   /* twilio.public_url: our public https base URL as Twilio sees it */
	char *twilio_stream;   /* twilio.stream_listen: HOST:PORT of the Media Streams WebSocket */
	int twilio_validate;   /* twilio.validate_signature: 1 checks X-Twilio-Signature */
	int speech_workers;    /* speech.workers: threads running VAD, STT, TTS and dialog */
	char *speech_voice;    /* speech.voice: "engine:voice" when a campaign names none */
	char *speech_stt;      /* speech.stt: sphinx | openai | deepgram */
	char *speech_stt_url;  /* speech.stt_url: base URL of a cloud STT provider */
	char *speech_stt_key;  /* speech.stt_key (secret): its API key */
	int speech_end_ms;     /* speech.end_silence_ms: silence that ends a caller's turn */
	int demo_seed;         /* demo.seed: 1 seeds the example flows and a demo campaign */
	int speech_agent;   /* speech.agent: 1 runs the voice agent on calls, 0 the prompt player */
	char *llm_base_url; /* llm.base_url: OpenAI-compatible server; "": no LLM mode */
	char *llm_api_key;  /* llm.api_key (secret): Bearer token */
	char *llm_model;    /* llm.model: model name sent with each request */
	int llm_timeout_ms; /* llm.timeout_ms: a completion's time limit (flows may lower it) */
	int llm_max_tokens; /* llm.max_tokens: completion length cap */
	int webhooks_max_attempts;    /* webhooks.max_attempts: tries before a delivery is dead */
	int webhooks_timeout_ms;      /* webhooks.timeout_ms: one POST's time limit */
	int webhooks_backoff_base_ms; /* webhooks.backoff_base_ms: delay after the first failure */
	int webhooks_backoff_max_ms;  /* webhooks.backoff_max_ms: cap of the doubling delay */
	int webhooks_concurrency;     /* webhooks.concurrency: POSTs in flight at once */
	int webhooks_poll_ms;         /* webhooks.poll_ms: longest wait before looking for work */
	int webhooks_postcall_delay_ms; /* webhooks.postcall_delay_ms: call end -> analysis */
	int webhooks_retention_hours;   /* webhooks.retention_hours: keep finished rows; 0: ever */
	struct rv_trunk_cfg *trunks;    /* trunks: from the file, sorted by priority */
	size_t ntrunks;
};

/* Fill `cfg` with built-in defaults. Strings are heap copies owned by cfg. */
void rv_config_defaults(struct rv_config *cfg);

/*
 * Read a YAML (or JSON) config file into cfg. Unknown keys and wrong types are errors: on
 * failure returns -EINVAL (or -errno when the file can't be read), writes a sentence into
 * err (errlen bytes) naming the file, line and key, and leaves cfg as it was for the keys
 * already applied.
 */
int rv_config_load_file(struct rv_config *cfg, const char *path, char *err, size_t errlen);

/* Apply REVOVOICE_<SECTION>_<KEY> variables from environ. Same error contract. */
int rv_config_apply_env(struct rv_config *cfg, char *err, size_t errlen);

/* Set one key by its dotted name ("http.listen"), as a flag would. Same error contract. */
int rv_config_set(struct rv_config *cfg, const char *key, const char *value, char *err,
                  size_t errlen);

/* Derive dependent values (store.url default) and create data_dir. 0 or -errno. */
int rv_config_finish(struct rv_config *cfg, char *err, size_t errlen);

/* Write the effective config as YAML to fd, secrets masked. */
void rv_config_dump(const struct rv_config *cfg, int fd);

void rv_config_free(struct rv_config *cfg);

#endif
