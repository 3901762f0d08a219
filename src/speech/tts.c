/*
 * The engine-independent half of text to speech (see tts.h): engine lookup, request
 * validation, cancellation, timing metrics and the whole-buffer helper.
 */
#include <errno.h>
#include <math.h>
#include <re.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"
#include "obs/metrics.h"
#include "speech/tts.h"

#define M_REQUESTS    "rv_tts_requests_total"
#define M_SYNTH       "rv_tts_synth_seconds"
#define M_FIRST_AUDIO "rv_tts_first_audio_seconds"

struct rv_tts {
	const struct rv_tts_backend *be;
	void *state;
};

static const struct {
	const char *name;
	const struct rv_tts_backend *be;
} engines[] = {
    {"flite", &rv_tts_backend_flite},
    {"espeak", &rv_tts_backend_espeak},
    {"espeak-ng", &rv_tts_backend_espeak},
    {"elevenlabs", &rv_tts_backend_eleven},
};

static void say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	if (!why || !whylen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static void metrics_register(void)
{
	rv_metrics_register(M_REQUESTS, RV_METRIC_COUNTER,
	                    "Speech synthesis requests by engine and result (ok or an error name).",
	                    "engine,result", NULL, 0);
	rv_metrics_register(M_SYNTH, RV_METRIC_HISTOGRAM,
	                    "Wall time of one synthesis request, from text to the last chunk.",
	                    "engine", NULL, 0);
	rv_metrics_register(M_FIRST_AUDIO, RV_METRIC_HISTOGRAM,
	                    "Time from a synthesis request to its first audio chunk.", "engine",
	                    NULL, 0);
}

int rv_tts_open(const char *engine, const struct rv_tts_opts *opts, struct rv_tts **out, char *why,
                size_t whylen)
{
	const struct rv_tts_backend *be = NULL;
	struct rv_tts_opts none = {0};
	char reason[256] = "";
	int err = 0;

	for (size_t i = 0; engine && i < RV_ARRAY_LEN(engines); i++)
		if (strcmp(engine, engines[i].name) == 0)
			be = engines[i].be;
	if (!be) {
		say(why, whylen,
		    "unknown speech engine \"%s\" (engines: flite, espeak, elevenlabs)",
		    engine ? engine : "(none)");
		rv_warn("tts", "unknown speech engine \"%s\"", engine ? engine : "(none)");
		return -ENOENT;
	}
	metrics_register();
	struct rv_tts *t = rv_xcalloc(1, sizeof(*t));
	t->be = be;
	err = be->open(opts ? opts : &none, &t->state, reason, sizeof(reason));
	if (err) {
		say(why, whylen, "%s", reason);
		rv_warn("tts", "cannot open engine %s: %s", be->name, reason);
		free(t);
		return err;
	}
	*out = t;
	return 0;
}

void rv_tts_close(struct rv_tts *tts)
{
	if (!tts)
		return;
	tts->be->close(tts->state);
	free(tts);
}

const char *rv_tts_engine(const struct rv_tts *tts)
{
	return tts->be->name;
}

const char *rv_tts_default_voice(const struct rv_tts *tts)
{
	return tts->be->default_voice;
}

const char *rv_tts_variant(const struct rv_tts *tts)
{
	const char *v = tts->be->variant ? tts->be->variant(tts->state) : NULL;
	return v ? v : "";
}

int rv_tts_voice_check(struct rv_tts *tts, const char *voice, char *why, size_t whylen)
{
	if (!voice || !*voice)
		voice = tts->be->default_voice;
	return tts->be->voice_check(tts->state, voice, why, whylen);
}

const char *rv_tts_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -EINVAL:
		return "invalid request";
	case -E2BIG:
		return "text too long";
	case -ENOENT:
		return "unknown voice";
	case -ENOTSUP:
		return "option not supported by this engine";
	case -ECANCELED:
		return "cancelled";
	case -EACCES:
		return "provider rejected the credentials";
	case -ETIMEDOUT:
		return "provider timed out";
	case -EPROTO:
		return "provider stream ended early or was malformed";
	case -ECONNREFUSED:
		return "cannot reach the provider";
	case -EAGAIN:
		return "provider rate-limited the request";
	case -ENOMEM:
		return "out of memory";
	default:
		return "synthesis failed";
	}
}

