/*
 * LLM mode: the conversation is driven by a model behind an OpenAI-compatible chat-completions
 * endpoint (OpenAI, Azure-style gateways, vLLM, llama.cpp's server, Ollama's /v1), with the
 * scripted flow (flow.h) as the safety net. docs/FLOWS.md ("LLM mode") describes the flow's
 * "llm" section; docs/adr/0012-llm.md says why it is built this way.
 *
 * Two layers:
 *   - the client (rv_llm_chat): one streamed completion, POST {base_url}/v1/chat/completions
 *     with "stream": true, Server-Sent Events parsed as they arrive, the reply handed out
 *     sentence by sentence so text-to-speech can start on the first one, tool calls assembled
 *     from their fragments;
 *   - the conversation (rv_llm_convo_*): the system prompt from the flow's "llm" section, the
 *     persona, the lead and the caller's local time; the history; the tools end_call, transfer,
 *     schedule_callback and set_field turned into the scripted engine's rv_action; guardrails
 *     (max_turn_words, banned_topics); and the fallback to the scripted flow on timeout, HTTP
 *     error, malformed stream or when the flow has no "llm" section. The AI disclosure stays the
 *     flow's "disclosure", spoken as the uninterruptible preamble.
 *
 * Thread rules: a client (struct rv_llm) is immutable after rv_llm_new and may be shared; each
 * call of rv_llm_chat uses its own curl handle. A conversation belongs to one thread at a time.
 */
#ifndef RV_DIALOG_LLM_H
#define RV_DIALOG_LLM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dialog/flow.h"

struct rv_config;

#define RV_LLM_MAX_REPLY      (16 * 1024)   /* bytes of assistant text per completion */
#define RV_LLM_MAX_EVENT      (64 * 1024)   /* bytes of one SSE event (line or data block) */
#define RV_LLM_MAX_STREAM     (1024 * 1024) /* bytes of one whole response */
#define RV_LLM_MAX_TOOL_CALLS 8
#define RV_LLM_MAX_TOOL_ARGS  (8 * 1024) /* bytes of one tool call's arguments */
#define RV_LLM_MAX_HISTORY    60         /* messages kept (older ones are dropped) */

struct rv_llm_config {
	const char *base_url; /* "http://host:port" or "https://api.openai.com"; "/v1/..." added */
	const char *api_key;  /* Bearer token; NULL or "" sends none (local servers) */
	const char *model;    /* "gpt-4o-mini", ... */
	int timeout_ms;       /* whole request; 0: 8000 */
	int max_tokens;       /* completion cap; 0: 300 */
};

struct rv_llm;

/*
 * Make a client. Strings are copied. Returns 0 and sets *out (free with rv_llm_free), -EINVAL
 * when base_url is not http(s):// or model is empty (nothing allocated), -ENOMEM.
 */
int rv_llm_new(const struct rv_llm_config *cfg, struct rv_llm **out);

/*
 * A client from the daemon's llm.* keys. Returns -ENOENT when llm.base_url is empty (no LLM
 * configured: the caller runs flows scripted), else as rv_llm_new.
 */
int rv_llm_from_config(const struct rv_config *cfg, struct rv_llm **out);

void rv_llm_free(struct rv_llm *llm);

/* The model name the client sends (borrowed). */
const char *rv_llm_model(const struct rv_llm *llm);

/* A completed stream. Owned by the struct; free with rv_llm_reply_clear. */
struct rv_llm_reply {
	char *text;             /* the assistant's whole text, as the model wrote it */
	json_t *tool_calls;     /* [{"id", "name", "arguments": "<JSON text>"}], in index order */
	char finish_reason[24]; /* "stop", "tool_calls", "length", ... ("" when none was sent) */
	unsigned events;        /* SSE events parsed */
};
void rv_llm_reply_clear(struct rv_llm_reply *r);

/*
 * Called with each complete sentence of the reply (trimmed, NUL-terminated, borrowed for the
 * call) as soon as the stream has it, on the thread running rv_llm_chat.
 */
