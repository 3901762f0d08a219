/*
 * The REST resources: users, campaigns, leads, calls (read-only), DNC, flows, webhooks, the
 * audit log and analytics. Each resource is a descriptor for the generic engine in resource.c
 * plus hooks for the rules that involve several fields or other rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/auth.h"
#include "agent/agent.h"
#include "api/resource.h"
#include "dialog/flow.h"
#include "integrations/outbox.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/util.h"
#include "store/store.h"
#include "tel/tel.h"

#define COMP "api"
#define RW   (RV_RES_F_CREATE | RV_RES_F_UPDATE)

/* ---- shared choices and field checks ------------------------------------------------------ */

static const char *const roles[] = {"viewer", "supervisor", "manager", "admin", NULL};
static const char *const campaign_statuses[] = {"draft",     "active",   "paused",
                                                "completed", "archived", NULL};
static const char *const amd_policies[] = {"off", "hangup", "voicemail", "continue", NULL};
static const char *const recording_policies[] = {"never", "always", "on_demand", NULL};
static const char *const lead_statuses[] = {"new",      "queued",    "dialing",   "in_call",
                                            "callback", "retry",     "completed", "failed",
                                            "dnc",      "converted", NULL};
static const char *const flow_kinds[] = {"scripted", "llm", NULL};
static const char *const retry_dispositions[] = {"no_answer", "busy",     "failed",
                                                 "machine",   "callback", NULL};
/* The events the outbox emits (src/integrations/outbox.h), and "*" for all of them. */
static const char *const webhook_events[] = {"call.answered",      "call.ended", "lead.dnc",
                                             "callback.scheduled", "*",          NULL};

static int check_hhmm(const json_t *v, const char **why)
{
	*why = "must be a 24-hour time HH:MM";
	return rv_res_hhmm_parse(json_string_value(v), NULL);
}

static int check_days(const json_t *v, const char **why)
{
	*why = "must be a comma list of mon,tue,wed,thu,fri,sat,sun without repeats";
	return rv_res_days_valid(json_string_value(v));
}

static int check_timezone(const json_t *v, const char **why)
{
	*why = "not a known IANA time zone name";
	return rv_res_timezone_valid(json_string_value(v), NULL);
}

static int check_timezone_or_empty(const json_t *v, const char **why)
{
	return json_string_length(v) == 0 ? 0 : check_timezone(v, why);
}

