/*
 * POST /api/campaigns/{id}/leads/import: the CSV file is the raw request body (text/csv or
 * application/octet-stream). multipart/form-data is not accepted: the dashboard and scripts send
 * the file bytes directly, which keeps one parser (libcsv) between the network and the store.
 * The server caps the body at http.max_upload (413) before this handler runs.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "campaign/lead_import.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

/* Media types a CSV upload arrives with; browsers label .csv files in several ways. */
static const char *const csv_types[] = {
    "text/csv",
    "application/csv",
    "text/plain",
    "application/octet-stream",
    "application/vnd.ms-excel",
    "text/comma-separated-values",
};

static int content_type_ok(const char *ct)
{
	if (!ct)
		return 1; /* curl --data-binary without -H still deserves a try */
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strcspn(ct, "; \t");
	for (size_t i = 0; i < RV_ARRAY_LEN(csv_types); i++)
		if (strlen(csv_types[i]) == n && strncasecmp(ct, csv_types[i], n) == 0)
			return 1;
	return 0;
}

static void import_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	char err[512];
	json_t *report = NULL;
	int64_t id;

	if (req->nparams < 1 || rv_parse_int64(req->params[0], 1, INT64_MAX, &id) != 0) {
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such campaign");
		return;
	}
	const char *ct = rv_http_header(req, "Content-Type");
	if (!content_type_ok(ct)) {
		rv_http_reply_error(
		    resp, 415, "unsupported_media_type",
		    json_pack("{s:s, s:s}", "field", "Content-Type", "expected", "text/csv"),
		    "send the CSV file itself as the request body with Content-Type "
		    "text/csv (multipart/form-data is not supported)");
		return;
	}
	int ret = rv_lead_import_csv(app, req, id, req->body, req->body ? req->body_len : 0,
	                             &report, err, sizeof(err));
	switch (ret) {
	case 0:
		rv_http_reply_json(resp, 200, report);
		return;
	case -ENOENT:
		rv_http_reply_error(resp, 404, "not_found", NULL, "campaign %lld does not exist",
		                    (long long)id);
		return;
	case -EINVAL:
		rv_http_reply_error(resp, 422, "unprocessable", json_pack("{s:s}", "reason", err),
		                    "the file cannot be read as a lead CSV: %s", err);
		return;
	case RV_STORE_EBUSY:
	case -ETIMEDOUT:
		rv_http_reply_error(resp, 503, "unavailable", NULL,
		                    "the store is busy; nothing was imported, try again");
		return;
	default:
		rv_logf(RV_LOG_ERROR, "import", "import into campaign %lld failed: %s",
		        (long long)id, err);
		rv_http_reply_error(resp, 500, "internal", NULL,
		                    "the import failed; nothing was imported");
		return;
	}
}

const struct rv_route rv_api_import_routes[] = {
    {"POST", "/api/campaigns/{id}/leads/import", RV_ROLE_MANAGER, RV_ROUTE_UPLOAD, import_h},
};
const size_t rv_api_import_routes_len = RV_ARRAY_LEN(rv_api_import_routes);
