/*
 * The SQLite backend: one sqlite3 handle per pooled connection, in WAL mode so readers never
 * wait for the writer, with a small per-connection cache of prepared statements keyed by SQL
 * text (the API runs the same few dozen statements over and over). The only SQLite-specific SQL
 * of the project lives here.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "store/store_int.h"

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_CACHE_SIZE      64
#define SQ_MAX_PARAMS      999

struct sq_cached {
	char *sql; /* NULL: slot empty */
	uint64_t hash;
	uint64_t last_used;
	sqlite3_stmt *stmt;
};

struct sq_db {
	struct rv_db base; /* first: the generic code sees a struct rv_db * */
	sqlite3 *h;
	uint64_t tick;
	struct sq_cached cache[SQ_CACHE_SIZE];
	char err[256]; /* our own message when the failure was not SQLite's */
};

static int sq_in_transaction(struct rv_db *db)
{
	return !sqlite3_get_autocommit(((struct sq_db *)db)->h);
}

static const struct rv_store_dialect sq_dialect = {
    /* IMMEDIATE takes the write lock up front; a deferred transaction that reads first and
     * then writes can fail with SQLITE_BUSY at the write, past any busy timeout. */
    .begin_sql = "BEGIN IMMEDIATE",
    .migration_lock_sql = NULL,
    .in_transaction = sq_in_transaction,
};

static int sq_map(int code)
{
	switch (code) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return RV_STORE_ECONFLICT;
	}
	switch (code & 0xff) {
	case SQLITE_CONSTRAINT:
		return RV_STORE_ECONSTRAINT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return RV_STORE_EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EIO;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
	case SQLITE_ERROR:
	case SQLITE_MISUSE:
	default:
		return -EINVAL;
	}
}

/* FNV-1a: cheap and good enough to skip most string compares in the cache scan. */
static uint64_t sq_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static int sq_only_space(const char *s)
{
	for (; *s; s++) {
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';')
			return 0;
	}
	return 1;
}

/*
 * The prepared statement for sql, from the cache or freshly prepared into the least recently
 * used slot. The statement stays owned by the cache.
 */
static int sq_prepare(struct sq_db *d, const char *sql, sqlite3_stmt **out)
{
	uint64_t hash = sq_hash(sql);
	struct sq_cached *victim = &d->cache[0];
	const char *tail = NULL;
	sqlite3_stmt *stmt = NULL;

	d->tick++;
	for (int i = 0; i < SQ_CACHE_SIZE; i++) {
		struct sq_cached *c = &d->cache[i];
		if (c->sql && c->hash == hash && strcmp(c->sql, sql) == 0) {
			c->last_used = d->tick;
			*out = c->stmt;
			return 0;
		}
		if (!c->sql)
			victim = c;
		else if (victim->sql && c->last_used < victim->last_used)
			victim = c;
	}

	int rc = sqlite3_prepare_v3(d->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
	if (rc != SQLITE_OK)
		return sq_map(sqlite3_extended_errcode(d->h));
	if (!stmt || (tail && !sq_only_space(tail))) {
		/* Silently running only the first of several statements would lose the rest. */
		sqlite3_finalize(stmt);
		snprintf(d->err, sizeof(d->err), "%s",
		         stmt ? "exec runs exactly one statement; use exec_script for several"
		              : "empty statement");
		return -EINVAL;
	}
	char *copy = strdup(sql);
	if (!copy) {
		sqlite3_finalize(stmt);
		return -ENOMEM;
	}
	if (victim->sql) {
		sqlite3_finalize(victim->stmt);
		free(victim->sql);
	}
	*victim = (struct sq_cached){.sql = copy, .hash = hash, .last_used = d->tick, .stmt = stmt};
	*out = stmt;
	return 0;
}

static int sq_bind(struct sq_db *d, sqlite3_stmt *stmt, const struct rv_val *params, size_t n)
{
	int want = sqlite3_bind_parameter_count(stmt), bound = 0;
	char name[16];

	if (n > SQ_MAX_PARAMS) {
		snprintf(d->err, sizeof(d->err), "too many parameters (%zu)", n);
		return -EINVAL;
	}
	for (size_t k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "$%zu", k + 1);
		int idx = sqlite3_bind_parameter_index(stmt, name);
		if (idx == 0) {
			/* PostgreSQL refuses unused parameters too; keep both engines alike. */
			snprintf(d->err, sizeof(d->err),
			         "parameter %s is not used by the statement", name);
			return -EINVAL;
		}
		const struct rv_val *v = &params[k];
		int rc;
		switch (v->type) {
		case RV_VAL_NULL:
			rc = sqlite3_bind_null(stmt, idx);
			break;
		case RV_VAL_INT:
			rc = sqlite3_bind_int64(stmt, idx, v->i);
			break;
		case RV_VAL_REAL:
			rc = sqlite3_bind_double(stmt, idx, v->r);
			break;
		case RV_VAL_TEXT:
			/* STATIC is safe: bindings are cleared before exec returns. */
			rc = v->s ? sqlite3_bind_text64(stmt, idx, v->s, v->len, SQLITE_STATIC,
			                                SQLITE_UTF8)
			          : sqlite3_bind_null(stmt, idx);
			break;
		case RV_VAL_BLOB:
			/* A NULL pointer would bind SQL NULL; an empty blob is still a blob. */
			rc = v->len ? sqlite3_bind_blob64(stmt, idx, v->s, v->len, SQLITE_STATIC)
			            : sqlite3_bind_zeroblob(stmt, idx, 0);
			break;
		default:
			snprintf(d->err, sizeof(d->err), "parameter $%zu has an unknown type",
			         k + 1);
			return -EINVAL;
		}
		if (rc != SQLITE_OK)
			return sq_map(rc);
		bound++;
	}
	if (bound != want) {
		snprintf(d->err, sizeof(d->err),
		         "the statement has %d parameter(s) but only %d of them are $1..$%zu", want,
		         bound, n);
		return -EINVAL;
	}
	return 0;
}

