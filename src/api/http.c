/*
 * The control-plane HTTP server on libmicrohttpd. MHD parses HTTP and runs a pool of worker
 * threads; this file adds the router, body caps, authentication, rate limiting, CORS, security
 * headers, metrics, the access log and a small static file server for the dashboard.
 *
 * Per-request state lives in a per-connection structure (MHD's socket context) that is reused by
 * every request on a keep-alive connection, so a simple GET costs no allocation of ours beyond
 * the response body; it is freed when MHD closes the connection, whatever state it was in.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/http_int.h"
#include "api/ratelimit.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"

#define COMPONENT          "http"
#define DEFAULT_MAX_BODY   (1 << 20)
#define DEFAULT_MAX_UPLOAD (16 << 20)
/* Longest request path we route; MHD's own header limit (32 KiB) stops anything far longer. */
#define MAX_PATH_LEN 8192
/* Past the cap we keep reading (and dropping) this much so the client still gets its 413. */
#define MAX_DISCARD          (4 << 20)
#define CONNECTION_TIMEOUT_S 30
#define MAX_STATIC_FILE      ((int64_t)256 << 20)
#define PATH_IN_LOG          256

#define M_REQUESTS "rv_http_requests_total"
#define M_DURATION "rv_http_request_duration_seconds"

struct compiled_route {
	const struct rv_route *r;
	size_t nseg;
	struct {
		const char *s; /* literal text (into the pattern), NULL for {name} */
		size_t len;
	} seg[RV_HTTP_MAX_SEGMENTS];
	uint32_t specificity; /* a literal segment beats a parameter, earlier segments weigh more */
};

struct rv_http {
	struct rv_app *app;
	struct compiled_route *routes;
	size_t nroutes, cap;
	struct MHD_Daemon *d;
	int port;
	atomic_int inflight;
	int64_t max_body, max_upload;
	int cors_any;
	char **cors;
	size_t ncors;
};

/* One per TCP connection; holds the request currently being served on it. */
struct conn_state {
	struct rv_http *http;
	struct MHD_Connection *conn;
	int active;    /* a request is between its URI and its completion */
	int started;   /* the access handler has seen this request */
	int responded; /* a response has been queued */
	int too_big;
	int preflight;
	uint64_t t0;
	size_t cap;
	uint64_t discarded;
	char *raw;   /* the path as sent, without the query */
	char *query; /* the raw query, inside raw's buffer after the path; NULL: none */
	char *scratch;
	size_t raw_alloc;
	char *body;
	size_t body_len, body_alloc;
	char client_ip[64];
	char limit_addr[64]; /* the address the rate limiter counts (an IPv6 client's /64) */
	struct rv_http_match m;
	struct rv_http_req req;
	struct rv_http_resp resp;
};

/* ---- router ---------------------------------------------------------------------------- */

int rv_http_pct_decode(const char *src, size_t n, char *dst, size_t dstlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return -EINVAL;
			char a = src[i + 1], b = src[i + 2];
			hi = (a >= '0' && a <= '9')   ? a - '0'
			     : (a >= 'a' && a <= 'f') ? a - 'a' + 10
			     : (a >= 'A' && a <= 'F') ? a - 'A' + 10
			                              : -1;
			lo = (b >= '0' && b <= '9')   ? b - '0'
			     : (b >= 'a' && b <= 'f') ? b - 'a' + 10
			     : (b >= 'A' && b <= 'F') ? b - 'A' + 10
			                              : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '\0') {
			return -EINVAL;
		}
		if (o + 1 >= dstlen)
			return -EINVAL;
		dst[o++] = c;
	}
	if (o >= dstlen)
		return -EINVAL;
	dst[o] = '\0';
	return (int)o;
}

static int compile_route(const struct rv_route *r, struct compiled_route *c)
{
	const char *p = r->pattern;
	size_t nparams = 0;
	if (!p || p[0] != '/' || !r->method || !r->handler)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->r = r;
	p++;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || c->nseg >= RV_HTTP_MAX_SEGMENTS)
			return -EINVAL;
		if (p[0] == '{') {
			if (len < 3 || p[len - 1] != '}' || nparams >= RV_HTTP_MAX_PARAMS)
				return -EINVAL;
			nparams++;
			c->seg[c->nseg].s = NULL;
		} else {
			c->seg[c->nseg].s = p;
			c->specificity |= 1u << (RV_HTTP_MAX_SEGMENTS - 1 - c->nseg);
		}
		c->seg[c->nseg].len = len;
		c->nseg++;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

static void allow_add(char *allow, size_t len, const char *method)
{
	size_t mlen = strlen(method);
	for (const char *p = allow; (p = strstr(p, method)) != NULL; p += mlen) {
		if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
			return;
	}
	size_t used = strlen(allow);
	snprintf(allow + used, len - used, "%s%s", used ? ", " : "", method);
}