typedef void (*rv_llm_sentence_cb)(const char *sentence, void *arg);

/*
 * Run one streamed chat completion. `messages` is the OpenAI messages array (borrowed), `tools`
 * an array of function definitions or NULL, timeout_ms <= 0 uses the client's. Sentences go to
 * on_sentence (may be NULL) while the stream runs; the text after the last boundary is handed
 * out when the stream ends.
 *
 * Returns 0 and fills *out; on failure *out is untouched (but sentences already handed out stay
 * handed out), a line is logged (component "llm") and rv_llm_requests_total{result} counts it:
 *   -ETIMEDOUT      the request took longer than the timeout
 *   -EACCES         HTTP 401/403 (the server's error message is logged)
 *   -EIO            another HTTP error status, an error event in the stream, a transport error
 *   -ECONNREFUSED   nothing listens at base_url
 *   -EPROTO         a malformed stream: an event that is not JSON, a bad delta, a stream that
 *                   ends before [DONE] or a finish_reason
 *   -EMSGSIZE       an event, the text, a tool call or the response passed its cap
 *   -ENOMEM
 */
int rv_llm_chat(struct rv_llm *llm, const json_t *messages, const json_t *tools, int timeout_ms,
                rv_llm_sentence_cb on_sentence, void *arg, struct rv_llm_reply *out);

/*
 * The sentence splitter rv_llm_chat uses: the length of the first complete sentence in s[0..n)
 * (up to and including its end punctuation and closing quotes), or 0 when none is complete yet.
 * A sentence ends at . ! ? (runs such as "?!" or "..." included) followed by white space, or at
 * the end of the text when `final`; not after titles such as "Dr." or "Mrs.", initials ("J."),
 * "e.g."/"i.e."; after dotted or short abbreviations ("a.m.", "etc.", "No.") only when the
 * next word starts with a capital ("at 10 a.m. tomorrow" goes on), so those wait for the next
 * word; "3.5" and "example.com" never split because no space follows the dot. A blank line
 * also ends a sentence.
 */
size_t rv_llm_sentence_end(const char *s, size_t n, bool final);

/* ---- The conversation ---- */

/* Tool definitions sent to the model (new reference): end_call, transfer, schedule_callback,
 * set_field. `dispositions` (array of strings or NULL) becomes end_call's enum. */
json_t *rv_llm_tools(const json_t *dispositions);

/* What a tool call needs to be checked against. */
struct rv_llm_tool_ctx {
	int64_t now_ms;         /* schedule_callback must not be in the past */
	const json_t *campaign; /* "transfer_to" when the model names no number */
	const json_t *section;  /* the flow's "llm" section ("transfer_to", "dispositions") */
};

/*
 * The adapter from a model's tool call to the scripted engine's output: transfer and
 * schedule_callback and set_field become rv_action entries in out->actions (the same shapes the
 * flow engine makes: {"to","mode","reason"}, {"at"}, {"field","value"}); end_call sets out->end
 * and out->disposition (and adds a dnc action for "dnc_request"); transfer also ends the call
 * ("transferred"). schedule_callback's "at" must parse with rv_time_parse_iso and not lie in the
 * past; it is stored as the model wrote it.
 *
 * Returns 0 when applied; -ENOENT for an unknown tool, -EINVAL for bad arguments (not JSON, a
 * missing or malformed field), -ENOSPC when out->actions is full: then `why` gets a sentence
 * for the model and out is unchanged.
 */
int rv_llm_apply_tool(const char *name, const char *arguments, const struct rv_llm_tool_ctx *tc,
                      struct rv_turn_out *out, char *why, size_t whylen);

/*
 * Check a flow document's "llm" section and its "kind" (called by rv_flow_parse). Appends
 * {"path", "message"} objects to errors for: kind other than "scripted"/"llm", kind "llm"
 * without a section, a section that is not an object, unknown keys, "system" missing or over
 * 8000 bytes, bad goal/opening/deflection/transfer_to/model strings, banned_topics not a list of
 * up to 50 short phrases, max_turn_words outside 5-500, timeout_ms outside 500-60000,
 * temperature outside 0-2, dispositions not a list of lower-case names.
 */
