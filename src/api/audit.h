/* The audit log: one row for every write through the API or CLI (who, what, when, from where). */
#ifndef RV_AUDIT_H
#define RV_AUDIT_H

#include <jansson.h>
#include <stdint.h>

struct rv_db;
struct rv_http_req;

/*
 * Insert an audit row on `db` (inside the caller's transaction, so the audit row and the
 * change commit or roll back together). `req` supplies actor and client address (NULL for the
 * CLI, recorded as actor "cli"). `action` is "create"/"update"/"delete"/"import"/"login"...,
 * `resource` the collection ("campaigns"), `resource_id` may be 0, `details` may be NULL
 * (borrowed). Returns 0 or a store error.
 */
int rv_audit(struct rv_db *db, const struct rv_http_req *req, const char *action,
             const char *resource, int64_t resource_id, json_t *details);

#endif
