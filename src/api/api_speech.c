/*
 * POST /api/voice-ai/synthesize-speech: text to a WAV (or raw PCM) body, for trying voices and
 * prompts from the dashboard. Role: supervisor, because a request costs CPU on the embedded
 * engines and money on ElevenLabs, which read-only viewers should not spend.
 *
 * Requests go through one process-wide prompt cache (DATA/tts-cache, 32 MB in memory), so a
 * prompt tried twice, or already said on calls, costs nothing the second time. Synthesis runs
 * on the HTTP worker thread, so the text is capped at RV_API_SPEECH_MAX_CHARS characters and at
 * most RV_API_SPEECH_CONCURRENCY requests synthesize at once (the others get 503 with
 * Retry-After) to keep workers free for the rest of the API.
 *
 * ElevenLabs is available when the daemon's environment has ELEVENLABS_API_KEY
 * (ELEVENLABS_BASE_URL and ELEVENLABS_MODEL_ID optional).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "media/media_pcm.h"
#include "speech/tts.h"

#define COMP                      "api"
#define RV_API_SPEECH_MAX_CHARS   2000
#define RV_API_SPEECH_CONCURRENCY 2
#define CACHE_MEM_BYTES           (32u << 20)

/* Engines and cache shared by every request; created on first use, kept for the process. */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rv_tts *eng_flite, *eng_espeak, *eng_eleven;
static struct rv_tts_cache *cache;
static atomic_int busy;

static const char *const fields[] = {"text", "voice", "engine", "rate", "pitch", "format", NULL};

static json_t *field_details(const char *field)
{
	return json_pack("{s:s}", "field", field);
}

/* The engine by name, opened on first use. NULL with a status and message on failure. */
static struct rv_tts *engine_get(const char *name, int *status, char *why, size_t whylen)
{
	struct rv_tts **slot = !strcmp(name, "flite")                                  ? &eng_flite
	                       : !strcmp(name, "espeak") || !strcmp(name, "espeak-ng") ? &eng_espeak
	                       : !strcmp(name, "elevenlabs")                           ? &eng_eleven
	                                                                               : NULL;
	struct rv_tts *t = NULL;
	if (!slot) {
		*status = 400;
		snprintf(why, whylen, "engine must be flite, espeak or elevenlabs");
		return NULL;
	}
	pthread_mutex_lock(&state_mu);
	if (!*slot) {
		struct rv_tts_opts opts = {.api_key = getenv("ELEVENLABS_API_KEY"),
		                           .base_url = getenv("ELEVENLABS_BASE_URL"),
		                           .model_id = getenv("ELEVENLABS_MODEL_ID")};
		if (slot == &eng_eleven && (!opts.api_key || !*opts.api_key)) {
			*status = 503;
			snprintf(
			    why, whylen,
			    "ElevenLabs is not configured on this server (ELEVENLABS_API_KEY)");
		} else if (rv_tts_open(name, &opts, slot, why, whylen) != 0) {
			*status = 503;
		}
	}
	t = *slot;
	pthread_mutex_unlock(&state_mu);
	return t;
}

