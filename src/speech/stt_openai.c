/*
 * STT over HTTP in OpenAI's shape: POST {base}/v1/audio/transcriptions, multipart/form-data
 * with the utterance as a WAV file, Bearer auth, response_format=verbose_json and word
 * timestamps. A whisper.cpp server started with --inference-path /v1/audio/transcriptions
 * answers the same request. Final results only: the utterance is buffered and sent at its
 * end. The bias phrases go in the `prompt` field, which these models read as preceding
 * context.
 */
#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/stt_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

struct openai_engine {
	char *url; /* {base}/v1/audio/transcriptions */
	char *auth;
	char *model;
	char *language;
	long timeout_ms;
};

struct openai_sess {
	struct openai_engine *eng;
	CURL *curl; /* kept for connection reuse between utterances */
	int16_t *buf;
	size_t n, cap;
	char *prompt;
};

struct body {
	char *p;
	size_t n;
	bool toobig;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void openai_engine_free(void *state)
{
	struct openai_engine *eng = state;

	if (!eng)
		return;
	free(eng->url);
	free(eng->auth);
	free(eng->model);
	free(eng->language);
	free(eng);
}

static int openai_engine_new(const struct rv_stt_config *cfg, void **out)
{
	struct openai_engine *eng;
	size_t len;

	if (!cfg->base_url || !*cfg->base_url) {
		rv_error(RV_STT_LOG, "openai STT needs a base_url");
		return -EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	eng = rv_xcalloc(1, sizeof(*eng));
	len = strlen(cfg->base_url);
	while (len > 0 && cfg->base_url[len - 1] == '/')
		len--;
	eng->url = rv_xmalloc(len + 32);
	snprintf(eng->url, len + 32, "%.*s/v1/audio/transcriptions", (int)len, cfg->base_url);
	if (cfg->api_key && *cfg->api_key) {
		len = strlen(cfg->api_key) + 32;
		eng->auth = rv_xmalloc(len);
		snprintf(eng->auth, len, "Authorization: Bearer %s", cfg->api_key);
	}
	eng->model = rv_xstrdup(cfg->model ? cfg->model : "whisper-1");
	eng->language = cfg->language ? rv_xstrdup(cfg->language) : NULL;
	eng->timeout_ms = cfg->timeout_ms ? (long)cfg->timeout_ms : 10000;
	*out = eng;
	return 0;
}

static int openai_session_new(void *state, void **out)
{
	struct openai_sess *s = rv_xcalloc(1, sizeof(*s));

	s->eng = state;
	s->curl = curl_easy_init();
	if (!s->curl) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

static void openai_abort_utt(void *state)
{
	struct openai_sess *s = state;

	s->n = 0;
}

static void openai_session_free(void *state)
{
	struct openai_sess *s = state;

	if (!s)
		return;
	curl_easy_cleanup(s->curl);
	free(s->buf);
	free(s->prompt);
	free(s);
}

static int openai_start_utt(void *state, const struct rv_stt_bias *bias)
{
	struct openai_sess *s = state;
	size_t len = 1, off = 0;

	s->n = 0;
	free(s->prompt);
	s->prompt = NULL;
	if (bias->n == 0)
		return 0;
	for (size_t i = 0; i < bias->n; i++)
		len += strlen(bias->phrases[i]) + 2;
	s->prompt = rv_xmalloc(len);
	s->prompt[0] = '\0';
	for (size_t i = 0; i < bias->n; i++)
		off += (size_t)snprintf(s->prompt + off, len - off, "%s%s", bias->phrases[i],
		                        i + 1 < bias->n ? ", " : ".");
	return 0;
}

static int openai_feed(void *state, const int16_t *samples, size_t n)
{
	struct openai_sess *s = state;

	if (s->n + n > s->cap) {
		size_t ncap = s->cap ? s->cap : RV_MEDIA_RATE * 4;
		int16_t *nb;

		while (ncap < s->n + n)
			ncap *= 2;
		if (ncap > RV_STT_MAX_UTT_SAMPLES)
			ncap = RV_STT_MAX_UTT_SAMPLES;
		nb = realloc(s->buf, ncap * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		s->buf = nb;
		s->cap = ncap;
	}
	memcpy(s->buf + s->n, samples, n * sizeof(*samples));
	s->n += n;
	return 0;
}

static size_t body_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t len = size * nmemb;
	char *np;

	if (b->n + len > RV_STT_MAX_REPLY) {
		b->toobig = true;
		return 0;
	}
	np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
	return len;
}

/* Turn a verbose_json (or plain json) reply into a result. -EPROTO when it is not one. */
static int parse_reply(const char *body, size_t len, struct rv_stt_result **out)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *text, *words, *segs;
	struct rv_stt_result *res;
	double conf = 1, lp = 0;
	size_t nseg = 0, i;
	json_t *v;

	if (!root || !json_is_object(root)) {
		rv_warn(RV_STT_LOG, "openai STT: reply is not a JSON object (%s)",
		        root ? "wrong type" : jerr.text);
		json_decref(root);
		return -EPROTO;
	}
	text = json_object_get(root, "text");
	if (!json_is_string(text)) {
		rv_warn(RV_STT_LOG, "openai STT: reply has no \"text\" string");
		json_decref(root);
		return -EPROTO;
	}
	segs = json_object_get(root, "segments");
	json_array_foreach(segs, i, v)
	{
		json_t *a = json_object_get(v, "avg_logprob");

		if (json_is_number(a)) {
			lp += json_number_value(a);
			nseg++;
		}
	}
	if (nseg)
		conf = exp(lp / (double)nseg);
	res = rv_stt_result_new(json_string_value(text), (float)conf, true);
	words = json_object_get(root, "words");
	json_array_foreach(words, i, v)
	{
		json_t *w = json_object_get(v, "word"), *st = json_object_get(v, "start"),
		       *en = json_object_get(v, "end"), *pr = json_object_get(v, "probability");
		double a, b;

		if (!json_is_string(w) || !json_is_number(st) || !json_is_number(en))
			continue;
		a = json_number_value(st), b = json_number_value(en);
		if (!(a >= 0 && a < 3600 && b >= 0 && b < 3600))
			continue;
		rv_stt_result_add_word(res, json_string_value(w), (uint32_t)(a * 1000),
		                       (uint32_t)(b * 1000),
		                       json_is_number(pr) ? (float)json_number_value(pr) : -1.0f);
	}
	json_decref(root);
	*out = res;
	return 0;
}

static int openai_end_utt(void *state, struct rv_stt_result **out)
{
	struct openai_sess *s = state;
	struct openai_engine *eng = s->eng;
	struct curl_slist *hdr = NULL;
	struct body body = {0};
	curl_mime *mime = NULL;
	curl_mimepart *part;
	uint8_t *wav = NULL;
	size_t wavlen;
	long status = 0;
	CURLcode rc;
	int err;

	if (s->n == 0) {
		/* Nothing was said: no request, an empty result. */
		*out = rv_stt_result_new("", 0, true);
		return 0;
	}
	err = rv_stt_wav_encode(s->buf, s->n, RV_MEDIA_RATE, &wav, &wavlen);
	s->n = 0;
	if (err)
		return err;
	curl_easy_reset(s->curl);
	mime = curl_mime_init(s->curl);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "file");
	curl_mime_filename(part, "utterance.wav");
	curl_mime_type(part, "audio/wav");
	curl_mime_data(part, (const char *)wav, wavlen);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "model");
	curl_mime_data(part, eng->model, CURL_ZERO_TERMINATED);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "response_format");
	curl_mime_data(part, "verbose_json", CURL_ZERO_TERMINATED);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "timestamp_granularities[]");
	curl_mime_data(part, "word", CURL_ZERO_TERMINATED);
	if (eng->language) {
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "language");
		curl_mime_data(part, eng->language, CURL_ZERO_TERMINATED);
	}
	if (s->prompt) {
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "prompt");
		curl_mime_data(part, s->prompt, CURL_ZERO_TERMINATED);
	}
	if (eng->auth)
		hdr = curl_slist_append(hdr, eng->auth);
	hdr = curl_slist_append(hdr, "Expect:");
	curl_easy_setopt(s->curl, CURLOPT_URL, eng->url);
	curl_easy_setopt(s->curl, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, eng->timeout_ms);
	curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, eng->timeout_ms);
	curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "revovoice/" RV_VERSION);
	rc = curl_easy_perform(s->curl);
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		switch (rc) {
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
			err = -ECONNREFUSED;
			break;
		case CURLE_OPERATION_TIMEDOUT:
			err = -ETIMEDOUT;
			break;
		case CURLE_WRITE_ERROR:
			err = body.toobig ? -EFBIG : -ENOMEM;
			break;
		default:
			err = -ECONNRESET;
			break;
		}
		rv_warn(RV_STT_LOG, "openai STT request to %s failed: %s", eng->url,
		        curl_easy_strerror(rc));
		goto out;
	}
	if (status == 401 || status == 403) {
		rv_warn(RV_STT_LOG, "openai STT: server rejected the API key (HTTP %ld)", status);
		err = -EACCES;
		goto out;
	}
	if (status != 200) {
		rv_warn(RV_STT_LOG, "openai STT: HTTP %ld from %s", status, eng->url);
		err = -EPROTO;
		goto out;
	}
	err = parse_reply(body.p ? body.p : "", body.n, out);
out:
	curl_slist_free_all(hdr);
	curl_mime_free(mime);
	free(wav);
	free(body.p);
	return err;
}

const struct rv_stt_backend rv_stt_openai_backend = {
    .name = "openai",
    .engine_new = openai_engine_new,
    .engine_free = openai_engine_free,
    .session_new = openai_session_new,
    .session_free = openai_session_free,
    .start_utt = openai_start_utt,
    .feed = openai_feed,
    .partial = NULL,
    .end_utt = openai_end_utt,
    .abort_utt = openai_abort_utt,
};
