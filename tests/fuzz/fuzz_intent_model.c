/*
 * libFuzzer target: arbitrary bytes as an intent model file (rv_intent_load, which reads models
 * stored by POST /api/voice-ai/train-model) and as caller text (the classifier's tokenizer).
 * Whatever loads must classify without crashing, answer one of its own labels (or
 * out_of_scope) with a confidence in [0, 1], and save back to exactly the bytes it came from.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlu/intent.h"

#include "fuzz_check.h"

static void check_result(const struct rv_intent_model *m, const struct rv_intent_result *r)
{
	const char *const *labels;
	unsigned k = rv_intent_labels(m, &labels);
	int found = strcmp(r->intent, RV_INTENT_OOS) == 0;
	for (unsigned i = 0; i < k; i++)
		found |= r->intent == labels[i];
	CHECK(found);
	CHECK(r->confidence >= 0 && r->confidence <= 1.0000001);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const texts[] = {"", "yes", "stop calling me please",
	                                    "my number is 415 555 0100", "?!"};
	struct rv_intent_model *m = NULL;
	struct rv_intent_result r;

	if (rv_intent_load(data, size, &m) == 0) {
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
			rv_intent_classify(m, texts[i], &r);
			check_result(m, &r);
		}
		uint8_t *buf = NULL;
		size_t len = 0;
		CHECK(rv_intent_save(m, &buf, &len) == 0);
		CHECK(len == size && memcmp(buf, data, size) == 0);
		free(buf);
		rv_intent_free(m);
	}

	/* The same bytes as an utterance, through the built-in model's tokenizer. */
	const struct rv_intent_model *b = rv_intent_builtin();
	CHECK(b != NULL);
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	rv_intent_classify(b, s, &r);
	check_result(b, &r);
	free(s);
	return 0;
}
