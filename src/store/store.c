/*
 * The engine-independent half of the store: the connection pool, the migration runner, result
 * sets, metrics and error texts. Engine-specific SQL lives only in the backend files.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"

#define RV_STORE_MAX_POOL   256
#define RV_STORE_ACQUIRE_MS 5000

#define M_QUERY  "rv_store_query_seconds"
#define M_ERRORS "rv_store_errors_total"

struct rv_store {
	const struct rv_store_backend *be;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rv_db **conns; /* every connection, for close */
	int nconns;
	struct rv_db *free_list;
	int acquire_timeout_ms;
};

/* ---- result sets ---------------------------------------------------------------------------- */

/*
 * Strings of a result set live in a few large chunks rather than one malloc per value: a list
 * page of 500 rows by 30 columns would otherwise cost 15,000 allocations.
 */
struct rows_chunk {
	struct rows_chunk *next;
	size_t used, cap;
	char data[];
};

struct rows_priv {
	struct rv_rows pub; /* first, so a struct rv_rows * converts back */
	size_t cap_rows;
	struct rows_chunk *chunks;
};

#define ROWS_CHUNK_MIN 8192

struct rv_rows *rv_rows_alloc(size_t ncols)
{
	struct rows_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pub.ncols = ncols;
	if (ncols) {
		p->pub.cols = calloc(ncols, sizeof(char *));
		if (!p->pub.cols) {
			free(p);
			return NULL;
		}
	}
	return &p->pub;
}

char *rv_rows_strdup(struct rv_rows *r, const void *src, size_t len)
{
	struct rows_priv *p = (struct rows_priv *)r;
	struct rows_chunk *c = p->chunks;
	if (len >= SIZE_MAX / 2)
		return NULL;
	if (!c || c->cap - c->used < len + 1) {
		size_t cap = len + 1 > ROWS_CHUNK_MIN ? len + 1 : ROWS_CHUNK_MIN;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = p->chunks;
		p->chunks = c;
	}
	char *dst = c->data + c->used;
	if (len)
		memcpy(dst, src, len);
	dst[len] = '\0';
	c->used += len + 1;
	return dst;
}

struct rv_val *rv_rows_append(struct rv_rows *r)
{
	struct rows_priv *p = (struct rows_priv *)r;
	if (r->ncols == 0) {
		r->nrows++;
		return NULL;
	}
	if (r->nrows == p->cap_rows) {
		size_t cap = p->cap_rows ? p->cap_rows * 2 : 16;
		if (cap > SIZE_MAX / sizeof(struct rv_val) / r->ncols)
			return NULL;
		struct rv_val *v = realloc(r->vals, cap * r->ncols * sizeof(*v));
		if (!v)
			return NULL;
		r->vals = v;
		p->cap_rows = cap;
	}
	struct rv_val *row = &r->vals[r->nrows * r->ncols];
	memset(row, 0, r->ncols * sizeof(*row));
	r->nrows++;
	return row;
}

int rv_rows_col(const struct rv_rows *r, const char *name)
{
	for (size_t i = 0; r && name && i < r->ncols; i++) {
		/* PostgreSQL folds unquoted names to lower case; SQLite keeps them as written. */
		if (r->cols[i] && strcasecmp(r->cols[i], name) == 0)
			return (int)i;
	}
	return -1;
}

void rv_rows_free(struct rv_rows *r)
{
	if (!r)
		return;
	struct rows_priv *p = (struct rows_priv *)r;
	struct rows_chunk *c = p->chunks;
	while (c) {
		struct rows_chunk *next = c->next;
		free(c);
		c = next;
	}
	free(r->cols);
	free(r->vals);
	free(p);
}

/* ---- macros --------------------------------------------------------------------------------- */

