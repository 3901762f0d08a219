/* The audit log writer (see audit.h). */
#include "api/audit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/http.h"
#include "core/util.h"
#include "store/store.h"

int rv_audit(struct rv_db *db, const struct rv_http_req *req, const char *action,
             const char *resource, int64_t resource_id, json_t *details)
{
	static const char sql[] =
	    "INSERT INTO audit_log (at, actor_user_id, actor_api_key_id, actor, client_ip, "
	    "action, resource, resource_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
	char at[40], actor[300];
	const char *atp = at, *actorp = actor;
	char *text = NULL;
	int err;

	if (!db || !action || !resource)
		return -EINVAL;
	rv_time_iso_now(at, sizeof(at));
	if (!req)
		rv_strlcpy(actor, "cli", sizeof(actor));
	else if (req->who.api_key_id > 0)
		snprintf(actor, sizeof(actor), "api-key:%" PRId64, req->who.api_key_id);
	else if (req->who.email[0])
		rv_strlcpy(actor, req->who.email, sizeof(actor));
	else
		rv_strlcpy(actor, "anonymous", sizeof(actor));
	text = details ? json_dumps(details, JSON_COMPACT) : NULL;
	if (details && !text)
		return -ENOMEM;

	struct rv_val p[9] = {
	    RV_VTEXT(atp),
	    req && req->who.user_id > 0 ? RV_VINT(req->who.user_id) : RV_VNULL,
	    req && req->who.api_key_id > 0 ? RV_VINT(req->who.api_key_id) : RV_VNULL,
	    RV_VTEXT(actorp),
	    RV_VTEXT(req ? req->client_ip : ""),
	    RV_VTEXT(action),
	    RV_VTEXT(resource),
	    resource_id > 0 ? RV_VINT(resource_id) : RV_VNULL,
	    RV_VTEXT(text ? text : "{}"),
	};
	err = rv_db_exec(db, sql, p, RV_ARRAY_LEN(p), NULL, NULL);
	free(text);
	return err;
}
