/* Inside the dialog module: the webhook action's default transport (flow_webhook.c). */
#ifndef RV_DIALOG_FLOW_INT_H
#define RV_DIALOG_FLOW_INT_H

#include <jansson.h>

/*
 * Send `body` as JSON to url with method (POST, PUT, GET) and parse the JSON answer (at most
 * 64 KiB, 3 s in all). Returns 0 and sets *answer (new reference), or -EINVAL (bad URL or
 * method, not http/https), -ETIMEDOUT, -EPROTO (not JSON), -EIO (transport, HTTP >= 400).
 */
int rv_flow_webhook_http(const char *method, const char *url, const json_t *body, json_t **answer,
                         void *arg);

#endif
