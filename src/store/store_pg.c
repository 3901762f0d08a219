/*
 * The PostgreSQL backend (libpq), for several nodes sharing one database. Statements go out
 * with PQexecParams: one round trip, parameters never spliced into SQL text. Integers, reals and
 * text travel in text format, blobs in binary; results come back as text and are converted by
 * column type. The only PostgreSQL-specific SQL of the project lives here.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "store/store_int.h"

/* Type OIDs from the server's pg_type catalogue (stable across versions). */
#define PG_BOOL    16
#define PG_BYTEA   17
#define PG_INT8    20
#define PG_INT2    21
#define PG_INT4    23
#define PG_OID     26
#define PG_FLOAT4  700
#define PG_FLOAT8  701
#define PG_NUMERIC 1700

#define PG_MAX_PARAMS 65535
#define PG_NUMBUF     40

struct pg_db {
	struct rv_db base; /* first: the generic code sees a struct rv_db * */
	PGconn *conn;
	char err[512];
};

static int pg_in_transaction(struct rv_db *db)
{
	PGTransactionStatusType t = PQtransactionStatus(((struct pg_db *)db)->conn);
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static const struct rv_store_dialect pg_dialect = {
    .begin_sql = "BEGIN",
    /* Writers to schema_migrations queue here; readers of other tables are not blocked. */
    .migration_lock_sql = "LOCK TABLE schema_migrations IN EXCLUSIVE MODE",
    .in_transaction = pg_in_transaction,
};

/* Map a SQLSTATE to the store's codes. */
static int pg_map_state(const char *state)
{
	if (!state || strlen(state) != 5)
		return -EIO;
	/* duplicate_table / duplicate_object: two nodes creating the same thing. */
	if (!strcmp(state, "23505") || !strcmp(state, "42P07") || !strcmp(state, "42710"))
		return RV_STORE_ECONFLICT;
	if (!strncmp(state, "23", 2))
		return RV_STORE_ECONSTRAINT;
	/* serialization_failure, deadlock_detected, lock_not_available, query_canceled. */
	if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03") ||
	    !strcmp(state, "57014"))
		return RV_STORE_EBUSY;
	/* protocol_violation: the statement wants more parameters than were given. A lost
	 * connection is caught before this by PQstatus() in pg_fail(). */
	if (!strcmp(state, "08P01"))
		return -EINVAL;
	if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3))
		return -EPIPE;
	if (!strcmp(state, "53100"))
		return -ENOSPC;
	if (!strcmp(state, "53200"))
		return -ENOMEM;
	if (!strncmp(state, "53", 2) || !strncmp(state, "58", 2) || !strncmp(state, "XX", 2))
		return -EIO;
	if (!strncmp(state, "42501", 5) || !strncmp(state, "28", 2))
		return -EACCES;
	/* Syntax, undefined objects, bad values (22xxx), aborted transaction (25P02)... */
	return -EINVAL;
}

static void pg_set_err(struct pg_db *d, const char *msg)
{
	rv_strlcpy(d->err, msg ? msg : "unknown PostgreSQL error", sizeof(d->err));
	size_t n = strlen(d->err);
	while (n && (d->err[n - 1] == '\n' || d->err[n - 1] == ' '))
		d->err[--n] = '\0';
}