void rv_http_match(const struct rv_http *http, const char *method, const char *raw_path,
                   char *scratch, size_t scratch_len, struct rv_http_match *m)
{
	const char *seg[RV_HTTP_MAX_SEGMENTS];
	size_t nseg = 0, used = 0;

	memset(m, 0, sizeof(*m));
	m->status = 404;
	if (!raw_path || raw_path[0] != '/')
		return;
	const char *p = raw_path + 1;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (nseg >= RV_HTTP_MAX_SEGMENTS || used >= scratch_len)
			return;
		int n = rv_http_pct_decode(p, len, scratch + used, scratch_len - used);
		if (n < 0)
			return;
		seg[nseg++] = scratch + used;
		used += (size_t)n + 1;
		if (!end)
			break;
		p = end + 1;
	}

	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
	const struct compiled_route *best = NULL, *best_path = NULL;
	for (size_t i = 0; i < http->nroutes; i++) {
		const struct compiled_route *c = &http->routes[i];
		if (c->nseg != nseg)
			continue;
		size_t k = 0;
		for (; k < nseg; k++) {
			if (c->seg[k].s) {
				if (strlen(seg[k]) != c->seg[k].len ||
				    memcmp(seg[k], c->seg[k].s, c->seg[k].len) != 0)
					break;
			} else if (seg[k][0] == '\0') {
				break;
			}
		}
		if (k != nseg)
			continue;
		allow_add(m->allow, sizeof(m->allow), c->r->method);
		if (!best_path || c->specificity > best_path->specificity)
			best_path = c;
		if (strcmp(c->r->method, want) == 0 &&
		    (!best || c->specificity > best->specificity))
			best = c;
	}
	if (best_path)
		m->pattern = best_path->r->pattern;
	if (!best) {
		m->status = best_path ? 405 : 404;
		return;
	}
	m->status = 0;
	m->route = best->r;
	m->pattern = best->r->pattern;
	for (size_t k = 0; k < nseg; k++)
		if (!best->seg[k].s)
			m->params[m->nparams++] = seg[k];
}

/* ---- request helpers ------------------------------------------------------------------- */