static struct rv_tts_cache *cache_get(struct rv_app *app)
{
	struct rv_tts_cache *c;
	pthread_mutex_lock(&state_mu);
	if (!cache) {
		char dir[1024];
		const char *data =
		    app && app->cfg && app->cfg->data_dir ? app->cfg->data_dir : NULL;
		if (data && (size_t)snprintf(dir, sizeof(dir), "%s/tts-cache", data) < sizeof(dir))
			rv_tts_cache_open(dir, CACHE_MEM_BYTES, &cache);
		/* Without a usable directory the cache still works in memory. */
		if (!cache)
			rv_tts_cache_open(NULL, CACHE_MEM_BYTES, &cache);
	}
	c = cache;
	pthread_mutex_unlock(&state_mu);
	return c;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* A factor member: a number, or for rate also a "200wpm" string. 0 = absent. */
static int factor_field(json_t *body, const char *name, int allow_wpm, double *out,
                        struct rv_http_resp *resp)
{
	json_t *v = json_object_get(body, name);
	*out = 1.0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_number(v)) {
		double d = json_number_value(v);
		if (d >= RV_TTS_FACTOR_MIN && d <= RV_TTS_FACTOR_MAX) {
			*out = d;
			return 0;
		}
	} else if (allow_wpm && json_is_string(v) &&
	           rv_tts_parse_factor(json_string_value(v), 1, out) == 0) {
		return 0;
	}
	rv_http_reply_error(resp, 400, "invalid_field",
	                    json_pack("{s:s,s:f,s:f}", "field", name, "min", RV_TTS_FACTOR_MIN,
	                              "max", RV_TTS_FACTOR_MAX),
	                    "%s must be a factor between %.2f and %.1f (1.0 = normal)%s", name,
	                    RV_TTS_FACTOR_MIN, RV_TTS_FACTOR_MAX,
	                    allow_wpm ? " or a string such as \"200wpm\"" : "");
	return -EINVAL;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

/* The audio as a body: a 44-byte WAV header (canonical PCM) unless raw, then s16le samples. */
static char *audio_body(const struct rv_pcm *p, int wav, size_t *len)
{
	size_t hdr = wav ? 44 : 0, data = p->n * 2;
	unsigned char *b = malloc(hdr + data + 1);
	if (!b)
		return NULL;
	if (wav) {
		memcpy(b, "RIFF", 4);
		put_le32(b + 4, (uint32_t)(36 + data));
		memcpy(b + 8, "WAVEfmt ", 8);
		put_le32(b + 16, 16);
		put_le16(b + 20, 1); /* PCM */
		put_le16(b + 22, 1); /* mono */
		put_le32(b + 24, RV_MEDIA_RATE);
		put_le32(b + 28, RV_MEDIA_RATE * 2);
		put_le16(b + 32, 2);
		put_le16(b + 34, 16);
		memcpy(b + 36, "data", 4);
		put_le32(b + 40, (uint32_t)data);
	}
	for (size_t i = 0; i < p->n; i++)
		put_le16(b + hdr + 2 * i, (uint16_t)p->s[i]);
	*len = hdr + data;
	return (char *)b;
}

/* HTTP status and error code for a synthesis error. */
static int synth_status(int err, const char **code)
{
	switch (err) {
	case -ENOENT:
		*code = "unknown_voice";
		return 422;
	case -EINVAL:
	case -E2BIG:
	case -ENOTSUP:
		*code = "unprocessable";
		return 422;
	case -EACCES:
	case -EPROTO:
	case -ECONNREFUSED:
		*code = "upstream_error";
		return 502;
	case -ETIMEDOUT:
		*code = "upstream_timeout";
		return 504;
	case -EAGAIN:
		*code = "upstream_busy";
		return 503;
	default:
		*code = "internal";
		return 500;
	}
}

static void synthesize(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	json_t *body = NULL;
	struct rv_pcm *pcm = NULL;
	char why[512] = "";
	int status = 0, acquired = 0;

	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v)
	{
		size_t i = 0;
		while (fields[i] && strcmp(fields[i], k) != 0)
			i++;
		if (!fields[i]) {
			rv_http_reply_error(resp, 400, "invalid_field", field_details(k),
			                    "unknown field '%s'", k);
			goto out;
		}
	}
	json_t *jt = json_object_get(body, "text"), *jv = json_object_get(body, "voice");
	json_t *je = json_object_get(body, "engine"), *jf = json_object_get(body, "format");
	if (!json_is_string(jt) || !json_string_length(jt)) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("text"),
		                    "text is required and must be a non-empty string");
		goto out;
	}
	const char *text = json_string_value(jt);
	size_t chars = utf8_chars(text);
	if (chars > RV_API_SPEECH_MAX_CHARS) {
		rv_http_reply_error(resp, 400, "invalid_field",
		                    json_pack("{s:s,s:i,s:I}", "field", "text", "max_chars",
		                              RV_API_SPEECH_MAX_CHARS, "chars", (json_int_t)chars),
		                    "text is %zu characters; the limit is %d", chars,
		                    RV_API_SPEECH_MAX_CHARS);
		goto out;
	}
	if (!json_is_string(jv) || !json_string_length(jv)) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("voice"),
		                    "voice is required and must be a non-empty string");
		goto out;
	}
	const char *voice = json_string_value(jv);
	if (je && !json_is_null(je) && !json_is_string(je)) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("engine"),
		                    "engine must be a string: flite, espeak or elevenlabs");
		goto out;
	}
	const char *format = json_is_string(jf) ? json_string_value(jf) : "wav";
	if ((jf && !json_is_null(jf) && !json_is_string(jf)) ||
	    (strcmp(format, "wav") != 0 && strcmp(format, "pcm") != 0)) {
		rv_http_reply_error(
		    resp, 400, "invalid_field",
		    json_pack("{s:s,s:[s,s]}", "field", "format", "allowed", "wav", "pcm"),
		    "format must be \"wav\" or \"pcm\"");
		goto out;
	}
	double rate, pitch;
	if (factor_field(body, "rate", 1, &rate, resp) ||
	    factor_field(body, "pitch", 0, &pitch, resp))
		goto out;

	struct rv_tts *tts = NULL;
	if (json_is_string(je)) {
		tts = engine_get(json_string_value(je), &status, why, sizeof(why));
		if (!tts && status == 400) {
			rv_http_reply_error(resp, 400, "invalid_field",
			                    json_pack("{s:s,s:[s,s,s]}", "field", "engine",
			                              "allowed", "flite", "espeak", "elevenlabs"),
			                    "%s", why);
			goto out;
		}
	} else {
		/* No engine named: flite when it has the voice, else espeak-ng ("hi"). */
		tts = engine_get("flite", &status, why, sizeof(why));
		if (tts && rv_tts_voice_check(tts, voice, NULL, 0) != 0)
			tts = engine_get("espeak", &status, why, sizeof(why));
	}
	if (!tts) {
		rv_http_reply_error(resp, 503, "unavailable", NULL, "%s", why);
		goto out;
	}
	if (rv_tts_voice_check(tts, voice, why, sizeof(why)) != 0) {
		rv_http_reply_error(
		    resp, 422, "unknown_voice",
		    json_pack("{s:s,s:s}", "field", "voice", "engine", rv_tts_engine(tts)), "%s",
		    why);
		goto out;
	}
	struct rv_tts_cache *c = cache_get(app);
	if (!c) {
		rv_http_reply_error(resp, 500, "internal", NULL, "the prompt cache is unavailable");
		goto out;
	}
	if (atomic_fetch_add(&busy, 1) >= RV_API_SPEECH_CONCURRENCY) {
		atomic_fetch_sub(&busy, 1);
		rv_http_set_header(resp, "Retry-After", "1");
		rv_http_reply_error(resp, 503, "busy", NULL,
		                    "%d syntheses are already running; retry in a second",
		                    RV_API_SPEECH_CONCURRENCY);
		goto out;
	}
	acquired = 1;
	struct rv_tts_req treq = {.text = text, .voice = voice, .rate = rate, .pitch = pitch};
	enum rv_tts_cache_src src = RV_TTS_CACHE_SYNTH;
	int err = rv_tts_cache_get(c, tts, &treq, &pcm, &src, why, sizeof(why));
	if (err) {
		const char *code = "internal";
		int st = synth_status(err, &code);
		rv_logkv(RV_LOG_INFO, COMP, "speech synthesis failed", "engine", rv_tts_engine(tts),
		         "voice", voice, "reason", why, NULL);
		rv_http_reply_error(resp, st, code,
		                    json_pack("{s:s}", "engine", rv_tts_engine(tts)), "%s", why);
		goto out;
	}
	size_t len = 0;
	char *audio = audio_body(pcm, strcmp(format, "wav") == 0, &len);
	if (!audio) {
		rv_http_reply_error(resp, 500, "internal", NULL, "out of memory for the audio");
		goto out;
	}
	/* Hand the buffer over instead of copying it (a long text is megabytes). */
	rv_http_reply_raw(resp, 200,
	                  strcmp(format, "wav") == 0
	                      ? "audio/wav"
	                      : "audio/pcm;rate=16000;channels=1;format=s16le",
	                  NULL, 0);
	resp->body = audio;
	resp->body_len = len;
	char num[32];
	static const char *const src_names[] = {"memory", "disk", "synth"};
	rv_http_set_header(resp, "X-TTS-Engine", rv_tts_engine(tts));
	rv_http_set_header(resp, "X-TTS-Voice", voice);
	rv_http_set_header(resp, "X-TTS-Cache", src_names[src]);
	snprintf(num, sizeof(num), "%zu", pcm->n * 1000 / RV_MEDIA_RATE);
	rv_http_set_header(resp, "X-Audio-Duration-Ms", num);
out:
	if (acquired)
		atomic_fetch_sub(&busy, 1);
	rv_tts_pcm_free(pcm);
	json_decref(body);
}

const struct rv_route rv_api_speech_routes[] = {
    {"POST", "/api/voice-ai/synthesize-speech", RV_ROLE_SUPERVISOR, 0, synthesize},
};
const size_t rv_api_speech_routes_len =
    sizeof(rv_api_speech_routes) / sizeof(rv_api_speech_routes[0]);