char *rv_store_replace_macros(const char *sql, const char *id_sql, const char *blob_sql)
{
	static const char id_m[] = "@ID@", blob_m[] = "@BLOB@";
	size_t n = 0, idl = strlen(id_sql), bl = strlen(blob_sql);

	/* First pass sizes the output so the second can write without checks. */
	for (const char *s = sql; *s;) {
		if (strncmp(s, id_m, sizeof(id_m) - 1) == 0) {
			n += idl;
			s += sizeof(id_m) - 1;
		} else if (strncmp(s, blob_m, sizeof(blob_m) - 1) == 0) {
			n += bl;
			s += sizeof(blob_m) - 1;
		} else {
			n++;
			s++;
		}
	}
	char *out = malloc(n + 1), *d = out;
	if (!out)
		return NULL;
	for (const char *s = sql; *s;) {
		if (strncmp(s, id_m, sizeof(id_m) - 1) == 0) {
			memcpy(d, id_sql, idl);
			d += idl;
			s += sizeof(id_m) - 1;
		} else if (strncmp(s, blob_m, sizeof(blob_m) - 1) == 0) {
			memcpy(d, blob_sql, bl);
			d += bl;
			s += sizeof(blob_m) - 1;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
	return out;
}

/* ---- errors and metrics --------------------------------------------------------------------- */

const char *rv_store_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case RV_STORE_ECONFLICT:
		return "a record with the same unique value already exists";
	case RV_STORE_ECONSTRAINT:
		return "the change violates a constraint (reference, check or not-null)";
	case RV_STORE_EBUSY:
		return "the database stayed locked past the busy timeout";
	case -ETIMEDOUT:
		return "no database connection became free in time";
	case -EINVAL:
		return "the statement or its parameters are invalid";
	case -ENOMEM:
		return "out of memory";
	case -EIO:
		return "the database reported an I/O error";
	case -ENOSPC:
		return "the database disk is full";
	case -ENOENT:
		return "the database could not be found or opened";
	case -EACCES:
		return "the database refused access (read-only file or missing privileges)";
	case -ECONNREFUSED:
		return "the database server refused the connection";
	case -EPIPE:
		return "the connection to the database was lost";
	default:
		return "database error";
	}
}

static const char *err_label(int err)
{
	switch (err) {
	case RV_STORE_ECONFLICT:
		return "conflict";
	case RV_STORE_ECONSTRAINT:
		return "constraint";
	case RV_STORE_EBUSY:
		return "busy";
	case -ETIMEDOUT:
		return "timeout";
	case -EINVAL:
		return "invalid";
	case -ENOMEM:
		return "nomem";
	case -EIO:
	case -ENOSPC:
		return "io";
	case -EPIPE:
	case -ECONNREFUSED:
		return "connection";
	case -EACCES:
		return "denied";
	default:
		return "other";
	}
}

static const char *op_label(const char *sql)
{
	while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r' || *sql == '(')
		sql++;
	if (strncasecmp(sql, "SELECT", 6) == 0)
		return "select";
	if (strncasecmp(sql, "INSERT", 6) == 0)
		return "insert";
	if (strncasecmp(sql, "UPDATE", 6) == 0)
		return "update";
	if (strncasecmp(sql, "DELETE", 6) == 0)
		return "delete";
	return "other";
}

static void register_metrics(void)
{
	/* Store statements are mostly well under a millisecond; resolve that range finely. */
	static const double buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	                                 0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
	                                 0.5,     1,      2.5,     5};
	rv_metrics_register(M_QUERY, RV_METRIC_HISTOGRAM, "Store statement latency in seconds.",
	                    "op", buckets, RV_ARRAY_LEN(buckets));
	rv_metrics_register(M_ERRORS, RV_METRIC_COUNTER, "Store statements that failed, by code.",
	                    "code", NULL, 0);
}

static void count_error(int err)
{
	rv_metrics_inc(M_ERRORS, 1, err_label(err), NULL);
}

/* ---- statements on a borrowed connection ---------------------------------------------------- */

/*
 * Run one statement with $1..$n. See struct rv_store_backend.exec for rows/changes. Records
 * the latency and, on failure, the error code in the metrics. Returns 0 or a negative error.
 */
int rv_db_exec(struct rv_db *db, const char *sql, const struct rv_val *params, size_t n,
               struct rv_rows **rows, int64_t *changes)
{
	if (!db || !sql || (n && !params))
		return -EINVAL;
	uint64_t t0 = rv_time_mono_ns();
	int rc = db->be->exec(db, sql, params, n, rows, changes);
	double secs = (double)(rv_time_mono_ns() - t0) / 1e9;
	rv_metrics_observe(M_QUERY, secs, op_label(sql), NULL);
	if (rc < 0) {
		count_error(rc);
		/* Conflicts and constraint errors are answers for the caller, not faults. */
		enum rv_log_level lvl = rc == RV_STORE_ECONFLICT || rc == RV_STORE_ECONSTRAINT
		                            ? RV_LOG_DEBUG
		                            : RV_LOG_WARN;
		rv_logf(lvl, "store", "statement failed (%s): %s", rv_store_strerror(rc),
		        db->be->errmsg(db));
	}
	return rc;
}