void rv_llm_check_section(const json_t *doc, json_t *errors);

/* Does the flow have an "llm" section (so a turn may go to the model)? */
bool rv_llm_flow_has_section(const struct rv_flow *flow);

struct rv_llm_convo;

/* How the last turn was produced. Strings are static. */
struct rv_llm_turn_info {
	const char *mode;         /* "llm" or "scripted" */
	const char *reason;       /* "" in LLM mode, else why scripted: "no_llm_section",
	                           * "no_llm_configured", "timeout", "http_401", "http_error",
	                           * "unreachable", "malformed_stream", "too_big", "compliance" (a
	                           * do-not-call request goes to the flow's handler), "fallen_back" (an
	                           * earlier turn fell back; the flow keeps the rest of the call) */
	bool truncated;           /* max_turn_words cut the reply */
	bool deflected;           /* a banned topic was replaced with the deflection */
	unsigned sentences;       /* sentences handed out */
	unsigned rounds;          /* completions requested (2 when a tool result needed words) */
	double first_sentence_ms; /* from the turn's start; -1 when none */
};

/*
 * Start a conversation. `llm` (borrowed, may be NULL) is used when the flow has an "llm"
 * section; otherwise the flow runs scripted. *first gets the flow's disclosure as preamble
 * (outbound) and the opening: the section's "opening" rendered with the lead's fields, else
 * the start state's prompt. Returns 0 and sets *out (free with rv_llm_convo_free), or an error
 * from rv_convo_start (then *first is cleared and nothing is allocated).
 */
int rv_llm_convo_start(const struct rv_flow *flow, struct rv_llm *llm,
                       const struct rv_convo_ctx *ctx, struct rv_llm_convo **out,
                       struct rv_turn_out *first);

/*
 * Run one caller turn. In LLM mode the reply streams through on_sentence (may be NULL) as each
 * guarded sentence is ready; in scripted mode the flow's reply is split into sentences and
 * handed out after the turn ran, so the caller has one path either way. out->say is everything
 * handed out. On a model failure before any sentence was handed out, the turn (and the rest of
 * the call) runs on the scripted flow from where it stands, logged and counted in
 * rv_llm_fallbacks_total{reason}. Returns 0, -EINVAL (nothing in `in`), -EALREADY (ended),
 * -ENOMEM.
 */
int rv_llm_convo_turn(struct rv_llm_convo *c, const struct rv_turn_in *in,
                      rv_llm_sentence_cb on_sentence, void *arg, struct rv_turn_out *out);

/* How the last turn (or the start) was produced. */
void rv_llm_convo_info(const struct rv_llm_convo *c, struct rv_llm_turn_info *info);

/*
 * The conversation so far (new reference): rv_convo_snapshot's object plus "llm": {"mode",
 * "reason", "history", "modes" (one entry per turn, the start included), "fields", "ended",
 * "disposition"}; "ended" and "disposition" at the top reflect whichever engine ran.
 */
json_t *rv_llm_convo_snapshot(const struct rv_llm_convo *c);

/*
 * Resume from a snapshot (a client sends it back with the next text turn, so everything in it
 * is checked: roles, sizes, tool-call shapes). Returns 0 and sets *out, -EINVAL for a snapshot
 * that does not fit the flow or is malformed, -ENOMEM.
 */
int rv_llm_convo_resume(const struct rv_flow *flow, struct rv_llm *llm,
                        const struct rv_convo_ctx *ctx, const json_t *snapshot,
                        struct rv_llm_convo **out);

void rv_llm_convo_free(struct rv_llm_convo *c);

/* The system prompt the conversation sends now (malloc'd, caller frees; NULL on ENOMEM). */
char *rv_llm_convo_system_prompt(const struct rv_llm_convo *c);

#endif
