/*
 * Operations endpoints: liveness, readiness and Prometheus metrics. Public and exempt from rate
 * limiting, because load balancers and scrapers poll them on a schedule.
 */
#include <errno.h>
#include <stdlib.h>

#include "api/api.h"
#include "core/app.h"
#include "core/log.h"
#include "obs/metrics.h"
#include "store/store.h"

#ifndef RV_VERSION
#define RV_VERSION "0.0.0"
#endif

static void healthz(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	rv_http_reply_json(resp, 200,
	                   json_pack("{s:s, s:s}", "status", "ok", "version", RV_VERSION));
}

static void readyz(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	int err = app && app->store ? rv_store_ping(app->store) : -ENODEV;
	if (err) {
		rv_warn("http", "readiness check failed: store ping returned %d", err);
		rv_http_reply_error(resp, 503, "unavailable", NULL, "the store is not answering");
		return;
	}
	rv_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ready"));
}

static void metrics(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	char *text = NULL;
	size_t len = 0;
	if (rv_metrics_render(&text, &len) != 0) {
		rv_http_reply_error(resp, 500, "internal", NULL, "cannot render metrics");
		return;
	}
	/* Hand the rendered buffer over instead of copying it. */
	rv_http_reply_raw(resp, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0);
	resp->body = text;
	resp->body_len = len;
}

const struct rv_route rv_api_ops_routes[] = {
    {"GET", "/healthz", RV_ROLE_NONE, RV_ROUTE_NO_RATELIMIT, healthz},
    {"GET", "/readyz", RV_ROLE_NONE, RV_ROUTE_NO_RATELIMIT, readyz},
    {"GET", "/metrics", RV_ROLE_NONE, RV_ROUTE_NO_RATELIMIT, metrics},
};
const size_t rv_api_ops_routes_len = sizeof(rv_api_ops_routes) / sizeof(rv_api_ops_routes[0]);
