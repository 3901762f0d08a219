/*
 * The router (pattern matching, percent-decoding, 404 vs 405), the reply helpers, and the
 * server itself in-process on a loopback port with public test routes: body caps, handler
 * bugs, rate limiting, CORS and per-route metrics, spoken to over a raw socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "../test.h"
#include "api/http.h"
#include "api/http_int.h"
#include "api/ratelimit.h"
#include "core/app.h"
#include "core/util.h"
#include "obs/metrics.h"

static void h_noop(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	rv_http_reply_json(resp, 200, json_pack("{s:s}", "route", req->route));
}

static const struct rv_route table[] = {
    {"GET", "/healthz", RV_ROLE_NONE, 0, h_noop},
    {"GET", "/api/campaigns", RV_ROLE_VIEWER, 0, h_noop},
    {"POST", "/api/campaigns", RV_ROLE_MANAGER, 0, h_noop},
    {"GET", "/api/campaigns/{id}", RV_ROLE_VIEWER, 0, h_noop},
    {"PATCH", "/api/campaigns/{id}", RV_ROLE_MANAGER, 0, h_noop},
    {"DELETE", "/api/campaigns/{id}", RV_ROLE_MANAGER, 0, h_noop},
    {"POST", "/api/campaigns/{id}/leads/import", RV_ROLE_MANAGER, RV_ROUTE_UPLOAD, h_noop},
    {"GET", "/api/auth/{what}", RV_ROLE_NONE, 0, h_noop},
    {"GET", "/api/auth/me", RV_ROLE_VIEWER, 0, h_noop},
    {"GET", "/api/x/{a}/y/{b}", RV_ROLE_NONE, 0, h_noop},
};

static struct rv_http *new_router(struct rv_app *app, struct rv_config *cfg)
{
	struct rv_http *h = NULL;
	memset(cfg, 0, sizeof(*cfg));
	memset(app, 0, sizeof(*app));
	app->cfg = cfg;
	if (rv_http_new(app, &h) != 0)
		return NULL;
	rv_http_add_routes(h, table, RV_ARRAY_LEN(table));
	return h;
}

RV_TEST(http_pct_decode)
{
	char out[64];
	ASSERT_EQ_INT(rv_http_pct_decode("a%2Fb", 5, out, sizeof(out)), 3);
	ASSERT_EQ_STR(out, "a/b");
	ASSERT_EQ_INT(rv_http_pct_decode("%41%62+c", 8, out, sizeof(out)), 4);
	ASSERT_EQ_STR(out, "Ab+c");
	ASSERT_EQ_INT(rv_http_pct_decode("%e2%82%ac", 9, out, sizeof(out)), 3);
	ASSERT_EQ_STR(out, "\xe2\x82\xac");
	ASSERT_EQ_INT(rv_http_pct_decode("", 0, out, sizeof(out)), 0);
	ASSERT_EQ_STR(out, "");
	ASSERT_EQ_INT(rv_http_pct_decode("%", 1, out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(rv_http_pct_decode("%4", 2, out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(rv_http_pct_decode("%zz", 3, out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(rv_http_pct_decode("a%00b", 5, out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(rv_http_pct_decode("abcdef", 6, out, 6), -EINVAL); /* no room for NUL */
	ASSERT_EQ_INT(rv_http_pct_decode("abcdef", 3, out, 4), 3);       /* only n bytes read */
	ASSERT_EQ_STR(out, "abc");
}

