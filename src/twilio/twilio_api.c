/*
 * Twilio's webhooks: POST /twilio/voice answers a call with TwiML that connects it to our Media
 * Streams socket; POST /twilio/status follows the calls we placed. Both run on control-plane
 * threads, read form bodies, and trust a request only with a valid X-Twilio-Signature (when
 * twilio.validate_signature is 1) for our account. See docs/adr/0011-twilio.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"
#include "tel/tel.h"
#include "twilio/twilio_api.h"
#include "twilio/twilio_int.h"

#define TWIML_MAX 16384
#define URL_MAX   4096

/* ---- helpers shared with the rest of the module ---------------------------------------- */

int tw_public_url(const char *public_url, const char *path, const char *query, char *out,
                  size_t outlen)
{
	size_t blen = public_url ? strlen(public_url) : 0;
	while (blen && public_url[blen - 1] == '/')
		blen--;
	int n = snprintf(out, outlen, "%.*s%s%s%s", (int)blen, public_url ? public_url : "",
	                 path ? path : "", query ? "?" : "", query ? query : "");
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int tw_stream_url(const char *public_url, char *out, size_t outlen)
{
	const char *scheme, *rest;
	if (!public_url)
		return -EINVAL;
	if (strncasecmp(public_url, "https://", 8) == 0) {
		scheme = "wss://";
		rest = public_url + 8;
	} else if (strncasecmp(public_url, "http://", 7) == 0) {
		scheme = "ws://";
		rest = public_url + 7;
	} else {
		return -EINVAL;
	}
	size_t len = strlen(rest);
	while (len && rest[len - 1] == '/')
		len--;
	/* A host is required; a query or fragment has no place in a base URL; and the value goes
	 * into an XML attribute, so characters that would need escaping there are refused. */
	if (len == 0 || rest[0] == '/' || strcspn(rest, "?#\"'<>& \t\r\n") < len)
		return -EINVAL;
	int n = snprintf(out, outlen, "%s%.*s/twilio/stream", scheme, (int)len, rest);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int tw_xml_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0, n = s ? strlen(s) : 0;
	char *tmp = malloc(n + 1);
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, s ? s : "", n + 1);
	rv_utf8_scrub(tmp); /* bytes that are not UTF-8 become '?' */
	int err = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tmp[i];
		const char *ent = NULL;
		char one[2] = {(char)c, '\0'};
		switch (c) {
		case '&':
			ent = "&amp;";
			break;
		case '<':
			ent = "&lt;";
			break;
		case '>':
			ent = "&gt;";
			break;
		case '"':
			ent = "&quot;";
			break;
		case '\'':
			ent = "&apos;";
			break;
		default:
			/* XML 1.0 has no way to carry these, escaped or not. */
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				one[0] = '?';
			ent = one;
		}
		size_t el = strlen(ent);
		if (o + el + 1 > outlen) {
			err = -ENOSPC;
			break;
		}
		memcpy(out + o, ent, el);
		o += el;
	}
	free(tmp);
	if (outlen)
		out[err ? 0 : o] = '\0';
	return err;
}

/* ---- request checks -------------------------------------------------------------------- */

static bool is_form(const struct rv_http_req *req)
{
	const char *ct = rv_http_header(req, "Content-Type");
	static const char want[] = "application/x-www-form-urlencoded";
	return ct && strncasecmp(ct, want, sizeof(want) - 1) == 0 &&
	       (ct[sizeof(want) - 1] == '\0' || ct[sizeof(want) - 1] == ';' ||
	        ct[sizeof(want) - 1] == ' ');
}

static void refuse(struct rv_http_resp *resp, const char *route, const char *result, int status,
                   const char *client, const char *msg)
{
	tw_count_webhook(route, result);
	rv_logkv(RV_LOG_WARN, TW_COMP, "webhook refused", "route", route, "reason", result,
	         "client", client, "detail", msg, NULL);
	/* The API's error codes by status; the Twilio-specific reason goes in the details. */
	const char *code = status == 403   ? "forbidden"
	                   : status == 415 ? "unsupported_media_type"
	                   : status == 400 ? "invalid_body"
	                                   : "internal";
	rv_http_reply_error(resp, status, code, json_pack("{s:s}", "reason", result), "%s", msg);
}

