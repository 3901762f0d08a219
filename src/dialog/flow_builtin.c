/* The flows compiled into the binary (the JSON files under src/dialog/flows, embedded). */
#include <string.h>

#include "dialog/flow.h"

extern const unsigned char rv_flow_default_json[];
extern const unsigned char rv_flow_appointment_json[];
extern const unsigned char rv_flow_support_json[];

const char *rv_flow_builtin_json(const char *name)
{
	if (!name || strcmp(name, "default") == 0)
		return (const char *)rv_flow_default_json;
	if (strcmp(name, "appointment") == 0)
		return (const char *)rv_flow_appointment_json;
	if (strcmp(name, "support") == 0)
		return (const char *)rv_flow_support_json;
	return NULL;
}
