/*
 * The auth routes: login, the caller's own user, and API keys. The HTTP server has already
 * authenticated the caller and checked the route's role before these handlers run.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/audit.h"
#include "api/auth.h"
#include "api/http.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#define LIST_DEFAULT    50
#define LIST_MAX        500
#define LOGIN_EMAIL_MAX 254
#define KEY_NAME_MAX    200
#define LOGIN_REFUSED   "invalid email or password"
#define KEY_COLUMNS     "id, name, prefix, role, user_id, created_at, last_used_at, revoked_at"

static struct rv_val vtext(const char *s)
{
	return RV_VTEXT(s);
}

static void reply_store_error(struct rv_http_resp *resp, int err)
{
	if (err == RV_STORE_EBUSY || err == -ETIMEDOUT) {
		rv_http_reply_error(resp, 503, "unavailable", NULL, "the database is busy");
		return;
	}
	rv_http_reply_error(resp, 500, "internal", NULL, "internal error");
}

static json_t *field_details(const char *field)
{
	return json_pack("{s:s}", "field", field);
}

/* One result row as a JSON object keyed by column name. */
static json_t *row_json(const struct rv_rows *rows, size_t r)
{
	json_t *o = json_object();
	for (size_t c = 0; c < rows->ncols; c++) {
		const struct rv_val *v = rv_rows_at(rows, r, c);
		json_t *j;
		switch (v->type) {
		case RV_VAL_INT:
			j = json_integer(v->i);
			break;
		case RV_VAL_REAL:
			j = json_real(v->r);
			break;
		case RV_VAL_TEXT:
			j = json_stringn(v->s, v->len);
			break;
		default:
			j = json_null();
			break;
		}
		json_object_set_new(o, rows->cols[c], j ? j : json_null());
	}
	return o;
}

/* Reject any member not in `allowed` (NULL-terminated) with 400 invalid_field. */
static int only_fields(json_t *body, const char *const *allowed, struct rv_http_resp *resp)
{
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v)
	{
		size_t i;
		for (i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (!allowed[i]) {
			rv_http_reply_error(resp, 400, "invalid_field", field_details(k),
			                    "unknown field '%s'", k);
			return -EINVAL;
		}
	}
	return 0;
}

/* A required string member; replies 400 invalid_field when missing or not a string. */
static const char *need_string(json_t *body, const char *field, struct rv_http_resp *resp)
{
	json_t *v = json_object_get(body, field);
	if (!json_is_string(v)) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details(field),
		                    "%s is required and must be a string", field);
		return NULL;
	}
	return json_string_value(v);
}

/* ---- POST /api/auth/login ----------------------------------------------------------------- */

static void login_failed(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                         const char *email, const char *reason)
{
	struct rv_db *db = NULL;
	rv_auth_count_failure(reason);
	rv_logkv(RV_LOG_INFO, "auth", "login refused", "reason", reason, "email", email,
	         "client_ip", req->client_ip, (const char *)NULL);
	if (rv_store_acquire(app->store, &db) == 0) {
		json_t *d = json_pack("{s:s, s:s}", "email", email, "reason", reason);
		int err = rv_audit(db, req, "login_failed", "users", 0, d);
		json_decref(d);
		if (err)
			rv_warn("auth", "could not audit a failed login: %s",
			        rv_store_strerror(err));
		rv_store_release(app->store, db);
	}
	/* One message for unknown email, wrong password and deactivated user alike. */
	rv_http_reply_error(resp, 401, "unauthorized", NULL, LOGIN_REFUSED);
}

