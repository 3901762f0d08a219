/* LLM mode: the streaming chat-completions client and the conversation around it. See llm.h. */
#include "dialog/llm.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "dialog/flow_int.h"
#include "nlu/entities.h"
#include "nlu/entities_json.h"
#include "nlu/intent.h"
#include "obs/metrics.h"

#define LOG "llm"

#define DEFAULT_TIMEOUT_MS 8000
#define DEFAULT_MAX_TOKENS 300
#define MAX_ERROR_BODY     (8 * 1024)
#define MAX_SYSTEM         8000 /* bytes of the flow's "system" text */
#define MAX_PROMPT         (24 * 1024)
#define MAX_HISTORY_TEXT   4000 /* bytes of one message's content in a resumed snapshot */
#define MAX_SAID           4096 /* bytes said in one LLM turn (after guardrails) */
#define DNC_CONF           0.6  /* as flow.c's ALWAYS_CONF: a do-not-call request is obeyed */

#define DEFAULT_DEFLECTION "I'm sorry, that's not something I can discuss on this call."
#define DEFAULT_CLOSING    "Thank you for your time. Goodbye."
#define DEFAULT_TRANSFER   "Let me connect you with someone now."
#define DEFAULT_ACK        "All right."

struct rv_llm {
	char *url;  /* {base}/v1/chat/completions */
	char *auth; /* "Authorization: Bearer KEY" or NULL */
	char *model;
	int timeout_ms;
	int max_tokens;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void metrics_register(void)
{
	rv_metrics_register("rv_llm_requests_total", RV_METRIC_COUNTER,
	                    "Chat-completion requests to the LLM, by result", "result", NULL, 0);
	rv_metrics_register("rv_llm_fallbacks_total", RV_METRIC_COUNTER,
	                    "LLM turns answered by the scripted flow instead, by reason", "reason",
	                    NULL, 0);
	rv_metrics_register("rv_llm_tool_calls_total", RV_METRIC_COUNTER,
	                    "Tool calls made by the model, by tool and result", "tool,result", NULL,
	                    0);
	rv_metrics_register("rv_llm_first_sentence_seconds", RV_METRIC_HISTOGRAM,
	                    "Time from a caller turn to the model's first sentence", NULL, NULL, 0);
}

int rv_llm_new(const struct rv_llm_config *cfg, struct rv_llm **out)
{
	if (!cfg->base_url || (strncasecmp(cfg->base_url, "http://", 7) != 0 &&
	                       strncasecmp(cfg->base_url, "https://", 8) != 0)) {
		rv_error(LOG, "llm.base_url must start with http:// or https://");
		return -EINVAL;
	}
	if (!cfg->model || !*cfg->model || strlen(cfg->model) > 200) {
		rv_error(LOG, "llm.model must name a model");
		return -EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	metrics_register();
	struct rv_llm *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	size_t len = strlen(cfg->base_url);
	while (len > 0 && cfg->base_url[len - 1] == '/')
		len--;
	/* A base that already ends in /v1 (OpenAI's own documentation writes it so) is kept. */
	bool has_v1 = len >= 3 && strncmp(cfg->base_url + len - 3, "/v1", 3) == 0;
	size_t ul = len + 32;
	l->url = malloc(ul);
	l->model = strdup(cfg->model);
	if (cfg->api_key && *cfg->api_key) {
		size_t al = strlen(cfg->api_key) + 32;
		l->auth = malloc(al);
		if (l->auth)
			snprintf(l->auth, al, "Authorization: Bearer %s", cfg->api_key);
	}
	if (!l->url || !l->model || (cfg->api_key && *cfg->api_key && !l->auth)) {
		rv_llm_free(l);
		return -ENOMEM;
	}
	snprintf(l->url, ul, "%.*s%s/chat/completions", (int)len, cfg->base_url,
	         has_v1 ? "" : "/v1");
	l->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	l->max_tokens = cfg->max_tokens > 0 ? cfg->max_tokens : DEFAULT_MAX_TOKENS;
	*out = l;
	return 0;
}

int rv_llm_from_config(const struct rv_config *cfg, struct rv_llm **out)
{
	if (!cfg->llm_base_url || !*cfg->llm_base_url)
		return -ENOENT;
	struct rv_llm_config lc = {.base_url = cfg->llm_base_url,
	                           .api_key = cfg->llm_api_key,
	                           .model = cfg->llm_model,
	                           .timeout_ms = cfg->llm_timeout_ms,
	                           .max_tokens = cfg->llm_max_tokens};
	return rv_llm_new(&lc, out);
}

void rv_llm_free(struct rv_llm *l)
{
	if (!l)
		return;
	free(l->url);
	free(l->auth);
	free(l->model);
	free(l);
}

const char *rv_llm_model(const struct rv_llm *l)
{
	return l->model;
}

void rv_llm_reply_clear(struct rv_llm_reply *r)
{
	free(r->text);
	json_decref(r->tool_calls);
	memset(r, 0, sizeof(*r));
}

/* ---- Sentences ---- */

/* Titles and Latin abbreviations after which a dot never ends a sentence. */
static const char *const ABBREV[] = {"dr",  "mr",  "mrs",  "ms", "mx",  "prof", "sr",
                                     "jr",  "st",  "mt",   "vs", "e.g", "i.e",  "rev",
                                     "hon", "gen", "capt", "lt", "sgt", "fig",  NULL};

static bool is_closer(char ch)
{
	return ch == '"' || ch == '\'' || ch == ')' || ch == ']';
}

static bool abbrev_before(const char *s, size_t dot)
{
	size_t b = dot;
	while (b > 0 && (isalpha((unsigned char)s[b - 1]) || s[b - 1] == '.'))
		b--;
	size_t len = dot - b;
	if (len == 0 || len > 6)
		return false;
	/* A lone capital is an initial ("J. Smith"); a lone "I" ends sentences ("so do I."). */
	if (len == 1 && isupper((unsigned char)s[b]) && s[b] != 'I')
		return true;
	char w[8];
	for (size_t i = 0; i < len; i++)
		w[i] = (char)tolower((unsigned char)s[b + i]);
	w[len] = '\0';
	for (int i = 0; ABBREV[i]; i++)
		if (strcmp(w, ABBREV[i]) == 0)
			return true;
	return false;
}

/* Words after which a dot may or may not end the sentence. */
static const char *const MAYBE[] = {"etc", "approx", "inc", "ltd", "co",  "ave", "dept",
                                    "est", "min",    "max", "no",  "vol", "jan", "feb",
                                    "aug", "sept",   "oct", "nov", "dec", NULL};

static bool maybe_abbrev(const char *s, size_t dot)
{
	size_t b = dot;
	bool inner_dot = false;
	while (b > 0 && (isalpha((unsigned char)s[b - 1]) || s[b - 1] == '.')) {
		inner_dot |= s[b - 1] == '.';
		b--;
	}
	size_t len = dot - b;
	if (inner_dot)
		return true; /* "a.m", "U.S" */
	if (len == 0 || len > 6)
		return false;
	char w[8];
	for (size_t i = 0; i < len; i++)
		w[i] = (char)tolower((unsigned char)s[b + i]);
	w[len] = '\0';
	for (int i = 0; MAYBE[i]; i++)
		if (strcmp(w, MAYBE[i]) == 0)
			return true;
	return false;
}

size_t rv_llm_sentence_end(const char *s, size_t n, bool final)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '\n' && i + 1 < n && s[i + 1] == '\n') {
			size_t k = 0;
			while (k < i && isspace((unsigned char)s[k]))
				k++;
			if (k < i)
				return i;
			continue;
		}
		if (ch != '.' && ch != '!' && ch != '?')
			continue;
		size_t j = i + 1;
		while (j < n && (s[j] == '.' || s[j] == '!' || s[j] == '?'))
			j++;
		while (j < n && is_closer(s[j]))
			j++;
		if (j == n)
			return final ? j : 0;
		if (!isspace((unsigned char)s[j])) {
			i = j - 1;
			continue;
		}
		if (ch == '.' && j == i + 1 && abbrev_before(s, i)) {
			i = j - 1;
			continue;
		}
		/* Only after a dotted or short abbreviation ("a.m.", "etc.") does the next word
		 * decide: "a.m. tomorrow" goes on, "a.m. Talk soon" ends. Elsewhere the sentence
		 * is handed out now rather than one token later. */
		if (ch != '.' || j != i + 1 || !maybe_abbrev(s, i))
			return j;
		size_t k = j;
		while (k < n && isspace((unsigned char)s[k]))
			k++;
		if (k == n)
			return final ? j : 0;
		if (islower((unsigned char)s[k]) || isdigit((unsigned char)s[k])) {
			i = j - 1;
			continue;
		}
		return j;
	}
	return 0;
}

/* ---- The streaming client ---- */

