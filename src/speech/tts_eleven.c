/*
 * ElevenLabs backend: the streaming HTTP endpoint
 *   POST {base_url}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000
 * with the key in the xi-api-key header and a JSON body {"text", "model_id", "voice_settings"}.
 * The answer is raw 16 kHz mono 16-bit little-endian PCM, streamed (chunked), which is the
 * pipeline's own format: chunks go to the caller as they arrive. Errors come back as JSON
 * {"detail": ...} where detail is a string, an object {"status","message"} or, for validation
 * errors, a list of {"loc","msg","type"}; the message is passed on in why.
 *
 * Connections: idle curl handles are kept in a small pool so that a request after the first
 * reuses the TLS connection (a fresh handshake would add its round trips to the first-audio
 * time). Cancellation is checked by curl's progress callback, which runs at least every
 * ~100 ms even when no data arrives.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/tts.h"

#define DEFAULT_BASE_URL "https://api.elevenlabs.io"
#define DEFAULT_MODEL    "eleven_flash_v2_5"
#define POOL_MAX         4
#define ERR_BODY_MAX     (16 * 1024) /* cap on an error body we keep for its message */
#define MAX_VOICE_ID     64
/* ElevenLabs accepts voice_settings.speed in this range. */
#define SPEED_MIN 0.7
#define SPEED_MAX 1.2

struct el_state {
	char *base_url, *api_key, *model_id;
	long timeout_ms, connect_timeout_ms, stall_s;
	pthread_mutex_t mu;
	CURL *pool[POOL_MAX]; /* idle handles, guarded by mu */
	size_t npool;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init_once(void)
{
	curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static int el_open(const struct rv_tts_opts *opts, void **state, char *why, size_t whylen)
{
	pthread_once(&curl_once, curl_init_once);
	if (!curl_ok) {
		snprintf(why, whylen, "libcurl failed to initialize");
		return -EIO;
	}
	if (!opts->api_key || !*opts->api_key) {
		snprintf(why, whylen, "ElevenLabs needs an API key");
		return -EINVAL;
	}
	const char *base = opts->base_url && *opts->base_url ? opts->base_url : DEFAULT_BASE_URL;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
		snprintf(why, whylen, "ElevenLabs base URL must start with http:// or https://");
		return -EINVAL;
	}
	struct el_state *s = rv_xcalloc(1, sizeof(*s));
	s->base_url = rv_xstrdup(base);
	/* A trailing slash would double up with the path. */
	size_t bl = strlen(s->base_url);
	while (bl > 8 && s->base_url[bl - 1] == '/')
		s->base_url[--bl] = '\0';
	s->api_key = rv_xstrdup(opts->api_key);
	s->model_id =
	    rv_xstrdup(opts->model_id && *opts->model_id ? opts->model_id : DEFAULT_MODEL);
	s->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	s->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
	s->stall_s = opts->stall_timeout_ms > 0 ? (opts->stall_timeout_ms + 999) / 1000 : 10;
	pthread_mutex_init(&s->mu, NULL);
	*state = s;
	return 0;
}

static void el_close(void *state)
{
	struct el_state *s = state;
	if (!s)
		return;
	for (size_t i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	pthread_mutex_destroy(&s->mu);
	free(s->base_url);
	/* The key is a secret: do not leave it in freed memory. */
	memset(s->api_key, 0, strlen(s->api_key));
	free(s->api_key);
	free(s->model_id);
	free(s);
}

static int voice_id_ok(const char *v)
{
	size_t len = strlen(v);
	if (!len || len > MAX_VOICE_ID)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
	}
	return 1;
}

static int el_voice_check(void *state, const char *voice, char *why, size_t whylen)
{
	if (voice_id_ok(voice))
		return 0;
	snprintf(why, whylen,
	         "\"%.64s\" is not an ElevenLabs voice id (1-%d letters, digits, '-' or '_')",
	         voice, MAX_VOICE_ID);
	return -ENOENT;
}

static CURL *handle_get(struct el_state *s)
{
	CURL *h = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->npool)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->mu);
	if (h)
		curl_easy_reset(h); /* keeps the live connection */
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(struct el_state *s, CURL *h, int reusable)
{
	if (!h)
		return;
	pthread_mutex_lock(&s->mu);
	if (reusable && s->npool < POOL_MAX) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (h)
		curl_easy_cleanup(h);
}

