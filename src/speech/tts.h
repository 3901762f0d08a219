/*
 * Text to speech: one interface over several engines, each a backend behind a table of function
 * pointers (one file per backend: tts_flite.c, tts_espeak.c, tts_eleven.c). A request turns
 * text into 16 kHz mono 16-bit audio (RV_MEDIA_RATE) delivered in chunks through a callback as
 * soon as the engine has them, so playback can start before synthesis ends. A request can be
 * cancelled from any thread. The layer knows nothing of calls or SIP.
 *
 * Threads: an engine handle (struct rv_tts) may be used by several threads at once; a backend
 * whose library has process-wide state serializes inside (see each backend's file).
 * Synthesis blocks (CPU for the embedded engines, network for ElevenLabs): run it on speech
 * workers, never on the media loop.
 *
 * The prompt cache (memory LRU + disk) that sits in front of the engines is declared at the end
 * of this header and lives in tts_cache.c.
 */
#ifndef RV_TTS_H
#define RV_TTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct rv_pcm;

/* Longest text one request accepts, in bytes of UTF-8. Longer text is -E2BIG. */
#define RV_TTS_MAX_TEXT 16384
/* Speaking rate that the factor 1.0 stands for, when a rate is given in words per minute. */
#define RV_TTS_WPM_NORMAL 175
/* Accepted range of the rate and pitch factors (1.0 = the voice's own). */
#define RV_TTS_FACTOR_MIN 0.25
#define RV_TTS_FACTOR_MAX 4.0

/* Options for rv_tts_open. Strings are copied; zero/NULL fields take the defaults. */
struct rv_tts_opts {
	const char *base_url;   /* elevenlabs: default "https://api.elevenlabs.io" */
	const char *api_key;    /* elevenlabs: sent as xi-api-key; required */
	const char *model_id;   /* elevenlabs: default "eleven_flash_v2_5" */
	int timeout_ms;         /* elevenlabs: cap on a whole request; default 30000 */
	int connect_timeout_ms; /* elevenlabs: default 5000 */
	/* elevenlabs: a stream that stalls this long after it started is cut; default 10000 */
	int stall_timeout_ms;
};

/* One synthesis request. Borrowed for the duration of the call. */
struct rv_tts_req {
	const char *text;  /* UTF-8, non-empty, at most RV_TTS_MAX_TEXT bytes */
	const char *voice; /* engine voice name; NULL or "" = the engine's default voice */
	double rate;       /* speaking-rate factor, 1.0 = normal; 0 = normal */
	double pitch;      /* pitch factor, 1.0 = normal; 0 = normal */
	/*
	 * Optional cancel flag: storing a non-zero value from any thread stops the request at
	 * the next chunk (embedded engines) or within ~100 ms (ElevenLabs).
	 */
	atomic_int *cancel;
};

/*
 * Receives one chunk of audio: n (> 0) samples at RV_MEDIA_RATE, borrowed until the callback
 * returns. Called on the thread that called rv_tts_synth. Return 0 to go on, non-zero to stop
 * the request (rv_tts_synth then returns -ECANCELED).
 */
typedef int(rv_tts_chunk_h)(const int16_t *s, size_t n, void *arg);

/*
 * A backend. `state` is what open returned. Every function that can fail writes a sentence
 * into why (whylen bytes; why may be NULL) and returns a negative errno (see rv_tts_synth).
 * synth receives a request already validated and with the voice resolved (never NULL), and
 * must deliver audio at RV_MEDIA_RATE.
 */
struct rv_tts_backend {
	const char *name;          /* "flite", "espeak", "elevenlabs" */
	const char *default_voice; /* used when a request names none */
	int (*open)(const struct rv_tts_opts *opts, void **state, char *why, size_t whylen);
	void (*close)(void *state);
	/* 0 when the engine has the voice, -ENOENT otherwise (with the voices it has in why). */
	int (*voice_check)(void *state, const char *voice, char *why, size_t whylen);
	int (*synth)(void *state, const struct rv_tts_req *req, rv_tts_chunk_h *chunk_h, void *arg,
	             char *why, size_t whylen);
	/*
	 * Optional: what else, besides engine, voice, rate and pitch, changes the audio of a
	 * text (ElevenLabs: the model id). Part of the cache key. NULL or "" when nothing.
	 */
	const char *(*variant)(void *state);
};