struct tool_frag {
	char id[64];
	char name[64];
	char *args;
	size_t nargs;
	bool used;
};

struct stream {
	CURL *h;
	bool checked; /* status and content type looked at */
	bool sse;     /* 2xx text/event-stream: parse events; else collect the body */
	long status;
	char *body; /* error body or a non-streamed JSON answer */
	size_t nbody, bodycap;
	char *line; /* the line being read */
	size_t nline;
	bool skip_lf; /* a CR ended the last line; a LF right after it is part of it */
	char *data;   /* the current event's data lines */
	size_t ndata;
	bool have_data;
	size_t total;
	bool done; /* [DONE] seen */
	int err;
	char why[200];
	/* The reply being assembled. */
	char *text;
	size_t ntext, emitted;
	struct tool_frag tc[RV_LLM_MAX_TOOL_CALLS];
	char finish[24];
	unsigned events;
	rv_llm_sentence_cb cb;
	void *arg;
};

static void fail(struct stream *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct stream *s, int err, const char *fmt, ...)
{
	if (s->err)
		return;
	s->err = err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

/* Hand out every complete sentence past `emitted`; with `final`, the rest too. */
static void emit_sentences(struct stream *s, bool final)
{
	while (s->emitted < s->ntext) {
		const char *p = s->text + s->emitted;
		size_t left = s->ntext - s->emitted;
		size_t skip = 0;
		while (skip < left && isspace((unsigned char)p[skip]))
			skip++;
		if (skip == left) {
			if (final)
				s->emitted = s->ntext;
			return;
		}
		size_t len = rv_llm_sentence_end(p + skip, left - skip, final);
		if (len == 0) {
			if (!final)
				return;
			len = left - skip;
		}
		char *sent = malloc(len + 1);
		if (!sent) {
			fail(s, -ENOMEM, "out of memory");
			return;
		}
		memcpy(sent, p + skip, len);
		sent[len] = '\0';
		/* Newlines inside a sentence are line wraps, not pauses. */
		for (char *q = sent; *q; q++)
			if (*q == '\n' || *q == '\r' || *q == '\t')
				*q = ' ';
		size_t e = len;
		while (e > 0 && isspace((unsigned char)sent[e - 1]))
			sent[--e] = '\0';
		if (s->cb && *sent)
			s->cb(sent, s->arg);
		free(sent);
		s->emitted += skip + len;
	}
}

static int append(char **buf, size_t *n, const char *src, size_t len, size_t cap)
{
	if (*n + len > cap)
		return -EMSGSIZE;
	char *p = realloc(*buf, *n + len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p + *n, src, len);
	*n += len;
	p[*n] = '\0';
	*buf = p;
	return 0;
}

static void add_text(struct stream *s, const char *t, size_t len)
{
	int err = append(&s->text, &s->ntext, t, len, RV_LLM_MAX_REPLY);
	if (err) {
		fail(s, err, "the reply passed %d bytes", RV_LLM_MAX_REPLY);
		return;
	}
	emit_sentences(s, false);
}

/* One delta.tool_calls entry: fragments of id, name and arguments keyed by "index". */
static void add_tool_delta(struct stream *s, const json_t *d)
{
	const json_t *ji = json_object_get(d, "index");
	/* Some servers send one whole call without an index: it is the next one. */
	json_int_t idx = 0;
	if (json_is_integer(ji)) {
		idx = json_integer_value(ji);
	} else if (!ji) {
		while (idx < RV_LLM_MAX_TOOL_CALLS && s->tc[idx].used && json_object_get(d, "id"))
			idx++;
	} else {
		fail(s, -EPROTO, "a tool_calls delta has a non-integer index");
		return;
	}
	if (idx < 0 || idx >= RV_LLM_MAX_TOOL_CALLS) {
		fail(s, idx < 0 ? -EPROTO : -EMSGSIZE, "tool call index %lld is out of range",
		     (long long)idx);
		return;
	}
	struct tool_frag *t = &s->tc[idx];
	t->used = true;
	const json_t *fn = json_object_get(d, "function");
	const char *id = json_string_value(json_object_get(d, "id"));
	const char *name = json_string_value(json_object_get(fn, "name"));
	const json_t *args = json_object_get(fn, "arguments");
	if ((fn && !json_is_object(fn)) || (args && !json_is_string(args) && !json_is_null(args))) {
		fail(s, -EPROTO, "a tool_calls delta has a malformed function");
		return;
	}
	if (id)
		rv_strlcpy(t->id, id, sizeof(t->id));
	if (name) {
		/* Names come whole in OpenAI's stream; concatenation covers servers that split. */
		size_t l = strlen(t->name);
		snprintf(t->name + l, sizeof(t->name) - l, "%s", name);
	}
	if (json_is_string(args)) {
		int err = append(&t->args, &t->nargs, json_string_value(args),
		                 json_string_length(args), RV_LLM_MAX_TOOL_ARGS);
		if (err)
			fail(s, err, "tool call arguments passed %d bytes", RV_LLM_MAX_TOOL_ARGS);
	}
}

static void dispatch_event(struct stream *s)
{
	const char *d = s->data ? s->data : "";
	s->events++;
	if (strcmp(d, "[DONE]") == 0) {
		s->done = true;
		return;
	}
	if (s->done)
		return; /* anything after [DONE] is ignored */
	json_error_t je;
	json_t *ev = json_loadb(d, s->ndata, 0, &je);
	if (!json_is_object(ev)) {
		fail(s, -EPROTO, "event %u is not a JSON object: %.60s", s->events, d);
		json_decref(ev);
		return;
	}
	const json_t *e = json_object_get(ev, "error");
	if (e) {
		const char *m = json_string_value(json_object_get(e, "message"));
		fail(s, -EIO, "the server sent an error event: %.150s", m ? m : "(no message)");
		json_decref(ev);
		return;
	}
	const json_t *choices = json_object_get(ev, "choices");
	if (!json_is_array(choices)) {
		fail(s, -EPROTO, "event %u has no \"choices\" list", s->events);
		json_decref(ev);
		return;
	}
	/* The usage-only chunk some servers end with has an empty choices list. */
	const json_t *ch = json_array_get(choices, 0);
	if (ch) {
		const json_t *delta = json_object_get(ch, "delta");
		const json_t *content = json_object_get(delta, "content");
		const json_t *tcs = json_object_get(delta, "tool_calls");
		const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
		if (!json_is_object(ch) || (delta && !json_is_object(delta)) ||
		    (content && !json_is_string(content) && !json_is_null(content)) ||
		    (tcs && !json_is_array(tcs) && !json_is_null(tcs))) {
			fail(s, -EPROTO, "event %u has a malformed delta", s->events);
			json_decref(ev);
			return;
		}
		if (json_is_string(content))
			add_text(s, json_string_value(content), json_string_length(content));
		size_t i;
		const json_t *t;
		json_array_foreach(tcs, i, t)
		{
			if (!json_is_object(t)) {
				fail(s, -EPROTO, "event %u has a malformed tool call", s->events);
				break;
			}
			add_tool_delta(s, t);
		}
		if (fr)
			rv_strlcpy(s->finish, fr, sizeof(s->finish));
	}
	json_decref(ev);
}

static void sse_line(struct stream *s, const char *line, size_t n)
{
	if (n == 0) {
		if (s->have_data)
			dispatch_event(s);
		s->ndata = 0;
		if (s->data)
			s->data[0] = '\0';
		s->have_data = false;
		return;
	}
	if (line[0] == ':')
		return; /* a comment: keep-alive */
	if (n >= 5 && memcmp(line, "data:", 5) == 0) {
		const char *v = line + 5;
		size_t vl = n - 5;
		if (vl && *v == ' ') {
			v++;
			vl--;
		}
		int err = 0;
		if (s->have_data)
			err = append(&s->data, &s->ndata, "\n", 1, RV_LLM_MAX_EVENT);
		if (!err)
			err = append(&s->data, &s->ndata, v, vl, RV_LLM_MAX_EVENT);
		if (!err && !s->data)
			err = append(&s->data, &s->ndata, "", 0, RV_LLM_MAX_EVENT);
		if (err)
			fail(s, err, "an event passed %d bytes", RV_LLM_MAX_EVENT);
		s->have_data = true;
	}
	/* event:, id: and retry: carry nothing chat completions use. */
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct stream *s = arg;
	size_t n = size * nmemb;
	if (!s->checked) {
		s->checked = true;
		char *ct = NULL;
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
		curl_easy_getinfo(s->h, CURLINFO_CONTENT_TYPE, &ct);
		s->sse = s->status >= 200 && s->status < 300 && ct &&
		         strncasecmp(ct, "text/event-stream", 17) == 0;
	}
	s->total += n;
	if (s->total > RV_LLM_MAX_STREAM) {
		fail(s, -EMSGSIZE, "the response passed %d bytes", RV_LLM_MAX_STREAM);
		return 0;
	}
	if (!s->sse) {
		size_t cap =
		    s->status >= 200 && s->status < 300 ? RV_LLM_MAX_STREAM : MAX_ERROR_BODY;
		if (s->nbody + n > cap)
			n = cap > s->nbody ? cap - s->nbody : 0; /* keep the head of an error */
		if (n && append(&s->body, &s->nbody, p, n, cap) != 0) {
			fail(s, -ENOMEM, "out of memory");
			return 0;
		}
		return size * nmemb;
	}
	for (size_t i = 0; i < n && !s->err; i++) {
		char c = p[i];
		if (c == '\n' && s->skip_lf) {
			s->skip_lf = false;
			continue;
		}
		s->skip_lf = false;
		if (c == '\n' || c == '\r') {
			s->skip_lf = c == '\r';
			sse_line(s, s->line ? s->line : "", s->nline);
			s->nline = 0;
			continue;
		}
		if (append(&s->line, &s->nline, &c, 1, RV_LLM_MAX_EVENT) != 0)
			fail(s, -EMSGSIZE, "an event line passed %d bytes", RV_LLM_MAX_EVENT);
	}
	return s->err ? 0 : size * nmemb;
}

/* A server that ignored "stream": one JSON completion; its message is taken whole. */
static void whole_answer(struct stream *s)
{
	json_error_t je;
	json_t *doc = json_loadb(s->body ? s->body : "", s->nbody, 0, &je);
	const json_t *msg =
	    json_object_get(json_array_get(json_object_get(doc, "choices"), 0), "message");
	if (!json_is_object(msg)) {
		fail(s, -EPROTO, "the answer is neither an event stream nor a completion");
		json_decref(doc);
		return;
	}
	const json_t *content = json_object_get(msg, "content");
	if (json_is_string(content))
		add_text(s, json_string_value(content), json_string_length(content));
	size_t i;
	const json_t *t;
	json_array_foreach(json_object_get(msg, "tool_calls"), i, t)
	{
		json_t *d = json_deep_copy(t);
		json_object_set_new(d, "index", json_integer((json_int_t)i));
		add_tool_delta(s, d);
		json_decref(d);
	}
	const char *fr = json_string_value(
	    json_object_get(json_array_get(json_object_get(doc, "choices"), 0), "finish_reason"));
	rv_strlcpy(s->finish, fr ? fr : "stop", sizeof(s->finish));
	s->done = true;
	json_decref(doc);
}

static const char *result_name(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -ETIMEDOUT:
		return "timeout";
	case -EACCES:
		return "auth";
	case -ECONNREFUSED:
		return "unreachable";
	case -EPROTO:
		return "malformed";
	case -EMSGSIZE:
		return "too_big";
	default:
		return "error";
	}
}

