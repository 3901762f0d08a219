/* The built-in intent model: bytes trained at build time (tools/train_intents.c), loaded once. */
#include <pthread.h>

#include "core/log.h"
#include "nlu/intent.h"

extern const unsigned char rv_intent_model_bin[];
extern const size_t rv_intent_model_bin_len;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct rv_intent_model *builtin;

static void load(void)
{
	if (rv_intent_load(rv_intent_model_bin, rv_intent_model_bin_len, &builtin) != 0)
		rv_error("nlu", "the built-in intent model is corrupt (%zu bytes)",
		         rv_intent_model_bin_len);
}

const struct rv_intent_model *rv_intent_builtin(void)
{
	pthread_once(&once, load);
	return builtin;
}
