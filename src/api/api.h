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
extern const struct rv_route rv_api_train_routes[]; /* api_train.c: trained intent models */
extern const size_t rv_api_train_routes_len;

struct rv_app;
/*
 * Make the stored active intent model (POST /api/voice-ai/models/{id}/activate) the one in
 * use, once per process; call at start-up after the store is open (handlers that need it call
 * it too). A model that cannot be loaded is logged and the built-in one stays. Returns 0 or a
 * store error (then a later call tries again).
 */
int rv_api_models_restore(struct rv_app *app);
extern const struct rv_route rv_api_speech_routes[]; /* api_speech.c: speech synthesis */
extern const size_t rv_api_speech_routes_len;

#endif
