/*
 * The table-driven CRUD engine (see resource.h). Column names in generated SQL come only from
 * resource descriptors and hooks, never from request bodies, and are checked once more before
 * they are pasted into a statement; every value travels as a $N parameter.
 */
#include "api/resource.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#define COMP     "api"
#define MAX_COLS 64
#define SQL_CAP  4096

/* A bounded SQL text builder: overflow is remembered and reported once at the end. */
struct sqlbuf {
	char s[SQL_CAP];
	size_t len;
	int overflow;
};

__attribute__((format(printf, 2, 3))) static void sql_add(struct sqlbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (b->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->s + b->len, sizeof(b->s) - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(b->s) - b->len)
		b->overflow = 1;
	else
		b->len += (size_t)n;
}

/* Column names must be plain identifiers before they are pasted into SQL. */
static int ident_ok(const char *s)
{
	if (!s || !((*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	}
	return 1;
}

static const struct rv_res_field *find_field(const struct rv_res *res, const char *name)
{
	for (size_t i = 0; res && i < res->nfields; i++) {
		if (strcmp(res->fields[i].name, name) == 0)
			return &res->fields[i];
	}
	return NULL;
}

/* ---- errors ----------------------------------------------------------------------------- */

int rv_res_fail(struct rv_res_op *op, int status, const char *code, json_t *details,
                const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rv_logkv(RV_LOG_INFO, COMP, "write rejected", "resource", op->res->name, "code", code,
	         "reason", msg, NULL);
	rv_http_reply_error(op->resp, status, code, details, "%s", msg);
	return -EINVAL;
}

int rv_res_fail_field(struct rv_http_resp *resp, const char *resource, const char *field,
                      const char *why)
{
	rv_logkv(RV_LOG_INFO, COMP, "invalid field", "resource", resource, "field", field, "reason",
	         why, NULL);
	rv_http_reply_error(resp, 400, "invalid_field", json_pack("{s:s}", "field", field),
	                    "%s: %s", field, why);
	return -EINVAL;
}

int rv_res_store_fail(struct rv_http_resp *resp, int err, const char *what,
                      const char *conflict_msg)
{
	switch (err) {
	case RV_STORE_ECONFLICT:
		rv_http_reply_error(resp, 409, "conflict", NULL, "%s",
		                    conflict_msg ? conflict_msg
		                                 : "a record with that value exists");
		break;
	case RV_STORE_ECONSTRAINT:
		rv_http_reply_error(resp, 422, "unprocessable", NULL,
		                    "the change violates a rule of the stored data (%s)", what);
		break;
	case RV_STORE_EBUSY:
	case -ETIMEDOUT:
		rv_logkv(RV_LOG_WARN, COMP, "store unavailable", "what", what, "error",
		         rv_store_strerror(err), NULL);
		rv_http_reply_error(resp, 503, "unavailable", NULL,
		                    "the database is busy; try again");
		break;
	default:
		rv_logkv(RV_LOG_ERROR, COMP, "store error", "what", what, "error",
		         rv_store_strerror(err), NULL);
		rv_http_reply_error(resp, 500, "internal", NULL, "internal error");
		break;
	}
	return err < 0 ? err : -EIO;
}

/* ---- rows -> JSON ------------------------------------------------------------------------ */

static json_t *text_json(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	/* Rows written by other code paths could hold bytes that are not UTF-8. */
	return j ? j : json_null();
}

static json_t *raw_json(const struct rv_val *v)
{
	switch (v->type) {
	case RV_VAL_INT:
		return json_integer(v->i);
	case RV_VAL_REAL:
		return json_real(v->r);
	case RV_VAL_TEXT:
		return text_json(v->s, v->len);
	default:
		return json_null();
	}
}

static json_t *val_json(const struct rv_res_field *f, const char *col, const struct rv_val *v)
{
	int64_t i;

	if (v->type == RV_VAL_NULL || v->type == RV_VAL_BLOB)
		return json_null();
	if (!f)
		return raw_json(v);
	switch (f->type) {
	case RV_RES_INT:
		if (v->type == RV_VAL_TEXT && rv_parse_int64(v->s, INT64_MIN, INT64_MAX, &i) == 0)
			return json_integer(i);
		if (v->type == RV_VAL_REAL)
			return json_integer((json_int_t)v->r);
		return raw_json(v);
	case RV_RES_BOOL:
		if (v->type == RV_VAL_INT)
			return json_boolean(v->i != 0);
		if (v->type == RV_VAL_TEXT)
			return json_boolean(strcmp(v->s, "1") == 0 || strcmp(v->s, "t") == 0 ||
			                    strcmp(v->s, "true") == 0);
		return raw_json(v);
	case RV_RES_REAL:
		if (v->type == RV_VAL_INT)
			return json_real((double)v->i);
		return raw_json(v);
	case RV_RES_OBJECT:
	case RV_RES_ARRAY:
		if (v->type == RV_VAL_TEXT) {
			json_error_t e;
			json_t *doc = json_loadb(v->s, v->len, 0, &e);
			if (doc)
				return doc;
			rv_logkv(RV_LOG_WARN, COMP, "stored JSON column does not parse", "column",
			         col, "error", e.text, NULL);
		}
		return raw_json(v);
	default:
		return raw_json(v);
	}
}

json_t *rv_res_row_json(const struct rv_res *res, const struct rv_rows *rows, size_t i)
{
	json_t *obj = json_object();
	for (size_t c = 0; c < rows->ncols; c++) {
		const struct rv_res_field *f = find_field(res, rows->cols[c]);
		json_object_set_new(obj, rows->cols[c],
		                    val_json(f, rows->cols[c], rv_rows_at(rows, i, c)));
	}
	return obj;
}

json_t *rv_res_public(const struct rv_res *res, const json_t *row)
{
	json_t *obj = json_copy((json_t *)row);
	for (size_t i = 0; i < res->nfields; i++) {
		if (res->fields[i].flags & RV_RES_F_HIDDEN)
			json_object_del(obj, res->fields[i].name);
	}
	if (res->decorate)
		res->decorate(obj);
	return obj;
}

int rv_res_load(struct rv_db *db, const struct rv_res *res, int64_t id, json_t **out)
{
	char sql[256];
	struct rv_val p[1] = {RV_VINT(id)};
	struct rv_rows *rows = NULL;
	int err;

	snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE id = $1", res->table);
	err = rv_db_exec(db, sql, p, 1, &rows, NULL);
	if (err)
		return err;
	if (rows->nrows == 0) {
		err = -ENOENT;
		goto out;
	}
	*out = rv_res_row_json(res, rows, 0);
out:
	rv_rows_free(rows);
	return err;
}

/*
 * Lock row id for the rest of the transaction before it is read for a change. On SQLite the
 * transaction already holds the database write lock and this is a no-op write; on PostgreSQL
 * (READ COMMITTED) it takes the row lock, so two PATCHes of one row queue up and the second
 * reads the first's result instead of overwriting it from a stale copy (lost update), and
 * checks made on the stored row (status moves, flow versions) see what is really there.
 * Returns 0, -ENOENT when there is no such row, or a store error.
 */
static int lock_row(struct rv_db *db, const struct rv_res *res, int64_t id)
{
	char sql[256];
	struct rv_val p[1] = {RV_VINT(id)};
	int64_t changes = 0;
	int err;

	snprintf(sql, sizeof(sql), "UPDATE %s SET id = id WHERE id = $1", res->table);
	err = rv_db_exec(db, sql, p, 1, NULL, &changes);
	if (!err && changes == 0)
		err = -ENOENT;
	return err;
}

const json_t *rv_res_value(const struct rv_res_op *op, const char *column)
{
	const json_t *v = op->vals ? json_object_get(op->vals, column) : NULL;
	if (!v && op->cur)
		v = json_object_get(op->cur, column);
	return v;
}

/* ---- input validation --------------------------------------------------------------------- */

static const char *type_name(enum rv_res_type t)
{
	switch (t) {
	case RV_RES_TEXT:
		return "a string";
	case RV_RES_INT:
		return "an integer";
	case RV_RES_BOOL:
		return "true or false";
	case RV_RES_REAL:
		return "a number";
	case RV_RES_OBJECT:
		return "an object";
	case RV_RES_ARRAY:
		return "an array";
	}
	return "?";
}

static int type_ok(enum rv_res_type t, const json_t *v)
{
	switch (t) {
	case RV_RES_TEXT:
		return json_is_string(v);
	case RV_RES_INT:
		return json_is_integer(v);
	case RV_RES_BOOL:
		return json_is_boolean(v);
	case RV_RES_REAL:
		return json_is_number(v);
	case RV_RES_OBJECT:
		return json_is_object(v);
	case RV_RES_ARRAY:
		return json_is_array(v);
	}
	return 0;
}

/* Check one body value against its field; on failure reply and return -EINVAL. */
static int check_value(const struct rv_res *res, const struct rv_res_field *f, const json_t *v,
                       struct rv_http_resp *resp)
{
	const char *why = NULL;
	char msg[160];

	if (json_is_null(v)) {
		if (f->flags & RV_RES_F_NULLABLE)
			return 0;
		snprintf(msg, sizeof(msg), "must be %s, not null", type_name(f->type));
		return rv_res_fail_field(resp, res->name, f->name, msg);
	}
	if (!type_ok(f->type, v)) {
		snprintf(msg, sizeof(msg), "must be %s", type_name(f->type));
		return rv_res_fail_field(resp, res->name, f->name, msg);
	}
	if (f->type == RV_RES_TEXT) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		size_t cap = f->max > 0 ? (size_t)f->max : RV_RES_TEXT_CAP;
		if (memchr(s, '\0', len))
			return rv_res_fail_field(resp, res->name, f->name, "contains a NUL byte");
		if (len > cap) {
			snprintf(msg, sizeof(msg), "longer than %zu bytes", cap);
			return rv_res_fail_field(resp, res->name, f->name, msg);
		}
		if ((f->flags & RV_RES_F_NONEMPTY) && len == 0)
			return rv_res_fail_field(resp, res->name, f->name, "must not be empty");
		if (f->choices) {
			size_t k;
			for (k = 0; f->choices[k]; k++) {
				if (strcmp(s, f->choices[k]) == 0)
					break;
			}
			if (!f->choices[k]) {
				json_t *allowed = json_array();
				for (k = 0; f->choices[k]; k++)
					json_array_append_new(allowed, json_string(f->choices[k]));
				rv_logkv(RV_LOG_INFO, COMP, "invalid field", "resource", res->name,
				         "field", f->name, "reason", "not an allowed value", NULL);
				rv_http_reply_error(
				    resp, 400, "invalid_field",
				    json_pack("{s:s,s:o}", "field", f->name, "allowed", allowed),
				    "%s: not one of the allowed values", f->name);
				return -EINVAL;
			}
		}
	} else if (f->type == RV_RES_INT && f->min < f->max) {
		json_int_t i = json_integer_value(v);
		if (i < f->min || i > f->max) {
			rv_logkv(RV_LOG_INFO, COMP, "invalid field", "resource", res->name, "field",
			         f->name, "reason", "out of range", NULL);
			rv_http_reply_error(resp, 400, "invalid_field",
			                    json_pack("{s:s,s:I,s:I}", "field", f->name, "min",
			                              (json_int_t)f->min, "max",
			                              (json_int_t)f->max),
			                    "%s: must be between %" PRId64 " and %" PRId64, f->name,
			                    f->min, f->max);
			return -EINVAL;
		}
	} else if (f->type == RV_RES_OBJECT || f->type == RV_RES_ARRAY) {
		size_t cap = f->max > 0 ? (size_t)f->max : RV_RES_JSON_CAP;
		if (json_dumpb(v, NULL, 0, JSON_COMPACT) > cap) {
			snprintf(msg, sizeof(msg), "larger than %zu bytes", cap);
			return rv_res_fail_field(resp, res->name, f->name, msg);
		}
	}
	if (f->check && f->check(v, &why) != 0)
		return rv_res_fail_field(resp, res->name, f->name, why ? why : "invalid value");
	return 0;
}

static int validate_body(const struct rv_res *res, json_t *body, enum rv_res_action act,
                         struct rv_http_resp *resp, json_t *vals)
{
	unsigned need = act == RV_RES_CREATE ? RV_RES_F_CREATE : RV_RES_F_UPDATE;
	const char *key;
	json_t *v;

	json_object_foreach(body, key, v)
	{
		const struct rv_res_field *f = find_field(res, key);
		if (!f || ((f->flags & RV_RES_F_HIDDEN) && !(f->flags & need)))
			return rv_res_fail_field(resp, res->name, key, "unknown field");
		if (!(f->flags & need))
			return rv_res_fail_field(resp, res->name, key,
			                         act == RV_RES_CREATE
			                             ? "field can't be set by a client"
			                             : "field can't be changed");
		if (check_value(res, f, v, resp) != 0)
			return -EINVAL;
		json_object_set(vals, key, v);
	}
	if (act == RV_RES_CREATE) {
		for (size_t i = 0; i < res->nfields; i++) {
			const struct rv_res_field *f = &res->fields[i];
			if ((f->flags & RV_RES_F_REQUIRED) && !json_object_get(vals, f->name))
				return rv_res_fail_field(resp, res->name, f->name,
				                         "missing required field");
		}
	}
	return 0;
}

/* ---- JSON values -> statement parameters ------------------------------------------------- */

struct params {
	struct rv_val v[MAX_COLS];
	char *owned[MAX_COLS];
	size_t n, nowned;
};

static void params_free(struct params *p)
{
	for (size_t i = 0; i < p->nowned; i++)
		free(p->owned[i]);
	p->nowned = 0;
}

static int params_add(struct params *p, const json_t *j)
{
	struct rv_val v = RV_VNULL;
	if (p->n >= MAX_COLS)
		return -E2BIG;
	switch (json_typeof(j)) {
	case JSON_STRING:
		v = (struct rv_val){
		    .type = RV_VAL_TEXT, .s = json_string_value(j), .len = json_string_length(j)};
		break;
	case JSON_INTEGER:
		v = RV_VINT(json_integer_value(j));
		break;
	case JSON_REAL:
		v = RV_VREAL(json_real_value(j));
		break;
	case JSON_TRUE:
		v = RV_VINT(1);
		break;
	case JSON_FALSE:
		v = RV_VINT(0);
		break;
	case JSON_OBJECT:
	case JSON_ARRAY: {
		char *s = json_dumps(j, JSON_COMPACT);
		if (!s)
			return -ENOMEM;
		p->owned[p->nowned++] = s;
		v = RV_VTEXT(s);
		break;
	}
	default:
		break;
	}
	p->v[p->n++] = v;
	return 0;
}

/* Append a borrowed text parameter (time stamps) and its column. */
static int add_stamp(struct params *p, struct sqlbuf *cols, struct sqlbuf *marks, const char *col,
                     const char *now)
{
	if (p->n >= MAX_COLS)
		return -E2BIG;
	p->v[p->n++] = RV_VTEXT(now);
	sql_add(cols, "%s%s", p->n > 1 ? ", " : "", col);
	if (marks)
		sql_add(marks, "%s$%zu", p->n > 1 ? ", " : "", p->n);
	else
		sql_add(cols, " = $%zu", p->n);
	return 0;
}

/* INSERT the validated values plus time stamps; *id receives the new row's id. */
static int insert_row(struct rv_db *db, const struct rv_res *res, json_t *vals, int64_t *id)
{
	struct sqlbuf *cols = rv_xcalloc(1, sizeof(*cols));
	struct sqlbuf *marks = rv_xcalloc(1, sizeof(*marks));
	struct sqlbuf *sql = rv_xcalloc(1, sizeof(*sql));
	struct params *p = rv_xcalloc(1, sizeof(*p));
	struct rv_rows *rows = NULL;
	char now[40];
	const char *key;
	json_t *v;
	int err = 0;

	rv_time_iso_now(now, sizeof(now));
	json_object_foreach(vals, key, v)
	{
		if (!ident_ok(key)) {
			err = -EINVAL;
			goto out;
		}
		if ((err = params_add(p, v)) != 0)
			goto out;
		sql_add(cols, "%s%s", p->n > 1 ? ", " : "", key);
		sql_add(marks, "%s$%zu", p->n > 1 ? ", " : "", p->n);
	}
	if (res->has_created_at && (err = add_stamp(p, cols, marks, "created_at", now)) != 0)
		goto out;
	if (res->has_updated_at && (err = add_stamp(p, cols, marks, "updated_at", now)) != 0)
		goto out;
	sql_add(sql, "INSERT INTO %s (%s) VALUES (%s) RETURNING id", res->table, cols->s, marks->s);
	if (cols->overflow || marks->overflow || sql->overflow) {
		err = -E2BIG;
		goto out;
	}
	err = rv_db_exec(db, sql->s, p->v, p->n, &rows, NULL);
	if (err)
		goto out;
	if (rows->nrows != 1 || rows->ncols < 1 || rv_rows_at(rows, 0, 0)->type != RV_VAL_INT) {
		err = -EIO;
		goto out;
	}
	*id = rv_rows_at(rows, 0, 0)->i;
out:
	if (rows)
		rv_rows_free(rows);
	params_free(p);
	free(p);
	free(cols);
	free(marks);
	free(sql);
	return err;
}

/* UPDATE the given columns (and updated_at) of row id. -ENOENT when no row changed. */
static int update_row(struct rv_db *db, const struct rv_res *res, int64_t id, json_t *vals)
{
	struct sqlbuf *sets = rv_xcalloc(1, sizeof(*sets));
	struct sqlbuf *sql = rv_xcalloc(1, sizeof(*sql));
	struct params *p = rv_xcalloc(1, sizeof(*p));
	char now[40];
	const char *key;
	json_t *v;
	int64_t changes = 0;
	int err = 0;

	rv_time_iso_now(now, sizeof(now));
	json_object_foreach(vals, key, v)
	{
		if (!ident_ok(key)) {
			err = -EINVAL;
			goto out;
		}
		if ((err = params_add(p, v)) != 0)
			goto out;
		sql_add(sets, "%s%s = $%zu", p->n > 1 ? ", " : "", key, p->n);
	}
	if (res->has_updated_at && (err = add_stamp(p, sets, NULL, "updated_at", now)) != 0)
		goto out;
	if (p->n >= MAX_COLS) {
		err = -E2BIG;
		goto out;
	}
	p->v[p->n++] = RV_VINT(id);
	sql_add(sql, "UPDATE %s SET %s WHERE id = $%zu", res->table, sets->s, p->n);
	if (sets->overflow || sql->overflow) {
		err = -E2BIG;
		goto out;
	}
	err = rv_db_exec(db, sql->s, p->v, p->n, NULL, &changes);
	if (!err && changes == 0)
		err = -ENOENT;
out:
	params_free(p);
	free(p);
	free(sets);
	free(sql);
	return err;
}

/* ---- route-level operations ------------------------------------------------------------- */

static void reply_not_found(struct rv_http_resp *resp, const struct rv_res *res)
{
	rv_http_reply_error(resp, 404, "not_found", NULL, "no such %s", res->noun);
}

static json_t *field_names(json_t *vals, const struct rv_res *res)
{
	json_t *a = json_array();
	const char *key;
	json_t *v;
	json_object_foreach(vals, key, v)
	{
		const struct rv_res_field *f = find_field(res, key);
		/* Hidden columns (hashes, secrets) are named by their input field instead. */
		if (!f || !(f->flags & RV_RES_F_HIDDEN))
			json_array_append_new(a, json_string(key));
	}
	return a;
}

void rv_res_get(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                const struct rv_res *res)
{
	struct rv_db *db = NULL;
	json_t *row = NULL;
	int64_t id;
	int err;

	if (req->nparams < 1 || rv_res_parse_id(req->params[0], &id) != 0) {
		reply_not_found(resp, res);
		return;
	}
	if ((err = rv_store_acquire(app->store, &db)) != 0) {
		rv_res_store_fail(resp, err, res->name, NULL);
		return;
	}
	err = rv_res_load(db, res, id, &row);
	rv_store_release(app->store, db);
	if (err == -ENOENT)
		reply_not_found(resp, res);
	else if (err)
		rv_res_store_fail(resp, err, res->name, NULL);
	else
		rv_http_reply_json(resp, 200, rv_res_public(res, row));
	json_decref(row);
}

void rv_res_list(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                 const struct rv_res *res)
{
	char bufs[8][256];
	struct rv_val p[12];
	size_t n = 0;
	struct sqlbuf *sql = rv_xcalloc(1, sizeof(*sql));
	struct rv_rows *rows = NULL;
	int64_t limit, cursor;
	json_t *items = NULL, *next = NULL;
	int err;

	if (rv_res_parse_limit(rv_http_query(req, "limit"), &limit) != 0) {
		rv_http_reply_error(
		    resp, 400, "invalid_field",
		    json_pack("{s:s,s:i,s:i}", "field", "limit", "min", 1, "max", RV_RES_LIMIT_MAX),
		    "limit: must be an integer from 1 to %d", RV_RES_LIMIT_MAX);
		goto out;
	}
	if (rv_res_parse_cursor(rv_http_query(req, "cursor"), &cursor) != 0) {
		rv_res_fail_field(resp, res->name, "cursor", "not a cursor from next_cursor");
		goto out;
	}
	sql_add(sql, "SELECT * FROM %s", res->table);
	for (size_t i = 0; i < res->nfilters && i < RV_ARRAY_LEN(bufs); i++) {
		const struct rv_res_filter *f = &res->filters[i];
		const char *q = rv_http_query(req, f->arg);
		const char *why = "invalid value";
		if (!q || !*q)
			continue;
		if (f->type == RV_RES_INT) {
			int64_t v;
			if (rv_res_parse_id(q, &v) != 0) {
				rv_res_fail_field(resp, res->name, f->arg, "must be a positive id");
				goto out;
			}
			p[n++] = RV_VINT(v);
		} else {
			if (strlen(q) >= sizeof(bufs[i])) {
				rv_res_fail_field(resp, res->name, f->arg, "too long");
				goto out;
			}
			if (f->choices) {
				size_t k;
				for (k = 0; f->choices[k] && strcmp(f->choices[k], q) != 0; k++)
					;
				if (!f->choices[k]) {
					rv_res_fail_field(resp, res->name, f->arg,
					                  "not one of the allowed values");
					goto out;
				}
			}
			if (f->norm) {
				if (f->norm(app, q, bufs[i], sizeof(bufs[i]), &why) != 0) {
					rv_res_fail_field(resp, res->name, f->arg, why);
					goto out;
				}
			} else {
				rv_strlcpy(bufs[i], q, sizeof(bufs[i]));
			}
			p[n++] = RV_VTEXT(bufs[i]);
		}
		sql_add(sql, " %s %s = $%zu", n == 1 ? "WHERE" : "AND", f->column, n);
	}
	if (cursor > 0) {
		p[n++] = RV_VINT(cursor);
		sql_add(sql, " %s id < $%zu", n == 1 ? "WHERE" : "AND", n);
	}
	/* One row more than asked tells whether another page exists. */
	p[n++] = RV_VINT(limit + 1);
	sql_add(sql, " ORDER BY id DESC LIMIT $%zu", n);
	if (sql->overflow) {
		rv_res_store_fail(resp, -E2BIG, res->name, NULL);
		goto out;
	}
	err = rv_store_exec(app->store, sql->s, p, n, &rows, NULL);
	if (err) {
		rv_res_store_fail(resp, err, res->name, NULL);
		goto out;
	}
	items = json_array();
	for (size_t i = 0; i < rows->nrows && i < (size_t)limit; i++) {
		json_t *row = rv_res_row_json(res, rows, i);
		json_array_append_new(items, rv_res_public(res, row));
		json_decref(row);
	}
	if (rows->nrows > (size_t)limit) {
		json_t *last = json_array_get(items, (size_t)limit - 1);
		char c[24];
		snprintf(c, sizeof(c), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(last, "id")));
		next = json_string(c);
	} else {
		next = json_null();
	}
	rv_http_reply_json(resp, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
	items = next = NULL;
out:
	json_decref(items);
	json_decref(next);
	if (rows)
		rv_rows_free(rows);
	free(sql);
}

/* Start a write: borrow a connection and BEGIN. On failure replies and returns an error. */
static int tx_begin(struct rv_res_op *op)
{
	int err = rv_store_acquire(op->app->store, &op->db);
	if (err) {
		op->db = NULL;
		return rv_res_store_fail(op->resp, err, op->res->name, NULL);
	}
	err = rv_db_begin(op->db);
	if (err) {
		rv_store_release(op->app->store, op->db);
		op->db = NULL;
		return rv_res_store_fail(op->resp, err, op->res->name, NULL);
	}
	return 0;
}

/* End a write: COMMIT when ok (replying on failure), else ROLLBACK; give the connection back. */
static int tx_end(struct rv_res_op *op, int ok)
{
	int err = 0;
	if (!op->db)
		return 0;
	if (ok) {
		err = rv_db_commit(op->db);
		if (err) {
			rv_db_rollback(op->db);
			rv_res_store_fail(op->resp, err, op->res->name, NULL);
		}
	} else {
		rv_db_rollback(op->db);
	}
	rv_store_release(op->app->store, op->db);
	op->db = NULL;
	return err;
}

/*
 * Input-only fields must have been turned into columns by a hook; one left over is a bug in
 * the descriptor, reported as an internal error rather than written as a bogus column.
 */
static int leftover_virtual(struct rv_res_op *op)
{
	for (size_t i = 0; i < op->res->nfields; i++) {
		const struct rv_res_field *f = &op->res->fields[i];
		if ((f->flags & RV_RES_F_VIRTUAL) && json_object_get(op->vals, f->name)) {
			rv_logkv(RV_LOG_ERROR, COMP, "virtual field reached the store", "resource",
			         op->res->name, "field", f->name, NULL);
			rv_http_reply_error(op->resp, 500, "internal", NULL, "internal error");
			return -EINVAL;
		}
	}
	return 0;
}

static void op_free(struct rv_res_op *op)
{
	json_decref(op->cur);
	json_decref(op->vals);
	json_decref(op->extra);
	json_decref(op->details);
}

void rv_res_create(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                   const struct rv_res *res)
{
	struct rv_res_op op = {
	    .app = app, .req = req, .resp = resp, .res = res, .action = RV_RES_CREATE};
	json_t *body = NULL, *row = NULL, *obj;
	int err, ok = 0;

	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	op.vals = json_object();
	op.extra = json_object();
	op.details = json_object();
	if (validate_body(res, body, RV_RES_CREATE, resp, op.vals) != 0)
		goto out;
	if (res->prepare && res->prepare(&op) != 0)
		goto out;
	if (tx_begin(&op) != 0)
		goto out;
	if ((res->in_tx && res->in_tx(&op) != 0) || leftover_virtual(&op) != 0)
		goto out;
	if ((err = insert_row(op.db, res, op.vals, &op.id)) != 0) {
		rv_res_store_fail(resp, err, res->name, res->conflict_msg);
		goto out;
	}
	json_object_set_new(op.details, "fields", field_names(op.vals, res));
	if ((err = rv_audit(op.db, req, "create", res->name, op.id, op.details)) != 0 ||
	    (err = rv_res_load(op.db, res, op.id, &row)) != 0) {
		rv_res_store_fail(resp, err, res->name, NULL);
		goto out;
	}
	ok = 1;
out:
	if (tx_end(&op, ok) == 0 && ok) {
		obj = rv_res_public(res, row);
		json_object_update(obj, op.extra);
		rv_http_reply_json(resp, 201, obj);
		char id[24];
		snprintf(id, sizeof(id), "%" PRId64, op.id);
		rv_logkv(RV_LOG_INFO, COMP, "created", "resource", res->name, "id", id, NULL);
	}
	json_decref(row);
	json_decref(body);
	op_free(&op);
}

void rv_res_patch(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                  const struct rv_res *res)
{
	struct rv_res_op op = {
	    .app = app, .req = req, .resp = resp, .res = res, .action = RV_RES_UPDATE};
	json_t *body = NULL, *row = NULL;
	int err, ok = 0;

	if (req->nparams < 1 || rv_res_parse_id(req->params[0], &op.id) != 0) {
		reply_not_found(resp, res);
		return;
	}
	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	op.vals = json_object();
	op.extra = json_object();
	op.details = json_object();
	if (validate_body(res, body, RV_RES_UPDATE, resp, op.vals) != 0)
		goto out;
	if (res->prepare && res->prepare(&op) != 0)
		goto out;
	if (tx_begin(&op) != 0)
		goto out;
	err = lock_row(op.db, res, op.id);
	if (!err)
		err = rv_res_load(op.db, res, op.id, &op.cur);
	if (err) {
		if (err == -ENOENT)
			reply_not_found(resp, res);
		else
			rv_res_store_fail(resp, err, res->name, NULL);
		goto out;
	}
	if ((res->in_tx && res->in_tx(&op) != 0) || leftover_virtual(&op) != 0)
		goto out;
	if (json_object_size(op.vals) == 0) {
		/* Nothing to change: answer with the stored object and write nothing. */
		row = json_incref(op.cur);
		ok = 1;
		goto out;
	}
	if ((err = update_row(op.db, res, op.id, op.vals)) != 0) {
		if (err == -ENOENT)
			reply_not_found(resp, res);
		else
			rv_res_store_fail(resp, err, res->name, res->conflict_msg);
		goto out;
	}
	json_object_set_new(op.details, "fields", field_names(op.vals, res));
	if ((err = rv_audit(op.db, req, "update", res->name, op.id, op.details)) != 0 ||
	    (err = rv_res_load(op.db, res, op.id, &row)) != 0) {
		rv_res_store_fail(resp, err, res->name, NULL);
		goto out;
	}
	ok = 1;
out:
	if (tx_end(&op, ok) == 0 && ok)
		rv_http_reply_json(resp, 200, rv_res_public(res, row));
	json_decref(row);
	json_decref(body);
	op_free(&op);
}

void rv_res_delete(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                   const struct rv_res *res)
{
	struct rv_res_op op = {
	    .app = app, .req = req, .resp = resp, .res = res, .action = RV_RES_DELETE};
	char sql[256];
	struct rv_val p[1];
	int64_t changes = 0;
	int err, ok = 0;

	if (req->nparams < 1 || rv_res_parse_id(req->params[0], &op.id) != 0) {
		reply_not_found(resp, res);
		return;
	}
	op.details = json_object();
	if (tx_begin(&op) != 0)
		goto out;
	err = lock_row(op.db, res, op.id);
	if (!err)
		err = rv_res_load(op.db, res, op.id, &op.cur);
	if (err) {
		if (err == -ENOENT)
			reply_not_found(resp, res);
		else
			rv_res_store_fail(resp, err, res->name, NULL);
		goto out;
	}
	if (res->in_tx && res->in_tx(&op) != 0)
		goto out;
	p[0] = RV_VINT(op.id);
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = $1", res->table);
	if ((err = rv_db_exec(op.db, sql, p, 1, NULL, &changes)) != 0 ||
	    (err = changes == 1 ? 0 : -ENOENT) != 0 ||
	    (err = rv_audit(op.db, req, "delete", res->name, op.id, op.details)) != 0) {
		if (err == -ENOENT)
			reply_not_found(resp, res);
		else
			rv_res_store_fail(resp, err, res->name, NULL);
		goto out;
	}
	ok = 1;
out:
	if (tx_end(&op, ok) == 0 && ok) {
		/* 204 carries no body. */
		resp->status = 204;
		free(resp->body);
		resp->body = NULL;
		resp->body_len = 0;
	}
	op_free(&op);
}