const char *rv_http_query(const struct rv_http_req *req, const char *key)
{
	if (!req || !req->conn || !key)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *rv_http_header(const struct rv_http_req *req, const char *name)
{
	if (!req || !req->conn || !name)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static void resp_clear_body(struct rv_http_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

void rv_http_reply_raw(struct rv_http_resp *resp, int status, const char *content_type,
                       const void *body, size_t len)
{
	resp_clear_body(resp);
	resp->status = status;
	rv_strlcpy(resp->content_type, content_type ? content_type : "",
	           sizeof(resp->content_type));
	if (!body || !len)
		return;
	char *copy = malloc(len + 1);
	if (!copy) {
		/* The size comes from the handler's input, so this is an error, not an abort. */
		rv_error(COMPONENT, "out of memory for a %zu-byte response body", len);
		resp->status = 500;
		resp->content_type[0] = '\0';
		return;
	}
	memcpy(copy, body, len);
	copy[len] = '\0';
	resp->body = copy;
	resp->body_len = len;
}

void rv_http_reply_json(struct rv_http_resp *resp, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	resp_clear_body(resp);
	if (!text) {
		rv_error(COMPONENT, "cannot serialise a JSON response body");
		static const char fallback[] =
		    "{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the response\","
		    "\"details\":null}}";
		rv_http_reply_raw(resp, 500, "application/json", fallback, sizeof(fallback) - 1);
		return;
	}
	resp->status = status;
	rv_strlcpy(resp->content_type, "application/json", sizeof(resp->content_type));
	resp->body = text;
	resp->body_len = strlen(text);
}

void rv_http_reply_error(struct rv_http_resp *resp, int status, const char *code, json_t *details,
                         const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quote outside input (parser errors, field values) and may be cut mid-sequence
	 * by the buffer; JSON strings must be valid UTF-8. */
	rv_utf8_scrub(msg);
	json_t *err = json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code ? code : "internal",
	                        "message", msg, "details", details ? details : json_null());
	if (!err)
		rv_error(COMPONENT, "cannot build an error body for %d %s", status,
		         code ? code : "?");
	rv_http_reply_json(resp, status, err);
	if (!err)
		resp->status = status;
}

int rv_http_set_header(struct rv_http_resp *resp, const char *name, const char *value)
{
	if (!name || !value || strlen(name) >= sizeof(resp->headers[0][0]) ||
	    strlen(value) >= sizeof(resp->headers[0][1]) || strpbrk(name, "\r\n:") ||
	    strpbrk(value, "\r\n"))
		return -EINVAL;
	size_t i = 0;
	while (i < resp->nheaders && strcasecmp(resp->headers[i][0], name) != 0)
		i++;
	if (i == RV_ARRAY_LEN(resp->headers))
		return -ENOSPC;
	rv_strlcpy(resp->headers[i][0], name, sizeof(resp->headers[i][0]));
	rv_strlcpy(resp->headers[i][1], value, sizeof(resp->headers[i][1]));
	if (i == resp->nheaders)
		resp->nheaders++;
	return 0;
}

int rv_http_json_body(const struct rv_http_req *req, struct rv_http_resp *resp, json_t **out)
{
	json_error_t e;
	json_t *j = json_loadb(req->body ? req->body : "", req->body ? req->body_len : 0,
	                       JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		json_t *details = json_pack("{s:i, s:i, s:i}", "line", e.line, "column", e.column,
		                            "position", e.position);
		rv_http_reply_error(resp, 400, "invalid_json", details, "invalid JSON: %s", e.text);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		rv_http_reply_error(resp, 400, "invalid_body", NULL,
		                    "the request body must be a JSON object");
		return -EINVAL;
	}
	*out = j;
	return 0;
}

/* ---- server ---------------------------------------------------------------------------- */

static int is_api_path(const char *p)
{
	return strncmp(p, "/api/", 5) == 0 || strcmp(p, "/api") == 0;
}

/* Bounded label values: arbitrary method tokens must not grow the metric families. */
static const char *method_label(const char *m)
{
	static const char *const known[] = {"GET",   "HEAD",   "POST",   "PUT",
	                                    "PATCH", "DELETE", "OPTIONS"};
	for (size_t i = 0; i < RV_ARRAY_LEN(known); i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

static int origin_allowed(const struct rv_http *h, const char *origin)
{
	if (!origin)
		return 0;
	if (h->cors_any)
		return 1;
	for (size_t i = 0; i < h->ncors; i++)
		if (strcasecmp(h->cors[i], origin) == 0)
			return 1;
	return 0;
}

static void add_header(struct MHD_Response *r, const char *name, const char *value)
{
	if (MHD_add_response_header(r, name, value) != MHD_YES)
		rv_warn(COMPONENT, "cannot add response header %s", name);
}

/* A server default, unless the handler chose its own value: two of one header contradict. */
static void add_default_header(struct MHD_Response *r, const char *name, const char *value)
{
	if (!MHD_get_response_header(r, name))
		add_header(r, name, value);
}

static void log_and_count(struct conn_state *cs, int status, const char *route)
{
	struct rv_http_req *req = &cs->req;
	uint64_t dt = rv_time_mono_ns() - cs->t0;
	char st[8], ms[32], path[PATH_IN_LOG + 4];
	snprintf(st, sizeof(st), "%d", status);
	snprintf(ms, sizeof(ms), "%.3f", (double)dt / 1e6);
	size_t n = rv_strlcpy(path, cs->raw, PATH_IN_LOG + 1);
	if (n > PATH_IN_LOG)
		rv_strlcpy(path + PATH_IN_LOG, "...", 4);
	/* The raw path is whatever bytes the client sent; keep the log line valid UTF-8 JSON. */
	for (char *p = path; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	const char *user = (req->who.user_id || req->who.api_key_id) ? req->who.email : "";
	rv_logkv(RV_LOG_INFO, COMPONENT, "request", "method", req->method, "route", route, "path",
	         path, "status", st, "duration_ms", ms, "client", cs->client_ip, "user", user,
	         NULL);

	if (cs->m.route && (cs->m.route->flags & RV_ROUTE_NO_METRICS))
		return;
	const char *ml = method_label(req->method);
	rv_metrics_inc(M_REQUESTS, 1, route, ml, st, NULL);
	rv_metrics_observe(M_DURATION, (double)dt / 1e9, route, ml, NULL);
}

/* Add the headers every response carries, queue it, log and count the request. */
static enum MHD_Result send_response(struct conn_state *cs, struct MHD_Response *r, int status,
                                     const char *route)
{
	struct rv_http *h = cs->http;
	add_default_header(r, "X-Content-Type-Options", "nosniff");
	add_default_header(r, "X-Frame-Options", "DENY");
	add_default_header(r, "Referrer-Policy", "no-referrer");
	if (strcmp(route, "static") != 0)
		add_default_header(r, "Cache-Control", "no-store");
	if (h->cors_any || h->ncors) {
		const char *origin = rv_http_header(&cs->req, "Origin");
		if (origin_allowed(h, origin)) {
			add_header(r, "Access-Control-Allow-Origin", h->cors_any ? "*" : origin);
			add_header(r, "Access-Control-Expose-Headers", "Retry-After");
		}
		/*
		 * On refusals too: a cache that kept the answer without the CORS headers must not
		 * hand it to an allowed origin (static files are cacheable).
		 */
		if (!h->cors_any)
			add_header(r, "Vary", "Origin");
	}
	enum MHD_Result ok = MHD_queue_response(cs->conn, (unsigned)status, r);
	MHD_destroy_response(r);
	cs->responded = 1;
	log_and_count(cs, status, route);
	return ok;
}

static enum MHD_Result send_resp(struct conn_state *cs, const char *route)
{
	struct rv_http_resp *resp = &cs->resp;
	struct MHD_Response *r;
	if (resp->body && resp->body_len) {
		r = MHD_create_response_from_buffer(resp->body_len, resp->body,
		                                    MHD_RESPMEM_MUST_FREE);
		if (r) {
			resp->body = NULL;
			resp->body_len = 0;
		}
	} else {
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	}
	if (!r) {
		rv_error(COMPONENT, "cannot create a response for %s", cs->raw);
		return MHD_NO;
	}
	if (resp->content_type[0] && resp->status != 204)
		add_header(r, "Content-Type", resp->content_type);
	for (size_t i = 0; i < resp->nheaders && i < RV_ARRAY_LEN(resp->headers); i++)
		add_header(r, resp->headers[i][0], resp->headers[i][1]);
	return send_response(cs, r, resp->status, route);
}

static const char *content_type_for(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".html", "text/html; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".mjs", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	    {".json", "application/json"},
	    {".map", "application/json"},
	    {".ico", "image/x-icon"},
	    {".woff2", "font/woff2"},
	    {".txt", "text/plain; charset=utf-8"},
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	for (size_t i = 0; dot && i < RV_ARRAY_LEN(types); i++)
		if (strcasecmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/*
 * Open the regular file `rel` (decoded, starting with '/') under root, refusing anything whose
 * real path leaves root (../, symlinks out). Returns an fd or -1.
 */
static int open_under(const char *root, const char *rel, struct stat *st, char *real)
{
	char full[PATH_MAX];
	int n = snprintf(full, sizeof(full), "%s%s", root, rel);
	if (n < 0 || (size_t)n >= sizeof(full) || !realpath(full, real))
		return -1;
	size_t rlen = strlen(root);
	if (strncmp(real, root, rlen) != 0 || (real[rlen] != '/' && strcmp(root, "/") != 0))
		return -1;
	int fd = open(real, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_size > MAX_STATIC_FILE) {
		close(fd);
		return -1;
	}
	return fd;
}

static enum MHD_Result serve_static(struct conn_state *cs)
{
	struct rv_app *app = cs->http->app;
	const char *web_root = app && app->cfg ? app->cfg->web_root : NULL;
	char root[PATH_MAX], real[PATH_MAX];
	char *path = cs->scratch;
	struct stat st;
	int fd = -1;

	if (!web_root || !*web_root || !realpath(web_root, root))
		goto missing;
	int n = rv_http_pct_decode(cs->raw, strlen(cs->raw), path, cs->raw_alloc);
	if (n < 1 || path[0] != '/')
		goto missing;
	/* realpath catches escapes too; refusing dot-dot up front keeps the intent obvious. */
	for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
		if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
			goto missing;
	}
	if (strchr(path, '\\'))
		goto missing;

	const char *last = strrchr(path, '/');
	if (path[n - 1] == '/') {
		char idx[PATH_MAX];
		int len = snprintf(idx, sizeof(idx), "%sindex.html", path);
		/* A cut-off name could open some other file; a path that long has no index. */
		fd = len > 0 && (size_t)len < sizeof(idx) ? open_under(root, idx, &st, real) : -1;
	} else {
		fd = open_under(root, path, &st, real);
	}
	/* Single-page app: client-side routes like /campaigns/7 get the app shell. */
	if (fd < 0 && !strchr(last, '.'))
		fd = open_under(root, "/index.html", &st, real);
	if (fd < 0)
		goto missing;

	struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
	if (!r) {
		close(fd);
		rv_error(COMPONENT, "cannot create a file response for %s", real);
		return MHD_NO;
	}
	add_header(r, "Content-Type", content_type_for(real));
	if (strstr(content_type_for(real), "text/html"))
		add_header(r, "Cache-Control", "no-cache");
	return send_response(cs, r, 200, "static");

missing:
	rv_http_reply_error(&cs->resp, 404, "not_found", NULL, "no such resource");
	return send_resp(cs, "unmatched");
}

static void ratelimit_key(const struct conn_state *cs, int authed, char *key, size_t len)
{
	const struct rv_principal *who = &cs->req.who;
	if (authed && who->api_key_id)
		snprintf(key, len, "k:%lld", (long long)who->api_key_id);
	else if (authed && who->user_id)
		snprintf(key, len, "u:%lld", (long long)who->user_id);
	else
		snprintf(key, len, "a:%s", cs->limit_addr[0] ? cs->limit_addr : cs->client_ip);
}

static void run_route(struct conn_state *cs)
{
	struct rv_http *h = cs->http;
	struct rv_app *app = h->app;
	struct rv_http_req *req = &cs->req;
	struct rv_http_resp *resp = &cs->resp;
	const struct rv_route *r = cs->m.route;
	int auth_err = 0;
	const char *why = NULL;

	req->route = r->pattern;
	for (size_t i = 0; i < cs->m.nparams; i++)
		req->params[i] = cs->m.params[i];
	req->nparams = cs->m.nparams;

	if (r->min_role > RV_ROLE_NONE) {
		auth_err = rv_auth_authenticate(app, rv_http_header(req, "Authorization"),
		                                rv_http_header(req, "X-API-Key"), &req->who, &why);
		if (auth_err)
			memset(&req->who, 0, sizeof(req->who));
	}

	/* After authentication, so a key or user is limited as itself wherever it comes from. */
	if (app && app->rl && !(r->flags & RV_ROUTE_NO_RATELIMIT)) {
		char key[96];
		int retry = 1;
		ratelimit_key(cs, r->min_role > RV_ROLE_NONE && !auth_err, key, sizeof(key));
		if (rv_ratelimit_take(app->rl, key, rv_time_mono_ns(), &retry) == -EAGAIN) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", retry);
			rv_http_reply_error(resp, 429, "rate_limited",
			                    json_pack("{s:i}", "retry_after", retry),
			                    "too many requests; retry in %d s", retry);
			rv_http_set_header(resp, "Retry-After", ra);
			return;
		}
	}

	if (auth_err == -EACCES) {
		rv_http_reply_error(resp, 401, "unauthorized", NULL, "%s",
		                    why ? why : "missing or invalid credentials");
		rv_http_set_header(resp, "WWW-Authenticate", "Bearer realm=\"revovoice\"");
		return;
	}
	if (auth_err) {
		rv_warn(COMPONENT, "authentication failed on the store: %d", auth_err);
		rv_http_reply_error(resp, auth_err == -ENOMEM ? 500 : 503,
		                    auth_err == -ENOMEM ? "internal" : "unavailable", NULL,
		                    "cannot check credentials right now");
		return;
	}
	if (req->who.role < r->min_role) {
		rv_http_reply_error(resp, 403, "forbidden", NULL, "this needs the %s role",
		                    rv_role_name(r->min_role));
		return;
	}

	r->handler(app, req, resp);
	if (resp->status < 100 || resp->status > 599) {
		rv_error(COMPONENT, "handler for %s %s left status %d", r->method, r->pattern,
		         resp->status);
		rv_http_reply_error(resp, 500, "internal", NULL, "internal error");
	}
}

static enum MHD_Result dispatch(struct conn_state *cs)
{
	struct rv_http *h = cs->http;
	struct rv_http_req *req = &cs->req;
	struct rv_http_resp *resp = &cs->resp;
	const char *route = cs->m.pattern ? cs->m.pattern : "unmatched";

	if (cs->too_big) {
		rv_http_reply_error(resp, 413, "body_too_large",
		                    json_pack("{s:I}", "max_bytes", (json_int_t)cs->cap),
		                    "the request body is larger than %zu bytes", cs->cap);
		return send_resp(cs, route);
	}
	if (cs->preflight) {
		struct MHD_Response *r =
		    MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		if (origin_allowed(h, rv_http_header(req, "Origin"))) {
			add_header(r, "Access-Control-Allow-Methods",
			           "GET, POST, PATCH, DELETE, OPTIONS");
			add_header(r, "Access-Control-Allow-Headers",
			           "Authorization, Content-Type, X-API-Key");
			add_header(r, "Access-Control-Max-Age", "600");
		}
		return send_response(cs, r, 204, route);
	}
	if (cs->m.status == 404) {
		if ((strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) &&
		    !is_api_path(cs->raw))
			return serve_static(cs);
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such resource");
		return send_resp(cs, "unmatched");
	}
	if (cs->m.status == 405) {
		rv_http_reply_error(resp, 405, "method_not_allowed",
		                    json_pack("{s:s}", "allow", cs->m.allow),
		                    "%s is not allowed here", req->method);
		rv_http_set_header(resp, "Allow", cs->m.allow);
		return send_resp(cs, route);
	}
	req->body = cs->body_len ? cs->body : NULL;
	req->body_len = cs->body_len;
	run_route(cs);
	return send_resp(cs, route);
}

/* Reset the per-connection state for a new request and remember its raw path. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct rv_http *h = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_state *cs = ci ? ci->socket_context : NULL;
	if (!cs)
		return NULL;

	if (cs->active) { /* the previous request never completed; don't let it hold up stop */
		cs->active = 0;
		atomic_fetch_sub(&h->inflight, 1);
	}
	free(cs->resp.body);
	memset(&cs->resp, 0, sizeof(cs->resp));
	memset(&cs->req, 0, sizeof(cs->req));
	memset(&cs->m, 0, sizeof(cs->m));
	cs->started = cs->responded = cs->too_big = cs->preflight = 0;
	cs->discarded = 0;
	cs->body_len = 0;
	cs->t0 = rv_time_mono_ns();

	size_t len = strcspn(uri ? uri : "", "?#");
	/* The raw query rides in the same buffer, after the path's NUL. */
	const char *q = uri && uri[len] == '?' ? uri + len + 1 : NULL;
	size_t qlen = q ? strcspn(q, "#") : 0;
	if (len > MAX_PATH_LEN)
		len = 0; /* routes nowhere: a 404 */
	/* MHD's header limit stops far longer ones anyway. */
	if (qlen > MAX_PATH_LEN) {
		q = NULL;
		qlen = 0;
	}
	size_t need = len + 1 + (q ? qlen + 1 : 0);
	cs->query = NULL;
	if (need > cs->raw_alloc) {
		size_t want = need < 256 ? 256 : need;
		char *raw = realloc(cs->raw, want), *scratch = NULL;
		if (raw) {
			cs->raw = raw;
			scratch = realloc(cs->scratch, want);
		}
		if (!raw || !scratch) {
			/* Leave the connection state consistent; the handler will refuse. */
			if (scratch)
				cs->scratch = scratch;
			return NULL;
		}
		cs->scratch = scratch;
		cs->raw_alloc = want;
	}
	memcpy(cs->raw, uri, len);
	cs->raw[len] = '\0';
	if (q) {
		cs->query = cs->raw + len + 1;
		memcpy(cs->query, q, qlen);
		cs->query[qlen] = '\0';
	}
	return cs;
}

static enum MHD_Result begin_request(struct conn_state *cs, struct MHD_Connection *conn,
                                     const char *method)
{
	struct rv_http *h = cs->http;
	/*
	 * Counted from here, not from the first byte: a client still sending its headers has
	 * asked for nothing yet and must not hold up a shutdown.
	 */
	cs->started = 1;
	cs->active = 1;
	atomic_fetch_add(&h->inflight, 1);
	cs->req.method = method;
	cs->req.path = cs->raw;
	cs->req.query = cs->query;
	cs->req.conn = conn;
	rv_strlcpy(cs->req.client_ip, cs->client_ip, sizeof(cs->req.client_ip));

	rv_http_match(h, method, cs->raw, cs->scratch, cs->raw_alloc, &cs->m);
	cs->preflight = (h->cors_any || h->ncors) && strcmp(method, "OPTIONS") == 0 &&
	                rv_http_header(&cs->req, "Origin") &&
	                rv_http_header(&cs->req, "Access-Control-Request-Method");
	int upload = cs->m.route && (cs->m.route->flags & RV_ROUTE_UPLOAD);
	cs->cap = (size_t)(upload ? h->max_upload : h->max_body);

	/* Refuse before reading a byte of a body that announces itself too large. */
	const char *cl = rv_http_header(&cs->req, "Content-Length");
	int64_t announced = 0;
	if (cl && rv_parse_int64(cl, 0, INT64_MAX, &announced) == 0 &&
	    (uint64_t)announced > cs->cap) {
		cs->too_big = 1;
		return dispatch(cs);
	}
	/*
	 * Even without a body, answer on the next call: a response queued while MHD is still in
	 * the header state counts as an early reply and costs the client its keep-alive.
	 */
	return MHD_YES;
}

static enum MHD_Result take_body(struct conn_state *cs, const char *data, size_t n)
{
	if (cs->too_big || cs->body_len + n > cs->cap) {
		/* Drop, but keep the connection long enough to answer 413 (bounded). */
		if (!cs->too_big) {
			free(cs->body);
			cs->body = NULL;
			cs->body_alloc = cs->body_len = 0;
		}
		cs->too_big = 1;
		cs->discarded += n;
		if (cs->discarded <= MAX_DISCARD + (uint64_t)cs->cap)
			return MHD_YES;
		/* No answer reaches this client, so the log and the metric are all that is left. */
		log_and_count(cs, 413, cs->m.pattern ? cs->m.pattern : "unmatched");
		cs->responded = 1;
		return MHD_NO;
	}
	if (cs->body_len + n + 1 > cs->body_alloc) {
		size_t want = cs->body_alloc ? cs->body_alloc : 1024;
		while (want < cs->body_len + n + 1)
			want *= 2;
		if (want > cs->cap + 1)
			want = cs->cap + 1;
		char *p = realloc(cs->body, want);
		if (!p) {
			rv_error(COMPONENT, "out of memory for a %zu-byte body", want);
			return MHD_NO;
		}
		cs->body = p;
		cs->body_alloc = want;
	}
	memcpy(cs->body + cs->body_len, data, n);
	cs->body_len += n;
	cs->body[cs->body_len] = '\0';
	return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
	struct conn_state *cs = *con_cls;
	if (!cs)
		return MHD_NO;
	if (!cs->started)
		return begin_request(cs, conn, method);
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (cs->responded)
			return MHD_YES;
		return take_body(cs, upload_data, n);
	}
	if (cs->responded)
		return MHD_YES;
	return dispatch(cs);
}

static void end_request(struct conn_state *cs)
{
	if (cs->active) {
		cs->active = 0;
		atomic_fetch_sub(&cs->http->inflight, 1);
	}
	free(cs->resp.body);
	cs->resp.body = NULL;
	cs->body_len = 0;
	/* Keep a modest body buffer for the next request on this connection, not a big one. */
	if (cs->body_alloc > 65536) {
		free(cs->body);
		cs->body = NULL;
		cs->body_alloc = 0;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct conn_state *cs = *con_cls;
	if (cs)
		end_request(cs);
	*con_cls = NULL;
}

/*
 * An IPv6 client's address, and its /64 for the rate limiter: one host usually holds a whole
 * /64, so counting single addresses would let it walk through 2^64 fresh buckets. Addresses
 * mapped from IPv4 are counted whole, like IPv4 itself.
 */
static void limit_addr6(const struct in6_addr *a, struct conn_state *cs)
{
	inet_ntop(AF_INET6, a, cs->client_ip, sizeof(cs->client_ip));
	if (IN6_IS_ADDR_V4MAPPED(a))
		return;
	struct in6_addr net = *a;
	char text[INET6_ADDRSTRLEN];
	memset(net.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &net, text, sizeof(text)))
		snprintf(cs->limit_addr, sizeof(cs->limit_addr), "%s/64", text);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct rv_http *h = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		struct conn_state *cs = rv_xcalloc(1, sizeof(*cs));
		cs->http = h;
		cs->conn = conn;
		rv_strlcpy(cs->client_ip, "unknown", sizeof(cs->client_ip));
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const struct sockaddr *sa = ci ? ci->client_addr : NULL;
		if (sa && sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			          cs->client_ip, sizeof(cs->client_ip));
		else if (sa && sa->sa_family == AF_INET6)
			limit_addr6(&((const struct sockaddr_in6 *)sa)->sin6_addr, cs);
		*socket_context = cs;
		return;
	}
	struct conn_state *cs = *socket_context;
	if (!cs)
		return;
	end_request(cs);
	free(cs->body);
	free(cs->raw);
	free(cs->scratch);
	free(cs);
	*socket_context = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	rv_warn(COMPONENT, "libmicrohttpd: %s", msg);
}

/* For tables sized by code and config, not by requests: failure aborts like rv_xmalloc. */
static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "revovoice: out of memory allocating %zu bytes\n", n);
		abort();
	}
	return q;
}