/* The error of a failed result (res may be NULL when the connection broke). */
static int pg_fail(struct pg_db *d, PGresult *res)
{
	if (!res || PQstatus(d->conn) == CONNECTION_BAD) {
		pg_set_err(d, PQerrorMessage(d->conn));
		return -EPIPE;
	}
	pg_set_err(d, PQresultErrorMessage(res));
	return pg_map_state(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

/* A connection the server dropped is reopened once before the next statement. */
static int pg_ensure(struct pg_db *d)
{
	if (PQstatus(d->conn) == CONNECTION_OK)
		return 0;
	rv_warn("store", "PostgreSQL connection lost; reconnecting");
	PQreset(d->conn);
	if (PQstatus(d->conn) == CONNECTION_OK)
		return 0;
	pg_set_err(d, PQerrorMessage(d->conn));
	return -EPIPE;
}

static int pg_convert(PGresult *res, int row, int col, Oid type, struct rv_rows *r,
                      struct rv_val *v)
{
	const char *s = PQgetvalue(res, row, col);
	size_t len = (size_t)PQgetlength(res, row, col);
	char *end = NULL;

	switch (type) {
	case PG_INT2:
	case PG_INT4:
	case PG_INT8:
	case PG_OID:
		v->type = RV_VAL_INT;
		v->i = strtoll(s, NULL, 10);
		return 0;
	case PG_BOOL:
		v->type = RV_VAL_INT;
		v->i = s[0] == 't';
		return 0;
	case PG_NUMERIC:
		/* SUM() over integers is numeric here and an integer in SQLite: keep it one. */
		errno = 0;
		v->i = strtoll(s, &end, 10);
		if (*s && !*end && errno == 0) {
			v->type = RV_VAL_INT;
			return 0;
		}
		/* fall through */
	case PG_FLOAT4:
	case PG_FLOAT8:
		v->type = RV_VAL_REAL;
		v->r = strtod(s, NULL); /* also reads NaN / Infinity / -Infinity */
		return 0;
	case PG_BYTEA: {
		size_t n = 0;
		unsigned char *b = PQunescapeBytea((const unsigned char *)s, &n);
		if (!b)
			return -ENOMEM;
		v->type = RV_VAL_BLOB;
		v->s = rv_rows_strdup(r, b, n);
		v->len = n;
		PQfreemem(b);
		return v->s ? 0 : -ENOMEM;
	}
	default:
		v->type = RV_VAL_TEXT;
		v->s = rv_rows_strdup(r, s, len);
		v->len = len;
		return v->s ? 0 : -ENOMEM;
	}
}

static int pg_materialise(PGresult *res, struct rv_rows **out)
{
	int nc = PQnfields(res), nr = PQntuples(res), rc = 0;
	struct rv_rows *r = rv_rows_alloc((size_t)nc);
	if (!r)
		return -ENOMEM;
	for (int c = 0; c < nc; c++) {
		const char *name = PQfname(res, c);
		if (!name || !(r->cols[c] = rv_rows_strdup(r, name, strlen(name)))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (int i = 0; nc && i < nr; i++) {
		struct rv_val *row = rv_rows_append(r);
		if (!row) {
			rc = -ENOMEM;
			goto out;
		}
		for (int c = 0; c < nc; c++) {
			if (PQgetisnull(res, i, c))
				continue; /* already RV_VAL_NULL */
			rc = pg_convert(res, i, c, PQftype(res, c), r, &row[c]);
			if (rc)
				goto out;
		}
	}
	*out = r;
	r = NULL;
out:
	rv_rows_free(r);
	return rc;
}

static int pg_exec(struct rv_db *db, const char *sql, const struct rv_val *params, size_t n,
                   struct rv_rows **rows, int64_t *changes)
{
	struct pg_db *d = (struct pg_db *)db;
	Oid *types = NULL;
	const char **values = NULL;
	int *lengths = NULL, *formats = NULL;
	char(*nums)[PG_NUMBUF] = NULL;
	PGresult *res = NULL;
	int rc;

	d->err[0] = '\0';
	if (n > PG_MAX_PARAMS) {
		snprintf(d->err, sizeof(d->err), "too many parameters (%zu)", n);
		return -EINVAL;
	}
	rc = pg_ensure(d);
	if (rc)
		return rc;
	if (n) {
		types = calloc(n, sizeof(*types));
		values = calloc(n, sizeof(*values));
		lengths = calloc(n, sizeof(*lengths));
		formats = calloc(n, sizeof(*formats));
		nums = calloc(n, sizeof(*nums));
		if (!types || !values || !lengths || !formats || !nums) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t k = 0; k < n; k++) {
		const struct rv_val *v = &params[k];
		switch (v->type) {
		case RV_VAL_NULL:
			break; /* values[k] = NULL is SQL NULL; the type is left to the server */
		case RV_VAL_INT:
			types[k] = PG_INT8;
			snprintf(nums[k], PG_NUMBUF, "%" PRId64, v->i);
			values[k] = nums[k];
			break;
		case RV_VAL_REAL:
			types[k] = PG_FLOAT8;
			if (isnan(v->r))
				rv_strlcpy(nums[k], "NaN", PG_NUMBUF);
			else if (isinf(v->r))
				rv_strlcpy(nums[k], v->r > 0 ? "Infinity" : "-Infinity", PG_NUMBUF);
			else
				snprintf(nums[k], PG_NUMBUF, "%.17g", v->r);
			values[k] = nums[k];
			break;
		case RV_VAL_TEXT:
			if (!v->s)
				break;
			/* Text parameters are C strings to libpq: an inner NUL would cut them. */
			if (memchr(v->s, '\0', v->len)) {
				snprintf(d->err, sizeof(d->err),
				         "parameter $%zu: text holds a NUL byte", k + 1);
				rc = -EINVAL;
				goto out;
			}
			values[k] = v->s; /* type 0: inferred, so it compares with any column */
			break;
		case RV_VAL_BLOB:
			if (v->len > INT32_MAX) {
				rc = -EINVAL;
				goto out;
			}
			types[k] = PG_BYTEA;
			values[k] = v->s ? v->s : "";
			lengths[k] = (int)v->len;
			formats[k] = 1;
			break;
		default:
			snprintf(d->err, sizeof(d->err), "parameter $%zu has an unknown type",
			         k + 1);
			rc = -EINVAL;
			goto out;
		}
	}
	res = PQexecParams(d->conn, sql, (int)n, types, values, lengths, formats, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		rc = pg_fail(d, res);
		goto out;
	}
	if (changes) {
		const char *t = PQcmdTuples(res);
		int64_t c = 0;
		/* SELECT reports its row count here; only writes count as changes. */
		if (st == PGRES_COMMAND_OK || strncmp(PQcmdStatus(res), "SELECT", 6) != 0)
			rv_parse_int64(t, 0, INT64_MAX, &c);
		*changes = c;
	}
	if (rows)
		rc = pg_materialise(res, rows);
out:
	PQclear(res);
	free(types);
	free(values);
	free(lengths);
	free(formats);
	free(nums);
	return rc;
}

static int pg_exec_script(struct rv_db *db, const char *sql, char *err, size_t errlen)
{
	struct pg_db *d = (struct pg_db *)db;
	int rc = pg_ensure(d);
	if (rc) {
		snprintf(err, errlen, "%s", d->err);
		return rc;
	}
	/* The simple-query protocol runs every statement of the script in order. */
	PGresult *res = PQexec(d->conn, sql);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
		rc = pg_fail(d, res);
		snprintf(err, errlen, "%s", d->err);
	}
	PQclear(res);
	return rc;
}

static char *pg_expand_macros(const char *sql)
{
	return rv_store_replace_macros(sql, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
	                               "BYTEA");
}

static const char *pg_errmsg(struct rv_db *db)
{
	struct pg_db *d = (struct pg_db *)db;
	return d->err[0] ? d->err : "no error";
}

static void pg_disconnect(struct rv_db *db)
{
	struct pg_db *d = (struct pg_db *)db;
	if (!d)
		return;
	PQfinish(d->conn);
	free(d);
}

/* Server notices ("table already exists, skipping") go to the debug log, not to stderr. */
static void pg_notice(void *arg, const char *msg)
{
	(void)arg;
	rv_debug("store", "postgres: %s", msg);
}

static int pg_connect(const char *url, struct rv_db **out, char *err, size_t errlen)
{
	struct pg_db *d = rv_xcalloc(1, sizeof(*d));
	int rc = 0;

	d->base.be = &rv_store_pg;
	d->base.dialect = &pg_dialect;
	d->conn = PQconnectdb(url);
	if (!d->conn) {
		rc = -ENOMEM;
		snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
		goto out;
	}
	if (PQstatus(d->conn) != CONNECTION_OK) {
		pg_set_err(d, PQerrorMessage(d->conn));
		/* The URL may hold a password: name the failure, not the locator. */
		snprintf(err, errlen, "cannot connect to PostgreSQL: %s", d->err);
		rc = -ECONNREFUSED;
		goto out;
	}
	PQsetNoticeProcessor(d->conn, pg_notice, NULL);
	/* Time stamps are text set by the caller, but keep server-side now() in UTC too. */
	PGresult *res = PQexec(d->conn, "SET TIME ZONE 'UTC'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = pg_fail(d, res);
		snprintf(err, errlen, "cannot configure the PostgreSQL session: %s", d->err);
	}
	PQclear(res);
	if (rc == 0)
		*out = &d->base;
out:
	if (rc)
		pg_disconnect(&d->base);
	return rc;
}

const struct rv_store_backend rv_store_pg = {
    .name = "postgres",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec = pg_exec,
    .exec_script = pg_exec_script,
    .expand_macros = pg_expand_macros,
    .errmsg = pg_errmsg,
};
