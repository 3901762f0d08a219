/*
 * The generic REST resource engine behind api_resources.c. A resource is described by a table
 * (struct rv_res) listing its SQL table, its fields with their JSON types, which of them a
 * client may write on create and on update, their limits and validators, the list filters, and
 * hooks for the rules that involve more than one field or other rows. List, get, create, patch
 * and delete, and the conversion between JSON bodies and rows, are written once here.
 *
 * Every write runs on one pooled connection inside one transaction together with its audit row.
 * The pure validators (calling-window times, day lists, time-zone names, URLs, cursors) are
 * exported so the unit tests can reach them.
 */
#ifndef RV_API_RESOURCE_H
#define RV_API_RESOURCE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"

struct rv_app;
struct rv_db;
struct rv_rows;

#define RV_RES_LIMIT_DEFAULT 50
#define RV_RES_LIMIT_MAX     500
#define RV_RES_TEXT_CAP      4096         /* default byte cap of a text field */
#define RV_RES_JSON_CAP      (256 * 1024) /* default cap of a JSON document field, serialised */

/* JSON types of fields, and how each is stored. */
enum rv_res_type {
	RV_RES_TEXT = 1, /* string <-> TEXT */
	RV_RES_INT,      /* integer <-> INTEGER */
	RV_RES_BOOL,     /* true/false <-> INTEGER 0/1 */
	RV_RES_REAL,     /* number <-> REAL */
	RV_RES_OBJECT,   /* object <-> JSON text */
	RV_RES_ARRAY,    /* array <-> JSON text */
};

enum rv_res_flags {
	RV_RES_F_CREATE = 1 << 0,   /* a client may set it on create */
	RV_RES_F_UPDATE = 1 << 1,   /* a client may change it with PATCH */
	RV_RES_F_REQUIRED = 1 << 2, /* must be present on create */
	RV_RES_F_NULLABLE = 1 << 3, /* JSON null accepted (stored as SQL NULL) */
	RV_RES_F_HIDDEN = 1 << 4,   /* never written to a response */
	RV_RES_F_VIRTUAL = 1 << 5,  /* input only, not a column: a hook turns it into columns */
	RV_RES_F_NONEMPTY = 1 << 6, /* text must not be empty */
};

/*
 * A field validator: 0 when the value is acceptable, or -EINVAL with a short reason in *why
 * (static string). It sees the JSON value after the type check.
 */
typedef int(rv_res_check_cb)(const json_t *val, const char **why);

struct rv_res_field {
	const char *name; /* column name (or input name for virtual fields) */
	enum rv_res_type type;
	unsigned flags;
	const char *const *choices; /* text: NULL-terminated list of allowed values */
	int64_t min, max;           /* int: range; text/JSON: max bytes (0 = default cap) */
	rv_res_check_cb *check;
};

enum rv_res_action { RV_RES_CREATE = 1, RV_RES_UPDATE, RV_RES_DELETE };

/* The state of one write, handed to the hooks. */
struct rv_res_op {
	struct rv_app *app;
	struct rv_http_req *req;
	struct rv_http_resp *resp;
	const struct rv_res *res;
	enum rv_res_action action;
	int64_t id;       /* 0 on create until inserted */
	struct rv_db *db; /* NULL in the prepare hook */
	json_t *cur;      /* the stored row (all columns) on update/delete, NULL on create */
	json_t *vals;     /* validated input, column -> value; hooks may add, change, remove */
	json_t *extra;    /* keys merged into the create response only (e.g. a secret) */
	json_t *details;  /* audit details; hooks may add keys */
};

/*
 * Hook: 0 to go on, or a negative value after replying with an error (rv_res_fail or
 * rv_res_store_fail); the engine then rolls back and sends that reply.
 */
typedef int(rv_res_hook_cb)(struct rv_res_op *op);

/* A list filter taken from the query string. */
struct rv_res_filter {
	const char *arg;            /* query argument */
	const char *column;         /* column compared with = */
	enum rv_res_type type;      /* RV_RES_INT (positive id) or RV_RES_TEXT */
	const char *const *choices; /* text: allowed values, or NULL */
	/* Optional normaliser for text (e.g. phone numbers): 0 or -EINVAL with *why. */
	int (*norm)(struct rv_app *app, const char *in, char *out, size_t outlen, const char **why);
};