/* One request's transfer state. */
struct el_xfer {
	CURL *h;
	rv_tts_chunk_h *chunk_h;
	void *arg;
	atomic_int *cancel;
	long status;      /* HTTP status, known once the first body byte arrives */
	int audio;        /* the body is audio (status 200, not JSON) */
	uint8_t carry[1]; /* a sample split between two network reads */
	int ncarry;
	size_t bytes;   /* audio bytes received */
	char *err_body; /* non-audio body, capped at ERR_BODY_MAX */
	size_t err_len;
	int stopped; /* our callback stopped the transfer */
	int16_t buf[8192];
};

static void classify(struct el_xfer *x)
{
	if (x->status)
		return;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
	const char *ct = NULL;
	curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ct);
	x->audio = x->status == 200 && !(ct && strstr(ct, "json"));
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct el_xfer *x = arg;
	size_t len = size * nmemb, i = 0;
	classify(x);
	if (!x->audio) {
		size_t room = ERR_BODY_MAX - x->err_len;
		size_t take = len < room ? len : room;
		if (!x->err_body)
			x->err_body = rv_xmalloc(ERR_BODY_MAX + 1);
		memcpy(x->err_body + x->err_len, data, take);
		x->err_len += take;
		x->err_body[x->err_len] = '\0';
		return len;
	}
	x->bytes += len;
	while (i < len) {
		size_t n = 0;
		if (x->ncarry) {
			uint8_t b[2] = {x->carry[0], (uint8_t)data[i++]};
			x->buf[n++] = (int16_t)(b[0] | (b[1] << 8));
			x->ncarry = 0;
		}
		/* Little-endian samples, converted byte-wise so alignment does not matter. */
		while (i + 1 < len && n < sizeof(x->buf) / sizeof(x->buf[0])) {
			x->buf[n++] = (int16_t)((uint8_t)data[i] | ((uint8_t)data[i + 1] << 8));
			i += 2;
		}
		if (i + 1 == len) {
			x->carry[0] = (uint8_t)data[i++];
			x->ncarry = 1;
		}
		if (n && x->chunk_h(x->buf, n, x->arg)) {
			x->stopped = 1;
			return 0; /* makes curl stop with CURLE_WRITE_ERROR */
		}
	}
	return len;
}

static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct el_xfer *x = arg;
	if (x->cancel && atomic_load(x->cancel)) {
		x->stopped = 1;
		return 1;
	}
	return 0;
}

