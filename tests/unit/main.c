/* Runs the registered unit tests and prints one line per test plus the tally. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "core/log.h"

int rv_test_failed;

struct entry {
	const char *name, *file;
	void (*fn)(void);
};

static struct entry tests[1024];
static size_t ntests;

void rv_test_register(const char *name, const char *file, void (*fn)(void))
{
	if (ntests < sizeof(tests) / sizeof(tests[0]))
		tests[ntests++] = (struct entry){name, file, fn};
}

static int by_file_then_name(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	int passed = 0, failed = 0;

	/* Tests exercise error paths on purpose; keep their log lines out of the way. */
	rv_log_set_level(getenv("RV_TEST_LOG") ? RV_LOG_DEBUG : RV_LOG_ERROR + 1);
	qsort(tests, ntests, sizeof(tests[0]), by_file_then_name);
	for (size_t i = 0; i < ntests; i++) {
		if (filter && !strstr(tests[i].name, filter))
			continue;
		rv_test_failed = 0;
		tests[i].fn();
		printf("%s unit/%s\n", rv_test_failed ? "FAIL" : "ok", tests[i].name);
		fflush(stdout);
		if (rv_test_failed)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
