/* The intent model registry: hot swap under reference counting, and the built-in examples. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "nlu/model_registry.h"

static struct rv_intent_model *tiny(const char *a, const char *b)
{
	const struct rv_intent_example ex[] = {
	    {a, "i want to order a pizza"},    {a, "can i order food"},
	    {a, "i'd like to place an order"}, {a, "order a large pizza please"},
	    {b, "when are you open"},          {b, "what are your opening hours"},
	    {b, "are you open on sunday"},     {b, "what time do you close"},
	};
	struct rv_intent_train_cfg cfg;
	rv_intent_train_defaults(&cfg);
	cfg.holdout = 0;
	struct rv_intent_model *m = NULL;
	char why[128];
	if (rv_intent_train(ex, 8, &cfg, &m, NULL, why, sizeof(why)) != 0)
		return NULL;
	return m;
}

RV_TEST(nlu_registry_swap_keeps_old_model_for_holders)
{
	struct rv_intent_ref *r0 = NULL, *r1 = NULL, *r2 = NULL;
	rv_intent_registry_reset();
	const struct rv_intent_model *b = rv_intent_registry_acquire(&r0);
	ASSERT(b && b == rv_intent_builtin());
	ASSERT_EQ_INT(rv_intent_ref_version(r0), 0);
	ASSERT_EQ_INT(rv_intent_registry_active_version(), 0);

	struct rv_intent_model *m1 = tiny("order", "hours"), *m2 = tiny("buy", "when");
	ASSERT(m1 && m2);
	ASSERT_EQ_INT(rv_intent_registry_activate(m1, 0), -EINVAL); /* not consumed */
	ASSERT_EQ_INT(rv_intent_registry_activate(NULL, 3), -EINVAL);
	ASSERT_OK(rv_intent_registry_activate(m1, 7));
	const struct rv_intent_model *a1 = rv_intent_registry_acquire(&r1);
	ASSERT(a1 == m1);
	ASSERT_EQ_INT(rv_intent_ref_version(r1), 7);

	/* Swap while r1 is held: new turns get m2, the holder keeps a working m1. */
	ASSERT_OK(rv_intent_registry_activate(m2, 8));
	ASSERT_EQ_INT(rv_intent_registry_active_version(), 8);
	const struct rv_intent_model *a2 = rv_intent_registry_acquire(&r2);
	ASSERT(a2 == m2);
	struct rv_intent_result res;
	rv_intent_classify(a1, "what time do you open", &res);
	ASSERT_EQ_STR(res.intent, "hours"); /* a freed model here would be caught by ASan */
	rv_intent_registry_release(r1);     /* the last reference: m1 is freed now */
	rv_intent_classify(a2, "what time do you open", &res);
	ASSERT_EQ_STR(res.intent, "when");

	rv_intent_registry_reset();
	ASSERT_EQ_INT(rv_intent_registry_active_version(), 0);
	rv_intent_classify(a2, "order me a pizza", &res); /* still held through r2 */
	ASSERT_EQ_STR(res.intent, "buy");
	rv_intent_registry_release(r2);
	rv_intent_registry_release(r0); /* the built-in reference is not counted */
	rv_intent_registry_release(NULL);
}

struct hammer {
	atomic_int stop;
	atomic_long turns;
	atomic_int bad;
};

static void *turns_h(void *arg)
{
	struct hammer *h = arg;
	while (!atomic_load(&h->stop)) {
		struct rv_intent_ref *ref = NULL;
		const struct rv_intent_model *m = rv_intent_registry_acquire(&ref);
		struct rv_intent_result r;
		rv_intent_classify(m, "what time do you close tonight", &r);
		/* Whichever model this turn got, its answer comes from that model's labels. */
		const char *const *labels;
		unsigned k = rv_intent_labels(m, &labels);
		bool found = strcmp(r.intent, RV_INTENT_OOS) == 0;
		for (unsigned i = 0; i < k; i++)
			found |= r.intent == labels[i];
		if (!found)
			atomic_fetch_add(&h->bad, 1);
		rv_intent_registry_release(ref);
		atomic_fetch_add(&h->turns, 1);
	}
	return NULL;
}

RV_TEST(nlu_registry_swaps_under_concurrent_turns)
{
	struct hammer h = {0};
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, turns_h, &h));
	for (int i = 1; i <= 40; i++) {
		struct rv_intent_model *m = i % 2 ? tiny("order", "hours") : tiny("buy", "when");
		ASSERT(m);
		ASSERT_OK(rv_intent_registry_activate(m, i));
		if (i % 10 == 0)
			rv_intent_registry_reset();
	}
	atomic_store(&h.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	rv_intent_registry_reset();
	ASSERT(atomic_load(&h.turns) > 0);
	ASSERT_EQ_INT(atomic_load(&h.bad), 0);
}

RV_TEST(nlu_registry_builtin_examples_cover_every_intent)
{
	static const char *const intents[] = {
	    "affirm",         "deny",        "interested",    "not_interested",
	    "callback_later", "do_not_call", "talk_to_human", "who_is_this",
	    "is_robot",       "ask_price",   "wrong_number",  "busy_now",
	    "repeat",         "goodbye",     "greeting",      "voicemail_greeting",
	    "provide_info",   "out_of_scope"};
	char *buf = NULL;
	struct rv_intent_example *ex = NULL;
	long n = rv_intent_builtin_examples(&buf, &ex);
	ASSERT(n > 1800);
	for (size_t i = 0; i < sizeof(intents) / sizeof(intents[0]); i++) {
		long c = 0;
		for (long j = 0; j < n; j++)
			c += strcmp(ex[j].label, intents[i]) == 0;
		ASSERT_MSG(c >= 100, "%s has %ld examples", intents[i], c);
	}
	free(ex);
	free(buf);
}
