/* The JSON form of an entity, shared by the API, the flow engine and LLM mode (see
 * entities.h): {"type", "value", "text"}, money's value as {"amount", "currency"}. */
#include <jansson.h>

#include "nlu/entities.h"
#include "nlu/entities_json.h"

json_t *rv_entity_json(const struct rv_entity *e)
{
	json_t *value = e->type == RV_ENT_MONEY
	                    ? json_pack("{s:s, s:s}", "amount", e->value, "currency", e->unit)
	                    : json_string(e->value);
	return json_pack("{s:s, s:o, s:s}", "type", rv_entity_type_name(e->type), "value", value,
	                 "text", e->text);
}

json_t *rv_entities_json(const char *text, const struct rv_entity_ctx *ctx)
{
	struct rv_entity e[RV_ENTITY_MAX];
	size_t n = 0;
	json_t *arr = json_array();
	if (!text || rv_entities_extract(text, ctx, e, RV_ENTITY_MAX, &n) != 0)
		return arr;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, rv_entity_json(&e[i]));
	return arr;
}
