/*
 * The STT front: picks a backend by provider name, keeps each session's bias list, counts fed
 * audio to rate-limit partial results, and owns the result helpers the backends share.
 */
#include "speech/stt.h"

#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "obs/metrics.h"
#include "speech/stt_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rv_stt_engine {
	const struct rv_stt_backend *be;
	void *state;
};

struct rv_stt_session {
	struct rv_stt_engine *eng;
	void *state;
	rv_stt_partial_h *partial_h;
	void *arg;
	size_t partial_samples; /* audio between two partial results */
	bool utt_open;
	size_t fed;          /* samples fed to the open utterance */
	size_t next_partial; /* fed count at which the next partial is due */
	char *last_partial;  /* text of the last partial delivered, to skip repeats */
	struct rv_stt_bias bias;
};

static const struct rv_stt_backend *const backends[] = {
    &rv_stt_sphinx_backend,
    &rv_stt_openai_backend,
    &rv_stt_deepgram_backend,
};

static void metrics_init(void)
{
	rv_metrics_register("rv_stt_errors_total", RV_METRIC_COUNTER,
	                    "Speech-to-text failures by provider and error.", "provider,error",
	                    NULL, 0);
	rv_metrics_register("rv_stt_utterances_total", RV_METRIC_COUNTER,
	                    "Utterances transcribed, by provider.", "provider", NULL, 0);
}

static void count_error(const struct rv_stt_engine *eng, int err)
{
	char code[16];

	snprintf(code, sizeof(code), "%d", -err);
	rv_metrics_inc("rv_stt_errors_total", 1, eng->be->name, code, NULL);
}

size_t rv_stt_normalise(const char *src, char *dst, size_t cap)
{
	size_t len = 0;
	bool space = false;

	if (cap == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)(src ? src : ""); *p; p++) {
		unsigned char c = *p;

		if (isalnum(c) && c < 0x80) {
			/* A word break only with room for a letter after it: a text cut at the
			 * cap must not end in a space. */
			if (space && len > 0) {
				if (len + 2 >= cap)
					break;
				dst[len++] = ' ';
			}
			space = false;
			if (len + 1 < cap)
				dst[len++] = (char)tolower(c);
		} else if (c == '\'' && len > 0 && dst[len - 1] != ' ' && !space) {
			/* An apostrophe only counts inside a word ("don't"), not as a quote. */
			if (isalpha(p[1]) && p[1] < 0x80 && len + 2 < cap)
				dst[len++] = '\'';
			else
				space = true;
		} else {
			space = true;
		}
	}
	dst[len] = '\0';
	return len;
}

struct rv_stt_result *rv_stt_result_new(const char *text, float conf, bool is_final)
{
	struct rv_stt_result *res = rv_xcalloc(1, sizeof(*res));
	size_t cap = text ? strlen(text) + 1 : 1;

	if (cap > RV_STT_MAX_TEXT)
		cap = RV_STT_MAX_TEXT;
	res->text = rv_xmalloc(cap);
	rv_stt_normalise(text, res->text, cap);
	res->conf = conf < 0 ? 0 : conf > 1 ? 1 : conf;
	res->is_final = is_final;
	return res;
}

void rv_stt_result_add_word(struct rv_stt_result *res, const char *word, uint32_t start_ms,
                            uint32_t end_ms, float conf)
{
	struct rv_stt_word *w;
	size_t cap = strlen(word) + 1;

	if (res->nwords >= RV_STT_MAX_WORDS)
		return;
	if (cap > RV_STT_MAX_PHRASE_LEN)
		cap = RV_STT_MAX_PHRASE_LEN;
	if (res->nwords % 16 == 0) {
		struct rv_stt_word *nw =
		    realloc(res->words, (res->nwords + 16) * sizeof(*res->words));
		if (!nw) {
			rv_error(RV_STT_LOG, "out of memory growing a word list");
			abort();
		}
		res->words = nw;
	}
	w = &res->words[res->nwords];
	w->word = rv_xmalloc(cap);
	if (rv_stt_normalise(word, w->word, cap) == 0) {
		free(w->word);
		return;
	}
	w->start_ms = start_ms;
	w->end_ms = end_ms < start_ms ? start_ms : end_ms;
	w->conf = conf > 1 ? 1 : conf;
	res->nwords++;
}

void rv_stt_result_free(struct rv_stt_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->nwords; i++)
		free(res->words[i].word);
	free(res->words);
	free(res->text);
	free(res);
}