int rv_llm_chat(struct rv_llm *l, const json_t *messages, const json_t *tools, int timeout_ms,
                rv_llm_sentence_cb on_sentence, void *arg, struct rv_llm_reply *out)
{
	struct stream s = {.cb = on_sentence, .arg = arg};
	struct curl_slist *hdr = NULL;
	char *payload = NULL;
	int ret = 0;
	long tmo = timeout_ms > 0 ? timeout_ms : l->timeout_ms;

	json_t *req = json_pack("{s:s, s:O, s:b, s:i}", "model", l->model, "messages", messages,
	                        "stream", 1, "max_tokens", l->max_tokens);
	if (req && json_array_size(tools) > 0)
		json_object_set(req, "tools", (json_t *)tools);
	payload = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	s.h = curl_easy_init();
	if (!payload || !s.h) {
		ret = -ENOMEM;
		goto out;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, "Accept: text/event-stream");
	if (l->auth)
		hdr = curl_slist_append(hdr, l->auth);
	curl_easy_setopt(s.h, CURLOPT_URL, l->url);
	curl_easy_setopt(s.h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s.h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s.h, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(s.h, CURLOPT_CONNECTTIMEOUT_MS, tmo < 3000 ? tmo : 3000L);
	curl_easy_setopt(s.h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(s.h, CURLOPT_POSTFIELDS, payload);
	curl_easy_setopt(s.h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s.h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(s.h, CURLOPT_USERAGENT, "RevoVoice-llm/1");
	CURLcode rc = curl_easy_perform(s.h);
	if (!s.checked)
		curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &s.status);
	if (s.err) {
		ret = s.err;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		ret = -ETIMEDOUT;
		snprintf(s.why, sizeof(s.why), "no complete answer within %ld ms", tmo);
	} else if (rc == CURLE_COULDNT_CONNECT) {
		ret = -ECONNREFUSED;
		snprintf(s.why, sizeof(s.why), "%s", curl_easy_strerror(rc));
	} else if (rc != CURLE_OK) {
		ret = -EIO;
		snprintf(s.why, sizeof(s.why), "%s", curl_easy_strerror(rc));
	} else if (s.status >= 300 || s.status < 200) {
		/* OpenAI's error shape: {"error": {"message", "type", "code"}}. */
		json_error_t je;
		json_t *e = json_loadb(s.body ? s.body : "", s.nbody, 0, &je);
		const json_t *eo = json_object_get(e, "error");
		const char *m = json_string_value(json_object_get(eo, "message"));
		const char *code = json_string_value(json_object_get(eo, "code"));
		snprintf(s.why, sizeof(s.why), "HTTP %ld: %.120s%s%s%s", s.status,
		         m ? m : "(no error message)", code ? " (" : "", code ? code : "",
		         code ? ")" : "");
		json_decref(e);
		ret = s.status == 401 || s.status == 403 ? -EACCES : -EIO;
	} else {
		if (!s.sse)
			whole_answer(&s);
		else if (s.nline > 0 || s.have_data)
			sse_line(&s, "", 0); /* a last event without its blank line */
		if (!s.err && !s.done && !s.finish[0])
			fail(&s, -EPROTO, "the stream ended before [DONE] (%u events)", s.events);
		ret = s.err;
		if (!ret)
			emit_sentences(&s, true);
		ret = s.err;
	}
	if (ret) {
		rv_warn(LOG, "chat completion at %s failed: %s", l->url,
		        s.why[0] ? s.why : "error");
		goto out;
	}
	json_t *calls = json_array();
	for (int i = 0; i < RV_LLM_MAX_TOOL_CALLS; i++) {
		if (!s.tc[i].used)
			continue;
		json_array_append_new(calls, json_pack("{s:s, s:s, s:s}", "id", s.tc[i].id, "name",
		                                       s.tc[i].name, "arguments",
		                                       s.tc[i].args ? s.tc[i].args : ""));
	}
	memset(out, 0, sizeof(*out));
	out->text = s.text ? s.text : strdup("");
	s.text = NULL;
	out->tool_calls = calls;
	rv_strlcpy(out->finish_reason, s.finish, sizeof(out->finish_reason));
	out->events = s.events;
	if (!out->text) {
		rv_llm_reply_clear(out);
		ret = -ENOMEM;
	}
out:
	rv_metrics_inc("rv_llm_requests_total", 1, result_name(ret), NULL);
	for (int i = 0; i < RV_LLM_MAX_TOOL_CALLS; i++)
		free(s.tc[i].args);
	free(s.text);
	free(s.line);
	free(s.data);
	free(s.body);
	free(payload);
	curl_slist_free_all(hdr);
	if (s.h)
		curl_easy_cleanup(s.h);
	return ret;
}

/* ---- Tools ---- */

json_t *rv_llm_tools(const json_t *dispositions)
{
	json_t *disp = json_pack("{s:s, s:s}", "type", "string", "description",
	                         "The outcome: converted, callback, not_interested, dnc_request "
	                         "(the caller asked not to be called again), wrong_number, "
	                         "completed, ...");
	if (json_array_size(dispositions) > 0)
		json_object_set_new(disp, "enum", json_deep_copy(dispositions));
	return json_pack(
	    "[{s:s, s:{s:s, s:s, s:{s:s, s:{s:o}, s:[s]}}},"
	    " {s:s, s:{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s]}}},"
	    " {s:s, s:{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s]}}},"
	    " {s:s, s:{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:[s, s, s], s:s}}, s:[s, s]}}}]",
	    /* end_call */
	    "type", "function", "function", "name", "end_call", "description",
	    "End the call after your last sentence, with its outcome.", "parameters", "type",
	    "object", "properties", "disposition", disp, "required", "disposition",
	    /* transfer */
	    "type", "function", "function", "name", "transfer", "description",
	    "Transfer the caller to a human agent (when they ask for a person or you cannot help).",
	    "parameters", "type", "object", "properties", "to", "type", "string", "description",
	    "Phone number or SIP address; omit to use the campaign's transfer line.", "reason",
	    "type", "string", "description", "Why, in a few words, for the agent taking over.",
	    "required", "reason",
	    /* schedule_callback */
	    "type", "function", "function", "name", "schedule_callback", "description",
	    "Book a call back at the time the caller agreed to.", "parameters", "type", "object",
	    "properties", "at", "type", "string", "description",
	    "ISO 8601 date-time with the caller's UTC offset, e.g. 2026-11-23T15:00:00-05:00.",
	    "required", "at",
	    /* set_field */
	    "type", "function", "function", "name", "set_field", "description",
	    "Record a fact the caller gave (email, preferred time, answer to a question).",
	    "parameters", "type", "object", "properties", "field", "type", "string", "description",
	    "Field name, lower_case_with_underscores.", "value", "type", "string", "number",
	    "boolean", "description", "The value.", "required", "field", "value");
}

static bool field_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

static int add_action(struct rv_turn_out *o, enum rv_action_type t, json_t *args)
{
	if (!args)
		return -ENOMEM;
	if (o->nactions >= RV_FLOW_MAX_ACTIONS) {
		json_decref(args);
		return -ENOSPC;
	}
	o->actions[o->nactions].type = t;
	o->actions[o->nactions++].args = args;
	return 0;
}

static void set_end(struct rv_turn_out *o, const char *disp)
{
	o->end = true;
	free(o->disposition);
	o->disposition = strdup(disp);
}

int rv_llm_apply_tool(const char *name, const char *arguments, const struct rv_llm_tool_ctx *tc,
                      struct rv_turn_out *o, char *why, size_t whylen)
{
	static const char *const tools[] = {"end_call", "transfer", "schedule_callback",
	                                    "set_field", NULL};
	int t = -1;
	for (int i = 0; name && tools[i]; i++)
		if (strcmp(name, tools[i]) == 0)
			t = i;
	if (t < 0) {
		snprintf(why, whylen, "there is no tool called \"%.60s\"", name ? name : "");
		return -ENOENT;
	}
	json_error_t je;
	json_t *a = json_loads(arguments && *arguments ? arguments : "{}", 0, &je);
	int ret = 0;
	if (!json_is_object(a)) {
		snprintf(why, whylen, "the arguments are not a JSON object");
		ret = -EINVAL;
		goto out;
	}
	if (t == 0) { /* end_call */
		const char *d = json_string_value(json_object_get(a, "disposition"));
		const json_t *allowed = json_object_get(tc->section, "dispositions");
		bool ok = d && *d && strlen(d) < 48;
		for (const char *p = d; ok && *p; p++)
			ok = islower((unsigned char)*p) || *p == '_' || isdigit((unsigned char)*p);
		if (ok && json_array_size(allowed) > 0) {
			size_t i;
			const json_t *v;
			bool found = false;
			json_array_foreach(allowed, i, v) found |=
			    json_is_string(v) && strcmp(json_string_value(v), d) == 0;
			ok = found;
		}
		if (!ok) {
			snprintf(why, whylen, "\"disposition\" must be a lower_case outcome name%s",
			         json_array_size(allowed) ? " from the list given" : "");
			ret = -EINVAL;
			goto out;
		}
		/* Compliance: the caller's request not to be called again is carried out. */
		if (strcmp(d, "dnc_request") == 0) {
			ret = add_action(o, RV_ACT_DNC, json_object());
			if (ret) {
				snprintf(why, whylen, "too many actions this turn");
				goto out;
			}
		}
		set_end(o, d);
	} else if (t == 1) { /* transfer */
		const char *to = json_string_value(json_object_get(a, "to"));
		const char *reason = json_string_value(json_object_get(a, "reason"));
		if (!to || !*to)
			to = json_string_value(json_object_get(tc->section, "transfer_to"));
		if (!to || !*to)
			to = json_string_value(json_object_get(tc->campaign, "transfer_to"));
		if (!to || !*to || strlen(to) > 200) {
			snprintf(why, whylen,
			         "there is no number to transfer to; carry on instead");
			ret = -EINVAL;
			goto out;
		}
		ret = add_action(o, RV_ACT_TRANSFER,
		                 json_pack("{s:s, s:s, s:s}", "to", to, "mode", "blind", "reason",
		                           reason ? reason : ""));
		if (ret) {
			snprintf(why, whylen, "too many actions this turn");
			goto out;
		}
		set_end(o, "transferred");
	} else if (t == 2) { /* schedule_callback */
		const char *at = json_string_value(json_object_get(a, "at"));
		int64_t ms;
		if (!at || strlen(at) > 40 || rv_time_parse_iso(at, &ms) != 0) {
			snprintf(why, whylen,
			         "\"at\" must be an ISO 8601 date-time with an offset, e.g. "
			         "2026-11-23T15:00:00-05:00");
			ret = -EINVAL;
			goto out;
		}
		if (tc->now_ms && ms < tc->now_ms - 60000) {
			snprintf(why, whylen, "\"at\" (%s) is in the past", at);
			ret = -EINVAL;
			goto out;
		}
		ret = add_action(o, RV_ACT_SCHEDULE_CALLBACK, json_pack("{s:s}", "at", at));
		if (ret)
			snprintf(why, whylen, "too many actions this turn");
	} else { /* set_field */
		const char *f = json_string_value(json_object_get(a, "field"));
		const json_t *v = json_object_get(a, "value");
		if (!f || !field_name_ok(f)) {
			snprintf(why, whylen, "\"field\" must be a name of letters, digits and _");
			ret = -EINVAL;
			goto out;
		}
		if (!v || !(json_is_string(v) || json_is_number(v) || json_is_boolean(v)) ||
		    (json_is_string(v) && json_string_length(v) > RV_FLOW_MAX_SAY)) {
			snprintf(why, whylen,
			         "\"value\" must be a short string, number or boolean");
			ret = -EINVAL;
			goto out;
		}
		ret = add_action(o, RV_ACT_SET_FIELD,
		                 json_pack("{s:s, s:O}", "field", f, "value", (json_t *)v));
		if (ret)
			snprintf(why, whylen, "too many actions this turn");
	}
out:
	json_decref(a);
	return ret;
}

/* ---- The flow's "llm" section ---- */

static void section_err(json_t *errors, const char *path, const char *msg)
{
	json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

static void check_opt_str(const json_t *sec, const char *key, size_t max, json_t *errors)
{
	const json_t *v = json_object_get(sec, key);
	if (!v)
		return;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
		char p[64], m[128];
		snprintf(p, sizeof(p), "$.llm.%s", key);
		snprintf(m, sizeof(m), "\"%s\" must be a non-empty string of at most %zu bytes",
		         key, max);
		section_err(errors, p, m);
	}
}

static void check_int(const json_t *sec, const char *key, json_int_t lo, json_int_t hi,
                      json_t *errors)
{
	const json_t *v = json_object_get(sec, key);
	if (!v)
		return;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		char p[64], m[128];
		snprintf(p, sizeof(p), "$.llm.%s", key);
		snprintf(m, sizeof(m), "\"%s\" must be a whole number from %lld to %lld", key,
		         (long long)lo, (long long)hi);
		section_err(errors, p, m);
	}
}

void rv_llm_check_section(const json_t *doc, json_t *errors)
{
	static const char *const keys[] = {
	    "system",     "goal",        "banned_topics", "max_turn_words",
	    "timeout_ms", "opening",     "deflection",    "transfer_to",
	    "model",      "temperature", "dispositions",  "closing",
	    NULL};
	const json_t *kind = json_object_get(doc, "kind");
	const json_t *sec = json_object_get(doc, "llm");
	if (kind && (!json_is_string(kind) || (strcmp(json_string_value(kind), "scripted") != 0 &&
	                                       strcmp(json_string_value(kind), "llm") != 0)))
		section_err(errors, "$.kind", "\"kind\" is \"scripted\" or \"llm\"");
	if (json_is_string(kind) && strcmp(json_string_value(kind), "llm") == 0 && !sec)
		section_err(errors, "$.llm",
		            "a flow of kind \"llm\" needs an \"llm\" section with at least "
		            "\"system\"");
	if (!sec)
		return;
	if (!json_is_object(sec)) {
		section_err(errors, "$.llm", "\"llm\" must be an object");
		return;
	}
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)sec, k, v)
	{
		bool known = false;
		for (int i = 0; keys[i]; i++)
			known |= strcmp(keys[i], k) == 0;
		if (!known) {
			char p[96], m[160];
			snprintf(p, sizeof(p), "$.llm.%.60s", k);
			snprintf(m, sizeof(m), "unknown key \"%.60s\" in the llm section", k);
			section_err(errors, p, m);
		}
	}
	const json_t *sys = json_object_get(sec, "system");
	if (!json_is_string(sys) || json_string_length(sys) == 0 ||
	    json_string_length(sys) > MAX_SYSTEM)
		section_err(errors, "$.llm.system",
		            "\"system\" (the model's instructions) must be a non-empty string of "
		            "at most 8000 bytes");
	check_opt_str(sec, "goal", RV_FLOW_MAX_SAY, errors);
	check_opt_str(sec, "opening", RV_FLOW_MAX_SAY, errors);
	check_opt_str(sec, "deflection", RV_FLOW_MAX_SAY, errors);
	check_opt_str(sec, "closing", RV_FLOW_MAX_SAY, errors);
	check_opt_str(sec, "transfer_to", 200, errors);
	check_opt_str(sec, "model", 200, errors);
	check_int(sec, "max_turn_words", 5, 500, errors);
	check_int(sec, "timeout_ms", 500, 60000, errors);
	const json_t *temp = json_object_get(sec, "temperature");
	if (temp &&
	    (!json_is_number(temp) || json_number_value(temp) < 0 || json_number_value(temp) > 2))
		section_err(errors, "$.llm.temperature", "\"temperature\" must be from 0 to 2");
	const json_t *bt = json_object_get(sec, "banned_topics");
	if (bt) {
		bool ok = json_is_array(bt) && json_array_size(bt) <= 50;
		size_t i;
		json_array_foreach(bt, i, v) ok &=
		    json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 100;
		if (!ok)
			section_err(
			    errors, "$.llm.banned_topics",
			    "\"banned_topics\" must be a list of up to 50 phrases of at most "
			    "100 bytes");
	}
	const json_t *ds = json_object_get(sec, "dispositions");
	if (ds) {
		bool ok = json_is_array(ds) && json_array_size(ds) > 0 && json_array_size(ds) <= 32;
		size_t i;
		json_array_foreach(ds, i, v)
		{
			const char *d = json_string_value(v);
			ok &= d && *d && strlen(d) < 48;
			for (const char *p = d; ok && *p; p++)
				ok = islower((unsigned char)*p) || *p == '_' ||
				     isdigit((unsigned char)*p);
		}
		if (!ok)
			section_err(errors, "$.llm.dispositions",
			            "\"dispositions\" must be a list of 1 to 32 lower_case names");
	}
}