/*
 * For backends: where a synthesizer's audio goes, resampled to RV_MEDIA_RATE on the way when
 * `rs` is set (NULL: the audio is already at that rate). rv_tts_out_deliver() hands it to
 * chunk_h in pieces; it returns `stop`, which becomes 1 when chunk_h asks to stop or the
 * resampler fails (then err is -EIO).
 */
struct rv_resampler;
struct rv_tts_out {
	rv_tts_chunk_h *chunk_h;
	void *arg;
	struct rv_resampler *rs;
	int stop, err;
	int16_t buf[4096];
};
int rv_tts_out_deliver(struct rv_tts_out *o, const int16_t *s, size_t n);

extern const struct rv_tts_backend rv_tts_backend_flite;  /* tts_flite.c */
extern const struct rv_tts_backend rv_tts_backend_espeak; /* tts_espeak.c */
extern const struct rv_tts_backend rv_tts_backend_eleven; /* tts_eleven.c */

struct rv_tts;

/*
 * Open an engine by name: "flite", "espeak" (alias "espeak-ng") or "elevenlabs". opts may be
 * NULL for the embedded engines. Returns 0 and sets *out (free with rv_tts_close), -ENOENT for
 * an unknown engine, -EINVAL for missing options (no ElevenLabs key), or the backend's error;
 * the reason is in why and logged (component "tts").
 */
int rv_tts_open(const char *engine, const struct rv_tts_opts *opts, struct rv_tts **out, char *why,
                size_t whylen);
void rv_tts_close(struct rv_tts *tts);

/* The engine's canonical name and default voice (static strings). */
const char *rv_tts_engine(const struct rv_tts *tts);
const char *rv_tts_default_voice(const struct rv_tts *tts);
/* The backend's variant (see struct rv_tts_backend), "" when none; valid while tts is open. */
const char *rv_tts_variant(const struct rv_tts *tts);

/*
 * Is `voice` (NULL = default) one the engine has? 0, or -ENOENT with a sentence naming the
 * voices it does have in why. ElevenLabs voice ids are only checked for shape here; the server
 * says whether one exists.
 */
int rv_tts_voice_check(struct rv_tts *tts, const char *voice, char *why, size_t whylen);

/*
 * Synthesize req->text, calling chunk_h with the audio as it is produced. Returns 0 when the
 * whole text was spoken; otherwise a negative errno with a sentence in why and a log line:
 *   -EINVAL     empty text, text that is not UTF-8, rate or pitch out of range
 *   -E2BIG      text longer than RV_TTS_MAX_TEXT
 *   -ENOENT     unknown voice
 *   -ENOTSUP    an option the engine lacks (pitch on ElevenLabs)
 *   -ECANCELED  chunk_h returned non-zero or *req->cancel was set
 *   -EACCES     the provider rejected the credentials
 *   -ETIMEDOUT  the provider did not answer or stalled
 *   -EPROTO     the provider's stream ended early or was malformed
 *   -EAGAIN     the provider rate-limited the request (HTTP 429)
 *   -ECONNREFUSED, -EIO  cannot reach the provider / other failures
 * Chunks already delivered stay delivered: after an error mid-stream the caller holds partial
 * audio and must decide (drop it, or play what it has). Each request adds to the metrics
 * rv_tts_requests_total{engine,result}, rv_tts_synth_seconds{engine} and
 * rv_tts_first_audio_seconds{engine}.
 */
int rv_tts_synth(struct rv_tts *tts, const struct rv_tts_req *req, rv_tts_chunk_h *chunk_h,
                 void *arg, char *why, size_t whylen);

/*
 * Synthesize into one buffer at RV_MEDIA_RATE. *out is set only on success (one reference,
 * owned by the caller; release with mem_deref). Errors as rv_tts_synth, plus -ENOMEM.
 */
int rv_tts_synth_pcm(struct rv_tts *tts, const struct rv_tts_req *req, struct rv_pcm **out,
                     char *why, size_t whylen);

