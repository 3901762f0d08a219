/*
 * Post-call analysis: from a finished call's turns and the conversation's outcome, what a CRM
 * note needs — the disposition, a short summary, the facts the caller gave, and how their mood
 * went. Embedded and deterministic (an extractive summary, no model); when an LLM client is
 * given, an abstractive summary from it, falling back to the extractive one on any failure.
 *
 * The result is one JSON object, stored on the call row (calls.summary gets "summary",
 * calls.extracted gets the whole object) and sent as is to webhooks:
 *
 *   { "disposition": "callback",            the flow's, else inferred (see below)
 *     "disposition_source": "flow" | "inferred",
 *     "summary": "Outcome: ... Caller: \"...\" ...",
 *     "summary_source": "extractive" | "llm",
 *     "extractive_summary": "...",           always present
 *     "llm_error": "timeout",                only when the model was asked and failed
 *     "key_sentences": ["...", ...],         1-3 caller sentences, in call order
 *     "fields": {"callback_at": "2026-11-23T15:00:00-05:00", "email": "...", ...},
 *     "entities": [{"type", "value", "text", "turn"}],  every entity, "turn" = index in turns
 *     "intents": {"callback_later": 1, ...}, caller intents counted
 *     "sentiment": {"series": [valence per caller turn], "start", "end", "average",
 *                   "trend": "improving" | "worsening" | "flat" | "unknown",
 *                   "labels": {"neutral": 2, ...}, "final_label": "positive"},
 *     "turns": {"caller": n, "agent": m} }
 *
 * Inferred dispositions, in this order: AMD said machine → "voicemail"; no caller speech →
 * "no_answer"; the first caller turn is a voicemail greeting → "voicemail"; a do_not_call
 * intent anywhere →
 * "dnc_request"; wrong_number → "wrong_number"; otherwise the last decisive caller intent:
 * callback_later/busy_now → "callback", talk_to_human → "transfer_requested", not_interested →
 * "not_interested", interested → "interested"; else "completed".
 */
#ifndef RV_DIALOG_POSTCALL_H
#define RV_DIALOG_POSTCALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct rv_llm;

#define RV_POSTCALL_MAX_TURNS 2000

/* One turn of the call. Everything is borrowed for the analysis. */
struct rv_postcall_turn {
	const char *speaker; /* "caller" or "agent" ("system" turns are skipped) */
	const char *text;
	const char *intent; /* caller turns: the understood intent, or NULL */
	double intent_conf;
	const json_t *entities; /* array of {"type", "value", "text"} or NULL */
	const char *emotion;    /* label ("neutral", "frustrated", ...) or NULL when unknown */
	double valence;         /* -1..1, meaningful when emotion is set */
};

/* How the conversation ended. Everything optional and borrowed. */
struct rv_postcall_outcome {
	const char *disposition; /* the flow's; NULL or "" to infer */
	const json_t *slots;     /* object: filled slots */
	const json_t *vars;      /* object: set_field values and webhook answers */
	const char *amd;         /* "human", "machine", "unknown" or NULL */
};

/*
 * Analyse a call. `llm` (borrowed, may be NULL) adds the abstractive summary. Returns 0 and
 * sets *out (new reference), -EINVAL for more than RV_POSTCALL_MAX_TURNS turns or a turn
 * without speaker, -ENOMEM. A model failure is not an error: it is logged and reported in
 * "llm_error", and the extractive summary is used.
 */
int rv_postcall_analyze(const struct rv_postcall_turn *turns, size_t n,
                        const struct rv_postcall_outcome *oc, struct rv_llm *llm, json_t **out);

/*
 * Turns from JSON rows as the store and the API carry them: [{"speaker", "text", "intent",
 * "confidence", "entities": [...], "emotion": {"label", "valence"}}]. The strings point into
 * `rows`, which must outlive the turns. Returns 0 and sets *out (caller frees the array) and
 * *n, or -EINVAL (not an array, a row without a speaker, too many rows), -ENOMEM.
 */
int rv_postcall_turns_from_json(const json_t *rows, struct rv_postcall_turn **out, size_t *n);

#endif
