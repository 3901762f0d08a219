/* Intent classifier: the built-in model on unseen phrasings, calibration sanity, model files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "nlu/intent.h"

static const char *classify(const char *text, double *conf)
{
	static struct rv_intent_result r;
	const struct rv_intent_model *m = rv_intent_builtin();
	if (!m)
		return "(no model)";
	rv_intent_classify(m, text, &r);
	if (conf)
		*conf = r.confidence;
	return r.intent;
}

RV_TEST(nlu_intent_builtin_unseen_phrasings)
{
	/* Phrasings that are not in src/nlu/intents.tsv. */
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"please never phone this number again", "do_not_call"},
	    {"how much is this going to cost me", "ask_price"},
	    {"am i speaking with a machine right now", "is_robot"},
	    {"could you ring me back tomorrow afternoon", "callback_later"},
	    {"i want to talk to a real human being", "talk_to_human"},
	    {"sorry, i didn't hear what you said", "repeat"},
	};
	size_t right = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = classify(cases[i].text, NULL);
		if (strcmp(got, cases[i].want) == 0)
			right++;
		else
			fprintf(stderr, "  \"%s\": %s, expected %s\n", cases[i].text, got,
			        cases[i].want);
	}
	ASSERT_MSG(right == sizeof(cases) / sizeof(cases[0]), "%zu of %zu right", right,
	           sizeof(cases) / sizeof(cases[0]));
}

RV_TEST(nlu_intent_out_of_scope_and_empty)
{
	double conf = 0;
	ASSERT_EQ_STR(classify("", &conf), RV_INTENT_OOS);
	ASSERT(conf == 1.0);
	ASSERT_EQ_STR(classify("?!  ...", NULL), RV_INTENT_OOS);
	ASSERT_EQ_STR(classify("qwxz plgh vrrt", NULL), RV_INTENT_OOS);
	/* Probabilities are calibrated into (0, 1]. */
	classify("stop calling me", &conf);
	ASSERT(conf > 0.0 && conf <= 1.0);
}

RV_TEST(nlu_intent_train_save_load_round_trip)
{
	static const struct rv_intent_example ex[] = {
	    {"order", "i want to order a pizza"},    {"order", "can i order food"},
	    {"order", "i'd like to place an order"}, {"order", "order a large pizza please"},
	    {"hours", "when are you open"},          {"hours", "what are your opening hours"},
	    {"hours", "are you open on sunday"},     {"hours", "what time do you close"},
	};
	struct rv_intent_train_cfg cfg;
	rv_intent_train_defaults(&cfg);
	cfg.holdout = 0;
	struct rv_intent_model *m = NULL, *m2 = NULL;
	struct rv_intent_report rep;
	char why[128];
	ASSERT_OK(rv_intent_train(ex, 8, &cfg, &m, &rep, why, sizeof(why)));
	ASSERT_EQ_INT(rep.n_labels, 2);
	ASSERT(rep.holdout_accuracy < 0); /* nothing held out */
	struct rv_intent_result r1, r2;
	rv_intent_classify(m, "what time do you open tomorrow", &r1);
	ASSERT_EQ_STR(r1.intent, "hours");

	uint8_t *buf = NULL;
	size_t len = 0;
	ASSERT_OK(rv_intent_save(m, &buf, &len));
	ASSERT_OK(rv_intent_load(buf, len, &m2));
	rv_intent_classify(m2, "what time do you open tomorrow", &r2);
	ASSERT_EQ_STR(r2.intent, r1.intent);
	ASSERT(r1.confidence == r2.confidence);

	/* Every truncation and a flipped byte in the header are refused, not crashed on. */
	for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 97)) {
		struct rv_intent_model *bad = NULL;
		ASSERT_EQ_INT(rv_intent_load(buf, cut, &bad), -EINVAL);
	}
	buf[8] = 200; /* label count */
	struct rv_intent_model *bad = NULL;
	ASSERT_EQ_INT(rv_intent_load(buf, len, &bad), -EINVAL);
	free(buf);
	rv_intent_free(m);
	rv_intent_free(m2);
}