/* Open a transaction that holds the write lock. Returns 0 or a negative error. */
int rv_db_begin(struct rv_db *db)
{
	return rv_db_exec(db, db->dialect->begin_sql, NULL, 0, NULL, NULL);
}

/* Commit. On failure the transaction may still be open: call rv_db_rollback(). */
int rv_db_commit(struct rv_db *db)
{
	return rv_db_exec(db, "COMMIT", NULL, 0, NULL, NULL);
}

/*
 * Roll back. A no-op returning 0 when no transaction is open, which happens when the engine
 * already ended it after a failed statement.
 */
int rv_db_rollback(struct rv_db *db)
{
	if (!db->dialect->in_transaction(db))
		return 0;
	return rv_db_exec(db, "ROLLBACK", NULL, 0, NULL, NULL);
}

/* Text of the connection's last error (borrowed, valid until its next statement). */
const char *rv_db_errmsg(struct rv_db *db)
{
	return db->be->errmsg(db);
}

/* ---- the pool ------------------------------------------------------------------------------- */

/*
 * Borrow a connection. Waits up to 5 s for one to come free, then fails with -ETIMEDOUT (and
 * counts the error). *out is set only on success; give it back with rv_store_release().
 */
int rv_store_acquire(struct rv_store *st, struct rv_db **out)
{
	int rc = 0;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += st->acquire_timeout_ms / 1000;
	until.tv_nsec += (long)(st->acquire_timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&st->mu);
	while (!st->free_list) {
		int w = pthread_cond_timedwait(&st->cv, &st->mu, &until);
		if (w == ETIMEDOUT && !st->free_list) {
			rc = -ETIMEDOUT;
			goto out;
		}
	}
	struct rv_db *db = st->free_list;
	st->free_list = db->next_free;
	db->next_free = NULL;
	*out = db;
out:
	pthread_mutex_unlock(&st->mu);
	if (rc) {
		count_error(rc);
		rv_warn("store", "no database connection free after %d ms (pool of %d)",
		        st->acquire_timeout_ms, st->nconns);
	}
	return rc;
}

/*
 * Give a connection back. A transaction the borrower left open is rolled back first, so it can
 * never leak its locks or half its writes to the next borrower.
 */
