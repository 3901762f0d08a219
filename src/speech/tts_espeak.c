/*
 * espeak-ng backend: Hindi ("hi") and the 100+ other languages espeak-ng speaks, by voice name
 * ("hi", "en-us", "en+f3", ...). espeak-ng synthesizes at 22.05 kHz; the audio is resampled
 * to 16 kHz with speexdsp as it streams.
 *
 * Global state: espeak-ng has one current voice, one parameter set and one synth callback per
 * process, so it is initialized once (pthread_once) in AUDIO_OUTPUT_SYNCHRONOUS mode, where
 * espeak_Synth runs the synthesis on the calling thread and calls the callback there, and one
 * mutex serializes every request: set voice, set rate and pitch, synthesize. espeak-ng is fast
 * (real-time factor ~0.002, SPEECH.md), so the queue this makes is short.
 */
#include <errno.h>
#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <re.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"
#include "speech/tts.h"

#define BUF_MS           20 /* espeak hands over audio every 20 ms */
#define RESAMPLE_QUALITY 5
#define MAX_VOICE_NAME   64

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t synth_mu = PTHREAD_MUTEX_INITIALIZER;
static int es_rate; /* espeak's output rate, or <= 0 when initialization failed */

struct es_ctx {
	struct rv_tts_out o;
};

static int synth_cb(short *wav, int n, espeak_EVENT *events)
{
	/* Every event carries the user_data given to espeak_Synth; the list ends with type 0. */
	struct es_ctx *c = events ? events->user_data : NULL;
	if (!c)
		return 0;
	if (c->o.stop)
		return 1;
	if (wav && n > 0)
		rv_tts_out_deliver(&c->o, wav, (size_t)n);
	return c->o.stop ? 1 : 0;
}

static void espeak_global_init(void)
{
	es_rate =
	    espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, BUF_MS, NULL, espeakINITIALIZE_DONT_EXIT);
	if (es_rate > 0)
		espeak_SetSynthCallback(synth_cb);
	else
		rv_error("tts", "espeak-ng failed to initialize (is espeak-ng-data installed?)");
}

static int es_open(const struct rv_tts_opts *opts, void **state, char *why, size_t whylen)
{
	pthread_once(&init_once, espeak_global_init);
	if (es_rate <= 0) {
		snprintf(why, whylen, "espeak-ng failed to initialize (espeak-ng-data missing?)");
		return -EIO;
	}
	*state = NULL;
	return 0;
}

static void es_close(void *state)
{
}

/*
 * Voice names reach espeak-ng's file lookups ("en+f3" loads the variant file f3), so only
 * plain names with at most one '+' pass.
 */
static int name_ok(const char *v)
{
	size_t len = strlen(v), plus = 0;
	if (!len || len > MAX_VOICE_NAME)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = v[i];
		if (ch == '+')
			plus++;
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		           (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
	}
	return plus <= 1 && v[0] != '+' && v[len - 1] != '+';
}

/* Select the voice; the caller holds synth_mu. */
static int select_voice(const char *voice, char *why, size_t whylen)
{
	if (!name_ok(voice) || espeak_SetVoiceByName(voice) != EE_OK) {
		snprintf(why, whylen,
		         "espeak-ng has no voice \"%s\" (use a language code such as hi, en-us, "
		         "fr, or a voice with a variant such as en+f3; `espeak-ng --voices` lists "
		         "them)",
		         voice);
		return -ENOENT;
	}
	return 0;
}

static int es_voice_check(void *state, const char *voice, char *why, size_t whylen)
{
	pthread_once(&init_once, espeak_global_init);
	if (es_rate <= 0) {
		snprintf(why, whylen, "espeak-ng is not initialized");
		return -EIO;
	}
	pthread_mutex_lock(&synth_mu);
	int err = select_voice(voice, why, whylen);
	pthread_mutex_unlock(&synth_mu);
	return err;
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int es_synth(void *state, const struct rv_tts_req *req, rv_tts_chunk_h *chunk_h, void *arg,
                    char *why, size_t whylen)
{
	struct es_ctx c = {.o = {.chunk_h = chunk_h, .arg = arg}};
	int err = rv_resampler_alloc((uint32_t)es_rate, RV_MEDIA_RATE, RESAMPLE_QUALITY, &c.o.rs);
	if (err)
		return err;

	pthread_mutex_lock(&synth_mu);
	err = select_voice(req->voice, why, whylen);
	if (!err) {
		/* espeak-ng takes words per minute (80..450) and a pitch of 0..100 (50 normal). */
		espeak_SetParameter(espeakRATE,
		                    clamp((int)(RV_TTS_WPM_NORMAL * req->rate + 0.5),
		                          espeakRATE_MINIMUM, espeakRATE_MAXIMUM),
		                    0);
		espeak_SetParameter(espeakPITCH, clamp((int)(50 * req->pitch + 0.5), 0, 100), 0);
		espeak_ERROR e = espeak_Synth(req->text, strlen(req->text) + 1, 0, POS_CHARACTER, 0,
		                              espeakCHARS_UTF8, NULL, &c);
		if (e != EE_OK && !c.o.stop) {
			snprintf(why, whylen, "espeak-ng failed to synthesize (error %d)", (int)e);
			err = -EIO;
		}
	}
	pthread_mutex_unlock(&synth_mu);

	if (!err && !c.o.stop) {
		/* Flush the resampler's filter tail. */
		static const int16_t zeros[128];
		rv_tts_out_deliver(&c.o, zeros, sizeof(zeros) / sizeof(zeros[0]));
	}
	if (!err && c.o.stop)
		err = c.o.err ? c.o.err : -ECANCELED;
	mem_deref(c.o.rs);
	return err;
}

const struct rv_tts_backend rv_tts_backend_espeak = {
    .name = "espeak",
    .default_voice = "en-us",
    .open = es_open,
    .close = es_close,
    .voice_check = es_voice_check,
    .synth = es_synth,
};