RV_TEST(http_match_params_and_decoding)
{
	struct rv_app app;
	struct rv_config cfg;
	struct rv_http *h = new_router(&app, &cfg);
	struct rv_http_match m;
	char scratch[256];
	ASSERT(h);

	rv_http_match(h, "GET", "/api/campaigns/42", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT_EQ_STR(m.route->pattern, "/api/campaigns/{id}");
	ASSERT_EQ_INT(m.nparams, 1);
	ASSERT_EQ_STR(m.params[0], "42");

	/* An escaped slash stays inside its segment. */
	rv_http_match(h, "DELETE", "/api/campaigns/a%2Fb%20c", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT_EQ_STR(m.route->method, "DELETE");
	ASSERT_EQ_STR(m.params[0], "a/b c");

	rv_http_match(h, "POST", "/api/campaigns/7/leads/import", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT(m.route->flags & RV_ROUTE_UPLOAD);
	ASSERT_EQ_STR(m.params[0], "7");

	rv_http_match(h, "GET", "/api/x/1/y/two", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT_EQ_INT(m.nparams, 2);
	ASSERT_EQ_STR(m.params[0], "1");
	ASSERT_EQ_STR(m.params[1], "two");

	/* Literal segments win over parameters, whatever the registration order. */
	rv_http_match(h, "GET", "/api/auth/me", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT_EQ_STR(m.route->pattern, "/api/auth/me");
	ASSERT_EQ_INT(m.nparams, 0);
	rv_http_match(h, "GET", "/api/auth/other", scratch, sizeof(scratch), &m);
	ASSERT_EQ_STR(m.route->pattern, "/api/auth/{what}");
	ASSERT_EQ_STR(m.params[0], "other");

	/* Escaped literals match too. */
	rv_http_match(h, "GET", "/api/%63ampaigns", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT_EQ_STR(m.route->pattern, "/api/campaigns");

	/* HEAD is served by GET. */
	rv_http_match(h, "HEAD", "/healthz", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 0);
	ASSERT_EQ_STR(m.route->method, "GET");
	rv_http_free(h);
}

RV_TEST(http_match_404_vs_405)
{
	struct rv_app app;
	struct rv_config cfg;
	struct rv_http *h = new_router(&app, &cfg);
	struct rv_http_match m;
	char scratch[256];
	ASSERT(h);

	rv_http_match(h, "PUT", "/api/campaigns/9", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 405);
	ASSERT_EQ_STR(m.allow, "GET, PATCH, DELETE");
	ASSERT_EQ_STR(m.pattern, "/api/campaigns/{id}");
	ASSERT(m.route == NULL);

	rv_http_match(h, "DELETE", "/api/campaigns", scratch, sizeof(scratch), &m);
	ASSERT_EQ_INT(m.status, 405);
	ASSERT_EQ_STR(m.allow, "GET, POST");

	static const char *const missing[] = {"/api/nothing",
	                                      "/api/campaigns/",
	                                      "/api/campaigns//leads/import",
	                                      "/",
	                                      "/api/campaigns/1/2",
	                                      "/api/campaigns/%zz",
	                                      "/api/campaigns/%00",
	                                      "healthz",
	                                      "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r",
	                                      "/healthz/"};
	for (size_t i = 0; i < RV_ARRAY_LEN(missing); i++) {
		rv_http_match(h, "GET", missing[i], scratch, sizeof(scratch), &m);
		ASSERT_MSG(m.status == 404, "%s gave %d", missing[i], m.status);
		ASSERT(m.route == NULL);
	}
	rv_http_free(h);
}

RV_TEST(http_bad_routes_skipped)
{
	static const struct rv_route bad[] = {
	    {"GET", "no-slash", RV_ROLE_NONE, 0, h_noop},
	    {"GET", "/a//b", RV_ROLE_NONE, 0, h_noop},
	    {"GET", "/{a}/{b}/{c}/{d}/{e}", RV_ROLE_NONE, 0, h_noop},
	    {"GET", "/{}", RV_ROLE_NONE, 0, h_noop},
	    {"GET", "/healthz", RV_ROLE_NONE, 0, h_noop}, /* duplicate */
	};
	struct rv_app app;
	struct rv_config cfg;
	struct rv_http *h = new_router(&app, &cfg);
	const struct rv_route *list[32];
	ASSERT(h);
	rv_http_add_routes(h, bad, RV_ARRAY_LEN(bad));
	ASSERT_EQ_INT(rv_http_routes(h, list, RV_ARRAY_LEN(list)), RV_ARRAY_LEN(table));
	ASSERT(list[0] == &table[0]);
	rv_http_free(h);
}

RV_TEST(http_reply_helpers)
{
	struct rv_http_resp resp;
	memset(&resp, 0, sizeof(resp));

	rv_http_reply_error(&resp, 404, "not_found", NULL, "no campaign %d", 7);
	ASSERT_EQ_INT(resp.status, 404);
	ASSERT_EQ_STR(resp.content_type, "application/json");
	ASSERT_EQ_STR(resp.body, "{\"error\":{\"code\":\"not_found\",\"message\":\"no campaign 7\","
	                         "\"details\":null}}");
	ASSERT_EQ_INT(resp.body_len, strlen(resp.body));

	rv_http_reply_error(&resp, 400, "invalid_field", json_pack("{s:s}", "field", "name"),
	                    "bad");
	ASSERT_EQ_STR(resp.body, "{\"error\":{\"code\":\"invalid_field\",\"message\":\"bad\","
	                         "\"details\":{\"field\":\"name\"}}}");

	rv_http_reply_raw(&resp, 200, "text/csv", "a,b\n", 4);
	ASSERT_EQ_INT(resp.status, 200);
	ASSERT_EQ_STR(resp.content_type, "text/csv");
	ASSERT_EQ_INT(resp.body_len, 4);
	ASSERT(memcmp(resp.body, "a,b\n", 4) == 0);

	ASSERT_OK(rv_http_set_header(&resp, "X-One", "1"));
	ASSERT_OK(rv_http_set_header(&resp, "x-one", "2")); /* replaces */
	ASSERT_EQ_INT(resp.nheaders, 1);
	ASSERT_EQ_STR(resp.headers[0][1], "2");
	ASSERT_EQ_INT(rv_http_set_header(&resp, "X-Bad", "a\r\nInjected: 1"), -EINVAL);
	char longv[200];
	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	ASSERT_EQ_INT(rv_http_set_header(&resp, "X-Long", longv), -EINVAL);
	for (int i = 1; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof(name), "X-H%d", i);
		ASSERT_OK(rv_http_set_header(&resp, name, "v"));
	}
	ASSERT_EQ_INT(rv_http_set_header(&resp, "X-Ninth", "v"), -ENOSPC);
	free(resp.body);
}

RV_TEST(http_json_body)
{
	struct rv_http_req req;
	struct rv_http_resp resp;
	json_t *j = NULL;
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));

	const char *ok = "{\"name\":\"x\"}";
	req.body = ok;
	req.body_len = strlen(ok);
	ASSERT_OK(rv_http_json_body(&req, &resp, &j));
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "name")), "x");
	ASSERT_EQ_INT(resp.status, 0);
	json_decref(j);

	const char *bad = "{\n  \"name\": \"x\",\n  oops\n}";
	req.body = bad;
	req.body_len = strlen(bad);
	ASSERT_EQ_INT(rv_http_json_body(&req, &resp, &j), -EINVAL);
	ASSERT_EQ_INT(resp.status, 400);
	json_t *e = json_loads(resp.body, 0, NULL);
	ASSERT(e);
	json_t *err = json_object_get(e, "error");
	ASSERT_EQ_STR(json_string_value(json_object_get(err, "code")), "invalid_json");
	json_t *d = json_object_get(err, "details");
	ASSERT_EQ_INT(json_integer_value(json_object_get(d, "line")), 3);
	ASSERT(json_integer_value(json_object_get(d, "column")) >= 3);
	ASSERT(json_is_integer(json_object_get(d, "position")));
	json_decref(e);

	const char *dup = "{\"a\":1,\"a\":2}";
	req.body = dup;
	req.body_len = strlen(dup);
	ASSERT_EQ_INT(rv_http_json_body(&req, &resp, &j), -EINVAL);
	ASSERT(strstr(resp.body, "invalid_json"));

	const char *arr = "[1,2]";
	req.body = arr;
	req.body_len = strlen(arr);
	ASSERT_EQ_INT(rv_http_json_body(&req, &resp, &j), -EINVAL);
	ASSERT(strstr(resp.body, "\"invalid_body\""));

	req.body = NULL;
	req.body_len = 0;
	ASSERT_EQ_INT(rv_http_json_body(&req, &resp, &j), -EINVAL);
	ASSERT(strstr(resp.body, "\"invalid_json\""));
	free(resp.body);
}