/* A label value for rv_tts_requests_total: a fixed set, never input. */
static const char *result_label(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -EINVAL:
	case -E2BIG:
		return "invalid";
	case -ENOENT:
		return "unknown_voice";
	case -ENOTSUP:
		return "unsupported";
	case -ECANCELED:
		return "cancelled";
	case -EACCES:
		return "auth";
	case -ETIMEDOUT:
		return "timeout";
	case -EPROTO:
		return "truncated";
	case -ECONNREFUSED:
		return "unreachable";
	case -EAGAIN:
		return "rate_limited";
	default:
		return "error";
	}
}

int rv_tts_parse_factor(const char *s, int allow_wpm, double *out)
{
	char *end = NULL;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v))
		return -EINVAL;
	if (allow_wpm && strcmp(end, "wpm") == 0)
		v /= RV_TTS_WPM_NORMAL;
	else if (*end)
		return -EINVAL;
	if (v < RV_TTS_FACTOR_MIN || v > RV_TTS_FACTOR_MAX)
		return -EINVAL;
	*out = v;
	return 0;
}

static int check_factor(const char *what, double v, double *out, char *why, size_t whylen)
{
	if (v == 0) {
		*out = 1.0;
		return 0;
	}
	if (!isfinite(v) || v < RV_TTS_FACTOR_MIN || v > RV_TTS_FACTOR_MAX) {
		say(why, whylen, "%s %g is outside %.2f..%.1f (1.0 = normal)", what, v,
		    RV_TTS_FACTOR_MIN, RV_TTS_FACTOR_MAX);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Validate a request and fill `norm` with defaults resolved. 0 or -EINVAL/-E2BIG/-ENOENT. */
static int normalize(struct rv_tts *tts, const struct rv_tts_req *req, struct rv_tts_req *norm,
                     char *why, size_t whylen)
{
	*norm = *req;
	if (!req->text) {
		say(why, whylen, "no text to speak");
		return -EINVAL;
	}
	size_t len = strlen(req->text);
	if (len > RV_TTS_MAX_TEXT) {
		say(why, whylen, "text is %zu bytes; the limit is %d", len, RV_TTS_MAX_TEXT);
		return -E2BIG;
	}
	if (!rv_utf8_valid(req->text, len)) {
		say(why, whylen, "text is not valid UTF-8");
		return -EINVAL;
	}
	size_t i = 0;
	while (i < len && strchr(" \t\r\n", req->text[i]))
		i++;
	if (i == len) {
		say(why, whylen, "text is empty");
		return -EINVAL;
	}
	int err = check_factor("rate", req->rate, &norm->rate, why, whylen);
	if (!err)
		err = check_factor("pitch", req->pitch, &norm->pitch, why, whylen);
	if (err)
		return err;
	if (!norm->voice || !*norm->voice)
		norm->voice = tts->be->default_voice;
	return tts->be->voice_check(tts->state, norm->voice, why, whylen);
}

struct tap {
	rv_tts_chunk_h *user_h;
	void *user_arg;
	atomic_int *cancel;
	uint64_t t0, first_ns;
	int cancelled;
};

/* Between backend and caller: times the first chunk and applies the cancel flag. */
static int tap_h(const int16_t *s, size_t n, void *arg)
{
	struct tap *t = arg;
	if (t->cancel && atomic_load(t->cancel)) {
		t->cancelled = 1;
		return 1;
	}
	if (!n)
		return 0;
	if (!t->first_ns)
		t->first_ns = rv_time_mono_ns();
	if (t->user_h(s, n, t->user_arg) != 0) {
		t->cancelled = 1;
		return 1;
	}
	return 0;
}

int rv_tts_synth(struct rv_tts *tts, const struct rv_tts_req *req, rv_tts_chunk_h *chunk_h,
                 void *arg, char *why, size_t whylen)
{
	struct rv_tts_req norm;
	char reason[384] = "";
	struct tap tap = {.user_h = chunk_h, .user_arg = arg, .cancel = req ? req->cancel : NULL};
	const char *engine = tts->be->name;

	tap.t0 = rv_time_mono_ns();
	int err = req && chunk_h ? normalize(tts, req, &norm, reason, sizeof(reason)) : -EINVAL;
	if (!err && tap.cancel && atomic_load(tap.cancel))
		err = -ECANCELED;
	if (!err)
		err = tts->be->synth(tts->state, &norm, tap_h, &tap, reason, sizeof(reason));
	/* Whatever the backend said, a stop we asked for is a cancel. */
	if (tap.cancelled)
		err = -ECANCELED;
	if (err == -ECANCELED && !reason[0])
		snprintf(reason, sizeof(reason), "synthesis was cancelled");
	if (err && !reason[0])
		snprintf(reason, sizeof(reason), "%s", rv_tts_strerror(err));

	uint64_t t1 = rv_time_mono_ns();
	rv_metrics_inc(M_REQUESTS, 1, engine, result_label(err), NULL);
	if (!err) {
		rv_metrics_observe(M_SYNTH, (double)(t1 - tap.t0) / 1e9, engine, NULL);
		if (tap.first_ns)
			rv_metrics_observe(M_FIRST_AUDIO, (double)(tap.first_ns - tap.t0) / 1e9,
			                   engine, NULL);
	}
	if (err) {
		say(why, whylen, "%s", reason);
		/* Cancelling is the normal end of an interrupted prompt: not worth a warning. */
		rv_logf(err == -ECANCELED ? RV_LOG_DEBUG : RV_LOG_WARN, "tts", "%s: %s", engine,
		        reason);
	}
	return err;
}

struct collect {
	int16_t *s;
	size_t n, cap;
	int too_big;
};

static int collect_h(const int16_t *s, size_t n, void *arg)
{
	struct collect *c = arg;
	if (c->n + n > RV_MEDIA_PCM_MAX_SAMPLES) {
		c->too_big = 1;
		return 1;
	}
	if (c->n + n > c->cap) {
		size_t cap = c->cap ? c->cap : RV_MEDIA_RATE * 2;
		while (cap < c->n + n)
			cap *= 2;
		int16_t *p = realloc(c->s, cap * sizeof(*p));
		if (!p) {
			c->too_big = 1;
			return 1;
		}
		c->s = p;
		c->cap = cap;
	}
	memcpy(c->s + c->n, s, n * sizeof(*s));
	c->n += n;
	return 0;
}

int rv_tts_synth_pcm(struct rv_tts *tts, const struct rv_tts_req *req, struct rv_pcm **out,
                     char *why, size_t whylen)
{
	struct collect c = {0};
	struct rv_pcm *p = NULL;

	int err = rv_tts_synth(tts, req, collect_h, &c, why, whylen);
	if (err == -ECANCELED && c.too_big) {
		say(why, whylen,
		    "synthesized audio is longer than the 30-minute cap or memory ran out");
		err = -ENOMEM;
	}
	if (!err && !c.n) {
		say(why, whylen, "the engine produced no audio");
		rv_warn("tts", "%s produced no audio", tts->be->name);
		err = -EIO;
	}
	if (!err)
		err = rv_pcm_alloc(c.n, RV_MEDIA_RATE, &p);
	if (!err) {
		memcpy(p->s, c.s, c.n * sizeof(*c.s));
		*out = p;
	}
	free(c.s);
	return err;
}

void rv_tts_pcm_free(struct rv_pcm *pcm)
{
	mem_deref(pcm);
}

int rv_tts_out_deliver(struct rv_tts_out *o, const int16_t *s, size_t n)
{
	if (!o->rs) {
		if (!o->stop && n && o->chunk_h(s, n, o->arg))
			o->stop = 1;
		return o->stop;
	}
	/* Resample in slices small enough for the output buffer (ratios up to 2: 8 kHz kal). */
	while (n && !o->stop) {
		size_t take = n < 1024 ? n : 1024, got = 0;
		if (rv_resampler_run(o->rs, s, take, o->buf, sizeof(o->buf) / sizeof(o->buf[0]),
		                     &got) != 0) {
			o->err = -EIO;
			o->stop = 1;
			break;
		}
		if (got && o->chunk_h(o->buf, got, o->arg))
			o->stop = 1;
		s += take;
		n -= take;
	}
	return o->stop;
}
