/* Entities from spoken-form text, with "now" pinned so relative dates are reproducible. */
#include <errno.h>
#include <string.h>

#include "../test.h"
#include "nlu/entities.h"

/* Sunday 2026-11-22 10:00 in New York (15:00 UTC). */
#define NOW_MS 1795359600000LL

/* The first entity of `type` in text, or NULL. */
static const struct rv_entity *first(const char *text, enum rv_entity_type type, const char *tz,
                                     bool expect_name)
{
	static struct rv_entity e[RV_ENTITY_MAX];
	size_t n = 0;
	struct rv_entity_ctx ctx = {
	    .timezone = tz, .now_ms = NOW_MS, .region = "US", .expect_name = expect_name};
	if (rv_entities_extract(text, &ctx, e, RV_ENTITY_MAX, &n) != 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (e[i].type == type)
			return &e[i];
	return NULL;
}

static const char *val(const char *text, enum rv_entity_type type)
{
	const struct rv_entity *e = first(text, type, "America/New_York", false);
	return e ? e->value : "(none)";
}

RV_TEST(nlu_entities_relative_datetimes_in_the_callers_zone)
{
	ASSERT_EQ_STR(val("call me tomorrow at three", RV_ENT_DATETIME),
	              "2026-11-23T15:00:00-05:00");
	ASSERT_EQ_STR(val("next tuesday morning works", RV_ENT_DATETIME),
	              "2026-11-24T09:00:00-05:00");
	ASSERT_EQ_STR(val("the fifteenth at ten thirty", RV_ENT_DATETIME),
	              "2026-12-15T10:30:00-05:00");
	ASSERT_EQ_STR(val("how about friday at 2 pm", RV_ENT_DATETIME),
	              "2026-11-27T14:00:00-05:00");
	ASSERT_EQ_STR(val("try me in two hours", RV_ENT_DATETIME), "2026-11-22T12:00:00-05:00");
	ASSERT_EQ_STR(val("half past two tomorrow", RV_ENT_DATETIME), "2026-11-23T14:30:00-05:00");
	ASSERT_EQ_STR(val("at noon on march third", RV_ENT_DATETIME), "2027-03-03T12:00:00-05:00");
	/* A time already past today is tomorrow; a date alone has no time. */
	ASSERT_EQ_STR(val("at 9 am", RV_ENT_DATETIME), "2026-11-23T09:00:00-05:00");
	ASSERT_EQ_STR(val("next week", RV_ENT_DATETIME), "2026-11-23");
	/* The zone's own rules: summer time in July, another zone's offset. */
	ASSERT_EQ_STR(val("on july fourth at 10 am", RV_ENT_DATETIME), "2027-07-04T10:00:00-04:00");
	const struct rv_entity *e =
	    first("tomorrow at 3 pm", RV_ENT_DATETIME, "Asia/Kolkata", false);
	ASSERT(e);
	ASSERT_EQ_STR(e->value, "2026-11-23T15:00:00+05:30");
	ASSERT_EQ_STR(e->text, "tomorrow at 3 pm");
}

RV_TEST(nlu_entities_numbers_digits_money_phone_email)
{
	ASSERT_EQ_STR(val("my pin is seven six two nine", RV_ENT_DIGITS), "7629");
	ASSERT_EQ_STR(val("it's double five oh one", RV_ENT_DIGITS), "5501");
	ASSERT_EQ_STR(val("one hundred and twenty people", RV_ENT_NUMBER), "120");
	ASSERT_EQ_STR(val("born in nineteen eighty five", RV_ENT_NUMBER), "1985");
	ASSERT_EQ_STR(val("i live at 42 oak street", RV_ENT_NUMBER), "42");
	ASSERT_EQ_STR(val("about five thousand dollars", RV_ENT_MONEY), "5000.00");
	ASSERT_EQ_STR(first("twenty euros", RV_ENT_MONEY, NULL, false)->unit, "EUR");
	ASSERT_EQ_STR(val("it was $49.99", RV_ENT_MONEY), "49.99");
	ASSERT_EQ_STR(val("ten dollars and fifty cents", RV_ENT_MONEY), "10.50");
	ASSERT_EQ_STR(val("call 415-555-0100", RV_ENT_PHONE), "+14155550100");
	ASSERT_EQ_STR(
	    val("reach me at four one five five five five zero one zero zero", RV_ENT_PHONE),
	    "+14155550100");
	ASSERT_EQ_STR(val("my email is John at Example dot com", RV_ENT_EMAIL), "john@example.com");
	ASSERT_EQ_STR(val("send it to mary dot jones at gmail dot com", RV_ENT_EMAIL),
	              "mary.jones@gmail.com");
	ASSERT_EQ_STR(val("meet me at the office", RV_ENT_EMAIL), "(none)");
}

RV_TEST(nlu_entities_yes_no_and_names)
{
	ASSERT_EQ_STR(val("uh yeah that works", RV_ENT_YESNO), "yes");
	ASSERT_EQ_STR(val("nope", RV_ENT_YESNO), "no");
	ASSERT_EQ_STR(val("well maybe", RV_ENT_YESNO), "(none)");
	const struct rv_entity *e = first("my name is david miller", RV_ENT_NAME, NULL, true);
	ASSERT(e);
	ASSERT_EQ_STR(e->value, "David Miller");
	/* Names only when the dialog asked for one. */
	ASSERT(first("my name is david miller", RV_ENT_NAME, NULL, false) == NULL);
}

RV_TEST(nlu_entities_bad_zone_and_odd_text)
{
	struct rv_entity e[RV_ENTITY_MAX];
	size_t n = 99;
	struct rv_entity_ctx ctx = {.timezone = "Mars/Olympus_Mons", .now_ms = NOW_MS};
	ASSERT_EQ_INT(rv_entities_extract("tomorrow", &ctx, e, RV_ENTITY_MAX, &n), -EINVAL);
	ASSERT_EQ_INT(n, 0);
	ctx.timezone = "UTC";
	/* Garbage, huge numbers, stray symbols and a capped output never crash. */
	char big[3000];
	memset(big, '9', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ASSERT_OK(rv_entities_extract(big, &ctx, e, RV_ENTITY_MAX, &n));
	ASSERT_OK(rv_entities_extract("@@ $ + at dot com at at", &ctx, e, RV_ENTITY_MAX, &n));
	ASSERT_OK(rv_entities_extract("one two three four five six seven eight nine ten eleven "
	                              "twelve thirteen at noon at three on the fifth",
	                              &ctx, e, 2, &n));
	ASSERT(n <= 2);
}

RV_TEST(nlu_entities_no_false_numbers_or_times)
{
	ASSERT_EQ_STR(val("no one is home right now", RV_ENT_NUMBER), "(none)");
	ASSERT_EQ_STR(val("i'll take that one", RV_ENT_NUMBER), "(none)");
	ASSERT_EQ_STR(val("good morning", RV_ENT_DATETIME), "(none)");
	ASSERT_EQ_STR(val("have a nice evening", RV_ENT_DATETIME), "(none)");
	ASSERT_EQ_STR(val("the last four digits are 1234", RV_ENT_NUMBER), "1234");
	ASSERT_EQ_STR(val("around five thousand dollars", RV_ENT_DATETIME), "(none)");
	ASSERT_EQ_STR(val("around five thousand dollars", RV_ENT_MONEY), "5000.00");
	/* The same words still work where they mean it. */
	ASSERT_EQ_STR(val("call me tomorrow morning", RV_ENT_DATETIME),
	              "2026-11-23T09:00:00-05:00");
	ASSERT_EQ_STR(val("we need one more", RV_ENT_NUMBER), "1");
}