/*
 * Parse the form and check the signature and the account. On failure the reply is written
 * and -1 returned; on success *form is filled (free it).
 */
static int check_request(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                         const char *route, struct tw_form *form)
{
	const struct rv_config *cfg = app->cfg;
	if (!is_form(req)) {
		refuse(resp, route, "unsupported_media_type", 415, req->client_ip,
		       "the body must be application/x-www-form-urlencoded");
		return -1;
	}
	int err = tw_form_parse(req->body, req->body_len, form);
	if (err) {
		refuse(resp, route, "invalid_form", err == -ENOMEM ? 500 : 400, req->client_ip,
		       "the form body cannot be decoded");
		return -1;
	}
	if (cfg->twilio_validate) {
		char url[URL_MAX];
		const char *sig = rv_http_header(req, "X-Twilio-Signature");
		if (!sig || !*sig) {
			refuse(resp, route, "missing_signature", 403, req->client_ip,
			       "X-Twilio-Signature is missing");
			goto fail;
		}
		if (tw_public_url(cfg->twilio_public, req->path, req->query, url, sizeof(url))) {
			refuse(resp, route, "bad_signature", 403, req->client_ip,
			       "the request URL is too long to check");
			goto fail;
		}
		int ok = tw_signature_check(cfg->twilio_token, url, form, sig);
		if (ok < 0) {
			rv_error(TW_COMP, "cannot compute a webhook signature: %s", strerror(-ok));
			tw_count_webhook(route, "internal");
			rv_http_reply_error(resp, 500, "internal", NULL,
			                    "cannot check the signature");
			goto fail;
		}
		if (!ok) {
			refuse(resp, route, "bad_signature", 403, req->client_ip,
			       "X-Twilio-Signature does not match");
			goto fail;
		}
	}
	const char *acct = tw_form_get(form, "AccountSid");
	if (!acct || strcmp(acct, cfg->twilio_sid) != 0) {
		refuse(resp, route, "account_mismatch", 403, req->client_ip,
		       "AccountSid is not this daemon's Twilio account");
		goto fail;
	}
	return 0;
fail:
	tw_form_free(form);
	return -1;
}

static int64_t query_call_id(const struct rv_http_req *req, int *bad)
{
	const char *s = rv_http_query(req, "call_id");
	int64_t id = 0;
	*bad = 0;
	if (!s)
		return 0;
	if (rv_parse_int64(s, 1, INT64_MAX, &id) != 0)
		*bad = 1;
	return id;
}

/* ---- TwiML ----------------------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void sb_add(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->err || b->len + n + 1 > b->cap) {
		b->err = -ENOSPC;
		return;
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static void sb_param(struct sbuf *b, const char *name, const char *value)
{
	char esc[4 * TW_ADDR_MAX];
	if (tw_xml_escape(value, esc, sizeof(esc)) != 0) {
		b->err = -ENOSPC;
		return;
	}
	sb_add(b, "<Parameter name=\"");
	sb_add(b, name);
	sb_add(b, "\" value=\"");
	sb_add(b, esc);
	sb_add(b, "\"/>");
}

static void reply_twiml(struct rv_http_resp *resp, const char *body)
{
	rv_http_reply_raw(resp, 200, "text/xml; charset=utf-8", body, strlen(body));
}

/* A call we cannot take: end it cleanly rather than let Twilio read an error page. */
static void reply_hangup(struct rv_http_resp *resp)
{
	reply_twiml(resp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	                  "<Response><Hangup/></Response>");
}

/* ---- POST /twilio/voice ---------------------------------------------------------------- */

