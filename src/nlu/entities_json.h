/* Entities as JSON (jansson), kept apart from entities.h so the extractor stays free of it. */
#ifndef RV_NLU_ENTITIES_JSON_H
#define RV_NLU_ENTITIES_JSON_H

#include <jansson.h>

struct rv_entity;
struct rv_entity_ctx;

/* {"type", "value", "text"}; money's value is {"amount", "currency"}. New reference. */
json_t *rv_entity_json(const struct rv_entity *e);

/* The entities of text (NULL: none) as a new array; an unknown zone gives an empty array. */
json_t *rv_entities_json(const char *text, const struct rv_entity_ctx *ctx);

#endif
