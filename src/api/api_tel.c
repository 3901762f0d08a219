/*
 * Call control over the API: place a call (POST /api/calls) and act on a live one (hang up,
 * transfer, send DTMF, start or stop recording). Handlers validate, then queue a command to
 * the media plane through src/tel and answer 202 at once: the outcome shows in the call row.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/audit.h"
#include "api/resource.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/util.h"
#include "store/store.h"
#include "tel/tel.h"

#define COMP "api"

/* The calls row as the API shows it (same typing as the read-only calls resource). */
static const struct rv_res_field call_fields[] = {
    {"campaign_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"lead_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"duration_ms", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"rtp_stats", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
    {"latency", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
    {"extracted", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
};

static const struct rv_res calls_res = {
    .name = "calls",
    .table = "calls",
    .noun = "call",
    .fields = call_fields,
    .nfields = RV_ARRAY_LEN(call_fields),
};

/* Check the body's keys against `allowed`; 400 on the first unknown one. */
static int only_keys(struct rv_http_resp *resp, json_t *body, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v)
	{
		size_t i;
		for (i = 0; allowed[i] && strcmp(allowed[i], key) != 0; i++)
			;
		if (!allowed[i])
			return rv_res_fail_field(resp, "calls", key, "unknown field");
	}
	return 0;
}

/* Optional string field: NULL when absent; 400 when of the wrong type or too long. */
static int opt_str(struct rv_http_resp *resp, json_t *body, const char *field, size_t cap,
                   bool required, const char **out)
{
	json_t *v = json_object_get(body, field);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return rv_res_fail_field(resp, "calls", field, "is required");
		return 0;
	}
	if (!json_is_string(v))
		return rv_res_fail_field(resp, "calls", field, "must be a string");
	size_t len = json_string_length(v);
	if (len == 0 && required)
		return rv_res_fail_field(resp, "calls", field, "must not be empty");
	if (len > cap || memchr(json_string_value(v), '\0', len))
		return rv_res_fail_field(resp, "calls", field, "too long or contains a NUL byte");
	*out = json_string_value(v);
	return 0;
}

static int opt_id(struct rv_http_resp *resp, json_t *body, const char *field, int64_t *out)
{
	json_t *v = json_object_get(body, field);
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return rv_res_fail_field(resp, "calls", field, "must be a positive id");
	*out = json_integer_value(v);
	return 0;
}

/* Reply with the stored row of call `id` (status given), or a store error. */
static void reply_row(struct rv_app *app, struct rv_http_resp *resp, int status, int64_t id)
{
	struct rv_db *db = NULL;
	json_t *row = NULL;
	int err = rv_store_acquire(app->store, &db);
	if (!err)
		err = rv_res_load(db, &calls_res, id, &row);
	rv_store_release(app->store, db);
	if (err) {
		rv_res_store_fail(resp, err, "calls", NULL);
		return;
	}
	rv_http_reply_json(resp, status, rv_res_public(&calls_res, row));
	json_decref(row);
}

static void audit(struct rv_app *app, struct rv_http_req *req, const char *action, int64_t id,
                  json_t *details)
{
	struct rv_db *db = NULL;
	if (rv_store_acquire(app->store, &db) != 0)
		return;
	if (rv_audit(db, req, action, "calls", id, details) != 0)
		rv_warn(COMP, "cannot write the audit row for %s on call %" PRId64, action, id);
	rv_store_release(app->store, db);
}

/* Single-row lookups for the checks: the column's value as text/int, or -ENOENT. */
static int lookup_int(struct rv_app *app, const char *sql, int64_t id, int64_t *out)
{
	struct rv_val p[1] = {RV_VINT(id)};
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(app->store, sql, p, 1, &rows, NULL);
	if (err)
		return err;
	if (rows->nrows == 0) {
		rv_rows_free(rows);
		return -ENOENT;
	}
	const struct rv_val *v = rv_rows_at(rows, 0, 0);
	*out = v->type == RV_VAL_INT ? v->i : 0;
	rv_rows_free(rows);
	return 0;
}

static bool on_dnc(struct rv_app *app, const char *e164, int *err)
{
	struct rv_val p[1] = {RV_VTEXT(e164)};
	struct rv_rows *rows = NULL;
	*err = rv_store_exec(app->store, "SELECT id FROM dnc WHERE phone = $1", p, 1, &rows, NULL);
	if (*err)
		return false;
	bool listed = rows->nrows > 0;
	rv_rows_free(rows);
	return listed;
}

static bool trunk_known(const struct rv_config *cfg, const char *name)
{
	if (strcmp(name, "twilio") == 0)
		return true;
	for (size_t i = 0; i < cfg->ntrunks; i++)
		if (strcmp(cfg->trunks[i].name, name) == 0)
			return true;
	return false;
}

static void unavailable(struct rv_http_resp *resp, const char *reason, const char *msg)
{
	rv_http_reply_error(resp, 503, "unavailable", json_pack("{s:s}", "reason", reason), "%s",
	                    msg);
	rv_http_set_header(resp, "Retry-After", "5");
}

static void calls_dial(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {"to",    "campaign_id", "lead_id",
	                                      "trunk", "from",        NULL};
	json_t *body = NULL;
	const char *to, *trunk, *from;
	int64_t cid, lid, v, call_id = 0;
	int err;

	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	if (only_keys(resp, body, allowed) || opt_str(resp, body, "to", 500, true, &to) ||
	    opt_str(resp, body, "trunk", 200, false, &trunk) ||
	    opt_str(resp, body, "from", 200, false, &from) ||
	    opt_id(resp, body, "campaign_id", &cid) || opt_id(resp, body, "lead_id", &lid))
		goto out;
	if (trunk && !trunk_known(app->cfg, trunk)) {
		rv_res_fail_field(resp, "calls", "trunk", "no trunk by this name is configured");
		goto out;
	}
	char e164[32];
	if (strncmp(to, "sip:", 4) != 0) {
		const char *why = "not a phone number";
		const char *region = app->cfg->default_country && *app->cfg->default_country
		                         ? app->cfg->default_country
		                         : "US";
		if (rv_phone_e164(to, region, e164, sizeof(e164), &why) != 0) {
			rv_res_fail_field(resp, "calls", "to", why);
			goto out;
		}
		if (on_dnc(app, e164, &err)) {
			rv_http_reply_error(resp, 409, "conflict",
			                    json_pack("{s:s,s:s}", "field", "to", "reason", "dnc"),
			                    "%s is on the do-not-call list", e164);
			goto out;
		}
		if (err) {
			rv_res_store_fail(resp, err, "calls", NULL);
			goto out;
		}
	}
	if (lid) {
		err = lookup_int(app, "SELECT campaign_id FROM leads WHERE id = $1", lid, &v);
		if (err == -ENOENT || (!err && cid && v != cid)) {
			rv_http_reply_error(
			    resp, 422, "unprocessable",
			    json_pack("{s:s,s:I}", "field", "lead_id", "lead_id", (json_int_t)lid),
			    err ? "lead %" PRId64 " does not exist"
			        : "lead %" PRId64 " is not in the campaign",
			    lid);
			goto out;
		}
		if (err) {
			rv_res_store_fail(resp, err, "calls", NULL);
			goto out;
		}
		if (!cid)
			cid = v;
	}
	if (cid) {
		err = lookup_int(app, "SELECT id FROM campaigns WHERE id = $1", cid, &v);
		if (err == -ENOENT) {
			rv_http_reply_error(resp, 422, "unprocessable",
			                    json_pack("{s:s,s:I}", "field", "campaign_id",
			                              "campaign_id", (json_int_t)cid),
			                    "campaign %" PRId64 " does not exist", cid);
			goto out;
		}
		if (err) {
			rv_res_store_fail(resp, err, "calls", NULL);
			goto out;
		}
	}
	if (!app->tel) {
		unavailable(resp, "telephony_off", "telephony is not running on this node");
		goto out;
	}
	struct rv_tel_dial d = {
	    .to = to, .trunk = trunk, .from = from, .campaign_id = cid, .lead_id = lid};
	err = rv_tel_dial(app->tel, &d, &call_id);
	switch (err) {
	case 0:
		break;
	case -EINVAL:
		rv_res_fail_field(
		    resp, "calls", trunk ? "trunk" : "to",
		    strncmp(to, "sip:", 4) == 0
		        ? "not a SIP URI we can dial"
		        : "cannot be dialled (no trunk configured, or it is not usable)");
		goto out;
	case -ENOENT:
		rv_http_reply_error(resp, 422, "unprocessable",
		                    json_pack("{s:s}", "field", "campaign_id"),
		                    "campaign %" PRId64 " does not exist", cid);
		goto out;
	case -EBUSY:
		unavailable(resp, "capacity",
		            "every line is busy: at sip.max_calls or trunk limits");
		goto out;
	case -ENOTCONN:
		unavailable(resp, "sip_off", "SIP is off on this node (sip.listen)");
		goto out;
	default:
		if (err <= -1000 || err == -ETIMEDOUT)
			rv_res_store_fail(resp, err, "calls", NULL);
		else
			unavailable(resp, "dial_failed", "the call could not be placed");
		goto out;
	}
	json_t *det = json_pack("{s:s}", "to", to);
	audit(app, req, "dial", call_id, det);
	json_decref(det);
	reply_row(app, resp, 202, call_id);
out:
	json_decref(body);
}

/*
 * The call is not live here: 404 when there is no such row, or it is live elsewhere (another
 * node, or not yet dialled); 409 when it is over.
 */
static void not_live(struct rv_app *app, struct rv_http_resp *resp, int64_t id)
{
	struct rv_val p[1] = {RV_VINT(id)};
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(app->store, "SELECT ended_at FROM calls WHERE id = $1", p, 1, &rows,
	                        NULL);
	if (err) {
		rv_res_store_fail(resp, err, "calls", NULL);
		return;
	}
	bool exists = rows->nrows > 0;
	bool ended = exists && rv_rows_at(rows, 0, 0)->type != RV_VAL_NULL;
	rv_rows_free(rows);
	if (ended)
		rv_http_reply_error(resp, 409, "conflict",
		                    json_pack("{s:s}", "reason", "call_ended"),
		                    "call %" PRId64 " is over", id);
	else if (exists)
		rv_http_reply_error(resp, 404, "not_found",
		                    json_pack("{s:s}", "reason", "not_live"),
		                    "call %" PRId64 " is not live on this node", id);
	else
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such call");
}

/* Common prologue of the live-call commands: id, body, telephony. 0 to go on. */
static int cmd_begin(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                     int64_t *id, json_t **body, bool need_body)
{
	*body = NULL;
	if (req->nparams < 1 || rv_res_parse_id(req->params[0], id) != 0) {
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such call");
		return -EINVAL;
	}
	if (need_body || (req->body && req->body_len)) {
		if (rv_http_json_body(req, resp, body) != 0)
			return -EINVAL;
	} else {
		*body = json_object();
	}
	return 0;
}

/* Map a command's result to the reply. */
static void cmd_reply(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                      int err, int64_t id, const char *action, json_t *details)
{
	if (err == 0) {
		audit(app, req, action, id, details);
		json_decref(details);
		rv_http_reply_json(resp, 202,
		                   json_pack("{s:I,s:s,s:s}", "call_id", (json_int_t)id, "action",
		                             action, "status", "queued"));
		return;
	}
	json_decref(details);
	if (err == -ENOENT)
		not_live(app, resp, id);
	else if (err == -ENOTCONN)
		unavailable(resp, "telephony_off", "telephony is not running on this node");
	else
		rv_http_reply_error(resp, 503, "unavailable", NULL,
		                    "the media plane did not take "
		                    "the command: %s",
		                    strerror(-err));
}

static void calls_hangup(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {NULL};
	int64_t id;
	json_t *body;
	if (cmd_begin(app, req, resp, &id, &body, false) != 0)
		return;
	if (only_keys(resp, body, allowed) == 0)
		cmd_reply(app, req, resp, app->tel ? rv_tel_hangup(app->tel, id) : -ENOTCONN, id,
		          "hangup", NULL);
	json_decref(body);
}

static void calls_dtmf(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {"digits", NULL};
	int64_t id;
	json_t *body;
	const char *digits;
	if (cmd_begin(app, req, resp, &id, &body, true) != 0)
		return;
	if (only_keys(resp, body, allowed) || opt_str(resp, body, "digits", 32, true, &digits))
		goto out;
	if (strspn(digits, "0123456789*#ABCD") != strlen(digits)) {
		rv_res_fail_field(resp, "calls", "digits", "only 0-9, *, # and A-D");
		goto out;
	}
	cmd_reply(app, req, resp, app->tel ? rv_tel_send_dtmf(app->tel, id, digits) : -ENOTCONN, id,
	          "dtmf", json_pack("{s:i}", "digits", (int)strlen(digits)));
out:
	json_decref(body);
}

static void calls_record(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {"on", NULL};
	int64_t id;
	json_t *body;
	if (cmd_begin(app, req, resp, &id, &body, true) != 0)
		return;
	if (only_keys(resp, body, allowed))
		goto out;
	json_t *on = json_object_get(body, "on");
	if (!json_is_boolean(on)) {
		rv_res_fail_field(resp, "calls", "on", "must be true or false");
		goto out;
	}
	cmd_reply(app, req, resp,
	          app->tel ? rv_tel_record(app->tel, id, json_is_true(on)) : -ENOTCONN, id,
	          json_is_true(on) ? "record_start" : "record_stop", NULL);
out:
	json_decref(body);
}

static void calls_transfer(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {"to", "mode", "whisper", NULL};
	int64_t id;
	json_t *body;
	const char *to, *mode, *whisper;
	if (cmd_begin(app, req, resp, &id, &body, true) != 0)
		return;
	if (only_keys(resp, body, allowed) || opt_str(resp, body, "to", 500, true, &to) ||
	    opt_str(resp, body, "mode", 16, false, &mode) ||
	    opt_str(resp, body, "whisper", 2000, false, &whisper))
		goto out;
	struct rv_tel_transfer t = {.mode = RV_TEL_TRANSFER_BLIND, .to = to, .whisper = whisper};
	if (mode && strcmp(mode, "bridged") == 0) {
		t.mode = RV_TEL_TRANSFER_BRIDGED;
	} else if (mode && strcmp(mode, "blind") != 0) {
		rv_res_fail_field(resp, "calls", "mode", "must be blind or bridged");
		goto out;
	}
	if (whisper && t.mode == RV_TEL_TRANSFER_BLIND) {
		rv_res_fail_field(resp, "calls", "whisper",
		                  "only a bridged transfer has a whisper");
		goto out;
	}
	int err = app->tel ? rv_tel_transfer(app->tel, id, &t) : -ENOTCONN;
	if (err == -EINVAL) {
		rv_res_fail_field(resp, "calls", "to",
		                  "must be a SIP URI or a phone number (numbers need a trunk)");
		goto out;
	}
	cmd_reply(app, req, resp, err, id, "transfer",
	          json_pack("{s:s,s:s}", "to", to, "mode",
	                    t.mode == RV_TEL_TRANSFER_BLIND ? "blind" : "bridged"));
out:
	json_decref(body);
}

const struct rv_route rv_api_tel_routes[] = {
    {"POST", "/api/calls", RV_ROLE_MANAGER, 0, calls_dial},
    {"POST", "/api/calls/{id}/hangup", RV_ROLE_SUPERVISOR, 0, calls_hangup},
    {"POST", "/api/calls/{id}/transfer", RV_ROLE_SUPERVISOR, 0, calls_transfer},
    {"POST", "/api/calls/{id}/dtmf", RV_ROLE_SUPERVISOR, 0, calls_dtmf},
    {"POST", "/api/calls/{id}/record", RV_ROLE_SUPERVISOR, 0, calls_record},
};
const size_t rv_api_tel_routes_len = RV_ARRAY_LEN(rv_api_tel_routes);