/* The outbound row we created for this call: channel twilio, not over, same or no Call SID. */
static int check_outbound_row(struct rv_app *app, int64_t id, const char *sid)
{
	static const char sql[] = "SELECT channel, direction, ended_at, twilio_call_sid FROM calls "
	                          "WHERE id = $1";
	struct rv_val p[1] = {RV_VINT(id)};
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(app->store, sql, p, 1, &rows, NULL);
	if (err)
		return err;
	err = -ENOENT;
	if (rows->nrows == 1) {
		const struct rv_val *ch = rv_rows_at(rows, 0, 0), *dir = rv_rows_at(rows, 0, 1);
		const struct rv_val *end = rv_rows_at(rows, 0, 2), *cs = rv_rows_at(rows, 0, 3);
		if (ch->type == RV_VAL_TEXT && strcmp(ch->s, "twilio") == 0 &&
		    dir->type == RV_VAL_TEXT && strcmp(dir->s, "outbound") == 0 &&
		    end->type == RV_VAL_NULL &&
		    (cs->type == RV_VAL_NULL ||
		     (cs->type == RV_VAL_TEXT && strcmp(cs->s, sid) == 0)))
			err = 0;
	}
	rv_rows_free(rows);
	return err;
}

static void voice_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *route = "voice";
	struct tw_form form = {0};
	char idbuf[24], campbuf[24], url[512], *twiml = NULL;
	struct rv_twilio *tw = tw_acquire();

	if (!tw) {
		tw_count_webhook(route, "unavailable");
		rv_http_reply_error(resp, 503, "unavailable", NULL,
		                    "the Twilio channel is not running on this node");
		return;
	}
	if (!tw->streams_on) {
		tw_count_webhook(route, "unavailable");
		rv_http_reply_error(resp, 503, "unavailable", NULL,
		                    "this node does not take Media Streams (twilio.stream_listen)");
		goto out;
	}
	if (check_request(app, req, resp, route, &form) != 0)
		goto out;

	const char *sid = tw_form_get(&form, "CallSid");
	const char *from = tw_form_get(&form, "From");
	const char *to = tw_form_get(&form, "To");
	const char *dir = tw_form_get(&form, "Direction");
	int bad_id = 0;
	int64_t call_id = query_call_id(req, &bad_id);
	if (!tw_sid_ok(sid) || bad_id || (from && strlen(from) >= TW_ADDR_MAX) ||
	    (to && strlen(to) >= TW_ADDR_MAX)) {
		refuse(resp, route, "bad_request", 400, req->client_ip,
		       "CallSid, From, To or call_id is missing or malformed");
		goto out;
	}
	struct tw_pending p = {.call_id = call_id};
	rv_strlcpy(p.call_sid, sid, sizeof(p.call_sid));
	rv_strlcpy(p.from, from ? from : "", sizeof(p.from));
	rv_strlcpy(p.to, to ? to : "", sizeof(p.to));
	/* Twilio says inbound, outbound-api or outbound-dial. */
	p.outbound = call_id > 0 || (dir && strncmp(dir, "outbound", 8) == 0);

	if (call_id > 0) {
		int err = check_outbound_row(app, call_id, sid);
		if (err) {
			snprintf(idbuf, sizeof(idbuf), "%" PRId64, call_id);
			tw_count_webhook(route, err == -ENOENT ? "unknown_call" : "store_error");
			rv_logkv(RV_LOG_WARN, TW_COMP, "voice webhook for a call we cannot take",
			         "call", idbuf, "call_sid", sid, "error",
			         err == -ENOENT ? "no such live twilio call"
			                        : rv_store_strerror(err),
			         NULL);
			reply_hangup(resp);
			goto out;
		}
		/* The row learns its Call SID now: status callbacks and logs find it by it. */
		struct rv_val up[2] = {RV_VINT(call_id), RV_VTEXT(sid)};
		err = rv_store_exec(app->store,
		                    "UPDATE calls SET twilio_call_sid = $2 WHERE id = $1 AND "
		                    "twilio_call_sid IS NULL",
		                    up, 2, NULL, NULL);
		if (err)
			rv_warn(TW_COMP, "cannot store the Call SID of call %" PRId64 ": %s",
			        call_id, rv_store_strerror(err));
	} else {
		/* Inbound: the telephony service writes the row when the stream attaches (it
		 * routes by To the same way); the lookup here only names the campaign in TwiML. */
		struct rv_tel_route r;
		if (!p.outbound && rv_tel_route_lookup(tw->tel, p.to, &r) == 0)
			p.campaign_id = r.campaign_id;
	}
	if (tw_pending_add(tw, &p) != 0) {
		tw_count_webhook(route, "busy");
		rv_logkv(RV_LOG_WARN, TW_COMP, "too many streams announced and not opened",
		         "call_sid", sid, NULL);
		reply_hangup(resp);
		goto out;
	}

	if (tw_stream_url(app->cfg->twilio_public, url, sizeof(url)) != 0) {
		tw_count_webhook(route, "internal");
		rv_http_reply_error(resp, 500, "internal", NULL, "twilio.public_url is unusable");
		goto out;
	}
	twiml = malloc(TWIML_MAX);
	if (!twiml) {
		rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
		goto out;
	}
	struct sbuf b = {.p = twiml, .cap = TWIML_MAX};
	twiml[0] = '\0';
	sb_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect><Stream url=\"");
	sb_add(&b, url); /* checked by tw_stream_url: nothing to escape */
	sb_add(&b, "\">");
	if (call_id > 0) {
		snprintf(idbuf, sizeof(idbuf), "%" PRId64, call_id);
		sb_param(&b, "call_id", idbuf);
	}
	if (p.campaign_id > 0) {
		snprintf(campbuf, sizeof(campbuf), "%" PRId64, p.campaign_id);
		sb_param(&b, "campaign_id", campbuf);
	}
	sb_param(&b, "call_sid", sid);
	sb_param(&b, "from", p.from);
	sb_param(&b, "to", p.to);
	sb_param(&b, "direction", p.outbound ? "outbound" : "inbound");
	sb_add(&b, "</Stream></Connect></Response>");
	if (b.err) {
		tw_count_webhook(route, "internal");
		rv_http_reply_error(resp, 500, "internal", NULL, "the TwiML answer is too long");
		goto out;
	}
	tw_count_webhook(route, "ok");
	rv_logkv(RV_LOG_INFO, TW_COMP, "voice webhook: connecting the stream", "call_sid", sid,
	         "direction", p.outbound ? "outbound" : "inbound", "from", p.from, "to", p.to,
	         NULL);
	reply_twiml(resp, twiml);