/* ---- the server, in process ---------------------------------------------------------- */

static void h_echo(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:s?}", "method", req->method, "param",
	                      req->nparams ? req->params[0] : "", "len", (json_int_t)req->body_len,
	                      "q", rv_http_query(req, "q"));
	rv_http_reply_json(resp, 200, o);
}

static void h_slow(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	struct timespec ts = {0, 300 * 1000000};
	nanosleep(&ts, NULL);
	rv_http_reply_json(resp, 200, json_pack("{s:b}", "slow", 1));
}

static void h_forgets(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
}

static const struct rv_route live[] = {
    {"GET", "/t/echo/{p}", RV_ROLE_NONE, 0, h_echo},
    {"POST", "/t/echo/{p}", RV_ROLE_NONE, 0, h_echo},
    {"POST", "/t/upload", RV_ROLE_NONE, RV_ROUTE_UPLOAD, h_echo},
    {"GET", "/t/bug", RV_ROLE_NONE, 0, h_forgets},
    {"GET", "/t/slow", RV_ROLE_NONE, 0, h_slow},
    {"GET", "/t/free", RV_ROLE_NONE, RV_ROUTE_NO_RATELIMIT, h_echo},
};

struct reply {
	int status;
	char head[4096];
	char body[8192];
};

/* One request on a fresh connection; the whole reply is read until the server closes. */
static int roundtrip(int port, const char *req, size_t reqlen, struct reply *r)
{
	static char buf[65536];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {5, 0};
	size_t got = 0;
	memset(r, 0, sizeof(*r));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	for (size_t off = 0; off < reqlen;) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the server may answer and close before taking it all */
		off += (size_t)n;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	char *sep = strstr(buf, "\r\n\r\n");
	if (!sep || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(sep - buf), buf);
	snprintf(r->body, sizeof(r->body), "%s", sep + 4);
	return 0;
fail:
	close(fd);
	return -1;
}