static void login_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const fields[] = {"email", "password", NULL};
	json_t *body = NULL;
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	char *token = NULL, *hash = NULL;
	char email[LOGIN_EMAIL_MAX + 1], now[32], exp_iso[32];
	int64_t uid = 0, expires_at;
	int active = 0, err, in_tx = 0;
	enum rv_role role = RV_ROLE_NONE;

	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	if (only_fields(body, fields, resp) != 0)
		goto out;
	const char *email_in = need_string(body, "email", resp);
	if (!email_in)
		goto out;
	const char *password = need_string(body, "password", resp);
	if (!password)
		goto out;

	/* Stored addresses are lower-case; an over-long one simply matches nobody. */
	size_t n = rv_strlcpy(email, email_in, sizeof(email));
	for (char *p = email; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (n < sizeof(email)) {
		err = rv_store_acquire(app->store, &db);
		if (err) {
			reply_store_error(resp, err);
			goto out;
		}
		struct rv_val arg = vtext(email);
		err = rv_db_exec(db,
		                 "SELECT id, email, name, role, active, password_hash FROM users "
		                 "WHERE email = $1",
		                 &arg, 1, &rows, NULL);
		/* Argon2id takes a while; don't hold a pooled connection meanwhile. */
		rv_store_release(app->store, db);
		db = NULL;
		if (err) {
			reply_store_error(resp, err);
			goto out;
		}
		if (rows->nrows == 1) {
			uid = rv_rows_at(rows, 0, 0)->i;
			active = rv_rows_at(rows, 0, 4)->i != 0;
			if (rv_role_parse(rv_rows_at(rows, 0, 3)->s, &role) != 0)
				uid = 0;
			const char *h = rv_rows_at(rows, 0, 5)->s;
			hash = h ? rv_xstrdup(h) : NULL;
		}
	}
	if (uid == 0 || !hash) {
		rv_auth_password_verify_dummy(password);
		login_failed(app, req, resp, email, "bad_credentials");
		goto out;
	}
	if (rv_auth_password_verify(hash, password) != 0) {
		login_failed(app, req, resp, email, "bad_credentials");
		goto out;
	}
	if (!active) {
		login_failed(app, req, resp, email, "inactive");
		goto out;
	}

	err = rv_auth_token_issue(app, uid, email, role, &token, &expires_at);
	if (err) {
		rv_http_reply_error(resp, 500, "internal", NULL, "could not issue a token");
		goto out;
	}
	err = rv_store_acquire(app->store, &db);
	if (!err)
		err = rv_db_begin(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = 1;
	rv_time_iso_now(now, sizeof(now));
	struct rv_val args[] = {vtext(now), RV_VINT(uid)};
	err = rv_db_exec(db, "UPDATE users SET last_login_at = $1 WHERE id = $2", args, 2, NULL,
	                 NULL);
	if (!err) {
		/* The login is the user's own act: record it under their name. */
		req->who.user_id = uid;
		req->who.api_key_id = 0;
		req->who.role = role;
		rv_strlcpy(req->who.email, email, sizeof(req->who.email));
		err = rv_audit(db, req, "login", "users", uid, NULL);
	}
	if (!err)
		err = rv_db_commit(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = 0;

	rv_time_iso(expires_at, exp_iso, sizeof(exp_iso));
	rv_logkv(RV_LOG_INFO, "auth", "login", "email", email, "client_ip", req->client_ip,
	         (const char *)NULL);
	json_t *user = row_json(rows, 0);
	json_object_del(user, "password_hash");
	json_object_del(user, "active");
	rv_http_reply_json(
	    resp, 200,
	    json_pack("{s:s, s:s, s:o}", "token", token, "expires_at", exp_iso, "user", user));
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	if (rows)
		rv_rows_free(rows);
	if (token) {
		sodium_memzero(token, strlen(token));
		free(token);
	}
	free(hash);
	json_decref(body);
}

/* ---- GET /api/auth/me ---------------------------------------------------------------------- */

static void me_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	struct rv_rows *rows = NULL;
	struct rv_val arg = RV_VINT(req->who.user_id);
	int err = rv_store_exec(app->store,
	                        "SELECT id, email, name, role, active, created_at, updated_at, "
	                        "last_login_at FROM users WHERE id = $1",
	                        &arg, 1, &rows, NULL);
	if (err) {
		reply_store_error(resp, err);
		return;
	}
	if (rows->nrows != 1) {
		rv_http_reply_error(resp, 401, "unauthorized", NULL, "the user no longer exists");
		goto out;
	}
	json_t *user = row_json(rows, 0);
	json_object_set_new(user, "active", json_boolean(rv_rows_at(rows, 0, 4)->i != 0));
	json_object_set_new(
	    user, "auth",
	    json_pack("{s:s, s:o, s:s}", "method", req->who.api_key_id ? "api_key" : "token",
	              "api_key_id",
	              req->who.api_key_id ? json_integer(req->who.api_key_id) : json_null(), "role",
	              rv_role_name(req->who.role)));
	rv_http_reply_json(resp, 200, user);
out:
	rv_rows_free(rows);
}

/* ---- /api/keys ----------------------------------------------------------------------------- */

static void keys_list_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	struct rv_rows *rows = NULL;
	struct rv_val args[3];
	size_t n = 0;
	int64_t limit = LIST_DEFAULT, cursor = 0, user_id = 0;
	const char *q;
	char sql[256];
	size_t off;

	q = rv_http_query(req, "limit");
	if (q && rv_parse_int64(q, 1, LIST_MAX, &limit) != 0) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("limit"),
		                    "limit must be an integer from 1 to %d", LIST_MAX);
		return;
	}
	q = rv_http_query(req, "cursor");
	if (q && rv_parse_int64(q, 1, INT64_MAX, &cursor) != 0) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("cursor"),
		                    "cursor is not one this server handed out");
		return;
	}
	q = rv_http_query(req, "user_id");
	if (q && rv_parse_int64(q, 1, INT64_MAX, &user_id) != 0) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("user_id"),
		                    "user_id must be a positive integer");
		return;
	}

	off = (size_t)snprintf(sql, sizeof(sql), "SELECT " KEY_COLUMNS " FROM api_keys");
	const char *glue = " WHERE";
	if (cursor) {
		args[n++] = RV_VINT(cursor);
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "%s id < $%zu", glue, n);
		glue = " AND";
	}
	if (user_id) {
		args[n++] = RV_VINT(user_id);
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "%s user_id = $%zu", glue, n);
	}
	/* One row more than asked tells whether another page exists. */
	args[n++] = RV_VINT(limit + 1);
	snprintf(sql + off, sizeof(sql) - off, " ORDER BY id DESC LIMIT $%zu", n);

	int err = rv_store_exec(app->store, sql, args, n, &rows, NULL);
	if (err) {
		reply_store_error(resp, err);
		return;
	}
	json_t *items = json_array();
	size_t shown = rows->nrows > (size_t)limit ? (size_t)limit : rows->nrows;
	for (size_t i = 0; i < shown; i++)
		json_array_append_new(items, row_json(rows, i));
	json_t *next = json_null();
	if (rows->nrows > (size_t)limit) {
		char buf[24];
		snprintf(buf, sizeof(buf), "%lld", (long long)rv_rows_at(rows, shown - 1, 0)->i);
		json_decref(next);
		next = json_string(buf);
	}
	rv_http_reply_json(resp, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
	rv_rows_free(rows);
}