out:
	free(twiml);
	tw_form_free(&form);
	tw_release();
}

/* ---- POST /twilio/status --------------------------------------------------------------- */

/* Twilio's CallStatus for a call that ended without ever being connected to us. */
static bool unanswered_end(const char *status, const char **disp, const char **cause)
{
	static const struct {
		const char *status, *disp, *cause;
	} map[] = {
	    {"busy", "busy", "busy"},
	    {"no-answer", "no_answer", "no_answer"},
	    {"failed", "failed", "twilio_failed"},
	    {"canceled", "cancelled", "cancelled"},
	    {"completed", "failed", "no_stream"},
	};
	for (size_t i = 0; i < RV_ARRAY_LEN(map); i++) {
		if (strcmp(status, map[i].status) == 0) {
			*disp = map[i].disp;
			*cause = map[i].cause;
			return true;
		}
	}
	return false;
}

static int find_row(struct rv_app *app, int64_t call_id, const char *sid, int64_t *id)
{
	struct rv_rows *rows = NULL;
	int err;
	if (call_id > 0) {
		struct rv_val p[2] = {RV_VINT(call_id), RV_VTEXT(sid)};
		err = rv_store_exec(app->store,
		                    "SELECT id FROM calls WHERE id = $1 AND channel = 'twilio' AND "
		                    "(twilio_call_sid IS NULL OR twilio_call_sid = $2)",
		                    p, 2, &rows, NULL);
	} else {
		struct rv_val p[1] = {RV_VTEXT(sid)};
		err = rv_store_exec(
		    app->store, "SELECT id FROM calls WHERE twilio_call_sid = $1 ORDER BY id DESC",
		    p, 1, &rows, NULL);
	}
	if (err)
		return err;
	err = rows->nrows >= 1 && rv_rows_at(rows, 0, 0)->type == RV_VAL_INT ? 0 : -ENOENT;
	if (!err)
		*id = rv_rows_at(rows, 0, 0)->i;
	rv_rows_free(rows);
	return err;
}

