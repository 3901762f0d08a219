/* The route arrays of every API module; api.c registers them all with the HTTP server. */
#ifndef RV_API_H
#define RV_API_H

#include <stddef.h>

#include "api/http.h"

extern const struct rv_route rv_api_ops_routes[]; /* api_ops.c: healthz, readyz, metrics */
extern const size_t rv_api_ops_routes_len;
extern const struct rv_route rv_api_auth_routes[]; /* api_auth.c: login, me, keys */
extern const size_t rv_api_auth_routes_len;
extern const struct rv_route rv_api_resources_routes[]; /* api_resources.c: CRUD resources */
extern const size_t rv_api_resources_routes_len;
extern const struct rv_route rv_api_import_routes[]; /* api_import.c: CSV lead import */
extern const size_t rv_api_import_routes_len;
extern const struct rv_route rv_api_tel_routes[]; /* api_tel.c: call control */
extern const size_t rv_api_tel_routes_len;
extern const struct rv_route rv_api_docs_routes[]; /* api_docs.c: OpenAPI document, docs page */
extern const size_t rv_api_docs_routes_len;
extern const struct rv_route rv_api_voice_routes[]; /* api_voice.c: understanding, dialog */
extern const size_t rv_api_voice_routes_len;

#endif