bool rv_llm_flow_has_section(const struct rv_flow *flow)
{
	return json_is_object(json_object_get(rv_flow_doc(flow), "llm"));
}

/* ---- The conversation ---- */

struct rv_llm_convo {
	const struct rv_flow *flow;
	struct rv_llm *llm;  /* borrowed; NULL: scripted */
	struct rv_convo *sc; /* the scripted engine: disclosure, templates, fallback */
	const json_t *sec;   /* the flow's "llm" section (borrowed from the flow) or NULL */
	json_t *lead, *campaign;
	json_t *history; /* OpenAI messages after the system prompt */
	json_t *modes;   /* "llm" / "scripted" per turn */
	json_t *fields;  /* what set_field recorded */
	char tz[64];
	int64_t now_ms; /* pinned "now" (tests, the text endpoints); 0: the clock */
	bool scripted;  /* the flow runs the rest of the call */
	char reason[32];
	bool ended;
	char disposition[48];
	struct rv_llm_turn_info info;
};

static int64_t clock_ms(const struct rv_llm_convo *c)
{
	if (c->now_ms)
		return c->now_ms;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reasons are static strings so that info can point at them. */
static const char *reason_static(const char *r)
{
	static const char *const all[] = {
	    "",         "no_llm_section", "no_llm_configured", "timeout",
	    "http_401", "http_error",     "unreachable",       "malformed_stream",
	    "too_big",  "compliance",     "fallen_back",       NULL};
	for (int i = 0; all[i]; i++)
		if (strcmp(all[i], r) == 0)
			return all[i];
	return "http_error";
}

static const char *err_reason(int err)
{
	switch (err) {
	case -ETIMEDOUT:
		return "timeout";
	case -EACCES:
		return "http_401";
	case -ECONNREFUSED:
		return "unreachable";
	case -EPROTO:
		return "malformed_stream";
	case -EMSGSIZE:
		return "too_big";
	default:
		return "http_error";
	}
}

static void set_info(struct rv_llm_convo *c, const char *mode, const char *reason)
{
	memset(&c->info, 0, sizeof(c->info));
	c->info.mode = strcmp(mode, "llm") == 0 ? "llm" : "scripted";
	c->info.reason = reason_static(reason);
	c->info.first_sentence_ms = -1;
	json_array_append_new(c->modes, json_string(c->info.mode));
}

/* "Sunday, November 22, 2026, 10:00 AM" and "2026-11-22T10:00:00-05:00" in zone tz. */
static void local_time(const char *tz, int64_t ms, char *human, size_t hl, char *iso, size_t il)
{
	static const char *const months[] = {"January",   "February", "March",    "April",
	                                     "May",       "June",     "July",     "August",
	                                     "September", "October",  "November", "December"};
	static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
	                                   "Thursday", "Friday", "Saturday"};
	UErrorCode st = U_ZERO_ERROR;
	UChar zone[64], canon[64];
	UBool system = 0;
	u_uastrncpy(zone, tz, 63);
	zone[63] = 0;
	ucal_getCanonicalTimeZoneID(zone, -1, canon, 64, &system, &st);
	if (U_FAILURE(st) || !system) {
		st = U_ZERO_ERROR;
		u_uastrncpy(zone, "UTC", 63);
	}
	UCalendar *cal = ucal_open(zone, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
	if (U_FAILURE(st) || !cal) {
		time_t t = (time_t)(ms / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(iso, il, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
		snprintf(human, hl, "%s (UTC)", iso);
		if (cal)
			ucal_close(cal);
		return;
	}
	ucal_setMillis(cal, (UDate)ms, &st);
	int y = ucal_get(cal, UCAL_YEAR, &st), mo = ucal_get(cal, UCAL_MONTH, &st);
	int d = ucal_get(cal, UCAL_DATE, &st), h = ucal_get(cal, UCAL_HOUR_OF_DAY, &st);
	int mi = ucal_get(cal, UCAL_MINUTE, &st), sec = ucal_get(cal, UCAL_SECOND, &st);
	int dow = ucal_get(cal, UCAL_DAY_OF_WEEK, &st);
	int off =
	    (ucal_get(cal, UCAL_ZONE_OFFSET, &st) + ucal_get(cal, UCAL_DST_OFFSET, &st)) / 60000;
	ucal_close(cal);
	if (mo < 0 || mo > 11)
		mo = 0;
	if (dow < 1 || dow > 7)
		dow = 1;
	int aoff = off < 0 ? -off : off;
	snprintf(iso, il, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo + 1, d, h, mi, sec,
	         off < 0 ? '-' : '+', aoff / 60, aoff % 60);
	snprintf(human, hl, "%s, %s %d, %d, %d:%02d %s", days[dow - 1], months[mo], d, y,
	         h % 12 ? h % 12 : 12, mi, h < 12 ? "AM" : "PM");
}

/* A growing string for the prompt (capped; what does not fit is cut). */
struct sbuf {
	char *p;
	size_t n;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	if (b->oom || b->n >= MAX_PROMPT)
		return;
	if (!b->p) {
		b->p = malloc(MAX_PROMPT + 1);
		if (!b->p) {
			b->oom = true;
			return;
		}
		b->p[0] = '\0';
	}
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(b->p + b->n, MAX_PROMPT + 1 - b->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		b->n = b->n + (size_t)w > MAX_PROMPT ? MAX_PROMPT : b->n + (size_t)w;
}

static int max_words(const struct rv_llm_convo *c)
{
	const json_t *v = json_object_get(c->sec, "max_turn_words");
	return json_is_integer(v) ? (int)json_integer_value(v) : 60;
}

char *rv_llm_convo_system_prompt(const struct rv_llm_convo *c)
{
	const json_t *doc = rv_flow_doc(c->flow);
	struct sbuf b = {0};
	char *sys = rv_convo_render(c->sc, json_string_value(json_object_get(c->sec, "system")));
	sb_add(&b, "%s\n", sys ? sys : "");
	free(sys);
	const char *persona =
	    json_string_value(json_object_get(json_object_get(doc, "persona"), "name"));
	const char *camp = json_string_value(json_object_get(c->campaign, "name"));
	sb_add(&b, "\nYou are %s, an automated assistant (an AI) on a phone call%s%s.",
	       persona ? persona : "the assistant", camp ? " for " : "", camp ? camp : "");
	const char *goal = json_string_value(json_object_get(c->sec, "goal"));
	if (goal) {
		char *g = rv_convo_render(c->sc, goal);
		sb_add(&b, "\nGoal of the call: %s", g ? g : goal);
		free(g);
	}
	const char *disc = json_string_value(json_object_get(doc, "disclosure"));
	if (disc) {
		char *d = rv_convo_render(c->sc, disc);
		sb_add(&b,
		       "\nThe caller has already heard this disclosure: \"%s\". If asked, say "
		       "honestly that you are an automated assistant; never claim to be human.",
		       d ? d : disc);
		free(d);
	} else {
		sb_add(&b, "\nIf asked, say honestly that you are an automated assistant; never "
		           "claim to be human.");
	}
	sb_add(&b,
	       "\nYour words are spoken by text-to-speech: answer in short plain sentences, at "
	       "most %d words a turn, with no lists, markdown, emojis or URLs.",
	       max_words(c));
	const json_t *bt = json_object_get(c->sec, "banned_topics");
	if (json_array_size(bt) > 0) {
		sb_add(&b, "\nNever discuss these topics, even if the caller raises them: ");
		size_t i;
		const json_t *v;
		json_array_foreach(bt, i, v)
		    sb_add(&b, "%s%s", i ? "; " : "", json_string_value(v));
		sb_add(&b, ". Politely decline and return to the goal.");
	}
	char human[96], iso[40];
	local_time(c->tz, clock_ms(c), human, sizeof(human), iso, sizeof(iso));
	sb_add(&b,
	       "\nThe caller's current local date and time: %s (%s, time zone %s). Resolve "
	       "\"tomorrow\", \"next week\" and the like from it, and give schedule_callback's "
	       "\"at\" in ISO 8601 with this UTC offset.",
	       human, iso, c->tz);
	char *lead = json_dumps(c->lead, JSON_COMPACT | JSON_SORT_KEYS);
	sb_add(&b, "\nWhat we know about the caller (lead record): %.3000s", lead ? lead : "{}");
	free(lead);
	if (json_object_size(c->fields) > 0) {
		char *f = json_dumps(c->fields, JSON_COMPACT | JSON_SORT_KEYS);
		sb_add(&b, "\nRecorded during this call: %.2000s", f ? f : "{}");
		free(f);
	}
	if (camp)
		sb_add(&b, "\nCampaign: %s.", camp);
	sb_add(&b,
	       "\nUse the tools: schedule_callback when the caller agrees on a time to be called "
	       "back, set_field to record facts they give, transfer when they ask for a person, "
	       "end_call (with the outcome) once the conversation is over or they ask not to be "
	       "called again (disposition dnc_request).");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* Keep the history bounded; never start it with tool results cut from their call. */
static void trim_history(json_t *h)
{
	while (json_array_size(h) > RV_LLM_MAX_HISTORY) {
		json_array_remove(h, 0);
		while (json_array_size(h) > 0) {
			const char *role =
			    json_string_value(json_object_get(json_array_get(h, 0), "role"));
			if (role && strcmp(role, "user") == 0)
				break;
			json_array_remove(h, 0);
		}
	}
}

static struct rv_llm_convo *convo_new(const struct rv_flow *flow, struct rv_llm *llm,
                                      const struct rv_convo_ctx *ctx)
{
	struct rv_llm_convo *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->flow = flow;
	c->llm = llm;
	const json_t *sec = json_object_get(rv_flow_doc(flow), "llm");
	c->sec = json_is_object(sec) ? sec : NULL;
	c->lead = ctx->lead ? json_deep_copy(ctx->lead) : json_object();
	c->campaign = ctx->campaign ? json_deep_copy(ctx->campaign) : json_object();
	c->history = json_array();
	c->modes = json_array();
	c->fields = json_object();
	const char *tz =
	    ctx->timezone ? ctx->timezone : json_string_value(json_object_get(c->lead, "timezone"));
	rv_strlcpy(c->tz, tz && *tz ? tz : "UTC", sizeof(c->tz));
	c->now_ms = ctx->now_ms;
	if (!c->sec)
		snprintf(c->reason, sizeof(c->reason), "no_llm_section");
	else if (!llm)
		snprintf(c->reason, sizeof(c->reason), "no_llm_configured");
	c->scripted = !c->sec || !llm;
	if (!c->lead || !c->campaign || !c->history || !c->modes || !c->fields) {
		rv_llm_convo_free(c);
		return NULL;
	}
	return c;
}

void rv_llm_convo_free(struct rv_llm_convo *c)
{
	if (!c)
		return;
	rv_convo_free(c->sc);
	json_decref(c->lead);
	json_decref(c->campaign);
	json_decref(c->history);
	json_decref(c->modes);
	json_decref(c->fields);
	free(c);
}

int rv_llm_convo_start(const struct rv_flow *flow, struct rv_llm *llm,
                       const struct rv_convo_ctx *ctx, struct rv_llm_convo **out,
                       struct rv_turn_out *first)
{
	struct rv_llm_convo *c = convo_new(flow, llm, ctx);
	if (!c) {
		memset(first, 0, sizeof(*first));
		return -ENOMEM;
	}
	int err = rv_convo_start(flow, ctx, &c->sc, first);
	if (err) {
		rv_turn_out_clear(first);
		rv_llm_convo_free(c);
		return err;
	}
	if (!c->scripted) {
		const char *op = json_string_value(json_object_get(c->sec, "opening"));
		if (op) {
			char *r = rv_convo_render(c->sc, op);
			if (r) {
				free(first->say);
				first->say = r;
				for (size_t i = 0; i < first->nactions; i++)
					json_decref(first->actions[i].args);
				first->nactions = 0;
			}
		}
		free(first->state);
		first->state = strdup("llm");
		/* The model sees what the caller heard, disclosure included. */
		char said[2 * RV_FLOW_MAX_SAY + 4];
		snprintf(said, sizeof(said), "%s%s%s", first->preamble ? first->preamble : "",
		         first->preamble && *first->preamble ? " " : "",
		         first->say ? first->say : "");
		json_array_append_new(
		    c->history, json_pack("{s:s, s:s}", "role", "assistant", "content", said));
	}
	set_info(c, c->scripted ? "scripted" : "llm", c->reason);
	*out = c;
	return 0;
}

/* ---- One LLM turn ---- */

struct guard {
	struct rv_llm_convo *c;
	rv_llm_sentence_cb cb;
	void *arg;
	char said[MAX_SAID];
	size_t nsaid;
	int words, max;
	bool stopped; /* nothing more is handed out this turn */
	uint64_t t0;
};

static int count_words(const char *s)
{
	int n = 0;
	bool in = false;
	for (; *s; s++) {
		bool sp = isspace((unsigned char)*s);
		if (!sp && !in)
			n++;
		in = !sp;
	}
	return n;
}

/* Lower-case letters and digits with single spaces, padded: " word word ". */
static void normalise(const char *s, char *out, size_t len)
{
	size_t n = 0;
	out[n++] = ' ';
	for (; *s && n + 2 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch >= 0x80) {
			out[n++] = (char)tolower(ch);
		} else if (ch == '\'') {
			continue; /* "don't" and "dont" match alike */
		} else if (out[n - 1] != ' ') {
			out[n++] = ' ';
		}
	}
	if (out[n - 1] != ' ')
		out[n++] = ' ';
	out[n] = '\0';
}

/* Does the sentence mention one of the banned topics (whole words, plural "s" allowed)? */
static bool mentions_banned(const json_t *topics, const char *sentence)
{
	char s[MAX_SAID + 4], t[208];
	normalise(sentence, s, sizeof(s));
	size_t i;
	const json_t *v;
	json_array_foreach(topics, i, v)
	{
		normalise(json_string_value(v), t, sizeof(t));
		size_t tl = strlen(t);
		if (tl <= 2)
			continue;
		if (strstr(s, t))
			return true;
		/* " election " also matches " elections ". */
		char plural[212];
		snprintf(plural, sizeof(plural), "%.*ss ", (int)(tl - 1), t);
		if (strstr(s, plural))
			return true;
	}
	return false;
}

static void hand_out(struct guard *g, const char *s)
{
	size_t l = strlen(s);
	if (g->nsaid + l + 2 > sizeof(g->said))
		return;
	if (g->nsaid)
		g->said[g->nsaid++] = ' ';
	memcpy(g->said + g->nsaid, s, l + 1);
	g->nsaid += l;
	g->words += count_words(s);
	if (g->c->info.sentences++ == 0) {
		double ms = (double)(rv_time_mono_ns() - g->t0) / 1e6;
		g->c->info.first_sentence_ms = ms;
		rv_metrics_observe("rv_llm_first_sentence_seconds", ms / 1000, NULL);
	}
	if (g->cb)
		g->cb(s, g->arg);
}

static void guard_cb(const char *sentence, void *arg)
{
	struct guard *g = arg;
	struct rv_llm_convo *c = g->c;
	if (g->stopped) {
		if (!c->info.deflected)
			c->info.truncated = true;
		return;
	}
	/* Markdown marks would be read out loud. */
	char s[MAX_SAID];
	size_t n = 0;
	for (const char *p = sentence; *p && n + 1 < sizeof(s); p++)
		if (*p != '*' && *p != '#' && *p != '`')
			s[n++] = *p;
	s[n] = '\0';
	if (count_words(s) == 0)
		return;
	if (mentions_banned(json_object_get(c->sec, "banned_topics"), s)) {
		const char *d = json_string_value(json_object_get(c->sec, "deflection"));
		char *r = d ? rv_convo_render(c->sc, d) : NULL;
		rv_info(LOG, "a reply mentioned a banned topic; replaced with the deflection");
		hand_out(g, r ? r : DEFAULT_DEFLECTION);
		free(r);
		c->info.deflected = true;
		g->stopped = true;
		return;
	}
	int w = count_words(s);
	/* One run-on sentence may not blow the limit: cut it at a word past the limit. */
	if (g->words + w > g->max + g->max / 2 + 5) {
		int keep = g->max - g->words;
		if (keep < 3)
			keep = 3;
		int seen = 0;
		bool in = false;
		for (size_t i = 0; s[i]; i++) {
			bool sp = isspace((unsigned char)s[i]);
			if (!sp && !in && ++seen > keep) {
				size_t e = i;
				while (e > 0 && (isspace((unsigned char)s[e - 1]) ||
				                 ispunct((unsigned char)s[e - 1])))
					e--;
				s[e] = '.';
				s[e + 1] = '\0';
				break;
			}
			in = !sp;
		}
		c->info.truncated = true;
		g->stopped = true;
	}
	hand_out(g, s);
	if (g->words >= g->max)
		g->stopped = true;
}

static json_t *messages_for(struct rv_llm_convo *c)
{
	char *sys = rv_llm_convo_system_prompt(c);
	if (!sys)
		return NULL;
	json_t *m = json_pack("[{s:s}]", "role", "system");
	if (m) {
		json_object_set_new(json_array_get(m, 0), "content", json_string(sys));
		json_array_extend(m, c->history);
	}
	free(sys);
	return m;
}

/* Run the scripted engine for this turn (fallback or compliance). */
static int scripted_turn(struct rv_llm_convo *c, const struct rv_turn_in *in, rv_llm_sentence_cb cb,
                         void *arg, struct rv_turn_out *o, const char *reason)
{
	int err = rv_convo_turn(c->sc, in, o);
	if (err)
		return err;
	set_info(c, "scripted", reason);
	/* One path for the caller: the flow's reply comes as sentences too. */
	const char *p = o->say ? o->say : "";
	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		size_t len = rv_llm_sentence_end(p, strlen(p), true);
		if (len == 0)
			break;
		char *s = strndup(p, len);
		if (s && cb)
			cb(s, arg);
		free(s);
		c->info.sentences++;
		p += len;
	}
	if (o->end) {
		c->ended = true;
		rv_strlcpy(c->disposition, o->disposition ? o->disposition : "completed",
		           sizeof(c->disposition));
	}
	return 0;
}

static void fall_back(struct rv_llm_convo *c, const char *reason)
{
	c->scripted = true;
	rv_strlcpy(c->reason, reason, sizeof(c->reason));
	rv_metrics_inc("rv_llm_fallbacks_total", 1, reason, NULL);
	rv_warn(LOG, "the model failed (%s): the scripted flow takes over the call", reason);
}

static json_t *entities_of(const struct rv_llm_convo *c, const char *text)
{
	struct rv_entity_ctx ec = {.timezone = c->tz, .now_ms = clock_ms(c), .region = "US"};
	const char *reg = json_string_value(json_object_get(c->campaign, "default_country"));
	if (reg)
		ec.region = reg;
	return rv_entities_json(text, &ec);
}

/* Apply one round's tool calls; record the assistant message and the tool results. */
static void run_tools(struct rv_llm_convo *c, const struct rv_llm_reply *r, const char *said,
                      struct rv_turn_out *o)
{
	json_t *asst = json_pack("{s:s}", "role", "assistant");
	json_object_set_new(asst, "content", *said ? json_string(said) : json_null());
	json_t *calls = json_array(), *results = json_array();
	struct rv_llm_tool_ctx tc = {
	    .now_ms = clock_ms(c), .campaign = c->campaign, .section = c->sec};
	size_t i;
	const json_t *t;
	json_array_foreach(r->tool_calls, i, t)
	{
		const char *id = json_string_value(json_object_get(t, "id"));
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *args = json_string_value(json_object_get(t, "arguments"));
		char idbuf[32];
		if (!id || !*id) {
			snprintf(idbuf, sizeof(idbuf), "call_%zu", i);
			id = idbuf;
		}
		char why[200] = "";
		int err = rv_llm_apply_tool(name, args, &tc, o, why, sizeof(why));
		const char *tool = err == -ENOENT ? "unknown" : name;
		rv_metrics_inc("rv_llm_tool_calls_total", 1, tool, err ? "rejected" : "ok", NULL);
		if (err == -ENOENT)
			rv_warn(LOG, "the model called an unknown tool \"%.60s\": ignored", name);
		else if (err)
			rv_warn(LOG, "the model's %s call was rejected: %s", name, why);
		if (!err && strcmp(name, "set_field") == 0) {
			const json_t *a = o->actions[o->nactions - 1].args;
			json_object_set(c->fields, json_string_value(json_object_get(a, "field")),
			                json_object_get(a, "value"));
		}
		json_array_append_new(calls,
		                      json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type",
		                                "function", "function", "name", name ? name : "",
		                                "arguments", args ? args : ""));
		char res[256];
		if (err)
			snprintf(res, sizeof(res), "{\"ok\": false, \"error\": \"%s\"}", why);
		else
			snprintf(res, sizeof(res), "{\"ok\": true}");
		json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "role", "tool",
		                                         "tool_call_id", id, "content", res));
	}
	json_object_set_new(asst, "tool_calls", calls);
	json_array_append_new(c->history, asst);
	json_array_extend(c->history, results);
	json_decref(results);
}

