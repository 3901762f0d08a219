#include <errno.h>
#include <stdint.h>

#include "../test.h"
#include "core/util.h"

RV_TEST(util_parse_int64)
{
	int64_t v = 0;
	ASSERT_OK(rv_parse_int64("42", 0, 100, &v));
	ASSERT_EQ_INT(v, 42);
	ASSERT_OK(rv_parse_int64("-9223372036854775808", INT64_MIN, INT64_MAX, &v));
	ASSERT(v == INT64_MIN);
	ASSERT_EQ_INT(rv_parse_int64("101", 0, 100, &v), -ERANGE);
	ASSERT_EQ_INT(rv_parse_int64("99999999999999999999", INT64_MIN, INT64_MAX, &v), -ERANGE);
	ASSERT_EQ_INT(rv_parse_int64("12x", 0, 100, &v), -EINVAL);
	ASSERT_EQ_INT(rv_parse_int64("", 0, 100, &v), -EINVAL);
	ASSERT_EQ_INT(rv_parse_int64(NULL, 0, 100, &v), -EINVAL);
	ASSERT_EQ_INT(rv_parse_int64(" 5", 0, 100, &v) == 0 ? v : -1, 5); /* strtoll skips space */
}

RV_TEST(util_utf8_valid)
{
	ASSERT(rv_utf8_valid("hello", 5));
	ASSERT(rv_utf8_valid("h\xc3\xa9llo", 6));      /* é */
	ASSERT(rv_utf8_valid("\xe2\x82\xac", 3));      /* € */
	ASSERT(rv_utf8_valid("\xf0\x9f\x93\x9e", 4));  /* 📞 */
	ASSERT(!rv_utf8_valid("\xe9t\xe9", 3));        /* Latin-1 */
	ASSERT(!rv_utf8_valid("\xc3", 1));             /* truncated */
	ASSERT(!rv_utf8_valid("\xe2\x82", 2));         /* truncated */
	ASSERT(!rv_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
	ASSERT(!rv_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	ASSERT(!rv_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	ASSERT(rv_utf8_valid("", 0));
}

RV_TEST(util_strlcpy_and_time)
{
	char b[4];
	ASSERT_EQ_INT(rv_strlcpy(b, "abcdef", sizeof(b)), 6);
	ASSERT_EQ_STR(b, "abc");
	char t[40];
	rv_time_iso(0, t, sizeof(t));
	ASSERT_EQ_STR(t, "1970-01-01T00:00:00Z");
	rv_time_iso_now(t, sizeof(t));
	ASSERT_EQ_INT(strlen(t), 24);
	ASSERT(t[23] == 'Z' && t[10] == 'T');
}

RV_TEST(util_utf8_scrub)
{
	char a[] = "caf\xc3\xa9 ok";
	ASSERT_EQ_INT(rv_utf8_scrub(a), 0);
	ASSERT_EQ_STR(a, "caf\xc3\xa9 ok");
	char b[] = "{\"s\\u0\xd0\x9a\xc6\xcb"; /* the fuzzer's input: valid К, then a broken pair */
	ASSERT_EQ_INT(rv_utf8_scrub(b), 2);
	ASSERT(rv_utf8_valid(b, strlen(b)));
	ASSERT_EQ_STR(b, "{\"s\\u0\xd0\x9a??");
	char c[] = "cut \xe2\x82"; /* a sequence truncated by a buffer */
	ASSERT_EQ_INT(rv_utf8_scrub(c), 2);
	ASSERT_EQ_STR(c, "cut ??");
}

RV_TEST(util_time_parse_iso)
{
	int64_t ms = 0;
	ASSERT_OK(rv_time_parse_iso("2026-11-22T10:00:00-05:00", &ms));
	ASSERT(ms == 1795359600000LL);
	ASSERT_OK(rv_time_parse_iso("2026-11-22T15:00:00Z", &ms));
	ASSERT(ms == 1795359600000LL);
	ASSERT_OK(rv_time_parse_iso("2026-11-22 15:00:00.250Z", &ms));
	ASSERT(ms == 1795359600250LL);
	ASSERT_OK(rv_time_parse_iso("1970-01-01T05:30+05:30", &ms));
	ASSERT(ms == 0);
	static const char *const bad[] = {"",
	                                  "2026-11-22",
	                                  "2026-11-22T10:00:00",
	                                  "2026-13-01T00:00Z",
	                                  "2026-02-29T00:00Z",
	                                  "2026-11-22T24:00Z",
	                                  "2026-11-22T10:00:00+5:00",
	                                  "2026-11-22T10:00:00Zjunk",
	                                  "2026-11-22T10:00:00."};
	for (size_t i = 0; i < RV_ARRAY_LEN(bad); i++)
		ASSERT_MSG(rv_time_parse_iso(bad[i], &ms) == -EINVAL, "accepted \"%s\"", bad[i]);
}
