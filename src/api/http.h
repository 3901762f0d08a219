/*
 * The control-plane HTTP server (libmicrohttpd, its own thread pool; see docs/adr/0001) and
 * the router. Handlers run on control-plane threads, never on the media loop. The server owns
 * body caps, authentication, role checks, rate limiting, CORS, per-route metrics and the
 * access log, so handlers only do their resource's work.
 */
#ifndef RV_HTTP_H
#define RV_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/auth.h"

struct rv_app;
struct rv_http;
struct MHD_Connection;

#define RV_HTTP_MAX_PARAMS 4

struct rv_http_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* URL path without the query */
	const char *query;  /* the raw query string as sent (after '?', before '#', still
	                     * percent-encoded), NULL when the URL has none; for signatures
	                     * computed over the exact URL (Twilio's X-Twilio-Signature) */
	const char *route;  /* the pattern that matched, e.g. "/api/campaigns/{id}" */
	const char *params[RV_HTTP_MAX_PARAMS]; /* values of the {name} segments, in order */
	size_t nparams;
	const char *body; /* request body, NUL-terminated (NULL when empty) */
	size_t body_len;
	char client_ip[64];
	struct rv_principal who; /* filled for authenticated routes */
	struct MHD_Connection *conn;
};

struct rv_http_resp {
	int status;
	char *body; /* malloc'd, owned by the response */
	size_t body_len;
	char content_type[96];
	char headers[8][2][128]; /* extra headers (name, value) */
	size_t nheaders;
};

/* Query-string argument or request header (NULL when absent; borrowed). */
const char *rv_http_query(const struct rv_http_req *req, const char *key);
const char *rv_http_header(const struct rv_http_req *req, const char *name);

/* Replies. Each replaces any earlier body. */
void rv_http_reply_json(struct rv_http_resp *resp, int status, json_t *body /* consumed */);
void rv_http_reply_raw(struct rv_http_resp *resp, int status, const char *content_type,
                       const void *body, size_t len /* copied */);
/* {"error":{"code","message","details"}}; details may be NULL (consumed). */
void rv_http_reply_error(struct rv_http_resp *resp, int status, const char *code, json_t *details,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int rv_http_set_header(struct rv_http_resp *resp, const char *name, const char *value);

/*
 * Parse the body as one JSON object. On failure replies 400 "invalid_json" (with line and
 * column in details) or 400 "invalid_body" when it is not an object, and returns -EINVAL.
 */
int rv_http_json_body(const struct rv_http_req *req, struct rv_http_resp *resp, json_t **out);

typedef void(rv_http_handler_h)(struct rv_app *app, struct rv_http_req *req,
                                struct rv_http_resp *resp);

enum rv_route_flags {
	RV_ROUTE_UPLOAD = 1 << 0,       /* body cap is http.max_upload instead of http.max_body */
	RV_ROUTE_NO_RATELIMIT = 1 << 1, /* ops endpoints */
	RV_ROUTE_NO_METRICS = 1 << 2,
};

/*
 * A route: method, a pattern of literal segments and {name} segments, the lowest role allowed
 * (RV_ROLE_NONE = public, no credentials), flags and the handler.
 */
struct rv_route {
	const char *method;
	const char *pattern;
	enum rv_role min_role;
	unsigned flags;
	rv_http_handler_h *handler;
};

/* Create the server (not yet listening). Routes are added before rv_http_start. */
int rv_http_new(struct rv_app *app, struct rv_http **out);
/* Add routes (the array is borrowed and must outlive the server). */
void rv_http_add_routes(struct rv_http *http, const struct rv_route *routes, size_t n);
/* The route table, for the OpenAPI coverage check and `revovoice routes`. */
size_t rv_http_routes(const struct rv_http *http, const struct rv_route **out, size_t max);
/* Listen on HOST:PORT ("127.0.0.1:0" picks a free port). 0 or negative error with a log line. */
int rv_http_start(struct rv_http *http, const char *listen);
/* The port actually bound (after start). */
int rv_http_port(const struct rv_http *http);
/* Stop accepting, let in-flight requests finish (up to timeout_ms), then stop. */
void rv_http_stop(struct rv_http *http, int timeout_ms);
void rv_http_free(struct rv_http *http);

/* Every API route of the daemon, from all modules (api/api.c). */
void rv_api_register_all(struct rv_http *http);

#endif