static int get(int port, const char *path, const char *extra, struct reply *r)
{
	char req[2048];
	int n =
	    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
	             path, extra ? extra : "");
	return roundtrip(port, req, (size_t)n, r);
}

static const char *header(const struct reply *r, const char *name)
{
	static char val[256];
	char needle[80];
	snprintf(needle, sizeof(needle), "\r\n%s: ", name);
	const char *p = strcasestr(r->head, needle);
	if (!p)
		return NULL;
	p += strlen(needle);
	size_t n = strcspn(p, "\r\n");
	snprintf(val, sizeof(val), "%.*s", (int)n, p);
	return val;
}

static struct rv_http *start_live(struct rv_app *app, struct rv_config *cfg)
{
	struct rv_http *h = NULL;
	app->cfg = cfg;
	if (rv_http_new(app, &h) != 0)
		return NULL;
	rv_http_add_routes(h, live, RV_ARRAY_LEN(live));
	if (rv_http_start(h, "127.0.0.1:0") != 0) {
		rv_http_free(h);
		return NULL;
	}
	return h;
}

RV_TEST(http_server_basics)
{
	struct rv_config cfg = {0};
	struct rv_app app = {0};
	struct reply r;
	cfg.http_threads = 2;
	cfg.http_max_body = 64;
	cfg.http_max_upload = 256;
	rv_metrics_reset();
	struct rv_http *h = start_live(&app, &cfg);
	ASSERT(h);
	int port = rv_http_port(h);
	ASSERT(port > 0);

	ASSERT_OK(get(port, "/t/echo/a%2Fb?q=x%20y", NULL, &r));
	ASSERT_EQ_INT(r.status, 200);
	ASSERT_EQ_STR(r.body, "{\"method\":\"GET\",\"param\":\"a/b\",\"len\":0,\"q\":\"x y\"}");
	ASSERT_EQ_STR(header(&r, "Content-Type"), "application/json");
	ASSERT_EQ_STR(header(&r, "X-Content-Type-Options"), "nosniff");
	ASSERT(header(&r, "Access-Control-Allow-Origin") == NULL);

	ASSERT_OK(get(port, "/api/none", NULL, &r));
	ASSERT_EQ_INT(r.status, 404);
	ASSERT_EQ_STR(r.body, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such "
	                      "resource\",\"details\":null}}");

	const char *del = "DELETE /t/echo/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	ASSERT_OK(roundtrip(port, del, strlen(del), &r));
	ASSERT_EQ_INT(r.status, 405);
	ASSERT_EQ_STR(header(&r, "Allow"), "GET, POST");
	ASSERT(strstr(r.body, "\"method_not_allowed\""));

	/* A handler that answers nothing is a bug: 500, not a hang or an empty 200. */
	ASSERT_OK(get(port, "/t/bug", NULL, &r));
	ASSERT_EQ_INT(r.status, 500);
	ASSERT(strstr(r.body, "\"internal\""));

	/* Bodies: under the cap, announced over it, and chunked over it. */
	const char *post = "POST /t/echo/z HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
	                   "Connection: close\r\n\r\n0123456789";
	ASSERT_OK(roundtrip(port, post, strlen(post), &r));
	ASSERT_EQ_INT(r.status, 200);
	ASSERT(strstr(r.body, "\"len\":10"));

	char big[1024];
	int n = snprintf(big, sizeof(big),
	                 "POST /t/echo/z HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n"
	                 "Connection: close\r\n\r\n%065d",
	                 0);
	ASSERT_OK(roundtrip(port, big, (size_t)n, &r));
	ASSERT_EQ_INT(r.status, 413);
	ASSERT(strstr(r.body, "\"body_too_large\""));

	const char *chunked = "POST /t/echo/z HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	                      "Connection: close\r\n\r\n"
	                      "28\r\n0123456789012345678901234567890123456789\r\n"
	                      "28\r\n0123456789012345678901234567890123456789\r\n0\r\n\r\n";
	ASSERT_OK(roundtrip(port, chunked, strlen(chunked), &r));
	ASSERT_EQ_INT(r.status, 413);

	/* Upload routes take the larger cap. */
	n = snprintf(big, sizeof(big),
	             "POST /t/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n"
	             "Connection: close\r\n\r\n%0200d",
	             0);
	ASSERT_OK(roundtrip(port, big, (size_t)n, &r));
	ASSERT_EQ_INT(r.status, 200);
	ASSERT(strstr(r.body, "\"len\":200"));

	/* Still serving after all that. */
	ASSERT_OK(get(port, "/t/echo/ok", NULL, &r));
	ASSERT_EQ_INT(r.status, 200);

	rv_http_stop(h, 1000);
	rv_http_free(h);

	char *text = NULL;
	size_t len = 0;
	ASSERT_OK(rv_metrics_render(&text, &len));
	int ok = strstr(text, "rv_http_requests_total{route=\"/t/echo/{p}\",method=\"GET\","
	                      "status=\"200\"} 2\n") != NULL &&
	         strstr(text, "rv_http_requests_total{route=\"unmatched\",method=\"GET\","
	                      "status=\"404\"} 1\n") != NULL &&
	         strstr(text, "rv_http_requests_total{route=\"/t/echo/{p}\",method=\"DELETE\","
	                      "status=\"405\"} 1\n") != NULL &&
	         strstr(text, "rv_http_requests_total{route=\"/t/echo/{p}\",method=\"POST\","
	                      "status=\"413\"} 2\n") != NULL &&
	         strstr(text, "rv_http_request_duration_seconds_count{route=\"/t/bug\","
	                      "method=\"GET\"} 1\n") != NULL;
	ASSERT_MSG(ok, "metrics:\n%s", text);
	free(text);
	rv_metrics_reset();
}

