/*
 * Speech to text. One interface, several backends behind a table of function pointers
 * (struct rv_stt_backend, one file per backend):
 *   "sphinx"   embedded pocketsphinx, the default (stt_sphinx.c);
 *   "openai"   HTTP, OpenAI's POST /v1/audio/transcriptions shape, also a whisper.cpp server
 *              (stt_openai.c); final results only;
 *   "deepgram" WebSocket, Deepgram's live API shape (stt_deepgram.c): streaming, interim
 *              results as partials, the final result on Finalize;
 *
 * An engine is created once per provider configuration and shared: creating sessions on it is
 * thread-safe. A session belongs to one call (or one utterance) and is used from one thread at
 * a time, the call's speech worker. The pipeline feeds only voiced audio, 16 kHz mono 16-bit
 * (RV_MEDIA_RATE), bracketed by rv_stt_start_utt()/rv_stt_end_utt() at the VAD's boundaries.
 * Partial results are delivered through the session's handler from inside rv_stt_feed() on the
 * calling thread, never from another thread; the final result is returned by rv_stt_end_utt().
 *
 * Per-session bias: the phrases the dialog state expects ("yes", "call me tomorrow") steer
 * recognition towards them without forbidding anything else.
 */
#ifndef RV_STT_H
#define RV_STT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on outside input: phrase lists, transcripts and server replies. */
#define RV_STT_MAX_BIAS_PHRASES 256
#define RV_STT_MAX_PHRASE_LEN   128
#define RV_STT_MAX_TEXT         4096
#define RV_STT_MAX_WORDS        512
#define RV_STT_MAX_REPLY        (1024 * 1024)
/* Longest utterance a session buffers (cloud providers, whole-utterance decoding): 60 s. */
#define RV_STT_MAX_UTT_SAMPLES (16000 * 60)

/* Default interval between partial results, in milliseconds of fed audio. */
#define RV_STT_PARTIAL_MS_DEFAULT 250

struct rv_stt_word {
	char *word;
	uint32_t start_ms; /* from the start of the utterance */
	uint32_t end_ms;
	float conf; /* 0..1, or -1 when the engine gives no per-word confidence */
};

struct rv_stt_result {
	char *text; /* lower-case words separated by single spaces; "" when nothing was heard */
	float conf; /* 0..1 */
	bool is_final;
	uint32_t audio_ms; /* audio fed to the utterance when the result was made */
	size_t nwords;
	struct rv_stt_word *words; /* ordered by start_ms; may be empty for partials */
};

/* Free a result from rv_stt_end_utt() (NULL is fine). */
void rv_stt_result_free(struct rv_stt_result *res);

/*
 * Partial-result handler. `res` is borrowed for the duration of the call. Called on the thread
 * that called rv_stt_feed(), from inside it.
 */
typedef void(rv_stt_partial_h)(const struct rv_stt_result *res, void *arg);

/* Engine configuration. Strings are borrowed for the duration of rv_stt_engine_new(). */
struct rv_stt_config {
	const char *provider; /* "sphinx" (default when NULL), "openai", "deepgram" */
	/* sphinx */
	const char *model_dir; /* default /usr/share/pocketsphinx/model/en-us */
	const char *work_dir;  /* where the private model copy goes; NULL = a temporary directory */
	double bias_weight; /* weight of the state's phrase model in the mix (0..1); 0 = default */
	unsigned pool_size; /* decoders loaded up front and kept for reuse; 0 = default (1) */
	const char
	    *sphinx_args; /* extra decoder options, "-beam 1e-40 -pl_window 5"; NULL = none */
	bool no_bias;     /* decode with the general model only, ignoring bias lists */
	/* cloud */
	const char *base_url; /* e.g. https://api.openai.com */
	const char *api_key;
	const char *model;    /* provider's model ("whisper-1" for openai, "nova-2" for deepgram) */
	const char *language; /* e.g. "en"; NULL = provider default */
	unsigned timeout_ms;  /* per request / per final result; 0 = default 10000 */
};