int rv_llm_convo_turn(struct rv_llm_convo *c, const struct rv_turn_in *in,
                      rv_llm_sentence_cb on_sentence, void *arg, struct rv_turn_out *o)
{
	memset(o, 0, sizeof(*o));
	if (c->ended)
		return -EALREADY;
	if (!in->silence && !in->dtmf && !in->text)
		return -EINVAL;
	if (c->scripted)
		return scripted_turn(c, in, on_sentence, arg, o,
		                     c->reason[0] && strcmp(c->reason, "no_llm_section") != 0 &&
		                             strcmp(c->reason, "no_llm_configured") != 0
		                         ? "fallen_back"
		                         : c->reason);

	/* Understanding for the record (and compliance), as the scripted engine would. */
	const char *text = in->text ? in->text : "";
	struct rv_intent_result ir = {.intent = RV_INTENT_OOS};
	if (in->intent) {
		ir.intent = in->intent;
		ir.confidence = in->intent_conf;
	} else if (in->text && rv_intent_builtin()) {
		rv_intent_classify(rv_intent_builtin(), text, &ir);
	}
	const json_t *globals = json_object_get(rv_flow_doc(c->flow), "globals");
	if (strcmp(ir.intent, "do_not_call") == 0 && ir.confidence >= DNC_CONF &&
	    json_object_get(globals, "do_not_call")) {
		/* The caller's legal right is not left to a model: the flow's handler runs. */
		struct rv_turn_in fin = *in;
		fin.intent = ir.intent;
		fin.intent_conf = ir.confidence;
		return scripted_turn(c, &fin, on_sentence, arg, o, "compliance");
	}

	char user[RV_INTENT_MAX_TEXT + 64];
	if (in->silence)
		snprintf(user, sizeof(user), "(the caller said nothing)");
	else if (in->dtmf)
		snprintf(user, sizeof(user), "(the caller pressed the %c key)", in->dtmf);
	else
		snprintf(user, sizeof(user), "%.*s", RV_INTENT_MAX_TEXT, text);
	size_t hist_before = json_array_size(c->history);
	json_array_append_new(c->history, json_pack("{s:s, s:s}", "role", "user", "content", user));

	struct guard *g = calloc(1, sizeof(*g));
	json_t *tools = rv_llm_tools(json_object_get(c->sec, "dispositions"));
	if (!g || !tools) {
		free(g);
		json_decref(tools);
		return -ENOMEM;
	}
	set_info(c, "llm", "");
	g->c = c;
	g->cb = on_sentence;
	g->arg = arg;
	g->max = max_words(c);
	g->t0 = rv_time_mono_ns();
	const json_t *tm = json_object_get(c->sec, "timeout_ms");
	int timeout = json_is_integer(tm) ? (int)json_integer_value(tm) : 0;
	int ret = 0;

	for (int round = 0; round < 2; round++) {
		json_t *msgs = messages_for(c);
		if (!msgs) {
			ret = -ENOMEM;
			goto out;
		}
		struct rv_llm_reply r = {0};
		size_t said_before = g->nsaid;
		c->info.rounds++;
		int err = rv_llm_chat(c->llm, msgs, tools, timeout, guard_cb, g, &r);
		json_decref(msgs);
		if (err) {
			if (round == 0 && c->info.sentences == 0) {
				/* Nothing said yet: the flow answers, and keeps the call. */
				while (json_array_size(c->history) > hist_before)
					json_array_remove(c->history, hist_before);
				json_array_remove(c->modes, json_array_size(c->modes) - 1);
				const char *why = err_reason(err);
				fall_back(c, why);
				free(g);
				json_decref(tools);
				return scripted_turn(c, in, on_sentence, arg, o, why);
			}
			/* Words already spoken (or actions already taken) stand; the turn ends. */
			rv_warn(LOG, "the model failed mid-turn (%s); keeping what was said",
			        err_reason(err));
			if (g->nsaid == 0)
				hand_out(g, DEFAULT_ACK);
			json_array_append_new(
			    c->history,
			    json_pack("{s:s, s:s}", "role", "assistant", "content", g->said));
			break;
		}
		const char *this_round = g->said + said_before + (said_before ? 1 : 0);
		if (json_array_size(r.tool_calls) == 0) {
			json_array_append_new(
			    c->history, json_pack("{s:s, s:s}", "role", "assistant", "content",
			                          g->nsaid > said_before ? this_round : ""));
			rv_llm_reply_clear(&r);
			break;
		}
		run_tools(c, &r, g->nsaid > said_before ? this_round : "", o);
		rv_llm_reply_clear(&r);
		/* Tools without words: the call still needs something said. */
		if (o->end) {
			if (g->nsaid == 0) {
				const char *cl =
				    json_string_value(json_object_get(c->sec, "closing"));
				bool xfer =
				    o->disposition && strcmp(o->disposition, "transferred") == 0;
				char *rr = !xfer && cl ? rv_convo_render(c->sc, cl) : NULL;
				g->stopped = false;
				hand_out(g, rr ? rr : xfer ? DEFAULT_TRANSFER : DEFAULT_CLOSING);
				free(rr);
			}
			break;
		}
		if (g->nsaid > 0 || round == 1) {
			if (g->nsaid == 0)
				hand_out(g, DEFAULT_ACK);
			break;
		}
	}
	trim_history(c->history);

	o->preamble = strdup("");
	o->say = strdup(g->said);
	o->barge_in = true;
	o->state = strdup("llm");
	o->intent = ir.intent;
	o->intent_conf = ir.confidence;
	o->entities = entities_of(c, in->text);
	o->expect = json_array();
	if (o->end) {
		c->ended = true;
		rv_strlcpy(c->disposition, o->disposition, sizeof(c->disposition));
	} else {
		free(o->disposition);
		o->disposition = strdup("");
	}
	if (!o->preamble || !o->say || !o->state || !o->disposition)
		ret = -ENOMEM;
out:
	free(g);
	json_decref(tools);
	if (ret)
		rv_turn_out_clear(o);
	return ret;
}