static void status_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *route = "status";
	struct tw_form form = {0};
	char now[40], idbuf[24];
	struct rv_twilio *tw = tw_acquire();
	int err;

	if (!tw) {
		tw_count_webhook(route, "unavailable");
		rv_http_reply_error(resp, 503, "unavailable", NULL,
		                    "the Twilio channel is not running on this node");
		return;
	}
	if (check_request(app, req, resp, route, &form) != 0)
		goto out;
	const char *sid = tw_form_get(&form, "CallSid");
	const char *status = tw_form_get(&form, "CallStatus");
	int bad_id = 0;
	int64_t call_id = query_call_id(req, &bad_id), id = 0;
	if (!tw_sid_ok(sid) || !status || bad_id) {
		refuse(resp, route, "bad_request", 400, req->client_ip,
		       "CallSid or CallStatus is missing or malformed");
		goto out;
	}
	err = find_row(app, call_id, sid, &id);
	if (err) {
		tw_count_webhook(route, err == -ENOENT ? "unknown_call" : "store_error");
		rv_logkv(RV_LOG_WARN, TW_COMP, "status callback for an unknown call", "call_sid",
		         sid, "status", status, NULL);
		rv_http_reply_error(resp, err == -ENOENT ? 404 : 503,
		                    err == -ENOENT ? "not_found" : "unavailable", NULL,
		                    "no Twilio call %s here", sid);
		goto out;
	}
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	rv_time_iso_now(now, sizeof(now));

	const char *disp = NULL, *cause = NULL;
	if (strcmp(status, "ringing") == 0) {
		struct rv_val p[3] = {RV_VINT(id), RV_VTEXT(now), RV_VTEXT(sid)};
		err = rv_store_exec(app->store,
		                    "UPDATE calls SET state = 'ringing', ringing_at = "
		                    "COALESCE(ringing_at, $2), twilio_call_sid = "
		                    "COALESCE(twilio_call_sid, $3) WHERE id = $1 AND state = "
		                    "'queued'",
		                    p, 3, NULL, NULL);
	} else if (unanswered_end(status, &disp, &cause)) {
		/* The service owns the row while the call is waiting for its stream; once the
		 * stream has attached (-EALREADY) the stream's end writes the outcome. A row the
		 * service does not hold (a restart in between) is closed here if still open. */
		int e = rv_tel_call_unattached_end(tw->tel, id, disp, cause);
		if (e == -ENOENT) {
			struct rv_val p[4] = {RV_VINT(id), RV_VTEXT(now), RV_VTEXT(disp),
			                      RV_VTEXT(cause)};
			err = rv_store_exec(
			    app->store,
			    "UPDATE calls SET state = 'ended', ended_at = $2, "
			    "disposition = $3, hangup_cause = $4, hangup_by = 'remote' "
			    "WHERE id = $1 AND ended_at IS NULL",
			    p, 4, NULL, NULL);
		}
	} else if (strcmp(status, "queued") != 0 && strcmp(status, "initiated") != 0 &&
	           strcmp(status, "in-progress") != 0) {
		refuse(resp, route, "bad_request", 400, req->client_ip, "unknown CallStatus");
		goto out;
	}
	if (err) {
		tw_count_webhook(route, "store_error");
		rv_http_reply_error(resp, 503, "unavailable", NULL, "cannot update the call: %s",
		                    rv_store_strerror(err));
		goto out;
	}
	tw_count_webhook(route, "ok");
	rv_logkv(RV_LOG_INFO, TW_COMP, "status callback", "call", idbuf, "call_sid", sid, "status",
	         status, NULL);
	rv_http_reply_raw(resp, 204, NULL, NULL, 0);
out:
	tw_form_free(&form);
	tw_release();
}

const struct rv_route rv_api_twilio_routes[] = {
    {"POST", "/twilio/voice", RV_ROLE_NONE, 0, voice_h},
    {"POST", "/twilio/status", RV_ROLE_NONE, 0, status_h},
};
const size_t rv_api_twilio_routes_len = RV_ARRAY_LEN(rv_api_twilio_routes);