struct rv_stt_engine;
struct rv_stt_session;

/*
 * Create an engine for cfg->provider. Loads models (sphinx) or checks the configuration
 * (cloud; no network I/O here). Returns 0 and sets *out (caller owns it; free with
 * rv_stt_engine_free after every session is gone), -EINVAL for a bad configuration, -ENOENT
 * when a model file is missing, -EPROTONOSUPPORT for an unknown provider, -ENOMEM. The reason
 * is logged (component "stt").
 */
int rv_stt_engine_new(const struct rv_stt_config *cfg, struct rv_stt_engine **out);

/* Free an engine (NULL is fine). Every session of it must have been freed. */
void rv_stt_engine_free(struct rv_stt_engine *eng);

/* The provider name of an engine ("sphinx", ...). Borrowed, lives as long as the engine. */
const char *rv_stt_engine_provider(const struct rv_stt_engine *eng);

/*
 * Open a session on a shared engine (thread-safe). `partial_h` (may be NULL) receives partial
 * results every `partial_ms` of fed audio (0 = RV_STT_PARTIAL_MS_DEFAULT); `arg` is passed
 * back. Cloud streaming providers connect lazily at the first rv_stt_start_utt(). Returns 0 and
 * sets *out (caller owns it), or -ENOMEM / -EINVAL.
 */
int rv_stt_session_new(struct rv_stt_engine *eng, unsigned partial_ms, rv_stt_partial_h *partial_h,
                       void *arg, struct rv_stt_session **out);

/* Close a session (NULL is fine); an utterance in progress is abandoned. */
void rv_stt_session_free(struct rv_stt_session *sess);

/*
 * Set the phrases the current dialog state expects; they apply from the next
 * rv_stt_start_utt(). `phrases` (borrowed) are free text; words the engine cannot spell are
 * dropped with a debug log line. n == 0 clears the bias. Returns 0, -EINVAL (more than
 * RV_STT_MAX_BIAS_PHRASES, a phrase longer than RV_STT_MAX_PHRASE_LEN), -ENOMEM; on failure
 * the previous bias stays.
 */
int rv_stt_set_bias(struct rv_stt_session *sess, const char *const *phrases, size_t n);

/*
 * Begin an utterance. Returns 0, -EBUSY if one is already open, or a backend error (cloud:
 * -ECONNREFUSED, -EACCES for a rejected key, -ETIMEDOUT, -EPROTO), logged.
 */
int rv_stt_start_utt(struct rv_stt_session *sess);

/*
 * Feed `n` samples (borrowed) of 16 kHz mono audio to the open utterance. May call the partial
 * handler. Returns 0, -EINVAL without an open utterance, -EFBIG past RV_STT_MAX_UTT_SAMPLES, or
 * a backend error (the utterance then stays open so that rv_stt_end_utt() can close it).
 */
int rv_stt_feed(struct rv_stt_session *sess, const int16_t *samples, size_t n);

/*
 * Ask for a partial result of everything fed so far, now, instead of at the next partial_ms
 * boundary: the caller has just gone quiet and the turn-taking wants to judge the words up to
 * the last one. Delivered through the partial handler like the others (only when the text
 * changed). Returns 0, -EINVAL without an open utterance, -EAGAIN when the backend has no
 * partial results or nothing new was fed since the last one.
 */
int rv_stt_partial_now(struct rv_stt_session *sess);

/*
 * End the utterance and get its final result. Blocks until the engine has decoded it (cloud:
 * at most the configured timeout). Returns 0 and sets *out (caller owns it; text "" when
 * nothing was recognised), -EINVAL without an open utterance, or a backend error (-EACCES,
 * -ETIMEDOUT, -EPROTO for a malformed reply, -ECONNRESET when the server went away). The
 * utterance is closed in every case.
 */
int rv_stt_end_utt(struct rv_stt_session *sess, struct rv_stt_result **out);

/* Describe an error code returned by this module ("server rejected the API key"). */
const char *rv_stt_strerror(int err);

#endif