/*
 * Release a buffer from rv_tts_synth_pcm or rv_tts_cache_get (mem_deref), for code that
 * cannot include re.h because it uses jansson (their JSON_* names clash). NULL is a no-op.
 */
void rv_tts_pcm_free(struct rv_pcm *pcm);

/* A short English description of one of the errors above (static string). */
const char *rv_tts_strerror(int err);

/*
 * Parse a rate given as a factor ("1.2") or in words per minute ("200wpm", relative to
 * RV_TTS_WPM_NORMAL) into a factor. Also used for pitch factors (no "wpm" there: pass
 * allow_wpm = 0). Returns 0 and sets *out, or -EINVAL when not a number in
 * [RV_TTS_FACTOR_MIN, RV_TTS_FACTOR_MAX].
 */
int rv_tts_parse_factor(const char *s, int allow_wpm, double *out);

/* ---- prompt cache (tts_cache.c) -------------------------------------------------------- */

struct rv_tts_cache;

/* Where rv_tts_cache_get found the audio. */
enum rv_tts_cache_src {
	RV_TTS_CACHE_MEMORY = 0, /* in the memory LRU: no I/O, no synthesis */
	RV_TTS_CACHE_DISK,       /* read from the cache directory */
	RV_TTS_CACHE_SYNTH,      /* synthesized now (and stored) */
};

/*
 * Open a cache holding at most mem_cap bytes of audio in memory (least recently used entries
 * go first; an entry larger than the cap is kept on disk only) and, when dir is not NULL, every
 * entry on disk as dir/<key>.wav (16 kHz mono WAV; dir is created). Returns 0 and sets *out
 * (free with rv_tts_cache_close), -EINVAL for a zero cap, or -errno when dir cannot be made.
 */
int rv_tts_cache_open(const char *dir, size_t mem_cap, struct rv_tts_cache **out);
void rv_tts_cache_close(struct rv_tts_cache *c);

/*
 * The cache key of a request on an engine: BLAKE2b-256 (libsodium crypto_generichash) of
 * engine (and its variant, e.g. the ElevenLabs model), resolved voice, rate, pitch and text,
 * as 64 lowercase hex digits in hex (>= 65 bytes).
 */
void rv_tts_cache_key(const struct rv_tts *tts, const struct rv_tts_req *req, char *hex);

/*
 * The audio for req on tts: from memory, else from disk (then kept in memory), else
 * synthesized and stored in both. Concurrent requests for the same key wait for one synthesis
 * instead of repeating it. *out is a new buffer (caller owns the reference; mem_deref) set only
 * on success; *src (may be NULL) says where it came from. Errors as rv_tts_synth; a disk write
 * that fails is logged and does not fail the request. Thread-safe. Counts
 * rv_tts_cache_hits_total{tier} and rv_tts_cache_misses_total.
 */
int rv_tts_cache_get(struct rv_tts_cache *c, struct rv_tts *tts, const struct rv_tts_req *req,
                     struct rv_pcm **out, enum rv_tts_cache_src *src, char *why, size_t whylen);

/*
 * The audio for req only if it is in memory now: no disk, no synthesis (for callers that would
 * rather stream a miss than wait for a whole synthesis). 0 and *out (caller owns it), -ENOENT
 * on a miss, -EINVAL, -ENOMEM. Thread-safe.
 */
int rv_tts_cache_peek(struct rv_tts_cache *c, struct rv_tts *tts, const struct rv_tts_req *req,
                      struct rv_pcm **out);

/*
 * Pre-synthesize prompts (campaign greetings when a campaign starts) with one voice, rate and
 * pitch: every text of texts[0..n) ends up in the cache. Returns the number of texts that
 * failed (each logged; 0 = all cached), and the number synthesized now through *synthesized
 * (may be NULL).
 */
size_t rv_tts_cache_warm(struct rv_tts_cache *c, struct rv_tts *tts, const char *const *texts,
                         size_t n, const char *voice, double rate, double pitch,
                         size_t *synthesized);

/* Bytes of audio and entries now held in memory (for tests and /metrics). */
void rv_tts_cache_stats(struct rv_tts_cache *c, size_t *bytes, size_t *entries);

#endif