int rv_http_new(struct rv_app *app, struct rv_http **out)
{
	struct rv_http *h = rv_xcalloc(1, sizeof(*h));
	const struct rv_config *cfg = app ? app->cfg : NULL;
	h->app = app;
	h->max_body = cfg && cfg->http_max_body > 0 ? cfg->http_max_body : DEFAULT_MAX_BODY;
	h->max_upload = cfg && cfg->http_max_upload > 0 ? cfg->http_max_upload : DEFAULT_MAX_UPLOAD;
	if (cfg && cfg->http_cors_origins && *cfg->http_cors_origins) {
		const char *p = cfg->http_cors_origins;
		while (*p) {
			size_t len = strcspn(p, ",");
			const char *s = p, *e = p + len;
			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
			while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e - s == 1 && *s == '*') {
				h->cors_any = 1;
			} else if (e > s) {
				h->cors = xrealloc(h->cors, (h->ncors + 1) * sizeof(*h->cors));
				char *o = rv_xmalloc((size_t)(e - s) + 1);
				memcpy(o, s, (size_t)(e - s));
				o[e - s] = '\0';
				h->cors[h->ncors++] = o;
			}
			p += len;
			if (*p == ',')
				p++;
		}
	}

	rv_metrics_register(M_REQUESTS, RV_METRIC_COUNTER,
	                    "HTTP requests by route pattern, method and status.",
	                    "route,method,status", NULL, 0);
	rv_metrics_register(M_DURATION, RV_METRIC_HISTOGRAM,
	                    "HTTP request handling time in seconds, until the response is queued.",
	                    "route,method", NULL, 0);
	*out = h;
	return 0;
}