struct rv_res {
	const char *name;  /* collection name: audit resource, log lines */
	const char *table; /* SQL table */
	const char *noun;  /* "campaign", for messages */
	const struct rv_res_field *fields;
	size_t nfields;
	const struct rv_res_filter *filters;
	size_t nfilters;
	int has_created_at, has_updated_at;
	const char *conflict_msg;      /* message for a unique-constraint violation */
	rv_res_hook_cb *prepare;       /* before the transaction (no db): slow or pure work */
	rv_res_hook_cb *in_tx;         /* inside the transaction, after the current row is read */
	void (*decorate)(json_t *obj); /* add computed keys to every output object */
};

/* Route-level operations. Each replies on resp. */
void rv_res_list(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                 const struct rv_res *res);
void rv_res_get(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                const struct rv_res *res);
void rv_res_create(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                   const struct rv_res *res);
void rv_res_patch(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                  const struct rv_res *res);
void rv_res_delete(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                   const struct rv_res *res);

/*
 * Read one row by id on db into a JSON object (all columns, typed by the descriptor, hidden
 * ones included). Returns 0 and *out (caller owns), -ENOENT when there is no such row, or a
 * store error.
 */
int rv_res_load(struct rv_db *db, const struct rv_res *res, int64_t id, json_t **out);

/* A row as the client sees it: hidden fields dropped, decorate applied. New reference. */
json_t *rv_res_public(const struct rv_res *res, const json_t *row);

/* Convert row `i` of a result set into a JSON object typed by res (res may be NULL: raw). */
json_t *rv_res_row_json(const struct rv_res *res, const struct rv_rows *rows, size_t i);

/* Reply with an error and return -EINVAL, for hooks: `return rv_res_fail(op, 409, ...)`. */
int rv_res_fail(struct rv_res_op *op, int status, const char *code, json_t *details /* consumed */,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reply 400 invalid_field with details {"field": field, "reason": why}; returns -EINVAL. */
int rv_res_fail_field(struct rv_http_resp *resp, const char *resource, const char *field,
                      const char *why);
/*
 * Map a store error to a reply: RV_STORE_ECONFLICT 409, RV_STORE_ECONSTRAINT 422,
 * RV_STORE_EBUSY / -ETIMEDOUT 503, anything else 500 with an error log line naming `what`.
 * `conflict_msg` may be NULL. Returns `err` (always negative).
 */
int rv_res_store_fail(struct rv_http_resp *resp, int err, const char *what,
                      const char *conflict_msg);

/* Current value of a column for a write: the new value in op->vals, else the stored one. */
const json_t *rv_res_value(const struct rv_res_op *op, const char *column);

/* --- pure validators (unit-tested) ----------------------------------------------------- */

/* Positive path id ("12"), no sign, no leading zero tricks beyond what strtol accepts. */
int rv_res_parse_id(const char *s, int64_t *out);
/* ?limit=: NULL -> RV_RES_LIMIT_DEFAULT; else 1..RV_RES_LIMIT_MAX or -EINVAL. */
int rv_res_parse_limit(const char *s, int64_t *out);
/* ?cursor=: NULL or "" -> 0 (first page); else a positive id or -EINVAL. */
int rv_res_parse_cursor(const char *s, int64_t *out);
/* "HH:MM", 24 h, two digits each. Minutes since midnight in *minutes (may be NULL). */
int rv_res_hhmm_parse(const char *s, int *minutes);
/* "mon,tue,..." non-empty, known days, no duplicates, no blanks. 0 or -EINVAL. */
int rv_res_days_valid(const char *s);
/*
 * Is `name` an IANA zone name that exists under `zoneinfo_dir` (NULL = /usr/share/zoneinfo)
 * as a TZif file? Rejects absolute paths, "." and ".." components and unusual characters
 * before touching the file system. 0 or -EINVAL.
 */
int rv_res_timezone_valid(const char *name, const char *zoneinfo_dir);
/* Absolute http(s) URL with a host, no whitespace or control bytes, at most 2048 bytes. */
int rv_res_url_valid(const char *url, const char **why);
/* A plausible e-mail address: local@domain.tld, printable ASCII, at most 254 bytes. */
int rv_res_email_valid(const char *s);
/* Comma list of words from `allowed` without duplicates; empty allowed when allow_empty. */
int rv_res_csv_valid(const char *s, const char *const *allowed, int allow_empty);

#endif
