/*
 * The store: one portable SQL interface over a pool of database connections, with one backend
 * per database engine behind a table of function pointers (store_sqlite.c, later store_pg.c).
 *
 * Portable SQL rules (so the same statements run on SQLite and PostgreSQL):
 *   - parameters are written $1, $2, ... (each backend binds them by that name);
 *   - ids come from `INSERT ... RETURNING id`;
 *   - time stamps are TEXT in ISO 8601 UTC ("2026-11-22T03:49:31.123Z"), set by the caller;
 *   - JSON documents are TEXT; booleans are INTEGER 0/1;
 *   - migrations may use the macros @ID@ (auto-increment integer primary key) and @BLOB@
 *     (binary column), which each backend expands; nothing else engine-specific.
 * Only the backend files contain engine-specific SQL.
 */
#ifndef RV_STORE_H
#define RV_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Error values beyond -errno that callers map to HTTP statuses. */
enum {
	RV_STORE_ECONFLICT = -1001,   /* unique constraint violated (-> 409) */
	RV_STORE_ECONSTRAINT = -1002, /* check / foreign key / not-null violated (-> 422) */
	RV_STORE_EBUSY = -1003,       /* database locked past the busy timeout (-> 503) */
};

enum rv_val_type { RV_VAL_NULL = 0, RV_VAL_INT, RV_VAL_REAL, RV_VAL_TEXT, RV_VAL_BLOB };

/* One parameter or result value. Text/blob pointers are borrowed (params) or owned by the rows. */
struct rv_val {
	enum rv_val_type type;
	int64_t i;
	double r;
	const char *s; /* text (NUL-terminated) or blob bytes */
	size_t len;    /* length of s */
};

#define RV_VNULL    ((struct rv_val){.type = RV_VAL_NULL})
#define RV_VINT(x)  ((struct rv_val){.type = RV_VAL_INT, .i = (x)})
#define RV_VREAL(x) ((struct rv_val){.type = RV_VAL_REAL, .r = (x)})
/* A function rather than an open-coded test, so char arrays and a literal NULL compile without
 * -Waddress / -Wnonnull warnings. A NULL string is SQL NULL. */
static inline struct rv_val rv_val_text(const char *s)
{
	struct rv_val v = {.type = s ? RV_VAL_TEXT : RV_VAL_NULL, .s = s, .len = s ? strlen(s) : 0};
	return v;
}
#define RV_VTEXT(x)    rv_val_text(x)
#define RV_VBLOB(p, n) ((struct rv_val){.type = RV_VAL_BLOB, .s = (const char *)(p), .len = (n)})

/* A fully materialised result set. */
struct rv_rows {
	size_t ncols, nrows;
	char **cols;         /* column names */
	struct rv_val *vals; /* nrows * ncols values, row-major; strings owned by the rows */
};

static inline const struct rv_val *rv_rows_at(const struct rv_rows *r, size_t row, size_t col)
{
	return &r->vals[row * r->ncols + col];
}
/* Index of the named column, or -1. */
int rv_rows_col(const struct rv_rows *r, const char *name);
void rv_rows_free(struct rv_rows *r);

struct rv_store;
struct rv_db; /* one pooled connection */

/* The backend table: one per engine. */
struct rv_store_backend {
	const char *name; /* "sqlite", "postgres" */
	/* Open one connection. url is the backend's locator. */
	int (*connect)(const char *url, struct rv_db **out, char *err, size_t errlen);
	void (*disconnect)(struct rv_db *db);
	/*
	 * Run one statement with parameters $1..$n. When rows is not NULL, results are
	 * materialised into *rows (also for zero rows). *changes (if not NULL) receives the count
	 * of rows inserted/updated/deleted. Returns 0 or a negative error (RV_STORE_E* or -errno).
	 */
	int (*exec)(struct rv_db *db, const char *sql, const struct rv_val *params, size_t n,
	            struct rv_rows **rows, int64_t *changes);
	/* Run a script of several statements without parameters (migrations). */
	int (*exec_script)(struct rv_db *db, const char *sql, char *err, size_t errlen);
	/* Expand @ID@ / @BLOB@ in migration text. Returns a malloc'd string. */
	char *(*expand_macros)(const char *sql);
	/* Last error text of this connection (borrowed). */
	const char *(*errmsg)(struct rv_db *db);
};

extern const struct rv_store_backend rv_store_sqlite;
extern const struct rv_store_backend rv_store_pg; /* url: a libpq conninfo string or URI */

/*
 * Open a store: choose the backend by driver name, open `pool` connections, apply pending
 * migrations (numbered SQL files compiled in from src/store/migrations/) in one transaction
 * each. On failure returns a negative error, writes a sentence into err and opens nothing.
 */
int rv_store_open(const char *driver, const char *url, int pool, struct rv_store **out, char *err,
                  size_t errlen);
void rv_store_close(struct rv_store *st);

/* Borrow a connection from the pool (waits up to 5 s: -ETIMEDOUT), and give it back. */
int rv_store_acquire(struct rv_store *st, struct rv_db **out);
void rv_store_release(struct rv_store *st, struct rv_db *db);

/* Statements on a borrowed connection. */
int rv_db_exec(struct rv_db *db, const char *sql, const struct rv_val *params, size_t n,
               struct rv_rows **rows, int64_t *changes);
int rv_db_begin(struct rv_db *db); /* BEGIN (SQLite: BEGIN IMMEDIATE) */
int rv_db_commit(struct rv_db *db);
int rv_db_rollback(struct rv_db *db); /* safe to call after a failed statement */
const char *rv_db_errmsg(struct rv_db *db);

/* One statement on a pooled connection, acquired and released around it. */
int rv_store_exec(struct rv_store *st, const char *sql, const struct rv_val *params, size_t n,
                  struct rv_rows **rows, int64_t *changes);

/* Cheap liveness check for /readyz: 0 when a connection answers `SELECT 1`. */
int rv_store_ping(struct rv_store *st);

/* The newest applied migration number. */
int rv_store_schema_version(struct rv_store *st, int64_t *out);

/* Human sentence for a store error code. */
const char *rv_store_strerror(int err);

#endif