void rv_http_add_routes(struct rv_http *h, const struct rv_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct rv_route *r = &routes[i];
		int dup = 0;
		for (size_t k = 0; k < h->nroutes && !dup; k++)
			dup = strcmp(h->routes[k].r->method, r->method) == 0 &&
			      strcmp(h->routes[k].r->pattern, r->pattern) == 0;
		if (dup) {
			rv_warn(COMPONENT, "route %s %s registered twice; the first one serves",
			        r->method, r->pattern);
			continue;
		}
		if (h->nroutes == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 64;
			h->routes = xrealloc(h->routes, cap * sizeof(*h->routes));
			h->cap = cap;
		}
		if (compile_route(r, &h->routes[h->nroutes]) != 0) {
			rv_error(COMPONENT, "route %s %s is malformed; skipped",
			         r->method ? r->method : "?", r->pattern ? r->pattern : "?");
			continue;
		}
		h->nroutes++;
	}
}

size_t rv_http_routes(const struct rv_http *h, const struct rv_route **out, size_t max)
{
	for (size_t i = 0; i < h->nroutes && i < max; i++)
		out[i] = h->routes[i].r;
	return h->nroutes;
}

/* Split "HOST:PORT" or "[V6]:PORT" into its parts. */
static int split_listen(const char *listen, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;
	if (!listen || !*listen)
		return -EINVAL;
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		if ((size_t)(close - listen - 1) >= hlen)
			return -EINVAL;
		memcpy(host, listen + 1, (size_t)(close - listen - 1));
		host[close - listen - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= hlen)
			return -EINVAL;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = '\0';
	}
	int64_t p;
	if (rv_parse_int64(colon + 1, 0, 65535, &p) != 0)
		return -EINVAL;
	snprintf(port, plen, "%d", (int)p);
	return 0;
}