void rv_llm_convo_info(const struct rv_llm_convo *c, struct rv_llm_turn_info *info)
{
	*info = c->info;
}

json_t *rv_llm_convo_snapshot(const struct rv_llm_convo *c)
{
	json_t *s = rv_convo_snapshot(c->sc);
	if (!s)
		return NULL;
	json_object_set_new(s, "llm",
	                    json_pack("{s:s, s:s, s:O, s:O, s:O, s:b, s:s}", "mode",
	                              c->scripted ? "scripted" : "llm", "reason", c->reason,
	                              "history", c->history, "modes", c->modes, "fields", c->fields,
	                              "ended", c->ended, "disposition", c->disposition));
	if (!c->scripted || c->ended) {
		json_object_set_new(s, "ended", json_boolean(c->ended));
		json_object_set_new(s, "disposition", json_string(c->disposition));
	}
	return s;
}

/* A history message from a client, rebuilt with only the members we send. */
static json_t *clean_message(const json_t *m)
{
	const char *role = json_string_value(json_object_get(m, "role"));
	const json_t *content = json_object_get(m, "content");
	if (!role || (content && !json_is_string(content) && !json_is_null(content)) ||
	    json_string_length(content) > MAX_HISTORY_TEXT)
		return NULL;
	if (strcmp(role, "user") == 0 && json_is_string(content))
		return json_pack("{s:s, s:O}", "role", role, "content", content);
	if (strcmp(role, "tool") == 0 && json_is_string(content)) {
		const char *id = json_string_value(json_object_get(m, "tool_call_id"));
		if (!id || strlen(id) > 64)
			return NULL;
		return json_pack("{s:s, s:s, s:O}", "role", role, "tool_call_id", id, "content",
		                 content);
	}
	if (strcmp(role, "assistant") != 0)
		return NULL;
	json_t *out = json_pack("{s:s, s:O}", "role", role, "content",
	                        content ? (json_t *)content : json_null());
	const json_t *tcs = json_object_get(m, "tool_calls");
	if (!tcs)
		return out;
	if (!json_is_array(tcs) || json_array_size(tcs) > RV_LLM_MAX_TOOL_CALLS) {
		json_decref(out);
		return NULL;
	}
	json_t *calls = json_array();
	size_t i;
	const json_t *t;
	json_array_foreach(tcs, i, t)
	{
		const json_t *fn = json_object_get(t, "function");
		const char *id = json_string_value(json_object_get(t, "id"));
		const char *name = json_string_value(json_object_get(fn, "name"));
		const char *args = json_string_value(json_object_get(fn, "arguments"));
		if (!id || !name || !args || strlen(id) > 64 || strlen(name) > 64 ||
		    strlen(args) > RV_LLM_MAX_TOOL_ARGS) {
			json_decref(calls);
			json_decref(out);
			return NULL;
		}
		json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type",
		                                       "function", "function", "name", name,
		                                       "arguments", args));
	}
	json_object_set_new(out, "tool_calls", calls);
	return out;
}