void rv_store_release(struct rv_store *st, struct rv_db *db)
{
	if (!db)
		return;
	if (db->dialect->in_transaction(db)) {
		rv_warn("store", "connection released inside a transaction; rolling it back");
		rv_db_rollback(db);
	}
	pthread_mutex_lock(&st->mu);
	db->next_free = st->free_list;
	st->free_list = db;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

/* One statement on a pooled connection. Returns 0 or a negative error (-ETIMEDOUT included). */
int rv_store_exec(struct rv_store *st, const char *sql, const struct rv_val *params, size_t n,
                  struct rv_rows **rows, int64_t *changes)
{
	struct rv_db *db;
	int rc = rv_store_acquire(st, &db);
	if (rc)
		return rc;
	rc = rv_db_exec(db, sql, params, n, rows, changes);
	rv_store_release(st, db);
	return rc;
}

/* 0 when a pooled connection answers SELECT 1; otherwise the error. */
int rv_store_ping(struct rv_store *st)
{
	struct rv_rows *rows = NULL;
	int rc = rv_store_exec(st, "SELECT 1", NULL, 0, &rows, NULL);
	if (rc == 0 && (rows->nrows != 1 || rows->ncols != 1))
		rc = -EIO;
	rv_rows_free(rows);
	return rc;
}

/* The newest applied migration number (0 when none) into *out. Returns 0 or a negative error. */
int rv_store_schema_version(struct rv_store *st, int64_t *out)
{
	struct rv_rows *rows = NULL;
	int rc =
	    rv_store_exec(st, "SELECT MAX(version) FROM schema_migrations", NULL, 0, &rows, NULL);
	if (rc)
		goto out;
	const struct rv_val *v = rows->nrows ? rv_rows_at(rows, 0, 0) : NULL;
	*out = v && v->type == RV_VAL_INT ? v->i : 0;
out:
	rv_rows_free(rows);
	return rc;
}

/* ---- migrations ----------------------------------------------------------------------------- */

static const struct rv_migration *test_migrations;
static size_t test_migrations_len;

void rv_store_test_set_migrations(const struct rv_migration *m, size_t n)
{
	test_migrations = m;
	test_migrations_len = m ? n : 0;
}

void rv_store_test_set_acquire_timeout(struct rv_store *st, int ms)
{
	st->acquire_timeout_ms = ms;
}

static int migration_applied(struct rv_db *db, int version, int *applied)
{
	struct rv_rows *rows = NULL;
	struct rv_val p[] = {RV_VINT(version)};
	int rc = rv_db_exec(db, "SELECT version FROM schema_migrations WHERE version = $1", p, 1,
	                    &rows, NULL);
	if (rc == 0)
		*applied = rows->nrows > 0;
	rv_rows_free(rows);
	return rc;
}

/*
 * Apply one migration if no one has yet. The write lock is taken before the check, so when two
 * processes start together the second waits, then sees the row and skips.
 */
static int apply_migration(struct rv_db *db, const struct rv_migration *m, char *err, size_t errlen)
{
	char msg[512] = "", now[32];
	char *sql = NULL;
	int applied = 0;
	int rc = rv_db_begin(db);
	if (rc) {
		snprintf(err, errlen, "migration %s: cannot start a transaction: %s", m->file,
		         rv_db_errmsg(db));
		return rc;
	}
	if (db->dialect->migration_lock_sql) {
		rc = rv_db_exec(db, db->dialect->migration_lock_sql, NULL, 0, NULL, NULL);
		if (rc) {
			snprintf(err, errlen, "migration %s: cannot lock schema_migrations: %s",
			         m->file, rv_db_errmsg(db));
			goto out;
		}
	}
	rc = migration_applied(db, m->version, &applied);
	if (rc) {
		snprintf(err, errlen, "migration %s: cannot read schema_migrations: %s", m->file,
		         rv_db_errmsg(db));
		goto out;
	}
	if (applied)
		goto out;
	sql = db->be->expand_macros(m->sql);
	if (!sql) {
		rc = -ENOMEM;
		snprintf(err, errlen, "migration %s: out of memory", m->file);
		goto out;
	}
	rc = db->be->exec_script(db, sql, msg, sizeof(msg));
	if (rc) {
		count_error(rc);
		snprintf(err, errlen, "migration %s failed and was rolled back: %s", m->file, msg);
		goto out;
	}
	struct rv_val p[] = {RV_VINT(m->version), RV_VTEXT(m->name),
	                     RV_VTEXT(rv_time_iso_now(now, sizeof(now)))};
	rc = rv_db_exec(db,
	                "INSERT INTO schema_migrations (version, name, applied_at) "
	                "VALUES ($1, $2, $3)",
	                p, 3, NULL, NULL);
	if (rc) {
		snprintf(err, errlen, "migration %s: cannot record it: %s", m->file,
		         rv_db_errmsg(db));
		goto out;
	}
	rc = rv_db_commit(db);
	if (rc)
		snprintf(err, errlen, "migration %s: commit failed: %s", m->file, rv_db_errmsg(db));
	else
		rv_info("store", "applied migration %s", m->file);
out:
	free(sql);
	if (rc || applied)
		rv_db_rollback(db);
	return rc;
}

static int migrate(struct rv_db *db, char *err, size_t errlen)
{
	const struct rv_migration *ms = test_migrations ? test_migrations : rv_migrations;
	size_t n = test_migrations ? test_migrations_len : rv_migrations_len;
	int rc = 0;

	for (size_t i = 1; i < n; i++) {
		if (ms[i].version <= ms[i - 1].version) {
			snprintf(err, errlen, "migration %s is not numbered above %s", ms[i].file,
			         ms[i - 1].file);
			return -EINVAL;
		}
	}

	/*
	 * Two processes may race to create the table; on PostgreSQL the loser can get a unique
	 * violation in the catalogue even with IF NOT EXISTS, and then simply tries again.
	 */
	for (int attempt = 0; attempt < 3; attempt++) {
		rc = rv_db_exec(db,
		                "CREATE TABLE IF NOT EXISTS schema_migrations ("
		                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
		                "applied_at TEXT NOT NULL)",
		                NULL, 0, NULL, NULL);
		if (rc != RV_STORE_ECONFLICT)
			break;
	}
	if (rc) {
		snprintf(err, errlen, "cannot create schema_migrations: %s", rv_db_errmsg(db));
		return rc;
	}

	/*
	 * The common case, nothing pending, reads once and takes no write lock. Every version
	 * this build knows and the database lacks is applied, in order, not only those above
	 * the newest applied: a migration merged from a branch may be numbered below it.
	 */
	int64_t have = 0;
	struct rv_rows *rows = NULL;
	rc = rv_db_exec(db, "SELECT version FROM schema_migrations", NULL, 0, &rows, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot read schema_migrations: %s", rv_db_errmsg(db));
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool applied = false;
		for (size_t r = 0; r < rows->nrows && !applied; r++) {
			const struct rv_val *v = rv_rows_at(rows, r, 0);
			applied = v->type == RV_VAL_INT && v->i == ms[i].version;
		}
		if (!applied)
			rc = apply_migration(db, &ms[i], err, errlen);
	}
	for (size_t r = 0; r < rows->nrows; r++) {
		const struct rv_val *v = rv_rows_at(rows, r, 0);
		if (v->type == RV_VAL_INT && v->i > have)
			have = v->i;
	}
	rv_rows_free(rows);
	if (rc)
		return rc;
	if (n && have > ms[n - 1].version)
		rv_warn("store", "database schema version %lld is newer than this build knows (%d)",
		        (long long)have, ms[n - 1].version);
	return 0;
}

/* ---- open and close ------------------------------------------------------------------------- */

static const struct rv_store_backend *find_backend(const char *driver)
{
	if (strcmp(driver, "sqlite") == 0 || strcmp(driver, "sqlite3") == 0)
		return &rv_store_sqlite;
	if (strcmp(driver, "postgres") == 0 || strcmp(driver, "postgresql") == 0)
		return &rv_store_pg;
	return NULL;
}

static void close_conns(struct rv_store *st)
{
	for (int i = 0; i < st->nconns; i++)
		st->be->disconnect(st->conns[i]);
	st->nconns = 0;
}

/*
 * Open the store: pick the backend by driver name ("sqlite" or "postgres"), open `pool`
 * connections, apply pending migrations on the first. On failure returns a negative error, writes a
 * sentence into err (which may be NULL) and leaves nothing open; *out is set only on success.
 */
int rv_store_open(const char *driver, const char *url, int pool, struct rv_store **out, char *err,
                  size_t errlen)
{
	char scratch[1];
	struct rv_store *st = NULL;
	pthread_condattr_t ca;
	int rc = 0;

	if (!err) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	if (errlen)
		err[0] = '\0';
	if (!driver || !url || !out) {
		snprintf(err, errlen, "store: driver and url are required");
		return -EINVAL;
	}
	const struct rv_store_backend *be = find_backend(driver);
	if (!be) {
		snprintf(err, errlen, "unknown store driver \"%s\" (expected sqlite or postgres)",
		         driver);
		return -EINVAL;
	}
	if (pool < 1 || pool > RV_STORE_MAX_POOL) {
		snprintf(err, errlen, "store pool size %d is outside 1..%d", pool,
		         RV_STORE_MAX_POOL);
		return -EINVAL;
	}
	register_metrics();

	st = rv_xcalloc(1, sizeof(*st));
	st->be = be;
	st->acquire_timeout_ms = RV_STORE_ACQUIRE_MS;
	st->conns = rv_xcalloc((size_t)pool, sizeof(*st->conns));
	pthread_mutex_init(&st->mu, NULL);
	/* A monotonic clock, so the 5 s wait does not jump with the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);

	for (int i = 0; i < pool; i++) {
		struct rv_db *db = NULL;
		rc = be->connect(url, &db, err, errlen);
		if (rc)
			goto out;
		st->conns[st->nconns++] = db;
		/* Migrate on the first connection before the others exist to contend with it. */
		if (i == 0) {
			rc = migrate(db, err, errlen);
			if (rc)
				goto out;
		}
		db->next_free = st->free_list;
		st->free_list = db;
	}
	*out = st;
out:
	if (rc) {
		rv_error("store", "cannot open the %s store: %s", be->name, err);
		close_conns(st);
		pthread_cond_destroy(&st->cv);
		pthread_mutex_destroy(&st->mu);
		free(st->conns);
		free(st);
	}
	return rc;
}

/* Close every connection and free the store. All borrowed connections must be back. */
void rv_store_close(struct rv_store *st)
{
	if (!st)
		return;
	close_conns(st);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st->conns);
	free(st);
}