int rv_http_start(struct rv_http *h, const char *listen)
{
	char host[256], port[8];
	struct addrinfo hints = {0}, *ai = NULL;
	int err = 0;

	if (h->d)
		return -EALREADY;
	if (split_listen(listen, host, sizeof(host), port, sizeof(port)) != 0) {
		rv_error(COMPONENT, "http.listen \"%s\" is not HOST:PORT", listen ? listen : "");
		return -EINVAL;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (gai != 0) {
		rv_error(COMPONENT, "cannot resolve http.listen host \"%s\": %s", host,
		         gai_strerror(gai));
		return -EINVAL;
	}

	/*
	 * poll, not epoll: with MHD 0.9.75's edge-triggered epoll, a client that sends part of a
	 * body and closes at once (its FIN arriving with the data) is never seen to go, so its
	 * request stays "in flight" in CLOSE-WAIT until the 30 s timeout, holding up every
	 * graceful stop and a connection slot. Throughput on /healthz measured the same with both.
	 */
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	int threads = h->app && h->app->cfg ? h->app->cfg->http_threads : 1;
	struct MHD_OptionItem opts[12];
	size_t n = 0;
	/* The logger goes first so MHD's messages about the other options reach our log. */
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, h};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, h};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h};
	opts[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h};
	opts[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S, NULL};
	if (threads > 1)
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	errno = 0;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, h, MHD_OPTION_ARRAY, opts,
	                        MHD_OPTION_END);
	if (!h->d) {
		err = errno ? -errno : -EIO;
		rv_error(COMPONENT, "cannot listen on %s: %s", listen, strerror(-err));
		goto out;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : 0;
	rv_logkv(RV_LOG_INFO, COMPONENT, "listening", "listen", listen, "port",
	         (snprintf(port, sizeof(port), "%d", h->port), port), NULL);
out:
	freeaddrinfo(ai);
	return err;
}

int rv_http_port(const struct rv_http *h)
{
	return h ? h->port : 0;
}

void rv_http_stop(struct rv_http *h, int timeout_ms)
{
	if (!h || !h->d)
		return;
	MHD_socket lfd = MHD_quiesce_daemon(h->d);
	uint64_t deadline =
	    rv_time_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	/* Idle keep-alive connections don't hold us up; requests being served do. */
	while (atomic_load(&h->inflight) > 0 && rv_time_mono_ns() < deadline) {
		struct timespec ts = {0, 5 * 1000000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&h->inflight) > 0)
		rv_warn(COMPONENT, "stopping with %d requests still in flight",
		        atomic_load(&h->inflight));
	MHD_stop_daemon(h->d);
	h->d = NULL;
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	rv_info(COMPONENT, "stopped");
}

void rv_http_free(struct rv_http *h)
{
	if (!h)
		return;
	rv_http_stop(h, 0);
	for (size_t i = 0; i < h->ncors; i++)
		free(h->cors[i]);
	free(h->cors);
	free(h->routes);
	free(h);
}
