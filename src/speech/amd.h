/*
 * Answering-machine detection for outbound calls: from the first seconds after the answer,
 * decide whether a person or a machine picked up, from the pattern of speech and silence
 * (Asterisk's AMD parameters are the reference), and detect the voicemail beep.
 *
 * A person says something short ("Hello?") and waits; a machine plays a long greeting of many
 * words, then a beep. The detector counts words (voiced runs) and measures the greeting and
 * the silence after it; the beep detector looks for one steady pure tone, and keeps running
 * after the decision so a campaign can wait for the beep before leaving a message.
 *
 * One detector per call, fed every 20 ms caller frame (16 kHz, RV_MEDIA_FRAME samples) from
 * one thread; no allocation after rv_amd_alloc.
 */
#ifndef RV_SPEECH_AMD_H
#define RV_SPEECH_AMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rv_amd_result {
	RV_AMD_PENDING, /* not decided yet */
	RV_AMD_HUMAN,
	RV_AMD_MACHINE,
	RV_AMD_UNKNOWN, /* undecided after the analysis time, or dead air */
};

enum rv_amd_cause {
	RV_AMD_CAUSE_NONE,
	RV_AMD_CAUSE_INITIAL_SILENCE, /* nothing said within initial_silence_ms: unknown */
	RV_AMD_CAUSE_HUMAN_SILENCE,   /* a short greeting, then silence: human */
	RV_AMD_CAUSE_LONG_GREETING,   /* one greeting longer than greeting_ms: machine */
	RV_AMD_CAUSE_MAX_WORDS,       /* max_words words or more: machine */
	RV_AMD_CAUSE_LONG_WORD,       /* one voiced run longer than max_word_ms: machine */
	RV_AMD_CAUSE_BEEP,            /* a beep before any other decision: machine */
	RV_AMD_CAUSE_TIMEOUT,         /* total_analysis_ms passed: unknown */
};

struct rv_amd_cfg {
	uint32_t initial_silence_ms; /* 2500 */
	uint32_t greeting_ms;        /* 1500: longer greeting = machine */
	uint32_t after_greeting_ms;  /* 800: silence after a short greeting = human */
	uint32_t total_analysis_ms;  /* 5000 */
	uint32_t min_word_ms;        /* 100: shorter voiced runs are not words */
	uint32_t between_words_ms;   /* 50: silence that separates two words */
	uint32_t max_words;          /* 5: this many words = machine */
	uint32_t max_word_ms;        /* 5000 */
	uint32_t beep_min_ms;        /* 120: a steady tone at least this long is a beep */
	uint32_t silence_threshold;  /* 256: RMS below this is never speech (internal detector) */
};

struct rv_amd_state {
	enum rv_amd_result result;
	enum rv_amd_cause cause;
	uint32_t decided_ms; /* media time of the decision (since the first frame) */
	uint32_t words;
	uint32_t greeting_ms; /* voiced time of the greeting so far */
	bool beep;            /* a beep has ended (beep_end_ms, beep_hz) */
	uint32_t beep_end_ms;
	uint32_t beep_hz;
};

struct rv_amd;

/*
 * Asterisk's defaults (amd.conf) with two changes: initial silence is "unknown", not
 * "machine" (dead air is as often a person waiting as a machine), and max_words is 5, not 2-3:
 * phone speech has many 50 ms gaps, so "Hello, who is this?" counts four words, while a
 * machine's greeting reaches greeting_ms of voiced time about as early as its third word.
 */
void rv_amd_cfg_defaults(struct rv_amd_cfg *cfg);

/* Returns 0 and sets *out (release with rv_amd_free), -EINVAL for a bad cfg, -ENOMEM. */
int rv_amd_alloc(const struct rv_amd_cfg *cfg, struct rv_amd **out);
void rv_amd_free(struct rv_amd *amd);

/*
 * Feed one frame of n (= RV_MEDIA_FRAME) samples. `voiced` is the VAD's decision for the
 * frame: 1 speech, 0 not, -1 unknown (then a simple adaptive energy detector decides). Returns
 * the state after the frame (borrowed, valid until the next call). Once decided, the result
 * stays; beep detection goes on.
 */
const struct rv_amd_state *rv_amd_process(struct rv_amd *amd, const int16_t *frame, size_t n,
                                          int voiced);

/* Stable names for the store and logs: "human", "machine", "unknown", "pending"; causes. */
const char *rv_amd_result_name(enum rv_amd_result r);
const char *rv_amd_cause_name(enum rv_amd_cause c);

#endif
