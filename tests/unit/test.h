/*
 * The unit-test harness: plain ASSERT macros and a name -> function table. RV_TEST(name)
 * defines a test and adds it to the table at load time, so test files never edit a shared
 * list. `rv-unit-tests [substring]` runs the tests whose name contains the substring.
 */
#ifndef RV_TEST_H
#define RV_TEST_H

#include <stdio.h>
#include <string.h>

extern int rv_test_failed;

void rv_test_register(const char *name, const char *file, void (*fn)(void));

#define RV_TEST(name)                                                                              \
	static void test_##name(void);                                                             \
	__attribute__((constructor)) static void register_##name(void)                             \
	{                                                                                          \
		rv_test_register(#name, __FILE__, test_##name);                                    \
	}                                                                                          \
	static void test_##name(void)

#define ASSERT_MSG(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: assertion failed: %s: ", __FILE__, __LINE__,     \
			        #cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			rv_test_failed = 1;                                                        \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define ASSERT(cond) ASSERT_MSG(cond, "%s", "")
#define ASSERT_EQ_INT(a, b)                                                                        \
	ASSERT_MSG((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
static inline int rv_test_streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}
static inline const char *rv_test_str(const char *s)
{
	return s ? s : "(null)";
}
#define ASSERT_EQ_STR(a, b)                                                                        \
	ASSERT_MSG(rv_test_streq((a), (b)), "\"%s\" != \"%s\"", rv_test_str(a), rv_test_str(b))
#define ASSERT_OK(expr)                                                                            \
	do {                                                                                       \
		int rv__e = (expr);                                                                \
		ASSERT_MSG(rv__e == 0, "%s returned %d", #expr, rv__e);                            \
	} while (0)

#endif
