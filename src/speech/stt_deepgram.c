/*
 * Streaming STT over a WebSocket in Deepgram's live API shape:
 *
 *   GET {base}/v1/listen?model=..&encoding=linear16&sample_rate=16000&channels=1
 *       &interim_results=true&endpointing=false[&language=..][&keywords=w:2 | &keyterm=..]
 *   Authorization: Token KEY
 *
 * Audio goes up as binary messages of raw 16 kHz 16-bit little-endian samples (100 ms each);
 * the server sends text messages: "Results" (interim with is_final false, then final
 * segments), "Metadata", "SpeechStarted", "UtteranceEnd". We endpoint ourselves (the turn
 * module), so the server's endpointing is off and an utterance ends with {"type":"Finalize"},
 * which makes the server flush what it holds as final results, the last one marked
 * from_finalize. The utterance is complete when that arrives, or when final segments cover all
 * the audio sent (the server need not answer a Finalize with nothing left to flush).
 *
 * One connection per session, kept across the utterances of a call. Bias (keywords) is part of
 * the URL, so a new bias list means a new connection, made at the next utterance's start while
 * the caller is still talking. The server drops a connection that gets no audio for about
 * 10 s, so one idle longer than DG_IDLE_NS is replaced rather than trusted. Server timestamps
 * count from the start of the connection's audio; results give them from the utterance's start.
 */
#include "core/log.h"
#include "core/util.h"
#include "core/ws_client.h"
#include "media/media_pcm.h"
#include "speech/stt_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define DG_BATCH_SAMPLES 1600                   /* 100 ms per binary message */
#define DG_IDLE_NS       (8ull * 1000000000ull) /* reconnect after this long without audio */
#define DG_MAX_KEYWORDS  100
#define DG_MAX_URL       8192
#define DG_CLOSE_MS      200 /* wait for the server's side of a polite close */

struct dg_engine {
	char *base; /* ws[s]://host[:port][/prefix], no trailing slash */
	char *auth; /* "Authorization: Token KEY" or NULL */
	char *model;
	char *language;
	unsigned timeout_ms;
};

struct dg_sess {
	struct dg_engine *eng;
	struct rv_ws *ws;
	uint64_t conn_gen; /* the bias generation the connection was opened with */
	uint64_t last_io;  /* monotonic ns of the last audio or message */
	double sent_s;     /* audio sent on this connection, in seconds */
	double utt_start_s;
	int16_t pend[DG_BATCH_SAMPLES];
	size_t npend;
	bool open;
	int err; /* first failure of the open utterance; it stays open until end_utt */
	/* What the server said about the open utterance. */
	char text[RV_STT_MAX_TEXT]; /* its final segments, joined */
	char interim[RV_STT_MAX_TEXT];
	struct rv_stt_result *words; /* words of the final segments (text unused) */
	double conf_sum;
	unsigned nconf;
	double final_end_s; /* end of the last final segment, connection time */
	bool finalized;     /* from_finalize seen */
	bool fresh;         /* something new for partial() */
};

/* ---- message parsing (also the fuzz target's entry) -------------------------------------- */

/*
 * Parse one server text message. For "Results" sets *kind to 1 (interim) or 2 (final),
 * *from_finalize, *end_s (start + duration) and *out (text and words, word times made relative
 * to `offset_s` and clipped at 0; caller frees). Other known types give *kind 0 and no result.
 * Returns 0, or -EPROTO for a message that is not JSON or a Results message of the wrong shape.
 */