int rv_stt_wav_encode(const int16_t *s, size_t n, uint32_t rate, uint8_t **out, size_t *outlen)
{
	size_t data = n * 2, len = 44 + data;
	uint8_t *b, *p;

	if (n > RV_STT_MAX_UTT_SAMPLES)
		return -EFBIG;
	b = malloc(len);
	if (!b)
		return -ENOMEM;
	p = b;
#define PUT4(v)                                                                                    \
	do {                                                                                       \
		uint32_t v_ = (uint32_t)(v);                                                       \
		*p++ = v_ & 0xff, *p++ = (v_ >> 8) & 0xff, *p++ = (v_ >> 16) & 0xff,               \
		*p++ = (v_ >> 24) & 0xff;                                                          \
	} while (0)
#define PUT2(v) (*p++ = (v)&0xff, *p++ = ((v) >> 8) & 0xff)
	memcpy(p, "RIFF", 4), p += 4;
	PUT4(36 + data);
	memcpy(p, "WAVEfmt ", 8), p += 8;
	PUT4(16);
	PUT2(1); /* PCM */
	PUT2(1); /* mono */
	PUT4(rate);
	PUT4(rate * 2);
	PUT2(2);
	PUT2(16);
	memcpy(p, "data", 4), p += 4;
	PUT4(data);
#undef PUT4
#undef PUT2
	for (size_t i = 0; i < n; i++) {
		uint16_t v = (uint16_t)s[i];
		*p++ = v & 0xff;
		*p++ = v >> 8;
	}
	*out = b;
	*outlen = len;
	return 0;
}

int rv_stt_engine_new(const struct rv_stt_config *cfg, struct rv_stt_engine **out)
{
	const char *name = cfg && cfg->provider ? cfg->provider : "sphinx";
	struct rv_stt_config dflt = {0};
	const struct rv_stt_backend *be = NULL;
	struct rv_stt_engine *eng = NULL;
	int err;

	metrics_init();
	for (size_t i = 0; i < RV_ARRAY_LEN(backends); i++)
		if (strcmp(backends[i]->name, name) == 0)
			be = backends[i];
	if (!be) {
		rv_error(RV_STT_LOG, "unknown STT provider \"%s\"", name);
		err = -EPROTONOSUPPORT;
		goto out;
	}
	eng = rv_xcalloc(1, sizeof(*eng));
	eng->be = be;
	err = be->engine_new(cfg ? cfg : &dflt, &eng->state);
	if (err)
		goto out;
	*out = eng;
	eng = NULL;
out:
	free(eng);
	return err;
}

void rv_stt_engine_free(struct rv_stt_engine *eng)
{
	if (!eng)
		return;
	eng->be->engine_free(eng->state);
	free(eng);
}

const char *rv_stt_engine_provider(const struct rv_stt_engine *eng)
{
	return eng->be->name;
}

int rv_stt_session_new(struct rv_stt_engine *eng, unsigned partial_ms, rv_stt_partial_h *partial_h,
                       void *arg, struct rv_stt_session **out)
{
	struct rv_stt_session *sess;
	int err;

	if (!eng || !out)
		return -EINVAL;
	sess = rv_xcalloc(1, sizeof(*sess));
	sess->eng = eng;
	sess->partial_h = partial_h;
	sess->arg = arg;
	sess->partial_samples =
	    (size_t)(partial_ms ? partial_ms : RV_STT_PARTIAL_MS_DEFAULT) * (RV_MEDIA_RATE / 1000);
	err = eng->be->session_new(eng->state, &sess->state);
	if (err) {
		free(sess);
		return err;
	}
	*out = sess;
	return 0;
}

static void bias_clear(struct rv_stt_bias *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->phrases[i]);
	free(b->phrases);
	memset(b, 0, sizeof(*b));
}

void rv_stt_session_free(struct rv_stt_session *sess)
{
	if (!sess)
		return;
	if (sess->utt_open && sess->eng->be->abort_utt)
		sess->eng->be->abort_utt(sess->state);
	sess->eng->be->session_free(sess->state);
	bias_clear(&sess->bias);
	free(sess->last_partial);
	free(sess);
}

int rv_stt_set_bias(struct rv_stt_session *sess, const char *const *phrases, size_t n)
{
	struct rv_stt_bias nb = {0};
	uint64_t h = 1469598103934665603ULL; /* FNV-1a over the normalised phrases */
	int err = 0;

	if (!sess || (n && !phrases))
		return -EINVAL;
	if (n > RV_STT_MAX_BIAS_PHRASES) {
		rv_warn(RV_STT_LOG, "bias list of %zu phrases is over the cap of %d", n,
		        RV_STT_MAX_BIAS_PHRASES);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!phrases[i] || strlen(phrases[i]) > RV_STT_MAX_PHRASE_LEN) {
			rv_warn(RV_STT_LOG, "bias phrase %zu is missing or too long", i);
			return -EINVAL;
		}
	}
	if (n) {
		nb.phrases = calloc(n, sizeof(*nb.phrases));
		if (!nb.phrases)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		char buf[RV_STT_MAX_PHRASE_LEN + 1];

		if (rv_stt_normalise(phrases[i], buf, sizeof(buf)) == 0)
			continue;
		nb.phrases[nb.n] = strdup(buf);
		if (!nb.phrases[nb.n]) {
			err = -ENOMEM;
			goto out;
		}
		for (const char *p = buf; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		h = (h ^ '\n') * 1099511628211ULL;
		nb.n++;
	}
	nb.gen = nb.n ? (h ? h : 1) : 0;
	bias_clear(&sess->bias);
	sess->bias = nb;
	memset(&nb, 0, sizeof(nb));
out:
	bias_clear(&nb);
	return err;
}