RV_TEST(nlu_intent_train_rejects_bad_input)
{
	static const struct rv_intent_example one_label[] = {
	    {"a", "x y"}, {"a", "y z"}, {"a", "z w"}, {"a", "w v"}};
	static const struct rv_intent_example empty_label[] = {
	    {"a", "x y"}, {"", "y z"}, {"b", "z w"}, {"b", "w v"}};
	struct rv_intent_model *m = NULL;
	char why[128] = "";
	ASSERT_EQ_INT(rv_intent_train(one_label, 4, NULL, &m, NULL, why, sizeof(why)), -EINVAL);
	ASSERT(strstr(why, "two labels"));
	ASSERT_EQ_INT(rv_intent_train(empty_label, 4, NULL, &m, NULL, why, sizeof(why)), -EINVAL);
	ASSERT(strstr(why, "example 2"));
	ASSERT_EQ_INT(rv_intent_train(one_label, 2, NULL, &m, NULL, why, sizeof(why)), -EINVAL);
	ASSERT(m == NULL);
}

RV_TEST(nlu_intent_builtin_hedges_and_fillers)
{
	/* First-cut confusions: hesitations went to talk_to_human or wrong_number. */
	ASSERT_EQ_STR(classify("hmm let me think", NULL), RV_INTENT_OOS);
	ASSERT_EQ_STR(classify("i'm not sure", NULL), RV_INTENT_OOS);
	ASSERT_EQ_STR(classify("i guess so", NULL), "affirm");
	/* STT-style text: no punctuation, fillers, digits spoken as words. */
	ASSERT_EQ_STR(classify("uh yeah that's fine", NULL), "affirm");
	ASSERT_EQ_STR(classify("um could you ring me back on thursday", NULL), "callback_later");
	ASSERT_EQ_STR(classify("my cell is two one two five five five zero one nine nine", NULL),
	              "provide_info");
	ASSERT_EQ_STR(classify("hi you've reached dan leave a message after the beep", NULL),
	              "voicemail_greeting");
}

RV_TEST(nlu_intent_load_refuses_nul_labels_and_huge_weights)
{
	static const struct rv_intent_example ex[] = {
	    {"yes", "yes"}, {"yes", "yeah sure"}, {"nope", "no"}, {"nope", "no way"}};
	struct rv_intent_train_cfg cfg;
	rv_intent_train_defaults(&cfg);
	cfg.holdout = 0;
	struct rv_intent_model *m = NULL, *bad = NULL;
	char why[128];
	ASSERT_OK(rv_intent_train(ex, 4, &cfg, &m, NULL, why, sizeof(why)));
	uint8_t *buf = NULL;
	size_t len = 0;
	ASSERT_OK(rv_intent_save(m, &buf, &len));
	/* Header: magic, version, labels, features, temperature, threshold; then "\3yes". */
	ASSERT_EQ_INT(buf[24], 3);
	buf[26] = '\0'; /* "y\0s" would not save back as it loaded */
	ASSERT_EQ_INT(rv_intent_load(buf, len, &bad), -EINVAL);
	buf[26] = 's';
	ASSERT_OK(rv_intent_load(buf, len, &bad));
	rv_intent_free(bad);
	bad = NULL;
	/* The last weight set to 1e30: finite, but no training makes it; scores could overflow. */
	float huge = 1e30f;
	uint32_t bits;
	memcpy(&bits, &huge, 4);
	for (int i = 0; i < 4; i++)
		buf[len - 4 + i] = (uint8_t)(bits >> (8 * i));
	ASSERT_EQ_INT(rv_intent_load(buf, len, &bad), -EINVAL);
	ASSERT(bad == NULL);
	free(buf);
	rv_intent_free(m);
}
