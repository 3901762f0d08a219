/*
 * Outbound calls through Twilio's REST API with libcurl: POST .../Calls.json with HTTP Basic
 * auth (Account SID : Auth Token) and a form body; the answer is a call resource or Twilio's
 * error document {code, message, more_info, status}. Control-plane threads only (blocking).
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "store/store.h"
#include "twilio/twilio_int.h"

#define M_REST          "rv_twilio_rest_requests_total"
#define MAX_ANSWER      (64 * 1024) /* a call resource is ~2 KiB; an error ~300 bytes */
#define CONNECT_TIMEOUT 5L
#define TOTAL_TIMEOUT   15L

struct answer {
	char *p;
	size_t len;
	bool too_big;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;
	if (a->len + n > MAX_ANSWER) {
		a->too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	char *p = realloc(a->p, a->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + a->len, data, n);
	a->p = p;
	a->len += n;
	a->p[a->len] = '\0';
	return n;
}

static void count(const char *result)
{
	rv_metrics_register(M_REST, RV_METRIC_COUNTER,
	                    "Requests to Twilio's REST API by result (ok, refused, error).",
	                    "result", NULL, 0);
	rv_metrics_inc(M_REST, 1, result, NULL);
}

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Append name=value, both escaped, to the form body. */
static int form_add(CURL *c, char **body, size_t *len, const char *name, const char *value)
{
	char *n = curl_easy_escape(c, name, 0), *v = curl_easy_escape(c, value, 0);
	int err = 0;
	if (!n || !v) {
		err = -ENOMEM;
		goto out;
	}
	size_t add = strlen(n) + strlen(v) + 2;
	char *p = realloc(*body, *len + add + 1);
	if (!p) {
		err = -ENOMEM;
		goto out;
	}
	*body = p;
	*len += (size_t)snprintf(p + *len, add + 1, "%s%s=%s", *len ? "&" : "", n, v);
out:
	curl_free(n);
	curl_free(v);
	return err;
}

/* Errors Twilio describes: "Twilio refused the call (HTTP 401, code 20003): Authenticate". */
static int twilio_error(long http, const struct answer *a, char *err, size_t errlen)
{
	json_t *j = a->p ? json_loadb(a->p, a->len, 0, NULL) : NULL;
	json_t *code = json_object_get(j, "code");
	const char *msg = json_string_value(json_object_get(j, "message"));
	const char *more = json_string_value(json_object_get(j, "more_info"));
	char m[256], tail[300] = "";
	rv_strlcpy(m, msg ? msg : "no error document", sizeof(m));
	rv_utf8_scrub(m);
	if (more) {
		snprintf(tail, sizeof(tail), " (see %s)", more);
		rv_utf8_scrub(tail);
	}
	if (json_is_integer(code))
		say(err, errlen,
		    "Twilio refused the call (HTTP %ld, code %" JSON_INTEGER_FORMAT "): %s%s", http,
		    json_integer_value(code), m, tail);
	else
		say(err, errlen, "Twilio refused the call (HTTP %ld): %s%s", http, m, tail);
	json_decref(j);
	if (http == 401 || http == 403)
		return http == 401 ? -EACCES : -EPERM;
	if (http == 429)
		return -EAGAIN;
	if (http >= 500)
		return -EIO;
	return -EPERM;
}

/* Parse a created call resource: its sid and status. */
static int call_created(const struct answer *a, char *sid, size_t sidlen, char *status,
                        size_t statuslen, char *err, size_t errlen)
{
	json_t *j = a->p ? json_loadb(a->p, a->len, 0, NULL) : NULL;
	const char *s = json_string_value(json_object_get(j, "sid"));
	const char *st = json_string_value(json_object_get(j, "status"));
	int ret = 0;
	if (!tw_sid_ok(s)) {
		say(err, errlen, "Twilio's answer carries no usable call sid");
		ret = -EIO;
	} else {
		rv_strlcpy(sid, s, sidlen);
		rv_strlcpy(status, st && strlen(st) < 32 ? st : "", statuslen);
	}
	json_decref(j);
	return ret;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	default:
		return -EIO;
	}
}