int rv_llm_convo_resume(const struct rv_flow *flow, struct rv_llm *llm,
                        const struct rv_convo_ctx *ctx, const json_t *snap,
                        struct rv_llm_convo **out)
{
	const json_t *l = json_object_get(snap, "llm");
	if (l && !json_is_object(l))
		return -EINVAL;
	struct rv_llm_convo *c = convo_new(flow, llm, ctx);
	if (!c)
		return -ENOMEM;
	int err = rv_convo_resume(flow, ctx, snap, &c->sc);
	if (err)
		goto fail;
	err = -EINVAL;
	if (l) {
		const json_t *h = json_object_get(l, "history");
		const json_t *modes = json_object_get(l, "modes");
		const json_t *fields = json_object_get(l, "fields");
		const char *mode = json_string_value(json_object_get(l, "mode"));
		const char *reason = json_string_value(json_object_get(l, "reason"));
		const char *disp = json_string_value(json_object_get(l, "disposition"));
		if ((h && (!json_is_array(h) || json_array_size(h) > 2 * RV_LLM_MAX_HISTORY)) ||
		    (modes && (!json_is_array(modes) || json_array_size(modes) > 10000)) ||
		    (fields && (!json_is_object(fields) || json_object_size(fields) > 64)) ||
		    (mode && strcmp(mode, "llm") != 0 && strcmp(mode, "scripted") != 0) ||
		    (reason && strlen(reason) >= sizeof(c->reason)) ||
		    (disp && strlen(disp) >= sizeof(c->disposition)))
			goto fail;
		size_t i;
		const json_t *v;
		json_array_foreach(h, i, v)
		{
			json_t *m = clean_message(v);
			if (!m)
				goto fail;
			json_array_append_new(c->history, m);
		}
		json_array_foreach(modes, i, v)
		{
			const char *s = json_string_value(v);
			if (!s || (strcmp(s, "llm") != 0 && strcmp(s, "scripted") != 0))
				goto fail;
			json_array_append_new(c->modes, json_string(s));
		}
		const char *k;
		json_object_foreach((json_t *)fields, k, v)
		{
			if (!field_name_ok(k) || json_is_object(v) || json_is_array(v))
				goto fail;
			json_object_set(c->fields, k, (json_t *)v);
		}
		/* A conversation can move to the flow, never back to a model it had lost. */
		if (mode && strcmp(mode, "scripted") == 0 && !c->scripted) {
			c->scripted = true;
			rv_strlcpy(c->reason, reason_static(reason ? reason : "fallen_back"),
			           sizeof(c->reason));
		}
		c->ended = json_is_true(json_object_get(l, "ended"));
		rv_strlcpy(c->disposition, disp ? disp : "", sizeof(c->disposition));
	}
	c->info.mode = c->scripted ? "scripted" : "llm";
	c->info.reason = reason_static(c->reason);
	c->info.first_sentence_ms = -1;
	*out = c;
	return 0;
fail:
	rv_llm_convo_free(c);
	return err;
}