static int sq_row(struct sqlite3_stmt *stmt, struct rv_rows *r)
{
	struct rv_val *row = rv_rows_append(r);
	if (!row)
		return -ENOMEM;
	for (size_t c = 0; c < r->ncols; c++) {
		struct rv_val *v = &row[c];
		int ci = (int)c;
		switch (sqlite3_column_type(stmt, ci)) {
		case SQLITE_INTEGER:
			v->type = RV_VAL_INT;
			v->i = sqlite3_column_int64(stmt, ci);
			break;
		case SQLITE_FLOAT:
			v->type = RV_VAL_REAL;
			v->r = sqlite3_column_double(stmt, ci);
			break;
		case SQLITE_TEXT: {
			const unsigned char *t = sqlite3_column_text(stmt, ci);
			size_t len = (size_t)sqlite3_column_bytes(stmt, ci);
			if (!t)
				return -ENOMEM;
			v->type = RV_VAL_TEXT;
			v->s = rv_rows_strdup(r, t, len);
			v->len = len;
			if (!v->s)
				return -ENOMEM;
			break;
		}
		case SQLITE_BLOB: {
			const void *b = sqlite3_column_blob(stmt, ci);
			size_t len = (size_t)sqlite3_column_bytes(stmt, ci);
			v->type = RV_VAL_BLOB;
			v->s = rv_rows_strdup(r, b, len);
			v->len = len;
			if (!v->s)
				return -ENOMEM;
			break;
		}
		default:
			v->type = RV_VAL_NULL;
			break;
		}
	}
	return 0;
}

static int sq_exec(struct rv_db *db, const char *sql, const struct rv_val *params, size_t n,
                   struct rv_rows **rows, int64_t *changes)
{
	struct sq_db *d = (struct sq_db *)db;
	struct rv_rows *r = NULL;
	sqlite3_stmt *stmt = NULL;
	int rc, step;