/* Pull a readable message out of an ElevenLabs error body. */
static void error_message(const char *body, char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *root = body ? json_loads(body, 0, &jerr) : NULL;
	json_t *d = root ? json_object_get(root, "detail") : NULL;
	msg[0] = '\0';
	if (json_is_string(d)) {
		snprintf(msg, msglen, "%s", json_string_value(d));
	} else if (json_is_object(d)) {
		const char *m = json_string_value(json_object_get(d, "message"));
		const char *st = json_string_value(json_object_get(d, "status"));
		if (m && st)
			snprintf(msg, msglen, "%s (%s)", m, st);
		else if (m || st)
			snprintf(msg, msglen, "%s", m ? m : st);
	} else if (json_is_array(d) && json_array_size(d) > 0) {
		json_t *e = json_array_get(d, 0);
		const char *m = json_string_value(json_object_get(e, "msg"));
		json_t *loc = json_object_get(e, "loc");
		const char *field =
		    json_string_value(json_array_get(loc, json_array_size(loc) - 1));
		if (m)
			snprintf(msg, msglen, "%s%s%s", field ? field : "", field ? ": " : "", m);
	}
	if (!msg[0] && body && body[0]) {
		/* Not the documented shape: show the start of the body itself. */
		snprintf(msg, msglen, "%.160s", body);
	}
	json_decref(root);
	rv_utf8_scrub(msg);
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

static int status_err(long status)
{
	if (status == 401 || status == 403)
		return -EACCES;
	if (status == 404)
		return -ENOENT;
	if (status == 400 || status == 422)
		return -EINVAL;
	if (status == 429)
		return -EAGAIN;
	return -EIO;
}

static char *request_body(const struct el_state *s, const struct rv_tts_req *req)
{
	json_t *o = json_pack("{s:s, s:s}", "text", req->text, "model_id", s->model_id);
	if (!o)
		return NULL;
	if (req->rate != 1.0)
		json_object_set_new(o, "voice_settings", json_pack("{s:f}", "speed", req->rate));
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return body;
}

static int el_synth(void *state, const struct rv_tts_req *req, rv_tts_chunk_h *chunk_h, void *arg,
                    char *why, size_t whylen)
{
	struct el_state *s = state;
	struct el_xfer *x = NULL;
	struct curl_slist *hdrs = NULL;
	char *body = NULL, url[2048], keyhdr[512];
	int err = 0, reusable = 0;

	if (req->pitch != 1.0) {
		snprintf(why, whylen, "ElevenLabs has no pitch control (pitch must be 1.0)");
		return -ENOTSUP;
	}
	if (req->rate < SPEED_MIN || req->rate > SPEED_MAX) {
		snprintf(why, whylen, "ElevenLabs accepts a rate of %.1f..%.1f, not %g", SPEED_MIN,
		         SPEED_MAX, req->rate);
		return -EINVAL;
	}
	if (!voice_id_ok(req->voice))
		return el_voice_check(s, req->voice, why, whylen);
	int n = snprintf(url, sizeof(url), "%s/v1/text-to-speech/%s/stream?output_format=pcm_16000",
	                 s->base_url, req->voice);
	n = n < 0 || (size_t)n >= sizeof(url)
	        ? -1
	        : snprintf(keyhdr, sizeof(keyhdr), "xi-api-key: %s", s->api_key);
	if (n < 0 || (size_t)n >= sizeof(keyhdr)) {
		snprintf(why, whylen, "ElevenLabs base URL or API key is too long");
		return -EINVAL;
	}
	body = request_body(s, req);
	x = calloc(1, sizeof(*x));
	if (!body || !x) {
		err = -ENOMEM;
		goto out;
	}
	x->chunk_h = chunk_h;
	x->arg = arg;
	x->cancel = req->cancel;
	x->h = handle_get(s);
	if (!x->h) {
		err = -ENOMEM;
		goto out;
	}
	hdrs = curl_slist_append(hdrs, keyhdr);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: audio/pcm, application/json");
	if (!hdrs) {
		err = -ENOMEM;
		goto out;
	}
	CURL *h = x->h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
	/* A stream that delivers nothing for stall_s seconds is cut (a hung provider). */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->stall_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "revovoice");

	CURLcode rc = curl_easy_perform(h);
	classify(x);
	if (rc == CURLE_OK && x->audio && x->ncarry) {
		snprintf(why, whylen,
		         "ElevenLabs stream ended in the middle of a sample (%zu bytes)", x->bytes);
		err = -EPROTO;
	} else if (rc == CURLE_OK && x->audio) {
		reusable = 1;
		if (!x->bytes) {
			snprintf(why, whylen, "ElevenLabs returned no audio");
			err = -EPROTO;
		}
	} else if (x->stopped) {
		err = -ECANCELED;
	} else if (rc == CURLE_OK) {
		char msg[256];
		error_message(x->err_body, msg, sizeof(msg));
		reusable = 1;
		err = x->status == 200 ? -EPROTO : status_err(x->status);
		snprintf(why, whylen, "ElevenLabs answered HTTP %ld: %s", x->status,
		         msg[0] ? msg : "(no message)");
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(why, whylen, "ElevenLabs timed out after %zu audio bytes: %s", x->bytes,
		         curl_easy_strerror(rc));
		err = -ETIMEDOUT;
	} else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
		snprintf(why, whylen, "cannot reach ElevenLabs at %s: %s", s->base_url,
		         curl_easy_strerror(rc));
		err = -ECONNREFUSED;
	} else if (x->status == 200 && (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR ||
	                                rc == CURLE_GOT_NOTHING)) {
		snprintf(why, whylen, "ElevenLabs stream was cut after %zu audio bytes: %s",
		         x->bytes, curl_easy_strerror(rc));
		err = -EPROTO;
	} else {
		snprintf(why, whylen, "ElevenLabs request failed: %s", curl_easy_strerror(rc));
		err = -EIO;
	}
out:
	if (err == -ENOMEM)
		snprintf(why, whylen, "out of memory");
	curl_slist_free_all(hdrs);
	if (x) {
		handle_put(s, x->h, reusable);
		free(x->err_body);
	}
	free(x);
	free(body);
	memset(keyhdr, 0, sizeof(keyhdr));
	return err;
}

static const char *el_variant(void *state)
{
	const struct el_state *s = state;
	return s->model_id;
}

const struct rv_tts_backend rv_tts_backend_eleven = {
    .name = "elevenlabs",
    /* "Rachel", a premade voice every account has. */
    .default_voice = "21m00Tcm4TlvDq8ikWAM",
    .open = el_open,
    .close = el_close,
    .voice_check = el_voice_check,
    .synth = el_synth,
    .variant = el_variant,
};
