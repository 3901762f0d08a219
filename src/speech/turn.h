/*
 * Turn-taking (endpointing) for one call: fed the VAD's decision for every 20 ms frame and,
 * when the recognizer has one, the running partial transcript; it decides when the caller's
 * turn is over, when the caller barges in on the agent, and when nobody answered. It knows no
 * flows, SIP or STT engine: "does this partial answer the question?" is a callback the dialog
 * supplies.
 *
 * End of turn: after the caller's last voiced frame, `end_silence_ms` of silence (default
 * 700 ms — the shortest silence that cut no more than 1 in 40 multi-clause answers at 10 dB
 * SNR in the VAD bench, docs/adr/0008-vad.md), shortened to `complete_silence_ms` when the
 * callback scores the partial transcript at or above `complete_threshold`, lengthened to
 * `incomplete_silence_ms` when the partial ends like a sentence that goes on (a conjunction,
 * article, preposition, copula, possessive, filler such as "um", or a trailing number that is
 * probably being dictated in chunks).
 *
 * Barge-in: while a prompt plays with barge-in allowed, caller speech becomes a barge-in once
 * it has `barge_in_min_ms` of voiced frames at a mean level of at least `barge_in_min_db`, so
 * a cough or a click does not stop the agent; if the partial transcript so far holds only
 * backchannel words ("mhm", "okay", "yeah"...), `backchannel_ms` is needed instead.
 *
 * Time is the VAD's stream time (rv_vad_frame.t_ms); "now" is the end of the frame processed
 * last. Ownership and threads: one instance per call, used by one thread at a time (not
 * thread-safe); the callback runs on that thread inside rv_turn_process(). Nothing allocates
 * after rv_turn_alloc().
 */
#ifndef RV_SPEECH_TURN_H
#define RV_SPEECH_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "speech/vad.h"

struct rv_turn;

/*
 * How completely `partial` answers what the dialog expects at this point, 0..1. Called from
 * rv_turn_process() at most once per new partial, while the caller is silent after speech.
 * `partial` is borrowed for the call only.
 */
typedef float(rv_turn_complete_h)(const char *partial, void *arg);

struct rv_turn_cfg {
	uint32_t end_silence_ms;        /* silence that ends a turn (100..10000) */
	uint32_t complete_silence_ms;   /* ... when the callback says complete (60..10000) */
	uint32_t incomplete_silence_ms; /* ... when the partial looks mid-sentence (100..20000) */
	float complete_threshold;       /* callback score that counts as complete (0..1) */
	uint32_t no_input_ms;           /* listening this long without speech: no-input; 0 never */
	uint32_t barge_in_min_ms;       /* voiced time before speech barges in (20..5000) */
	float barge_in_min_db;          /* mean level of that speech, dBFS (-100..0) */
	uint32_t backchannel_ms;        /* voiced time needed while the partial is backchannel */
	rv_turn_complete_h *complete_h; /* optional */
	void *arg;                      /* for complete_h, borrowed */
};

enum rv_turn_ev_type {
	RV_TURN_EV_SPEECH_START = 1, /* t_ms: when the speech really began */
	RV_TURN_EV_SPEECH_END,       /* t_ms: end of its last voiced frame */
	RV_TURN_EV_END_OF_TURN,      /* t_ms: decision time; speech_*: the turn's span */
	RV_TURN_EV_BARGE_IN,         /* t_ms: decision time; speech_start_ms: when it began */
	RV_TURN_EV_NO_INPUT,         /* t_ms: decision time; listening began at speech_start_ms */
};

/* Why an end of turn came when it did. */
enum rv_turn_reason {
	RV_TURN_REASON_SILENCE = 0, /* end_silence_ms */
	RV_TURN_REASON_COMPLETE,    /* complete_silence_ms: the callback said complete */
	RV_TURN_REASON_INCOMPLETE,  /* incomplete_silence_ms: the partial looked unfinished */
};

struct rv_turn_event {
	enum rv_turn_ev_type type;
	uint64_t t_ms;
	uint64_t speech_start_ms;
	uint64_t speech_end_ms;
	uint32_t silence_ms;        /* END_OF_TURN: the silence that was required */
	enum rv_turn_reason reason; /* END_OF_TURN */
};

/* Most events one frame can raise; rv_turn_process() needs room for this many. */
#define RV_TURN_MAX_EVENTS 4
/* Longest partial transcript kept; a longer one keeps its last RV_TURN_PARTIAL_MAX - 1 bytes,
 * which are the ones that say whether the sentence is finished. */
#define RV_TURN_PARTIAL_MAX 1024

/* Fill *cfg with the defaults: 700 / 300 / 1000 ms of silence, threshold 0.5, 5 s no-input,
 * barge-in after 400 ms of voice at -45 dBFS or louder, 900 ms for a backchannel. */
void rv_turn_cfg_defaults(struct rv_turn_cfg *cfg);

/*
 * New endpointer, idle (neither playing nor listening). cfg is copied (NULL: defaults).
 * Returns 0 and sets *out (caller owns it; rv_turn_free), -EINVAL for a field out of range,
 * -ENOMEM. On failure *out is untouched and the callback is never called.
 */
int rv_turn_alloc(const struct rv_turn_cfg *cfg, struct rv_turn **out);

/* Release; NULL is a no-op. */
void rv_turn_free(struct rv_turn *t);

/*
 * The agent starts playing a prompt. barge_in: whether caller speech may interrupt it (false
 * for, say, a legal disclosure). Stops listening and clears the partial transcript.
 */
void rv_turn_prompt_start(struct rv_turn *t, bool barge_in);

/*
 * The prompt finished or was stopped: start listening for the caller's turn from now (the
 * no-input timer starts). Speech already under way — a barge-in, or speech over a prompt that
 * could not be interrupted — belongs to this turn.
 */
void rv_turn_prompt_end(struct rv_turn *t);

/* Start listening without a prompt (for instance on answer). Same as rv_turn_prompt_end. */
void rv_turn_listen(struct rv_turn *t);

/* Stop listening (no end-of-turn or no-input until the next prompt or listen). */
void rv_turn_stop(struct rv_turn *t);

/*
 * The recognizer's running transcript of the current turn (copied; NULL or "" clears it).
 * Returns 0, or -E2BIG when it was longer than RV_TURN_PARTIAL_MAX - 1 bytes and only its
 * tail was kept (the turn logic still works on the tail).
 */
int rv_turn_set_partial(struct rv_turn *t, const char *text);

/*
 * Feed the VAD's result for the next frame (borrowed). Writes up to RV_TURN_MAX_EVENTS events
 * to ev (room for cap) and their count to *n, in the order they happened. Returns 0, or
 * -EINVAL for NULL arguments or cap < RV_TURN_MAX_EVENTS (nothing changes).
 */
int rv_turn_process(struct rv_turn *t, const struct rv_vad_frame *f, struct rv_turn_event *ev,
                    size_t cap, size_t *n);

/*
 * Whether `partial` ends like a sentence that goes on ("my number is", "and", "um", a trailing
 * run of digits). Exposed for tests and for the dialog, which may want the same judgement.
 */
bool rv_turn_partial_unfinished(const char *partial);

/* Whether every word of `partial` is a backchannel ("mhm", "okay", "uh-huh"...). */
bool rv_turn_partial_backchannel(const char *partial);

#endif