	d->err[0] = '\0';
	rc = sq_prepare(d, sql, &stmt);
	if (rc)
		return rc;
	rc = sq_bind(d, stmt, params, n);
	if (rc)
		goto out;
	if (rows) {
		int nc = sqlite3_column_count(stmt);
		r = rv_rows_alloc((size_t)nc);
		if (!r) {
			rc = -ENOMEM;
			goto out;
		}
		for (int c = 0; c < nc; c++) {
			const char *name = sqlite3_column_name(stmt, c);
			if (!name || !(r->cols[c] = rv_rows_strdup(r, name, strlen(name)))) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (r && r->ncols) {
			rc = sq_row(stmt, r);
			if (rc)
				goto out;
		}
	}
	if (step != SQLITE_DONE) {
		rc = sq_map(sqlite3_extended_errcode(d->h));
		goto out;
	}
	if (changes)
		*changes = sqlite3_stmt_readonly(stmt) ? 0 : sqlite3_changes64(d->h);
	if (rows) {
		*rows = r;
		r = NULL;
	}
out:
	/* Reset ends the statement's read transaction; clearing drops the borrowed pointers. */
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	rv_rows_free(r);
	return rc;
}

static int sq_exec_script(struct rv_db *db, const char *sql, char *err, size_t errlen)
{
	struct sq_db *d = (struct sq_db *)db;
	char *msg = NULL;
	int rc = sqlite3_exec(d->h, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(d->h));
		sqlite3_free(msg);
		return sq_map(sqlite3_extended_errcode(d->h));
	}
	return 0;
}

static char *sq_expand_macros(const char *sql)
{
	return rv_store_replace_macros(sql, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB");
}

static const char *sq_errmsg(struct rv_db *db)
{
	struct sq_db *d = (struct sq_db *)db;
	return d->err[0] ? d->err : sqlite3_errmsg(d->h);
}

static void sq_disconnect(struct rv_db *db)
{
	struct sq_db *d = (struct sq_db *)db;
	if (!d)
		return;
	for (int i = 0; i < SQ_CACHE_SIZE; i++) {
		if (d->cache[i].sql) {
			sqlite3_finalize(d->cache[i].stmt);
			free(d->cache[i].sql);
		}
	}
	sqlite3_close_v2(d->h);
	free(d);
}

/* Run a pragma and return its one-value text answer in buf (may be empty). */
static int sq_pragma(sqlite3 *h, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(h, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return rc;
	buf[0] = '\0';
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(stmt, 0);
		if (t)
			rv_strlcpy(buf, (const char *)t, len);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sq_connect(const char *url, struct rv_db **out, char *err, size_t errlen)
{
	struct sq_db *d = rv_xcalloc(1, sizeof(*d));
	char mode[32];
	int rc = 0, src;

	d->base.be = &rv_store_sqlite;
	d->base.dialect = &sq_dialect;
	/* NOMUTEX: the pool hands a connection to one thread at a time. */
	src = sqlite3_open_v2(
	    url, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		snprintf(err, errlen, "cannot open SQLite database %s: %s", url,
		         d->h ? sqlite3_errmsg(d->h) : "out of memory");
		rc = d->h ? sq_map(sqlite3_extended_errcode(d->h)) : -ENOMEM;
		goto out;
	}
	sqlite3_extended_result_codes(d->h, 1);
	/* The busy timeout first: switching to WAL needs a lock another process may hold. */
	sqlite3_busy_timeout(d->h, SQ_BUSY_TIMEOUT_MS);
	src = sq_pragma(d->h, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
	if (src == SQLITE_OK && strcmp(mode, "wal") != 0) {
		snprintf(err, errlen,
		         "SQLite database %s cannot use WAL journal mode (got \"%s\"); use a file "
		         "on a local file system",
		         url, mode);
		rc = -EINVAL;
		goto out;
	}
	if (src == SQLITE_OK)
		src = sq_pragma(d->h, "PRAGMA synchronous=NORMAL", mode, sizeof(mode));
	if (src == SQLITE_OK)
		src = sq_pragma(d->h, "PRAGMA foreign_keys=ON", mode, sizeof(mode));
	if (src != SQLITE_OK) {
		snprintf(err, errlen, "cannot configure SQLite database %s: %s", url,
		         sqlite3_errmsg(d->h));
		rc = sq_map(sqlite3_extended_errcode(d->h));
		if (rc == 0)
			rc = -EIO;
		goto out;
	}
	*out = &d->base;
out:
	if (rc)
		sq_disconnect(&d->base);
	return rc;
}

const struct rv_store_backend rv_store_sqlite = {
    .name = "sqlite",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .exec = sq_exec,
    .exec_script = sq_exec_script,
    .expand_macros = sq_expand_macros,
    .errmsg = sq_errmsg,
};