static int check_region(const json_t *v, const char **why)
{
	const char *s = json_string_value(v);
	*why = "not a known ISO 3166 region code (like US, GB, IN)";
	if (strlen(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' ||
	    !rv_phone_region_valid(s))
		return -EINVAL;
	return 0;
}

static int check_retry_on(const json_t *v, const char **why)
{
	*why = "must be a comma list of no_answer,busy,failed,machine,callback without repeats";
	return rv_res_csv_valid(json_string_value(v), retry_dispositions, 1);
}

static int check_language(const json_t *v, const char **why)
{
	const char *s = json_string_value(v);
	size_t n = strlen(s);
	*why = "must be a language tag like en-US";
	if (n < 2 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return -EINVAL;
	return 0;
}

static int check_email_or_empty(const json_t *v, const char **why)
{
	*why = "not a valid e-mail address";
	return json_string_length(v) == 0 ? 0 : rv_res_email_valid(json_string_value(v));
}

static int check_url(const json_t *v, const char **why)
{
	return rv_res_url_valid(json_string_value(v), why);
}

static int check_events(const json_t *v, const char **why)
{
	size_t i, j;
	json_t *e;

	if (json_array_size(v) == 0) {
		*why = "must list at least one event";
		return -EINVAL;
	}
	json_array_foreach(v, i, e)
	{
		const char *s = json_string_value(e);
		size_t k;
		if (!s || !*s) {
			*why = "events must be non-empty strings";
			return -EINVAL;
		}
		for (k = 0; webhook_events[k] && strcmp(webhook_events[k], s) != 0; k++)
			;
		if (!webhook_events[k]) {
			*why = "unknown event (known: call.answered, call.ended, lead.dnc, "
			       "callback.scheduled, *)";
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(json_string_value(json_array_get(v, j)), s) == 0) {
				*why = "an event is listed twice";
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ---- small store helpers for hooks ------------------------------------------------------ */

static int64_t val_i64(const struct rv_val *v)
{
	int64_t i = 0;
	if (v->type == RV_VAL_INT)
		return v->i;
	if (v->type == RV_VAL_REAL)
		return (int64_t)v->r;
	if (v->type == RV_VAL_TEXT && rv_parse_int64(v->s, INT64_MIN, INT64_MAX, &i) == 0)
		return i;
	return 0;
}

/* Does `table` have a row with this id? 1, 0, or a negative store error. */
static int row_exists(struct rv_db *db, const char *table, int64_t id)
{
	char sql[128];
	struct rv_val p[1] = {RV_VINT(id)};
	struct rv_rows *rows = NULL;
	int err;

	snprintf(sql, sizeof(sql), "SELECT id FROM %s WHERE id = $1", table);
	err = rv_db_exec(db, sql, p, 1, &rows, NULL);
	if (err)
		return err;
	err = rows->nrows > 0;
	rv_rows_free(rows);
	return err;
}

static const char *str_of(const json_t *v, const char *dflt)
{
	return json_is_string(v) ? json_string_value(v) : dflt;
}

static const char *default_region(struct rv_app *app)
{
	return app && app->cfg && app->cfg->default_country && *app->cfg->default_country
	           ? app->cfg->default_country
	           : "US";
}

/* Normalise op->vals[field] to E.164 with `region`; replies 400 on a bad number. */
static int normalise_phone(struct rv_res_op *op, const char *field, const char *region)
{
	char e164[32];
	const char *why = "not a phone number";
	const char *in = json_string_value(json_object_get(op->vals, field));

	if (!in)
		return 0;
	if (rv_phone_e164(in, region, e164, sizeof(e164), &why) != 0) {
		rv_logkv(RV_LOG_INFO, COMP, "invalid phone number", "resource", op->res->name,
		         "field", field, "reason", why, NULL);
		rv_http_reply_error(
		    op->resp, 400, "invalid_field",
		    json_pack("{s:s,s:s,s:s}", "field", field, "reason", why, "region", region),
		    "%s: %s", field, why);
		return -EINVAL;
	}
	json_object_set_new(op->vals, field, json_string(e164));
	return 0;
}

/* ---- users ---------------------------------------------------------------------------- */

static const struct rv_res_field user_fields[] = {
    {"email", RV_RES_TEXT, RW | RV_RES_F_REQUIRED | RV_RES_F_NONEMPTY, NULL, 0, 254, NULL},
    {"password", RV_RES_TEXT, RW | RV_RES_F_REQUIRED | RV_RES_F_VIRTUAL, NULL, 0, 1024, NULL},
    {"role", RV_RES_TEXT, RW | RV_RES_F_REQUIRED, roles, 0, 0, NULL},
    {"name", RV_RES_TEXT, RW, NULL, 0, 200, NULL},
    {"active", RV_RES_BOOL, RW, NULL, 0, 0, NULL},
    {"password_hash", RV_RES_TEXT, RV_RES_F_HIDDEN, NULL, 0, 0, NULL},
    {"password_changed_at", RV_RES_INT, RV_RES_F_HIDDEN, NULL, 0, 0, NULL},
    {"last_login_at", RV_RES_TEXT, 0, NULL, 0, 0, NULL},
};

static int users_prepare(struct rv_res_op *op)
{
	const json_t *email = json_object_get(op->vals, "email");
	const json_t *pw = json_object_get(op->vals, "password");
	const char *why = NULL;

	if (email) {
		char addr[256];
		if (rv_auth_email_normalize(json_string_value(email), addr, sizeof(addr), &why) !=
		    0)
			return rv_res_fail_field(op->resp, op->res->name, "email",
			                         why ? why : "not a valid e-mail address");
		json_object_set_new(op->vals, "email", json_string(addr));
	}
	if (pw) {
		char *hash = NULL;
		if (rv_auth_password_check(json_string_value(pw), &why) != 0)
			return rv_res_fail_field(op->resp, op->res->name, "password",
			                         why ? why : "password too weak");
		/* Hashing is slow on purpose: do it before the write lock is taken. */
		if (rv_auth_password_hash(json_string_value(pw), &hash) != 0)
			return rv_res_fail(op, 500, "internal", NULL,
			                   "the password could not be hashed");
		json_object_set_new(op->vals, "password_hash", json_string(hash));
		free(hash);
		/* Login tokens issued before this second stop working (auth.c verify_jwt). */
		json_object_set_new(op->vals, "password_changed_at",
		                    json_integer((json_int_t)time(NULL)));
		json_object_del(op->vals, "password");
		json_object_set_new(op->details, "password_changed", json_true());
	}
	return 0;
}

/*
 * Never leave the system without an active admin: refuse to demote, deactivate or delete the
 * last one (whoever asks).
 */
static int users_in_tx(struct rv_res_op *op)
{
	static const char sql[] =
	    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1 AND id <> $1";
	static const char lock_sql[] =
	    "UPDATE users SET id = id WHERE role = 'admin' AND active = 1";
	struct rv_val p[1] = {RV_VINT(op->id)};
	struct rv_rows *rows = NULL;
	const json_t *role, *active;
	int err, losing;

	if (op->action == RV_RES_CREATE || !op->cur)
		return 0;
	if (strcmp(str_of(json_object_get(op->cur, "role"), ""), "admin") != 0 ||
	    !json_is_true(json_object_get(op->cur, "active")))
		return 0;
	role = json_object_get(op->vals, "role");
	active = json_object_get(op->vals, "active");
	losing = op->action == RV_RES_DELETE ||
	         (role && strcmp(json_string_value(role), "admin") != 0) ||
	         (active && json_is_false(active));
	if (!losing)
		return 0;
	/*
	 * The engine locked only this user's row. Two admins demoted at once on PostgreSQL (READ
	 * COMMITTED) would each count the other and both commit, leaving none: lock every active
	 * admin first, so the second request waits and then counts what the first committed. On
	 * SQLite the write lock already serialises the requests and this changes nothing.
	 */
	err = rv_db_exec(op->db, lock_sql, NULL, 0, NULL, NULL);
	if (err)
		return rv_res_store_fail(op->resp, err, "users", NULL);
	err = rv_db_exec(op->db, sql, p, 1, &rows, NULL);
	if (err)
		return rv_res_store_fail(op->resp, err, "users", NULL);
	int64_t others = rows->nrows ? val_i64(rv_rows_at(rows, 0, 0)) : 0;
	rv_rows_free(rows);
	if (others == 0)
		return rv_res_fail(op, 409, "conflict", json_pack("{s:s}", "reason", "last_admin"),
		                   "user %" PRId64 " is the last active admin: make another user "
		                   "an active admin first",
		                   op->id);
	return 0;
}

static const struct rv_res users_res = {
    .name = "users",
    .table = "users",
    .noun = "user",
    .fields = user_fields,
    .nfields = RV_ARRAY_LEN(user_fields),
    .has_created_at = 1,
    .has_updated_at = 1,
    .conflict_msg = "a user with this e-mail address already exists",
    .prepare = users_prepare,
    .in_tx = users_in_tx,
};

/* ---- flows ------------------------------------------------------------------------------ */

static const struct rv_res_field flow_fields[] = {
    {"name", RV_RES_TEXT, RW | RV_RES_F_REQUIRED | RV_RES_F_NONEMPTY, NULL, 0, 200, NULL},
    {"description", RV_RES_TEXT, RW, NULL, 0, 2000, NULL},
    {"kind", RV_RES_TEXT, RW, flow_kinds, 0, 0, NULL},
    {"definition", RV_RES_OBJECT, RW | RV_RES_F_REQUIRED, NULL, 0, RV_RES_JSON_CAP, NULL},
    {"version", RV_RES_INT, 0, NULL, 0, 0, NULL},
};

/* A flow is saved only when the conversation engine can run it: every problem is listed. */
static int flows_prepare(struct rv_res_op *op)
{
	const json_t *def = json_object_get(op->vals, "definition");
	if (!def)
		return 0;
	struct rv_flow *flow = NULL;
	json_t *errors = NULL;
	int err = rv_flow_parse(def, &flow, &errors);
	if (err == 0) {
		rv_flow_free(flow);
		return 0;
	}
	if (err == -ENOMEM) {
		rv_http_reply_error(op->resp, 500, "internal", NULL, "out of memory");
		return err;
	}
	rv_http_reply_error(op->resp, 422, "unprocessable",
	                    json_pack("{s:s, s:o}", "field", "definition", "errors", errors),
	                    "the flow cannot run: %zu problem%s (see details.errors)",
	                    json_array_size(errors), json_array_size(errors) == 1 ? "" : "s");
	return -EINVAL;
}

static int flows_in_tx(struct rv_res_op *op)
{
	const json_t *def = json_object_get(op->vals, "definition");
	if (op->action != RV_RES_UPDATE || !def)
		return 0;
	if (json_equal((json_t *)def, json_object_get(op->cur, "definition")))
		return 0;
	json_int_t v = json_integer_value(json_object_get(op->cur, "version"));
	json_object_set_new(op->vals, "version", json_integer(v + 1));
	return 0;
}

static const struct rv_res flows_res = {
    .name = "flows",
    .table = "flows",
    .noun = "flow",
    .fields = flow_fields,
    .nfields = RV_ARRAY_LEN(flow_fields),
    .has_created_at = 1,
    .has_updated_at = 1,
    .conflict_msg = "a flow with this name already exists",
    .prepare = flows_prepare,
    .in_tx = flows_in_tx,
};

/* ---- campaigns -------------------------------------------------------------------------- */

static const struct rv_res_field campaign_fields[] = {
    {"name", RV_RES_TEXT, RW | RV_RES_F_REQUIRED | RV_RES_F_NONEMPTY, NULL, 0, 200, NULL},
    {"description", RV_RES_TEXT, RW, NULL, 0, 2000, NULL},
    {"status", RV_RES_TEXT, RW, campaign_statuses, 0, 0, NULL},
    {"flow_id", RV_RES_INT, RW | RV_RES_F_NULLABLE, NULL, 1, INT64_MAX, NULL},
    {"voice", RV_RES_TEXT, RW | RV_RES_F_NONEMPTY, NULL, 0, 100, NULL},
    {"language", RV_RES_TEXT, RW, NULL, 0, 35, check_language},
    {"caller_id", RV_RES_TEXT, RW, NULL, 0, 64, NULL},
    {"trunk", RV_RES_TEXT, RW, NULL, 0, 200, NULL},
    {"default_country", RV_RES_TEXT, RW, NULL, 0, 2, check_region},
    {"timezone", RV_RES_TEXT, RW, NULL, 0, 64, check_timezone},
    {"calling_window_start", RV_RES_TEXT, RW, NULL, 0, 5, check_hhmm},
    {"calling_window_end", RV_RES_TEXT, RW, NULL, 0, 5, check_hhmm},
    {"calling_days", RV_RES_TEXT, RW, NULL, 0, 64, check_days},
    {"max_concurrent", RV_RES_INT, RW, NULL, 1, 1000, NULL},
    {"calls_per_minute", RV_RES_INT, RW, NULL, 1, 6000, NULL},
    {"max_attempts", RV_RES_INT, RW, NULL, 1, 20, NULL},
    {"retry_delay_minutes", RV_RES_INT, RW, NULL, 0, 10080, NULL},
    {"retry_on", RV_RES_TEXT, RW, NULL, 0, 200, check_retry_on},
    {"amd_policy", RV_RES_TEXT, RW, amd_policies, 0, 0, NULL},
    {"voicemail_message", RV_RES_TEXT, RW, NULL, 0, 2000, NULL},
    {"recording_policy", RV_RES_TEXT, RW, recording_policies, 0, 0, NULL},
    {"require_consent", RV_RES_BOOL, RW, NULL, 0, 0, NULL},
    {"settings", RV_RES_OBJECT, RW, NULL, 0, 64 * 1024, NULL},
    {"inbound_numbers", RV_RES_TEXT, RW, NULL, 0, 2000, NULL},
    {"created_by", RV_RES_INT, 0, NULL, 0, 0, NULL},
};

/* Allowed status moves; a status may always be "set" to itself. */
static const struct {
	const char *from;
	const char *const to[4];
} campaign_moves[] = {
    {"new", {"draft", "active", NULL}}, /* creation */
    {"draft", {"active", "archived", NULL}},
    {"active", {"paused", "completed", NULL}},
    {"paused", {"active", "completed", "archived", NULL}},
    {"completed", {"archived", NULL}},
    {"archived", {NULL}},
};

/* 0 when moving `from` -> `to` is allowed; else *allowed gets the legal targets (new ref). */
static int campaign_move_ok(const char *from, const char *to, json_t **allowed)
{
	if (strcmp(from, to) == 0)
		return 0;
	for (size_t i = 0; i < RV_ARRAY_LEN(campaign_moves); i++) {
		if (strcmp(campaign_moves[i].from, from) != 0)
			continue;
		*allowed = json_array();
		for (size_t k = 0; campaign_moves[i].to[k]; k++) {
			if (strcmp(campaign_moves[i].to[k], to) == 0) {
				json_decref(*allowed);
				*allowed = NULL;
				return 0;
			}
			json_array_append_new(*allowed, json_string(campaign_moves[i].to[k]));
		}
		return -EPERM;
	}
	*allowed = json_array();
	return -EPERM;
}

#define INBOUND_MAX 64 /* entries in one campaign's inbound_numbers */

/* A SIP user name that routes a call: a letter first, then letters, digits, '.', '_', '-'. */
static int sip_user_token(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/*
 * inbound_numbers: normalise each entry (E.164 with the campaign's region, or a SIP user
 * name), drop blanks and repeats, and refuse an entry another campaign already claims (409):
 * one number must route to one campaign.
 */
static int campaign_inbound(struct rv_res_op *op)
{
	static const char sql[] = "SELECT id, inbound_numbers FROM campaigns "
	                          "WHERE inbound_numbers <> '' AND id <> $1";
	const char *in = json_string_value(json_object_get(op->vals, "inbound_numbers"));
	const char *region = str_of(rv_res_value(op, "default_country"), "US");
	char out[2200] = "", item[80];
	size_t nitems = 0, olen = 0;
	struct rv_rows *rows = NULL;
	int err;

	if (!in)
		return 0;
	for (const char *p = in; *p;) {
		size_t n = strcspn(p, ",");
		const char *a = p;
		p += n;
		if (*p == ',')
			p++;
		while (n && (*a == ' ' || *a == '\t'))
			a++, n--;
		while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
			n--;
		if (n == 0)
			continue;
		if (n >= sizeof(item))
			return rv_res_fail_field(op->resp, "campaigns", "inbound_numbers",
			                         "an entry is too long");
		memcpy(item, a, n);
		item[n] = '\0';
		char norm[64];
		if (item[0] == '+' || (item[0] >= '0' && item[0] <= '9') || item[0] == '(') {
			const char *why = "not a phone number";
			if (rv_phone_e164(item, region, norm, sizeof(norm), &why) != 0) {
				rv_http_reply_error(op->resp, 400, "invalid_field",
				                    json_pack("{s:s,s:s,s:s}", "field",
				                              "inbound_numbers", "entry", item,
				                              "reason", why),
				                    "inbound_numbers: %s: %s", item, why);
				return -EINVAL;
			}
		} else if (sip_user_token(item, n)) {
			rv_strlcpy(norm, item, sizeof(norm));
		} else {
			rv_http_reply_error(
			    op->resp, 400, "invalid_field",
			    json_pack("{s:s,s:s,s:s}", "field", "inbound_numbers", "entry", item,
			              "reason", "neither a phone number nor a SIP user name"),
			    "inbound_numbers: %s is neither a phone number nor a SIP "
			    "user name",
			    item);
			return -EINVAL;
		}
		/* Repeats in the list are folded, not refused. */
		char probe[80];
		snprintf(probe, sizeof(probe), ",%s,", norm);
		char wrapped[2300];
		snprintf(wrapped, sizeof(wrapped), ",%s,", out);
		if (strstr(wrapped, probe))
			continue;
		if (++nitems > INBOUND_MAX)
			return rv_res_fail_field(op->resp, "campaigns", "inbound_numbers",
			                         "at most 64 entries");
		olen +=
		    (size_t)snprintf(out + olen, sizeof(out) - olen, "%s%s", olen ? "," : "", norm);
	}
	json_object_set_new(op->vals, "inbound_numbers", json_string(out));
	if (!out[0])
		return 0;

	struct rv_val p[1] = {RV_VINT(op->id)};
	err = rv_db_exec(op->db, sql, p, 1, &rows, NULL);
	if (err)
		return rv_res_store_fail(op->resp, err, "campaigns", NULL);
	for (size_t i = 0; i < rows->nrows; i++) {
		const struct rv_val *v = rv_rows_at(rows, i, 1);
		if (v->type != RV_VAL_TEXT)
			continue;
		char theirs[2300];
		snprintf(theirs, sizeof(theirs), ",%s,", v->s);
		for (const char *q = out; *q;) {
			size_t n = strcspn(q, ",");
			char probe[80];
			snprintf(probe, sizeof(probe), ",%.*s,", (int)n, q);
			if (strstr(theirs, probe)) {
				int64_t other = val_i64(rv_rows_at(rows, i, 0));
				probe[strlen(probe) - 1] = '\0';
				json_t *det =
				    json_pack("{s:s,s:s,s:I}", "field", "inbound_numbers", "entry",
				              probe + 1, "campaign_id", (json_int_t)other);
				rv_rows_free(rows);
				return rv_res_fail(op, 409, "conflict", det,
				                   "%s already routes to campaign %" PRId64,
				                   json_string_value(json_object_get(det, "entry")),
				                   other);
			}
			q += n;
			if (*q == ',')
				q++;
		}
	}
	rv_rows_free(rows);
	return 0;
}

static int campaigns_in_tx(struct rv_res_op *op)
{
	const json_t *status = json_object_get(op->vals, "status");
	const json_t *flow = json_object_get(op->vals, "flow_id");
	int start, end, err;

	if (op->action == RV_RES_DELETE)
		return 0;
	if (status) {
		const char *from = op->cur ? str_of(json_object_get(op->cur, "status"), "") : "new";
		const char *to = json_string_value(status);
		json_t *allowed = NULL;
		if (campaign_move_ok(from, to, &allowed) != 0) {
			json_t *det =
			    json_pack("{s:s,s:s,s:o}", "from", from, "to", to, "allowed", allowed);
			if (!op->cur)
				return rv_res_fail(op, 409, "conflict", det,
				                   "a new campaign can't start as %s", to);
			return rv_res_fail(op, 409, "conflict", det,
			                   "a %s campaign can't become %s", from, to);
		}
	}
	if (flow && json_is_integer(flow)) {
		err = row_exists(op->db, "flows", json_integer_value(flow));
		if (err < 0)
			return rv_res_store_fail(op->resp, err, "campaigns", NULL);
		if (err == 0)
			return rv_res_fail(op, 422, "unprocessable",
			                   json_pack("{s:s,s:I}", "field", "flow_id", "flow_id",
			                             json_integer_value(flow)),
			                   "flow %" JSON_INTEGER_FORMAT " does not exist",
			                   json_integer_value(flow));
	}
	/* The window is checked with the stored half when only one end changes. */
	if (rv_res_hhmm_parse(str_of(rv_res_value(op, "calling_window_start"), "09:00"), &start) ==
	        0 &&
	    rv_res_hhmm_parse(str_of(rv_res_value(op, "calling_window_end"), "20:00"), &end) == 0 &&
	    start >= end &&
	    (json_object_get(op->vals, "calling_window_start") ||
	     json_object_get(op->vals, "calling_window_end")))
		return rv_res_fail(op, 400, "invalid_field",
		                   json_pack("{s:s}", "field",
		                             json_object_get(op->vals, "calling_window_end")
		                                 ? "calling_window_end"
		                                 : "calling_window_start"),
		                   "the calling window must end after it starts");
	if (json_string_length(json_object_get(op->vals, "caller_id")) > 0) {
		const char *region = str_of(rv_res_value(op, "default_country"), "US");
		if (normalise_phone(op, "caller_id", region) != 0)
			return -EINVAL;
	}
	if (campaign_inbound(op) != 0)
		return -EINVAL;
	if (op->action == RV_RES_CREATE && op->req->who.user_id > 0)
		json_object_set_new(op->vals, "created_by", json_integer(op->req->who.user_id));
	return 0;
}

static const struct rv_res campaigns_res = {
    .name = "campaigns",
    .table = "campaigns",
    .noun = "campaign",
    .fields = campaign_fields,
    .nfields = RV_ARRAY_LEN(campaign_fields),
    .has_created_at = 1,
    .has_updated_at = 1,
    .conflict_msg = "a campaign with this name already exists",
    .in_tx = campaigns_in_tx,
};

/* ---- leads ------------------------------------------------------------------------------ */

static const struct rv_res_field lead_fields[] = {
    {"campaign_id", RV_RES_INT, RV_RES_F_CREATE | RV_RES_F_REQUIRED, NULL, 1, INT64_MAX, NULL},
    {"phone", RV_RES_TEXT, RW | RV_RES_F_REQUIRED | RV_RES_F_NONEMPTY, NULL, 0, 64, NULL},
    {"first_name", RV_RES_TEXT, RW, NULL, 0, 200, NULL},
    {"last_name", RV_RES_TEXT, RW, NULL, 0, 200, NULL},
    {"email", RV_RES_TEXT, RW, NULL, 0, 254, check_email_or_empty},
    {"timezone", RV_RES_TEXT, RW, NULL, 0, 64, check_timezone_or_empty},
    {"custom_fields", RV_RES_OBJECT, RW, NULL, 0, 64 * 1024, NULL},
    {"status", RV_RES_TEXT, RW, lead_statuses, 0, 0, NULL},
    {"attempts", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"next_attempt_at", RV_RES_TEXT, 0, NULL, 0, 0, NULL},
    {"last_disposition", RV_RES_TEXT, 0, NULL, 0, 0, NULL},
};

static const struct rv_res_filter lead_filters[] = {
    {"campaign_id", "campaign_id", RV_RES_INT, NULL, NULL},
    {"status", "status", RV_RES_TEXT, lead_statuses, NULL},
};

static int leads_in_tx(struct rv_res_op *op)
{
	static const char sql[] = "SELECT default_country FROM campaigns WHERE id = $1";
	static const char dnc_sql[] = "SELECT id FROM dnc WHERE phone = $1";
	struct rv_rows *rows = NULL;
	char region[8];
	int64_t cid;
	int err;

	if (op->action == RV_RES_DELETE)
		return 0;
	if (!json_object_get(op->vals, "phone")) {
		/* Taking a lead off "dnc" while its number is still on the list would dial it. */
		const char *st = json_string_value(json_object_get(op->vals, "status"));
		if (!st || strcmp(st, "dnc") == 0)
			return 0;
		struct rv_val cp[1] = {RV_VTEXT(str_of(rv_res_value(op, "phone"), ""))};
		err = rv_db_exec(op->db, dnc_sql, cp, 1, &rows, NULL);
		if (err)
			return rv_res_store_fail(op->resp, err, "leads", NULL);
		int listed = rows->nrows > 0;
		rv_rows_free(rows);
		if (listed)
			return rv_res_fail(
			    op, 409, "conflict",
			    json_pack("{s:s,s:s}", "field", "status", "reason", "dnc"),
			    "the lead's number is on the do-not-call list");
		return 0;
	}
	cid = json_integer_value(rv_res_value(op, "campaign_id"));
	struct rv_val p[1] = {RV_VINT(cid)};
	err = rv_db_exec(op->db, sql, p, 1, &rows, NULL);
	if (err)
		return rv_res_store_fail(op->resp, err, "leads", NULL);
	if (rows->nrows == 0) {
		rv_rows_free(rows);
		return rv_res_fail(
		    op, 422, "unprocessable",
		    json_pack("{s:s,s:I}", "field", "campaign_id", "campaign_id", (json_int_t)cid),
		    "campaign %" PRId64 " does not exist", cid);
	}
	const struct rv_val *v = rv_rows_at(rows, 0, 0);
	rv_strlcpy(region, v->type == RV_VAL_TEXT && v->s[0] ? v->s : default_region(op->app),
	           sizeof(region));
	rv_rows_free(rows);
	rows = NULL;
	if (normalise_phone(op, "phone", region) != 0)
		return -EINVAL;

	/*
	 * A number on the do-not-call list is never dialable, whichever way the lead arrives: the
	 * CSV import marks such leads "dnc", so a lead created or re-numbered here is marked too.
	 */
	struct rv_val ph[1] = {RV_VTEXT(json_string_value(json_object_get(op->vals, "phone")))};
	err = rv_db_exec(op->db, dnc_sql, ph, 1, &rows, NULL);
	if (err)
		return rv_res_store_fail(op->resp, err, "leads", NULL);
	int on_dnc = rows->nrows > 0;
	rv_rows_free(rows);
	if (on_dnc) {
		json_object_set_new(op->vals, "status", json_string("dnc"));
		json_object_set_new(op->details, "dnc", json_true());
	}
	return 0;
}

static const struct rv_res leads_res = {
    .name = "leads",
    .table = "leads",
    .noun = "lead",
    .fields = lead_fields,
    .nfields = RV_ARRAY_LEN(lead_fields),
    .filters = lead_filters,
    .nfilters = RV_ARRAY_LEN(lead_filters),
    .has_created_at = 1,
    .has_updated_at = 1,
    .conflict_msg = "a lead with this phone number already exists in the campaign",
    .in_tx = leads_in_tx,
};

/* ---- calls and turns (read-only) -------------------------------------------------------- */

static const struct rv_res_field call_fields[] = {
    {"campaign_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"lead_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"duration_ms", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"rtp_stats", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
    {"latency", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
    {"extracted", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
};

static const struct rv_res_filter call_filters[] = {
    {"campaign_id", "campaign_id", RV_RES_INT, NULL, NULL},
    {"lead_id", "lead_id", RV_RES_INT, NULL, NULL},
};

static const struct rv_res calls_res = {
    .name = "calls",
    .table = "calls",
    .noun = "call",
    .fields = call_fields,
    .nfields = RV_ARRAY_LEN(call_fields),
    .filters = call_filters,
    .nfilters = RV_ARRAY_LEN(call_filters),
};

static const struct rv_res_field turn_fields[] = {
    {"seq", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"confidence", RV_RES_REAL, 0, NULL, 0, 0, NULL},
    {"entities", RV_RES_ARRAY, 0, NULL, 0, 0, NULL},
    {"emotion", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
    {"barge_in", RV_RES_BOOL, 0, NULL, 0, 0, NULL},
    {"heard_ms", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"latency", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
};

static const struct rv_res turns_res = {
    .name = "call_turns",
    .table = "call_turns",
    .noun = "turn",
    .fields = turn_fields,
    .nfields = RV_ARRAY_LEN(turn_fields),
};

static void calls_turns(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char sql[] = "SELECT * FROM call_turns WHERE call_id = $1 ORDER BY seq";
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	int64_t id;
	int err;

	if (req->nparams < 1 || rv_res_parse_id(req->params[0], &id) != 0) {
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such call");
		return;
	}
	if ((err = rv_store_acquire(app->store, &db)) != 0) {
		rv_res_store_fail(resp, err, "calls", NULL);
		return;
	}
	err = row_exists(db, "calls", id);
	if (err == 0) {
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such call");
		goto out;
	}
	struct rv_val p[1] = {RV_VINT(id)};
	if (err < 0 || (err = rv_db_exec(db, sql, p, 1, &rows, NULL)) != 0) {
		rv_res_store_fail(resp, err, "calls", NULL);
		goto out;
	}
	json_t *items = json_array();
	for (size_t i = 0; i < rows->nrows; i++)
		json_array_append_new(items, rv_res_row_json(&turns_res, rows, i));
	rv_http_reply_json(resp, 200, json_pack("{s:o}", "items", items));
out:
	if (rows)
		rv_rows_free(rows);
	rv_store_release(app->store, db);
}

/* ---- DNC -------------------------------------------------------------------------------- */

static const struct rv_res_field dnc_fields[] = {
    {"phone", RV_RES_TEXT, RV_RES_F_CREATE | RV_RES_F_REQUIRED | RV_RES_F_NONEMPTY, NULL, 0, 64,
     NULL},
    {"reason", RV_RES_TEXT, RV_RES_F_CREATE, NULL, 0, 500, NULL},
    {"source", RV_RES_TEXT, 0, NULL, 0, 0, NULL},
    {"created_by", RV_RES_INT, 0, NULL, 0, 0, NULL},
};

static int dnc_norm(struct rv_app *app, const char *in, char *out, size_t outlen, const char **why)
{
	return rv_phone_e164(in, default_region(app), out, outlen, why);
}

static const struct rv_res_filter dnc_filters[] = {
    {"phone", "phone", RV_RES_TEXT, NULL, dnc_norm},
};

static int dnc_prepare(struct rv_res_op *op)
{
	if (normalise_phone(op, "phone", default_region(op->app)) != 0)
		return -EINVAL;
	json_object_set_new(op->vals, "source", json_string("api"));
	if (op->req->who.user_id > 0)
		json_object_set_new(op->vals, "created_by", json_integer(op->req->who.user_id));
	return 0;
}

/*
 * Listing a number stops every lead that holds it from being dialled again, in the same
 * transaction as the entry. Leads in a call right now or already finished keep their status:
 * the call in progress is the agent's to end, and finished leads are never dialled.
 */
/*
 * lead.dnc for an entry added through the API, in the entry's transaction: one event per lead
 * holding the number (whatever its status: a CRM keeps every lead's consent), or one with
 * lead_id null when no lead holds it, so a CRM that syncs the list learns of it too. The
 * shape is the one a call's DNC request gives (outbox_call.c), with call_id null and the
 * entry as "dnc" (without its id, which the insert after this hook assigns).
 */
static int dnc_events(struct rv_res_op *op, const char *phone, const char *now)
{
	struct rv_rows *rows = NULL;
	struct rv_val p[1] = {RV_VTEXT(phone)};
	int err =
	    rv_db_exec(op->db, "SELECT id, campaign_id FROM leads WHERE phone = $1 ORDER BY id", p,
	               1, &rows, NULL);
	if (err)
		return err;
	json_t *reason = json_object_get(op->vals, "reason");
	json_t *entry =
	    json_pack("{s:s,s:O,s:s,s:s}", "phone", phone, "reason", reason ? reason : json_null(),
	              "source", "api", "created_at", now);
	for (size_t r = 0; !err && r < (rows->nrows ? rows->nrows : 1); r++) {
		json_t *lead = json_null(), *camp = json_null();
		if (rows->nrows) {
			lead = json_integer(rv_rows_at(rows, r, 0)->i);
			if (rv_rows_at(rows, r, 1)->type == RV_VAL_INT)
				camp = json_integer(rv_rows_at(rows, r, 1)->i);
		}
		json_t *d =
		    json_pack("{s:n,s:o,s:o,s:s,s:O,s:n}", "call_id", "lead_id", lead,
		              "campaign_id", camp, "phone", phone, "dnc", entry, "disposition");
		err = d ? rv_outbox_emit(op->app->store, op->db, RV_OUTBOX_LEAD_DNC, d, NULL)
		        : -ENOMEM;
		json_decref(d);
	}
	json_decref(entry);
	rv_rows_free(rows);
	return err;
}

static int dnc_in_tx(struct rv_res_op *op)
{
	static const char sql[] =
	    "UPDATE leads SET status = 'dnc', updated_at = $2 WHERE phone = $1 "
	    "AND status IN ('new', 'queued', 'callback', 'retry', 'failed')";
	if (op->action != RV_RES_CREATE)
		return 0;
	char now[40];
	int64_t changed = 0;
	const char *phone = json_string_value(json_object_get(op->vals, "phone"));
	struct rv_val p[2] = {RV_VTEXT(phone), RV_VTEXT(rv_time_iso_now(now, sizeof(now)))};
	int err = rv_db_exec(op->db, sql, p, 2, NULL, &changed);
	if (!err)
		err = dnc_events(op, phone, now);
	if (err)
		return rv_res_store_fail(op->resp, err, "dnc", NULL);
	json_object_set_new(op->details, "leads_marked_dnc", json_integer(changed));
	/* Wake the outbox: it sees the events once this transaction commits, or at its next
	 * poll (webhooks.poll_ms) if it looked a moment too early. */
	rv_outbox_kick(op->app->outbox);
	return 0;
}

static const struct rv_res dnc_res = {
    .in_tx = dnc_in_tx,
    .name = "dnc",
    .table = "dnc",
    .noun = "DNC entry",
    .fields = dnc_fields,
    .nfields = RV_ARRAY_LEN(dnc_fields),
    .filters = dnc_filters,
    .nfilters = RV_ARRAY_LEN(dnc_filters),
    .has_created_at = 1,
    .conflict_msg = "this number is already on the do-not-call list",
    .prepare = dnc_prepare,
};

/* ---- webhooks --------------------------------------------------------------------------- */

static const struct rv_res_field webhook_fields[] = {
    {"name", RV_RES_TEXT, RW, NULL, 0, 200, NULL},
    {"url", RV_RES_TEXT, RW | RV_RES_F_REQUIRED, NULL, 0, 2048, check_url},
    {"events", RV_RES_ARRAY, RW, NULL, 0, 4096, check_events},
    {"active", RV_RES_BOOL, RW, NULL, 0, 0, NULL},
    {"secret", RV_RES_TEXT, RV_RES_F_HIDDEN, NULL, 0, 0, NULL},
};

static int webhooks_prepare(struct rv_res_op *op)
{
	unsigned char key[32];
	char hex[2 * sizeof(key) + 1];

	if (op->action != RV_RES_CREATE)
		return 0;
	if (sodium_init() < 0)
		return rv_res_fail(op, 500, "internal", NULL, "no random source");
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	json_object_set_new(op->vals, "secret", json_string(hex));
	/* The only time the secret leaves the server. */
	json_object_set_new(op->extra, "secret", json_string(hex));
	sodium_memzero(hex, sizeof(hex));
	return 0;
}

static void webhooks_decorate(json_t *obj)
{
	json_object_set_new(obj, "secret_set", json_true());
}

static const struct rv_res webhooks_res = {
    .name = "webhooks",
    .table = "webhooks",
    .noun = "webhook",
    .fields = webhook_fields,
    .nfields = RV_ARRAY_LEN(webhook_fields),
    .has_created_at = 1,
    .has_updated_at = 1,
    .prepare = webhooks_prepare,
    .decorate = webhooks_decorate,
};

/* ---- audit log (read-only) -------------------------------------------------------------- */

static const struct rv_res_field audit_fields[] = {
    {"actor_user_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"actor_api_key_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"resource_id", RV_RES_INT, 0, NULL, 0, 0, NULL},
    {"details", RV_RES_OBJECT, 0, NULL, 0, 0, NULL},
};

static const struct rv_res_filter audit_filters[] = {
    {"resource", "resource", RV_RES_TEXT, NULL, NULL},
    {"actor", "actor", RV_RES_TEXT, NULL, NULL},
};

static const struct rv_res audit_res = {
    .name = "audit",
    .table = "audit_log",
    .noun = "audit entry",
    .fields = audit_fields,
    .nfields = RV_ARRAY_LEN(audit_fields),
    .filters = audit_filters,
    .nfilters = RV_ARRAY_LEN(audit_filters),
};

/* ---- analytics -------------------------------------------------------------------------- */

/* Run a "key, count" GROUP BY and fold it into *by (keys seeded with zero) and *total. */
static int count_by(struct rv_db *db, const char *sql, const struct rv_val *p, size_t n,
                    const char *const *seed, json_t **by, int64_t *total)
{
	struct rv_rows *rows = NULL;
	int err = rv_db_exec(db, sql, p, n, &rows, NULL);
	if (err)
		return err;
	*by = json_object();
	*total = 0;
	for (size_t i = 0; seed && seed[i]; i++)
		json_object_set_new(*by, seed[i], json_integer(0));
	for (size_t i = 0; i < rows->nrows; i++) {
		const struct rv_val *k = rv_rows_at(rows, i, 0);
		int64_t c = val_i64(rv_rows_at(rows, i, 1));
		json_object_set_new(*by, k->type == RV_VAL_TEXT ? k->s : "none", json_integer(c));
		*total += c;
	}
	rv_rows_free(rows);
	return 0;
}

static void analytics(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	const char *q = rv_http_query(req, "campaign_id");
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	json_t *camps = NULL, *leads = NULL, *calls = NULL;
	int64_t cid = 0, ncamps, nleads, ncalls, answered = 0, dur_sum = 0, dur_n = 0;
	struct rv_val p[1];
	size_t n = 0;
	int err;

	if (q && *q) {
		if (rv_res_parse_id(q, &cid) != 0) {
			rv_res_fail_field(resp, "analytics", "campaign_id",
			                  "must be a positive id");
			return;
		}
		p[n++] = RV_VINT(cid);
	}
	if ((err = rv_store_acquire(app->store, &db)) != 0) {
		rv_res_store_fail(resp, err, "analytics", NULL);
		return;
	}
	err = count_by(db,
	               n ? "SELECT status, COUNT(*) FROM campaigns WHERE id = $1 GROUP BY status"
	                 : "SELECT status, COUNT(*) FROM campaigns GROUP BY status",
	               p, n, campaign_statuses, &camps, &ncamps);
	if (!err)
		err = count_by(db,
		               n ? "SELECT status, COUNT(*) FROM leads WHERE campaign_id = $1 "
		                   "GROUP BY status"
		                 : "SELECT status, COUNT(*) FROM leads GROUP BY status",
		               p, n, lead_statuses, &leads, &nleads);
	if (!err)
		err = count_by(db,
		               n ? "SELECT disposition, COUNT(*) FROM calls WHERE campaign_id = $1 "
		                   "GROUP BY disposition"
		                 : "SELECT disposition, COUNT(*) FROM calls GROUP BY disposition",
		               p, n, NULL, &calls, &ncalls);
	if (!err)
		err = rv_db_exec(db,
		                 n ? "SELECT COUNT(answered_at), SUM(duration_ms), "
		                     "COUNT(duration_ms) FROM calls WHERE campaign_id = $1"
		                   : "SELECT COUNT(answered_at), SUM(duration_ms), "
		                     "COUNT(duration_ms) FROM calls",
		                 p, n, &rows, NULL);
	if (err) {
		rv_res_store_fail(resp, err, "analytics", NULL);
		goto out;
	}
	if (rows->nrows == 1 && rows->ncols == 3) {
		answered = val_i64(rv_rows_at(rows, 0, 0));
		dur_sum = val_i64(rv_rows_at(rows, 0, 1));
		dur_n = val_i64(rv_rows_at(rows, 0, 2));
	}
	json_t *avg = dur_n > 0 ? json_integer((dur_sum + dur_n / 2) / dur_n) : json_null();
	json_t *body =
	    json_pack("{s:{s:o,s:I},s:{s:o,s:I},s:{s:o,s:I,s:I,s:o}}", "campaigns", "by_status",
	              camps, "total", (json_int_t)ncamps, "leads", "by_status", leads, "total",
	              (json_int_t)nleads, "calls", "by_disposition", calls, "total",
	              (json_int_t)ncalls, "answered", (json_int_t)answered, "avg_duration_ms", avg);
	camps = leads = calls = NULL;
	if (cid)
		json_object_set_new(body, "campaign_id", json_integer(cid));
	rv_http_reply_json(resp, 200, body);
out:
	json_decref(camps);
	json_decref(leads);
	json_decref(calls);
	if (rows)
		rv_rows_free(rows);
	rv_store_release(app->store, db);
}

/* ---- routes ----------------------------------------------------------------------------- */

/* Route handlers carry no user data, so each resource gets thin wrappers around the engine. */
#define RES_READ(r)                                                                                \
	static void r##_list(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)      \
	{                                                                                          \
		rv_res_list(a, q, s, &r##_res);                                                    \
	}                                                                                          \
	static void r##_get(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)       \
	{                                                                                          \
		rv_res_get(a, q, s, &r##_res);                                                     \
	}
#define RES_CREATE(r)                                                                              \
	static void r##_create(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)    \
	{                                                                                          \
		rv_res_create(a, q, s, &r##_res);                                                  \
	}
#define RES_PATCH(r)                                                                               \
	static void r##_patch(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)     \
	{                                                                                          \
		rv_res_patch(a, q, s, &r##_res);                                                   \
	}
#define RES_DELETE(r)                                                                              \
	static void r##_delete(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)    \
	{                                                                                          \
		rv_res_delete(a, q, s, &r##_res);                                                  \
	}
#define RES_CRUD(r) RES_READ(r) RES_CREATE(r) RES_PATCH(r) RES_DELETE(r)

RES_CRUD(users)
RES_READ(campaigns)

/* Campaign writes change inbound routing: the telephony snapshot is rebuilt after the commit
 * (the engine has committed when these return), so it never reads the old rows. */
static void campaigns_create(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)
{
	rv_res_create(a, q, s, &campaigns_res);
	if (s->status < 300) {
		rv_tel_routes_changed(a->tel);
		rv_agent_campaigns_changed(a->agent);
	}
}

static void campaigns_patch(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)
{
	rv_res_patch(a, q, s, &campaigns_res);
	if (s->status < 300) {
		rv_tel_routes_changed(a->tel);
		rv_agent_campaigns_changed(a->agent);
	}
}

static void campaigns_delete(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)
{
	rv_res_delete(a, q, s, &campaigns_res);
	if (s->status < 300)
		rv_tel_routes_changed(a->tel);
}

RES_CRUD(leads)
RES_READ(calls)
RES_READ(dnc)
RES_CREATE(dnc)
RES_DELETE(dnc)
RES_CRUD(flows)
RES_CRUD(webhooks)

static void audit_list(struct rv_app *a, struct rv_http_req *q, struct rv_http_resp *s)
{
	rv_res_list(a, q, s, &audit_res);
}

const struct rv_route rv_api_resources_routes[] = {
    {"GET", "/api/users", RV_ROLE_ADMIN, 0, users_list},
    {"POST", "/api/users", RV_ROLE_ADMIN, 0, users_create},
    {"GET", "/api/users/{id}", RV_ROLE_ADMIN, 0, users_get},
    {"PATCH", "/api/users/{id}", RV_ROLE_ADMIN, 0, users_patch},
    {"DELETE", "/api/users/{id}", RV_ROLE_ADMIN, 0, users_delete},

    {"GET", "/api/campaigns", RV_ROLE_VIEWER, 0, campaigns_list},
    {"POST", "/api/campaigns", RV_ROLE_MANAGER, 0, campaigns_create},
    {"GET", "/api/campaigns/{id}", RV_ROLE_VIEWER, 0, campaigns_get},
    {"PATCH", "/api/campaigns/{id}", RV_ROLE_MANAGER, 0, campaigns_patch},
    {"DELETE", "/api/campaigns/{id}", RV_ROLE_MANAGER, 0, campaigns_delete},

    {"GET", "/api/leads", RV_ROLE_VIEWER, 0, leads_list},
    {"POST", "/api/leads", RV_ROLE_MANAGER, 0, leads_create},
    {"GET", "/api/leads/{id}", RV_ROLE_VIEWER, 0, leads_get},
    {"PATCH", "/api/leads/{id}", RV_ROLE_MANAGER, 0, leads_patch},
    {"DELETE", "/api/leads/{id}", RV_ROLE_MANAGER, 0, leads_delete},

    {"GET", "/api/calls", RV_ROLE_VIEWER, 0, calls_list},
    {"GET", "/api/calls/{id}", RV_ROLE_VIEWER, 0, calls_get},
    {"GET", "/api/calls/{id}/turns", RV_ROLE_VIEWER, 0, calls_turns},

    {"GET", "/api/dnc", RV_ROLE_VIEWER, 0, dnc_list},
    {"POST", "/api/dnc", RV_ROLE_SUPERVISOR, 0, dnc_create},
    {"GET", "/api/dnc/{id}", RV_ROLE_VIEWER, 0, dnc_get},
    {"DELETE", "/api/dnc/{id}", RV_ROLE_MANAGER, 0, dnc_delete},

    {"GET", "/api/flows", RV_ROLE_VIEWER, 0, flows_list},
    {"POST", "/api/flows", RV_ROLE_MANAGER, 0, flows_create},
    {"GET", "/api/flows/{id}", RV_ROLE_VIEWER, 0, flows_get},
    {"PATCH", "/api/flows/{id}", RV_ROLE_MANAGER, 0, flows_patch},
    {"DELETE", "/api/flows/{id}", RV_ROLE_MANAGER, 0, flows_delete},

    {"GET", "/api/webhooks", RV_ROLE_MANAGER, 0, webhooks_list},
    {"POST", "/api/webhooks", RV_ROLE_ADMIN, 0, webhooks_create},
    {"GET", "/api/webhooks/{id}", RV_ROLE_MANAGER, 0, webhooks_get},
    {"PATCH", "/api/webhooks/{id}", RV_ROLE_ADMIN, 0, webhooks_patch},
    {"DELETE", "/api/webhooks/{id}", RV_ROLE_ADMIN, 0, webhooks_delete},

    {"GET", "/api/audit", RV_ROLE_ADMIN, 0, audit_list},
    {"GET", "/api/analytics", RV_ROLE_VIEWER, 0, analytics},
};
const size_t rv_api_resources_routes_len = RV_ARRAY_LEN(rv_api_resources_routes);
