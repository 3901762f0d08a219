/*
 * The API's own documentation: the OpenAPI 3.1 document (src/api/openapi.json) and a page that
 * renders it (src/api/docs.html). Both are compiled into the binary by scripts/embed-file.sh, so
 * the daemon needs no files on disk and the page works without internet access.
 */
#include <stddef.h>

#include "api/api.h"
#include "api/http.h"
#include "core/log.h"
#include "core/util.h"

/* Defined in the generated build/gen/rv_openapi.c and build/gen/rv_docs_html.c. */
extern const unsigned char rv_openapi_json[];
extern const size_t rv_openapi_json_len;
extern const unsigned char rv_docs_html[];
extern const size_t rv_docs_html_len;

/*
 * The page runs one inline script and talks only to this server: a policy that forbids
 * everything else keeps a compromised document or a reflected string from loading or sending
 * anything elsewhere. (Header values are capped at 127 bytes by struct rv_http_resp.)
 */
#define DOCS_CSP                                                                                   \
	"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "              \
	"connect-src 'self'; frame-ancestors 'none'"

static void docs_openapi_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	rv_http_reply_raw(resp, 200, "application/json", rv_openapi_json, rv_openapi_json_len);
	if (rv_http_set_header(resp, "Cache-Control", "no-cache") != 0)
		rv_warn("api", "openapi.json: a response header was not set");
}

static void docs_page_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	rv_http_reply_raw(resp, 200, "text/html; charset=utf-8", rv_docs_html, rv_docs_html_len);
	if (rv_http_set_header(resp, "Content-Security-Policy", DOCS_CSP) != 0 ||
	    rv_http_set_header(resp, "X-Content-Type-Options", "nosniff") != 0 ||
	    rv_http_set_header(resp, "Cache-Control", "no-cache") != 0)
		rv_warn("api", "docs page: a response header was not set");
}

/* Public and static, like the ops endpoints, so they are not rate limited. */
const struct rv_route rv_api_docs_routes[] = {
    {"GET", "/api/openapi.json", RV_ROLE_NONE, RV_ROUTE_NO_RATELIMIT, docs_openapi_h},
    {"GET", "/api/docs", RV_ROLE_NONE, RV_ROUTE_NO_RATELIMIT, docs_page_h},
};
const size_t rv_api_docs_routes_len = RV_ARRAY_LEN(rv_api_docs_routes);
