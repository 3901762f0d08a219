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

struct rv_flow;
struct rv_convo;

/* The validated flow document (borrowed; lives as long as the flow). For LLM mode (llm.c). */
const json_t *rv_flow_doc(const struct rv_flow *flow);

/*
 * Render a template ({{lead.X}}, {{campaign.X}}, {{slots.X}}, {{vars.X}}, {{persona.X}}) against
 * the conversation, as the flow's prompts are. Returns a new string (at most RV_FLOW_MAX_SAY
 * bytes; caller frees) or NULL on ENOMEM.
 */
char *rv_convo_render(const struct rv_convo *c, const char *tpl);

#endif