RV_TEST(http_server_ratelimit_and_cors)
{
	struct rv_config cfg = {0};
	struct rv_app app = {0};
	struct reply r;
	char origins[] = "https://a.example, https://b.example";
	cfg.http_cors_origins = origins;
	ASSERT_OK(rv_ratelimit_new(1, 3, &app.rl));
	struct rv_http *h = start_live(&app, &cfg);
	ASSERT(h);
	int port = rv_http_port(h);

	for (int i = 0; i < 3; i++) {
		ASSERT_OK(get(port, "/t/echo/1", NULL, &r));
		ASSERT_EQ_INT(r.status, 200);
	}
	ASSERT_OK(get(port, "/t/echo/1", NULL, &r));
	ASSERT_EQ_INT(r.status, 429);
	ASSERT_EQ_STR(header(&r, "Retry-After"), "1");
	ASSERT(strstr(r.body, "\"rate_limited\""));
	/* Exempt routes are never limited. */
	ASSERT_OK(get(port, "/t/free", NULL, &r));
	ASSERT_EQ_INT(r.status, 200);

	ASSERT_OK(get(port, "/t/free", "Origin: https://b.example\r\n", &r));
	ASSERT_EQ_STR(header(&r, "Access-Control-Allow-Origin"), "https://b.example");
	ASSERT_EQ_STR(header(&r, "Vary"), "Origin");
	ASSERT_OK(get(port, "/t/free", "Origin: https://evil.example\r\n", &r));
	ASSERT(header(&r, "Access-Control-Allow-Origin") == NULL);

	const char *pre = "OPTIONS /t/echo/1 HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
	                  "Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n";
	ASSERT_OK(roundtrip(port, pre, strlen(pre), &r));
	ASSERT_EQ_INT(r.status, 204);
	ASSERT_EQ_STR(header(&r, "Access-Control-Allow-Origin"), "https://a.example");
	ASSERT(strstr(header(&r, "Access-Control-Allow-Methods"), "POST"));
	ASSERT(strstr(header(&r, "Access-Control-Allow-Headers"), "Authorization"));
	ASSERT_EQ_STR(header(&r, "Access-Control-Max-Age"), "600");

	rv_http_stop(h, 1000);
	rv_http_free(h);
	rv_ratelimit_free(app.rl);
	rv_metrics_reset();
}