int rv_twilio_dial(struct rv_app *app, const struct rv_twilio_dial *d, char *sid_out, size_t sidlen,
                   char *err, size_t errlen)
{
	const struct rv_config *cfg = app ? app->cfg : NULL;
	char url[1024], voice[1024], status_cb[1024], q[40], sid[64], status[32];
	struct answer a = {0};
	struct curl_slist *hdrs = NULL;
	char *body = NULL;
	size_t blen = 0;
	CURL *c = NULL;
	int ret = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!cfg || !d || d->call_id <= 0 || !d->to || !*d->to || strlen(d->to) >= TW_ADDR_MAX ||
	    !d->from || !*d->from || strlen(d->from) >= TW_ADDR_MAX) {
		say(err, errlen, "a Twilio call needs a call row, To and From (our Twilio number)");
		return -EINVAL;
	}
	if (!tw_sid_ok(cfg->twilio_sid) || !cfg->twilio_token || !*cfg->twilio_token) {
		say(err, errlen, "twilio.account_sid and twilio.auth_token must be set");
		return -EINVAL;
	}
	snprintf(q, sizeof(q), "call_id=%" PRId64, d->call_id);
	if (tw_public_url(cfg->twilio_public, "/twilio/voice", q, voice, sizeof(voice)) ||
	    tw_public_url(cfg->twilio_public, "/twilio/status", q, status_cb, sizeof(status_cb)) ||
	    strncmp(voice, "http", 4) != 0) {
		say(err, errlen, "twilio.public_url must be our public https:// base URL");
		return -EINVAL;
	}
	size_t blen_base = strlen(cfg->twilio_api_base ? cfg->twilio_api_base : "");
	while (blen_base && cfg->twilio_api_base[blen_base - 1] == '/')
		blen_base--;
	int n = snprintf(url, sizeof(url), "%.*s/2010-04-01/Accounts/%s/Calls.json", (int)blen_base,
	                 cfg->twilio_api_base ? cfg->twilio_api_base : "", cfg->twilio_sid);
	if (n < 0 || (size_t)n >= sizeof(url) || blen_base == 0) {
		say(err, errlen, "twilio.api_base is empty or too long");
		return -EINVAL;
	}

	c = curl_easy_init();
	if (!c) {
		say(err, errlen, "cannot create a libcurl handle");
		return -ENOMEM;
	}
	/* Twilio reports every step we can act on; "answered" arrives as our voice webhook. */
	static const char *const events[] = {"initiated", "ringing", "answered", "completed"};
	ret = form_add(c, &body, &blen, "To", d->to);
	if (!ret)
		ret = form_add(c, &body, &blen, "From", d->from);
	if (!ret)
		ret = form_add(c, &body, &blen, "Url", voice);
	if (!ret)
		ret = form_add(c, &body, &blen, "Method", "POST");
	if (!ret)
		ret = form_add(c, &body, &blen, "StatusCallback", status_cb);
	if (!ret)
		ret = form_add(c, &body, &blen, "StatusCallbackMethod", "POST");
	for (size_t i = 0; !ret && i < RV_ARRAY_LEN(events); i++)
		ret = form_add(c, &body, &blen, "StatusCallbackEvent", events[i]);
	if (!ret && cfg->sip_no_answer > 0) {
		char t[16];
		snprintf(t, sizeof(t), "%d", cfg->sip_no_answer);
		ret = form_add(c, &body, &blen, "Timeout", t);
	}
	if (ret) {
		say(err, errlen, "out of memory building the request");
		goto out;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c, CURLOPT_USERNAME, cfg->twilio_sid);
	curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->twilio_token);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "revovoice/" RV_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, TOTAL_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);

	CURLcode rc = curl_easy_perform(c);
	long http = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
	if (rc != CURLE_OK) {
		if (a.too_big)
			say(err, errlen, "Twilio's answer is larger than %d bytes", MAX_ANSWER);
		else
			say(err, errlen, "cannot reach Twilio at %.*s: %s", (int)blen_base,
			    cfg->twilio_api_base, curl_easy_strerror(rc));
		ret = a.too_big ? -EIO : curl_errno(rc);
		count("error");
		goto out;
	}
	if (http != 200 && http != 201) {
		ret = twilio_error(http, &a, err, errlen);
		count("refused");
		goto out;
	}
	ret = call_created(&a, sid, sizeof(sid), status, sizeof(status), err, errlen);
	if (ret) {
		count("error");
		goto out;
	}
	count("ok");
	struct rv_val p[2] = {RV_VINT(d->call_id), RV_VTEXT(sid)};
	int serr = rv_store_exec(app->store,
	                         "UPDATE calls SET twilio_call_sid = $2 WHERE id = $1 AND "
	                         "twilio_call_sid IS NULL",
	                         p, 2, NULL, NULL);
	if (serr)
		rv_warn(TW_COMP, "cannot store Call SID %s on call %" PRId64 ": %s", sid,
		        d->call_id, rv_store_strerror(serr));
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, d->call_id);
	rv_logkv(RV_LOG_INFO, TW_COMP, "Twilio accepted the call", "call", id, "call_sid", sid,
	         "status", status, "to", d->to, NULL);
	if (sid_out && sidlen)
		rv_strlcpy(sid_out, sid, sidlen);
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(body);
	free(a.p);
	return ret;
}