int rv_stt_deepgram_parse(const char *msg, size_t len, double offset_s, int *kind,
                          bool *from_finalize, double *end_s, struct rv_stt_result **out)
{
	json_error_t jerr;
	json_t *root = json_loadb(msg, len, 0, &jerr);
	json_t *type, *ch, *alts, *alt, *tr, *words, *v;
	struct rv_stt_result *res;
	size_t i;
	int err = -EPROTO;

	*kind = 0;
	*from_finalize = false;
	*end_s = 0;
	if (!json_is_object(root))
		goto out;
	type = json_object_get(root, "type");
	if (!json_is_string(type))
		goto out;
	if (strcmp(json_string_value(type), "Results") != 0) {
		err = 0; /* Metadata, SpeechStarted, UtteranceEnd and later additions */
		goto out;
	}
	ch = json_object_get(root, "channel");
	alts = json_object_get(ch, "alternatives");
	alt = json_array_get(alts, 0);
	tr = json_object_get(alt, "transcript");
	if (!json_is_string(tr))
		goto out;
	json_t *st = json_object_get(root, "start"), *du = json_object_get(root, "duration");
	if (json_is_number(st) && json_is_number(du)) {
		double e = json_number_value(st) + json_number_value(du);
		if (e >= 0 && e < 86400)
			*end_s = e;
	}
	json_t *conf = json_object_get(alt, "confidence");
	res = rv_stt_result_new(json_string_value(tr),
	                        json_is_number(conf) ? (float)json_number_value(conf) : 0.0f,
	                        json_is_true(json_object_get(root, "is_final")));
	words = json_object_get(alt, "words");
	json_array_foreach(words, i, v)
	{
		json_t *w = json_object_get(v, "word"), *a = json_object_get(v, "start"),
		       *b = json_object_get(v, "end"), *c = json_object_get(v, "confidence");
		if (!json_is_string(w) || !json_is_number(a) || !json_is_number(b))
			continue;
		double s = json_number_value(a) - offset_s, e = json_number_value(b) - offset_s;
		if (!(s > -3600 && s < 3600 && e > -3600 && e < 3600))
			continue;
		/* Rounded: connection-time seconds minus an offset are not exact in binary. */
		rv_stt_result_add_word(res, json_string_value(w),
		                       (uint32_t)(s > 0 ? s * 1000 + 0.5 : 0),
		                       (uint32_t)(e > 0 ? e * 1000 + 0.5 : 0),
		                       json_is_number(c) ? (float)json_number_value(c) : -1.0f);
	}
	*kind = res->is_final ? 2 : 1;
	*from_finalize = json_is_true(json_object_get(root, "from_finalize"));
	*out = res;
	err = 0;
out:
	json_decref(root);
	return err;
}

/* ---- engine ----------------------------------------------------------------------------- */

static void dg_engine_free(void *state)
{
	struct dg_engine *eng = state;

	if (!eng)
		return;
	free(eng->base);
	free(eng->auth);
	free(eng->model);
	free(eng->language);
	free(eng);
}

