/*
 * The conversation engine: scripted flows an operator writes as JSON (stored via /api/flows),
 * run one caller turn at a time. The engine knows text, intents, entities and emotion — not
 * audio, SIP or the store — so it runs the same on a live call (src/agent) and on the text
 * endpoints (/api/voice-ai/manage-conversation, /generate-response). docs/FLOWS.md describes
 * the document; in short:
 *
 *   { "start": "greet",
 *     "disclosure": "This is an automated call from {{campaign.name}}.",
 *     "persona": {"name": "Ava", "voice": "flite:slt"},
 *     "globals": { "do_not_call": {...}, "talk_to_human": {...}, "is_robot": {...},
 *                  "repeat": {...}, "silence": {...}, "frustrated": {...}, ... },
 *     "states": {
 *       "greet": { "say": "Hi {{lead.first_name}}, is now a good time?",
 *                  "expect": ["yes", "not now", "call me tomorrow"],
 *                  "on": { "affirm": "ask_time", "busy_now": "offer_callback" },
 *                  "fallback": { "say": "Sorry?", "max_retries": 2, "goto": "bye" } },
 *       "ask_time": { "say": "When suits you?",
 *                     "slot": { "name": "when", "entity": "datetime",
 *                               "reprompt": "Which day and time?", "max_retries": 2 },
 *                     "next": "confirm" },
 *       "confirm": { "say": "Booked for {{slots.when}}.", "end": "converted",
 *                    "actions": [ { "type": "schedule_callback", "at": "{{slots.when}}" } ] } } }
 *
 * A transition (the value in "on", "next", a global handler, "fallback") is a state name or an
 * object {"say", "goto", "end", "actions", "barge_in"}. Actions: transfer {to, mode, whisper},
 * schedule_callback {at}, send_dtmf {digits}, webhook {url, method, body, save_as},
 * set_field {field, value}, dnc {}. Templates: {{lead.X}}, {{campaign.X}}, {{slots.X}},
 * {{vars.X}} (webhook answers), {{persona.name}}.
 *
 * Thread rules: a parsed flow is immutable and shared; a conversation belongs to one call and
 * one thread at a time.
 */
#ifndef RV_DIALOG_FLOW_H
#define RV_DIALOG_FLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RV_FLOW_MAX_BYTES   (256 * 1024)
#define RV_FLOW_MAX_STATES  200
#define RV_FLOW_MAX_SAY     1000 /* bytes of one rendered prompt */
#define RV_FLOW_MAX_ACTIONS 8

struct rv_flow;
struct rv_convo;

/*
 * Parse and validate a flow document. On failure returns -EINVAL and fills *errors (a new JSON
 * array of {"path", "message"}, caller decrefs) with every problem found: unknown start or
 * target state, unreachable state, a state without a prompt, unknown action type or entity,
 * bad types. Returns 0 and sets *out on success (free with rv_flow_free). -ENOMEM on memory.
 */
int rv_flow_parse(const json_t *doc, struct rv_flow **out, json_t **errors);
void rv_flow_free(struct rv_flow *flow);

/* The flow shipped in the binary for calls with none of their own, and the examples. */
const char *rv_flow_builtin_json(const char *name); /* "default", "appointment", "support" */

/* What the caller did this turn (all optional but one). Borrowed for the call. */
struct rv_turn_in {
	const char *text;   /* transcript, NULL for events */
	const char *intent; /* NULL: the engine classifies text with the built-in model */
	double intent_conf;
	const json_t *entities; /* array as /api/voice-ai/understand returns; NULL: extracted */
	const char *emotion;    /* "frustrated", ... NULL: from the words */
	bool silence;           /* no answer within the timeout */
	char dtmf;              /* a key press instead of speech, 0 when none */
};

enum rv_action_type {
	RV_ACT_TRANSFER,
	RV_ACT_SCHEDULE_CALLBACK,
	RV_ACT_SEND_DTMF,
	RV_ACT_WEBHOOK,
	RV_ACT_SET_FIELD,
	RV_ACT_DNC,
};

struct rv_action {
	enum rv_action_type type;
	json_t *args; /* rendered arguments ({"to","mode","whisper"}, {"at"}, ...), owned */
};

/* What the agent should do now. Strings owned by the struct; free with rv_turn_out_clear. */
struct rv_turn_out {
	char *preamble;     /* spoken first and never interruptible (the AI disclosure); "" none */
	char *say;          /* text to speak after it ("" none) */
	bool barge_in;      /* may the caller interrupt `say` */
	bool end;           /* hang up after saying it */
	char *disposition;  /* when end: "converted", "dnc_request", ... */
	char *state;        /* the state the conversation is in now */
	const char *intent; /* the intent understood this turn (static or model string) */
	double intent_conf;
	json_t *entities; /* what was extracted this turn (array), owned */
	json_t *expect;   /* phrases the next answer is likely to contain (array), owned */
	struct rv_action actions[RV_FLOW_MAX_ACTIONS];
	size_t nactions;
};
void rv_turn_out_clear(struct rv_turn_out *o);

struct rv_convo_ctx {
	const json_t *lead;     /* lead row as JSON (first_name, phone, timezone, fields...) */
	const json_t *campaign; /* campaign row as JSON (name, ...) */
	const char *timezone;   /* for relative dates; NULL: the lead's, else UTC */
	int64_t now_ms;         /* 0: the clock */
	bool outbound;          /* outbound calls open with the disclosure */
	/* Webhook action transport (so tests and the agent can route it); NULL: libcurl POST with
	 * a 3 s timeout. Returns 0 and a new JSON answer, or a negative errno. */
	int (*webhook)(const char *method, const char *url, const json_t *body, json_t **answer,
	               void *arg);
	void *webhook_arg;
};

/* Start a conversation: *first gets the disclosure (outbound) and the start state's prompt. */
int rv_convo_start(const struct rv_flow *flow, const struct rv_convo_ctx *ctx,
                   struct rv_convo **out, struct rv_turn_out *first);

/* Run one caller turn. Returns 0, -EINVAL (nothing in `in`), -EALREADY (the conversation has
 * ended). */
int rv_convo_turn(struct rv_convo *c, const struct rv_turn_in *in, struct rv_turn_out *out);

/* The conversation so far: {"state", "slots", "vars", "turns": n, "ended", "disposition"}
 * (new reference) — what the text endpoint returns so a client can continue it. */
json_t *rv_convo_snapshot(const struct rv_convo *c);

/* Resume from a snapshot made by rv_convo_snapshot (stateless HTTP turns). */
int rv_convo_resume(const struct rv_flow *flow, const struct rv_convo_ctx *ctx,
                    const json_t *snapshot, struct rv_convo **out);

void rv_convo_free(struct rv_convo *c);

#endif
