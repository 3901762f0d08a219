/*
 * Internals shared by the STT front (stt.c) and its backends: the backend table and result
 * helpers. Not for use outside src/speech/stt*.c.
 */
#ifndef RV_STT_INT_H
#define RV_STT_INT_H

#include "speech/stt.h"

#include <stdint.h>

#define RV_STT_LOG "stt"

/* The phrases in force for one utterance: normalised (lower case, single spaces). */
struct rv_stt_bias {
	char **phrases;
	size_t n;
	uint64_t gen; /* changes whenever the list changes; 0 = no bias */
};

/*
 * A backend. `engine_new` gets the whole configuration; sessions get the engine's state.
 * `partial` may be NULL (no partial results); it returns 0 and a new result, or -EAGAIN when
 * there is nothing new. Every function returns 0 or a negative errno and logs the reason.
 */
struct rv_stt_backend {
	const char *name;
	int (*engine_new)(const struct rv_stt_config *cfg, void **out);
	void (*engine_free)(void *eng);
	int (*session_new)(void *eng, void **out);
	void (*session_free)(void *sess);
	int (*start_utt)(void *sess, const struct rv_stt_bias *bias);
	int (*feed)(void *sess, const int16_t *s, size_t n);
	int (*partial)(void *sess, struct rv_stt_result **out);
	int (*end_utt)(void *sess, struct rv_stt_result **out);
	/* Abandon an open utterance (session reuse after an error, or session free). */
	void (*abort_utt)(void *sess);
};

extern const struct rv_stt_backend rv_stt_sphinx_backend;
extern const struct rv_stt_backend rv_stt_openai_backend;
extern const struct rv_stt_backend rv_stt_deepgram_backend;

/*
 * Parse one text message of Deepgram's live API (stt_deepgram.c; exported for its fuzz
 * target and tests). "Results": *kind 1 (interim) or 2 (final), *from_finalize, *end_s
 * (start + duration, connection time) and *out (caller frees; word times relative to
 * `offset_s`). Other message types: *kind 0, no result. Returns 0 or -EPROTO.
 */
int rv_stt_deepgram_parse(const char *msg, size_t len, double offset_s, int *kind,
                          bool *from_finalize, double *end_s, struct rv_stt_result **out);

/* A result whose text is a normalised copy of `text` (NULL = ""); no words. Aborts on OOM. */
struct rv_stt_result *rv_stt_result_new(const char *text, float conf, bool is_final);

/*
 * Append a word to a result (copied, normalised). Words beyond RV_STT_MAX_WORDS are dropped.
 * Aborts on OOM (the count is capped).
 */
void rv_stt_result_add_word(struct rv_stt_result *res, const char *word, uint32_t start_ms,
                            uint32_t end_ms, float conf);

/*
 * Normalise recogniser or server text into `dst` (capacity `cap`): lower case ASCII, letters,
 * digits and apostrophes kept, everything else a word break, single spaces, no leading or
 * trailing space. Returns the length written.
 */
size_t rv_stt_normalise(const char *src, char *dst, size_t cap);

/* Encode 16 kHz mono samples as a WAV file in memory. Returns 0 and a malloc'd buffer, or -ENOMEM.
 */
int rv_stt_wav_encode(const int16_t *s, size_t n, uint32_t rate, uint8_t **out, size_t *outlen);

#endif