static bool url_safe(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int dg_engine_new(const struct rv_stt_config *cfg, void **out)
{
	const char *base =
	    cfg->base_url && *cfg->base_url ? cfg->base_url : "https://api.deepgram.com";
	const char *scheme;
	struct dg_engine *eng;
	size_t len;

	if (strncmp(base, "https://", 8) == 0 || strncmp(base, "wss://", 6) == 0)
		scheme = "wss://";
	else if (strncmp(base, "http://", 7) == 0 || strncmp(base, "ws://", 5) == 0)
		scheme = "ws://";
	else {
		rv_error(RV_STT_LOG, "deepgram STT: base URL must start with https://, http://, "
		                     "wss:// or ws://");
		return -EINVAL;
	}
	if (!cfg->api_key || !*cfg->api_key) {
		rv_error(RV_STT_LOG, "deepgram STT needs an API key (speech.stt_key)");
		return -EINVAL;
	}
	if (strpbrk(cfg->api_key, "\r\n") || strpbrk(base, " \r\n")) {
		rv_error(RV_STT_LOG, "deepgram STT: the key or URL holds a line break or space");
		return -EINVAL;
	}
	if ((cfg->model && !url_safe(cfg->model)) || (cfg->language && !url_safe(cfg->language))) {
		rv_error(RV_STT_LOG, "deepgram STT: model and language are plain names");
		return -EINVAL;
	}
	eng = rv_xcalloc(1, sizeof(*eng));
	base = strstr(base, "://") + 3;
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		len--;
	eng->base = rv_xmalloc(len + 8);
	snprintf(eng->base, len + 8, "%s%.*s", scheme, (int)len, base);
	len = strlen(cfg->api_key) + 32;
	eng->auth = rv_xmalloc(len);
	snprintf(eng->auth, len, "Authorization: Token %s", cfg->api_key);
	eng->model = rv_xstrdup(cfg->model ? cfg->model : "nova-2");
	eng->language = cfg->language ? rv_xstrdup(cfg->language) : NULL;
	eng->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
	*out = eng;
	return 0;
}

/* ---- session ---------------------------------------------------------------------------- */

static int dg_session_new(void *state, void **out)
{
	struct dg_sess *s = rv_xcalloc(1, sizeof(*s));

	s->eng = state;
	*out = s;
	return 0;
}

static void drop_conn(struct dg_sess *s, bool polite)
{
	if (!s->ws)
		return;
	if (polite && rv_ws_is_open(s->ws)) {
		static const char close_msg[] = "{\"type\":\"CloseStream\"}";
		rv_ws_send(s->ws, RV_WS_TEXT, close_msg, sizeof(close_msg) - 1, DG_CLOSE_MS);
	}
	/* Bounded: this runs on a speech worker that other calls share. */
	rv_ws_close(s->ws, polite ? DG_CLOSE_MS : 0);
	s->ws = NULL;
	s->sent_s = 0;
}

static void reset_utt(struct dg_sess *s)
{
	s->npend = 0;
	s->err = 0;
	s->text[0] = s->interim[0] = '\0';
	rv_stt_result_free(s->words);
	s->words = NULL;
	s->conf_sum = 0;
	s->nconf = 0;
	s->final_end_s = 0;
	s->finalized = false;
	s->fresh = false;
}

static void dg_abort_utt(void *state)
{
	struct dg_sess *s = state;

	/* Results of the abandoned audio would still arrive on this connection: start afresh. */
	if (s->open)
		drop_conn(s, false);
	s->open = false;
	reset_utt(s);
}

static void dg_session_free(void *state)
{
	struct dg_sess *s = state;

	if (!s)
		return;
	drop_conn(s, !s->open);
	reset_utt(s);
	free(s);
}

/* Append &name=value (value URL-encoded) and `suffix`; false when it would not fit. */
static bool add_param(char *url, size_t cap, const char *name, const char *value,
                      const char *suffix)
{
	size_t off = strlen(url);
	int n = snprintf(url + off, cap - off, "&%s=", name);
	if (n < 0 || (size_t)n >= cap - off)
		return false;
	off += (size_t)n;
	for (const char *p = value; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool plain =
		    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
		if (off + 4 >= cap)
			return false;
		if (plain)
			url[off++] = (char)c;
		else
			off += (size_t)snprintf(url + off, cap - off, "%%%02X", c);
	}
	url[off] = '\0';
	if (suffix && (size_t)snprintf(url + off, cap - off, "%s", suffix) >= cap - off) {
		url[off] = '\0';
		return false;
	}
	return true;
}

/*
 * The listen URL for a bias list: nova-3 models take whole phrases as keyterm, older ones
 * single words as keywords (boosted 2). Bias that does not fit the URL cap is left out.
 */
static void build_url(const struct dg_engine *eng, const struct rv_stt_bias *bias, char *url,
                      size_t cap)
{
	bool keyterm = strncmp(eng->model, "nova-3", 6) == 0;
	char(*seen)[RV_STT_MAX_PHRASE_LEN] = rv_xcalloc(DG_MAX_KEYWORDS, sizeof(*seen));
	size_t nseen = 0;

	snprintf(url, cap,
	         "%s/v1/listen?model=%s&encoding=linear16&sample_rate=%d&channels=1"
	         "&interim_results=true&endpointing=false&punctuate=false%s%s",
	         eng->base, eng->model, RV_MEDIA_RATE, eng->language ? "&language=" : "",
	         eng->language ? eng->language : "");
	for (size_t i = 0; i < bias->n && nseen < DG_MAX_KEYWORDS; i++) {
		if (keyterm) {
			if (!add_param(url, cap, "keyterm", bias->phrases[i], NULL))
				break;
			nseen++;
			continue;
		}
		/* keywords: each distinct word of the phrases once */
		const char *p = bias->phrases[i];
		while (*p && nseen < DG_MAX_KEYWORDS) {
			size_t n = strcspn(p, " ");
			if (n && n < RV_STT_MAX_PHRASE_LEN) {
				char *word = seen[nseen];
				memcpy(word, p, n);
				word[n] = '\0';
				bool dup = false;
				for (size_t k = 0; k < nseen && !dup; k++)
					dup = strcmp(seen[k], word) == 0;
				if (!dup) {
					if (!add_param(url, cap, "keywords", word, ":2"))
						goto out;
					nseen++;
				}
			}
			p += n;
			while (*p == ' ')
				p++;
		}
	}
out:
	free(seen);
}

static int connect_now(struct dg_sess *s, const struct rv_stt_bias *bias)
{
	char *url = rv_xmalloc(DG_MAX_URL);
	const char *hdr[] = {s->eng->auth, NULL};
	long status = 0;
	int err;

	build_url(s->eng, bias, url, DG_MAX_URL);
	err = rv_ws_connect(url, hdr, RV_STT_MAX_REPLY, s->eng->timeout_ms, RV_STT_LOG, &status,
	                    &s->ws);
	free(url);
	if (err) {
		rv_warn(RV_STT_LOG, "deepgram STT: cannot open the stream (%s%s%ld)",
		        rv_stt_strerror(err), status ? ", HTTP " : "", status);
		return err;
	}
	s->conn_gen = bias->gen;
	s->sent_s = 0;
	s->last_io = rv_time_mono_ns();
	return 0;
}

/* Join `add` to `dst` with a space; text past `cap` is cut (RV_STT_MAX_TEXT). */
static void append_text(char *dst, size_t cap, const char *add)
{
	size_t off = strlen(dst), n = strlen(add);

	if (!n)
		return;
	if (off && off + 1 < cap)
		dst[off++] = ' ';
	if (n > cap - 1 - off)
		n = cap - 1 - off;
	memcpy(dst + off, add, n);
	dst[off + n] = '\0';
}

/* Take one server message into the utterance's state. */
static int take_msg(struct dg_sess *s, const struct rv_ws_msg *m)
{
	struct rv_stt_result *r = NULL;
	bool fin = false;
	double end_s = 0;
	int kind = 0, err;

	if (m->opcode != RV_WS_TEXT) {
		rv_warn(RV_STT_LOG, "deepgram STT: unexpected binary message (%zu bytes)", m->len);
		return -EPROTO;
	}
	err = rv_stt_deepgram_parse(m->data, m->len, s->utt_start_s, &kind, &fin, &end_s, &r);
	if (err) {
		rv_warn(RV_STT_LOG, "deepgram STT: a server message is not a Results/Metadata JSON "
		                    "object");
		return err;
	}
	if (fin)
		s->finalized = true;
	if (kind == 2) {
		append_text(s->text, sizeof(s->text), r->text);
		if (*r->text) {
			s->conf_sum += r->conf;
			s->nconf++;
		}
		if (!s->words)
			s->words = rv_stt_result_new("", 0, true);
		for (size_t i = 0; i < r->nwords; i++)
			rv_stt_result_add_word(s->words, r->words[i].word, r->words[i].start_ms,
			                       r->words[i].end_ms, r->words[i].conf);
		if (end_s > s->final_end_s)
			s->final_end_s = end_s;
		s->interim[0] = '\0';
		s->fresh = true;
	} else if (kind == 1) {
		rv_strlcpy(s->interim, r->text, sizeof(s->interim));
		s->fresh = true;
	}
	rv_stt_result_free(r);
	return 0;
}

/* Read what has arrived without waiting. */
static int drain(struct dg_sess *s)
{
	struct rv_ws_msg m;
	int err;

	while ((err = rv_ws_recv(s->ws, 0, &m)) == 0) {
		s->last_io = rv_time_mono_ns();
		err = take_msg(s, &m);
		free(m.data);
		if (err)
			return err;
	}
	return err == -EAGAIN ? 0 : err;
}

static int dg_start_utt(void *state, const struct rv_stt_bias *bias)
{
	struct dg_sess *s = state;
	int err;

	/* A close frame without waiting for the server's: nothing is pending after a Finalize,
	 * and the caller is already talking. */
	if (s->ws && (!rv_ws_is_open(s->ws) || s->conn_gen != bias->gen ||
	              rv_time_mono_ns() - s->last_io > DG_IDLE_NS))
		drop_conn(s, false);
	/* Late messages about the last utterance are read into its state, then forgotten. */
	if (s->ws && drain(s) != 0)
		drop_conn(s, false);
	reset_utt(s);
	if (!s->ws) {
		err = connect_now(s, bias);
		if (err)
			return err;
	}
	s->utt_start_s = s->sent_s;
	s->open = true;
	return 0;
}

static int send_pending(struct dg_sess *s)
{
	int err;

	if (!s->npend)
		return 0;
	err = rv_ws_send(s->ws, RV_WS_BINARY, s->pend, s->npend * sizeof(int16_t),
	                 s->eng->timeout_ms);
	if (err)
		return err;
	s->sent_s += (double)s->npend / RV_MEDIA_RATE;
	s->last_io = rv_time_mono_ns();
	s->npend = 0;
	return 0;
}

static int dg_feed(void *state, const int16_t *samples, size_t n)
{
	struct dg_sess *s = state;

	if (s->err)
		return s->err;
	while (n) {
		size_t k = DG_BATCH_SAMPLES - s->npend;
		if (k > n)
			k = n;
		memcpy(s->pend + s->npend, samples, k * sizeof(*samples));
		s->npend += k;
		samples += k;
		n -= k;
		if (s->npend == DG_BATCH_SAMPLES && (s->err = send_pending(s)) != 0)
			break;
	}
	if (!s->err)
		s->err = drain(s);
	if (s->err)
		rv_warn(RV_STT_LOG, "deepgram STT: the stream failed mid-utterance (%s)",
		        rv_stt_strerror(s->err));
	return s->err;
}

static int dg_partial(void *state, struct rv_stt_result **out)
{
	struct dg_sess *s = state;
	char text[RV_STT_MAX_TEXT];

	if (!s->fresh)
		return -EAGAIN;
	s->fresh = false;
	rv_strlcpy(text, s->text, sizeof(text));
	append_text(text, sizeof(text), s->interim);
	*out = rv_stt_result_new(text, s->nconf ? (float)(s->conf_sum / s->nconf) : 0, false);
	return 0;
}

static bool utt_done(const struct dg_sess *s)
{
	/* Final segments reaching the end of the audio sent (20 ms slack) also close it. */
	return s->finalized || (s->final_end_s > 0 && s->final_end_s + 0.02 >= s->sent_s);
}

static int dg_end_utt(void *state, struct rv_stt_result **out)
{
	static const char finalize[] = "{\"type\":\"Finalize\"}";
	struct dg_sess *s = state;
	uint64_t deadline = rv_time_mono_ns() + (uint64_t)s->eng->timeout_ms * 1000000;
	struct rv_stt_result *res;
	int err = s->err;

	s->open = false;
	if (!err && s->sent_s == s->utt_start_s && s->npend == 0) {
		/* No audio: nothing to ask the server. */
		*out = rv_stt_result_new("", 0, true);
		reset_utt(s);
		return 0;
	}
	if (!err)
		err = send_pending(s);
	if (!err)
		err = rv_ws_send(s->ws, RV_WS_TEXT, finalize, sizeof(finalize) - 1,
		                 s->eng->timeout_ms);
	while (!err && !utt_done(s)) {
		struct rv_ws_msg m;
		uint64_t now = rv_time_mono_ns();
		if (now >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		err = rv_ws_recv(s->ws, (unsigned)((deadline - now) / 1000000) + 1, &m);
		if (err)
			break;
		s->last_io = rv_time_mono_ns();
		err = take_msg(s, &m);
		free(m.data);
	}
	if (err) {
		if (err == -ECONNRESET && rv_ws_close_code(s->ws))
			rv_warn(RV_STT_LOG, "deepgram STT: the server closed the stream (code %u)",
			        rv_ws_close_code(s->ws));
		else
			rv_warn(RV_STT_LOG, "deepgram STT: no final result (%s)",
			        rv_stt_strerror(err));
		drop_conn(s, false);
		reset_utt(s);
		return err;
	}
	res = rv_stt_result_new(s->text, s->nconf ? (float)(s->conf_sum / s->nconf) : 0, true);
	res->audio_ms = (uint32_t)((s->sent_s - s->utt_start_s) * 1000);
	for (size_t i = 0; s->words && i < s->words->nwords; i++)
		rv_stt_result_add_word(res, s->words->words[i].word, s->words->words[i].start_ms,
		                       s->words->words[i].end_ms, s->words->words[i].conf);
	reset_utt(s);
	*out = res;
	return 0;
}

const struct rv_stt_backend rv_stt_deepgram_backend = {
    .name = "deepgram",
    .engine_new = dg_engine_new,
    .engine_free = dg_engine_free,
    .session_new = dg_session_new,
    .session_free = dg_session_free,
    .start_utt = dg_start_utt,
    .feed = dg_feed,
    .partial = dg_partial,
    .end_utt = dg_end_utt,
    .abort_utt = dg_abort_utt,
};