static void keys_create_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const fields[] = {"name", "role", "user_id", NULL};
	json_t *body = NULL, *v;
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	char *key = NULL;
	const char *why = NULL;
	int64_t user_id = req->who.user_id, kid;
	enum rv_role role = RV_ROLE_NONE, user_role;
	int err, in_tx = 0;

	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	if (only_fields(body, fields, resp) != 0)
		goto out;
	const char *name = need_string(body, "name", resp);
	if (!name)
		goto out;
	if (name[0] == '\0' || strlen(name) > KEY_NAME_MAX) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("name"),
		                    "name must be 1 to %d bytes", KEY_NAME_MAX);
		goto out;
	}
	v = json_object_get(body, "role");
	if (v && (!json_is_string(v) || rv_role_parse(json_string_value(v), &role) != 0)) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("role"),
		                    "role must be one of viewer, supervisor, manager, admin");
		goto out;
	}
	v = json_object_get(body, "user_id");
	if (v && (!json_is_integer(v) || json_integer_value(v) <= 0)) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("user_id"),
		                    "user_id must be a positive integer");
		goto out;
	}
	if (v)
		user_id = json_integer_value(v);
	if (user_id <= 0) {
		rv_http_reply_error(resp, 422, "unprocessable", field_details("user_id"),
		                    "name the user the key is for");
		goto out;
	}
	if (role > req->who.role) {
		rv_http_reply_error(resp, 422, "unprocessable", field_details("role"),
		                    "a key may not outrank the caller (%s)",
		                    rv_role_name(req->who.role));
		goto out;
	}

	err = rv_store_acquire(app->store, &db);
	if (!err)
		err = rv_db_begin(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = 1;
	if (role == RV_ROLE_NONE) {
		/* Default: the caller's role, capped at the target user's. */
		struct rv_val uarg = RV_VINT(user_id);
		err = rv_db_exec(db, "SELECT role FROM users WHERE id = $1", &uarg, 1, &rows, NULL);
		if (err) {
			reply_store_error(resp, err);
			goto out;
		}
		role = req->who.role;
		if (rows->nrows == 1 && rv_role_parse(rv_rows_at(rows, 0, 0)->s, &user_role) == 0 &&
		    user_role < role)
			role = user_role;
		rv_rows_free(rows);
		rows = NULL;
	}
	err = rv_auth_api_key_insert(db, user_id, name, role, &kid, &key, &why);
	if (err == -EINVAL) {
		rv_http_reply_error(resp, 400, "invalid_field", field_details("name"), "%s", why);
		goto out;
	}
	if (err == -ENOENT || err == -EPERM) {
		rv_http_reply_error(resp, 422, "unprocessable",
		                    field_details(err == -ENOENT ? "user_id" : "role"), "%s", why);
		goto out;
	}
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	json_t *d = json_pack("{s:s, s:s, s:I}", "name", name, "role", rv_role_name(role),
	                      "user_id", (json_int_t)user_id);
	err = rv_audit(db, req, "create", "api_keys", kid, d);
	json_decref(d);
	struct rv_val karg = RV_VINT(kid);
	if (!err)
		err = rv_db_exec(db, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = $1", &karg, 1,
		                 &rows, NULL);
	if (!err && rows->nrows != 1)
		err = -EIO;
	if (!err)
		err = rv_db_commit(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = 0;
	rv_logkv(RV_LOG_INFO, "auth", "API key created", "by", req->who.email, "role",
	         rv_role_name(role), (const char *)NULL);
	json_t *obj = row_json(rows, 0);
	json_object_set_new(obj, "key", json_string(key));
	rv_http_reply_json(resp, 201, obj);
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	if (rows)
		rv_rows_free(rows);
	if (key) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	json_decref(body);
}

static void keys_delete_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	int64_t id, changes = 0;
	char now[32];
	int err, in_tx = 0;

	if (req->nparams < 1 || rv_parse_int64(req->params[0], 1, INT64_MAX, &id) != 0) {
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such API key");
		return;
	}
	err = rv_store_acquire(app->store, &db);
	if (!err)
		err = rv_db_begin(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = 1;
	rv_time_iso_now(now, sizeof(now));
	struct rv_val args[] = {vtext(now), RV_VINT(id)};
	err = rv_db_exec(db,
	                 "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
	                 args, 2, NULL, &changes);
	if (!err && changes == 0) {
		/* Nothing changed: either there is no such key or it was revoked already. */
		err = rv_db_exec(db, "SELECT id FROM api_keys WHERE id = $1", &args[1], 1, &rows,
		                 NULL);
		if (!err && rows->nrows == 0) {
			rv_http_reply_error(resp, 404, "not_found", NULL, "no such API key");
			goto out;
		}
	}
	if (!err && changes > 0)
		err = rv_audit(db, req, "revoke", "api_keys", id, NULL);
	if (!err)
		err = rv_db_commit(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = 0;
	if (changes > 0)
		rv_logkv(RV_LOG_INFO, "auth", "API key revoked", "by", req->who.email,
		         (const char *)NULL);
	rv_http_reply_raw(resp, 204, "application/json", "", 0);
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	if (rows)
		rv_rows_free(rows);
}

const struct rv_route rv_api_auth_routes[] = {
    {"POST", "/api/auth/login", RV_ROLE_NONE, 0, login_h},
    {"GET", "/api/auth/me", RV_ROLE_VIEWER, 0, me_h},
    {"GET", "/api/keys", RV_ROLE_ADMIN, 0, keys_list_h},
    {"POST", "/api/keys", RV_ROLE_ADMIN, 0, keys_create_h},
    {"DELETE", "/api/keys/{id}", RV_ROLE_ADMIN, 0, keys_delete_h},
};
const size_t rv_api_auth_routes_len = RV_ARRAY_LEN(rv_api_auth_routes);