int rv_stt_start_utt(struct rv_stt_session *sess)
{
	int err;

	if (!sess)
		return -EINVAL;
	if (sess->utt_open)
		return -EBUSY;
	err = sess->eng->be->start_utt(sess->state, &sess->bias);
	if (err) {
		count_error(sess->eng, err);
		return err;
	}
	sess->utt_open = true;
	sess->fed = 0;
	sess->next_partial = sess->partial_samples;
	free(sess->last_partial);
	sess->last_partial = NULL;
	return 0;
}

static void maybe_partial(struct rv_stt_session *sess)
{
	struct rv_stt_result *res = NULL;

	if (!sess->eng->be->partial || sess->fed < sess->next_partial)
		return;
	/* At least partial_samples apart, whatever the frame size. */
	sess->next_partial = sess->fed + sess->partial_samples;
	if (sess->eng->be->partial(sess->state, &res) != 0)
		return;
	res->is_final = false;
	res->audio_ms = (uint32_t)(sess->fed / (RV_MEDIA_RATE / 1000));
	if (res->text[0] && !(sess->last_partial && strcmp(sess->last_partial, res->text) == 0)) {
		free(sess->last_partial);
		sess->last_partial = rv_xstrdup(res->text);
		if (sess->partial_h)
			sess->partial_h(res, sess->arg);
	}
	rv_stt_result_free(res);
}

int rv_stt_partial_now(struct rv_stt_session *sess)
{
	if (!sess || !sess->utt_open)
		return -EINVAL;
	/* next_partial is partial_samples past the audio the last partial covered. */
	if (!sess->eng->be->partial || sess->fed + sess->partial_samples <= sess->next_partial)
		return -EAGAIN;
	sess->next_partial = sess->fed;
	maybe_partial(sess);
	return 0;
}

int rv_stt_feed(struct rv_stt_session *sess, const int16_t *samples, size_t n)
{
	int err;

	if (!sess || !sess->utt_open || (n && !samples))
		return -EINVAL;
	if (sess->fed + n > RV_STT_MAX_UTT_SAMPLES) {
		rv_warn(RV_STT_LOG, "utterance longer than %d samples; extra audio refused",
		        RV_STT_MAX_UTT_SAMPLES);
		return -EFBIG;
	}
	if (n == 0)
		return 0;
	err = sess->eng->be->feed(sess->state, samples, n);
	if (err) {
		count_error(sess->eng, err);
		return err;
	}
	sess->fed += n;
	maybe_partial(sess);
	return 0;
}

int rv_stt_end_utt(struct rv_stt_session *sess, struct rv_stt_result **out)
{
	struct rv_stt_result *res = NULL;
	int err;

	if (!sess || !out || !sess->utt_open)
		return -EINVAL;
	sess->utt_open = false;
	err = sess->eng->be->end_utt(sess->state, &res);
	if (err) {
		count_error(sess->eng, err);
		return err;
	}
	res->is_final = true;
	res->audio_ms = (uint32_t)(sess->fed / (RV_MEDIA_RATE / 1000));
	rv_metrics_inc("rv_stt_utterances_total", 1, sess->eng->be->name, NULL);
	*out = res;
	return 0;
}

const char *rv_stt_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -EACCES:
		return "server rejected the API key";
	case -EPROTO:
		return "malformed reply from the server";
	case -ECONNRESET:
		return "server closed the connection mid-stream";
	case -ECONNREFUSED:
		return "could not connect to the server";
	case -ETIMEDOUT:
		return "server did not answer in time";
	case -EFBIG:
		return "utterance or reply too large";
	case -ENOENT:
		return "model file missing";
	case -EPROTONOSUPPORT:
		return "unknown STT provider";
	case -EBUSY:
		return "an utterance is already open";
	case -EINVAL:
		return "invalid argument";
	case -ENOMEM:
		return "out of memory";
	default:
		return "speech-to-text failure";
	}
}