struct slow_client {
	int port;
	struct reply r;
	int rc;
};

static void *slow_client_run(void *arg)
{
	struct slow_client *c = arg;
	c->rc = get(c->port, "/t/slow", NULL, &c->r);
	return NULL;
}

RV_TEST(http_server_stop_waits_for_inflight)
{
	struct rv_config cfg = {0};
	struct rv_app app = {0};
	struct slow_client c = {0};
	pthread_t t;
	struct timespec pause = {0, 100 * 1000000};
	rv_metrics_reset();
	struct rv_http *h = start_live(&app, &cfg);
	ASSERT(h);
	c.port = rv_http_port(h);
	ASSERT_OK(pthread_create(&t, NULL, slow_client_run, &c));
	nanosleep(&pause, NULL); /* the handler is sleeping now */
	uint64_t t0 = rv_time_mono_ns();
	rv_http_stop(h, 5000);
	uint64_t waited_ms = (rv_time_mono_ns() - t0) / 1000000;
	pthread_join(t, NULL);
	ASSERT_OK(c.rc);
	ASSERT_EQ_INT(c.r.status, 200);
	ASSERT_EQ_STR(c.r.body, "{\"slow\":true}");
	ASSERT_MSG(waited_ms >= 100 && waited_ms < 3000, "waited %llu ms",
	           (unsigned long long)waited_ms);
	/* Nothing listens any more. */
	struct reply r;
	ASSERT(get(c.port, "/t/echo/1", NULL, &r) != 0);
	rv_http_free(h);
	rv_metrics_reset();
}
