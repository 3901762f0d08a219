/* Regression: a family whose child table grows must still find every child (a rehash once
 * linked the newest child to itself and the next lookup spun forever). */
#include <stdio.h>
#include <stdlib.h>

#include "../test.h"
#include "obs/metrics.h"

RV_TEST(metrics_many_children_survive_table_growth)
{
	rv_metrics_reset();
	ASSERT_OK(
	    rv_metrics_register("rv_test_growth_total", RV_METRIC_COUNTER, "growth", "k", NULL, 0));
	char v[32];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 300; i++) {
			snprintf(v, sizeof(v), "v%d", i);
			rv_metrics_inc("rv_test_growth_total", 1, v, (const char *)NULL);
		}
	}
	char *text = NULL;
	size_t len = 0;
	ASSERT_OK(rv_metrics_render(&text, &len));
	int found = 0;
	for (int i = 0; i < 300; i++) {
		char line[96];
		snprintf(line, sizeof(line), "rv_test_growth_total{k=\"v%d\"} 2\n", i);
		found += strstr(text, line) != NULL;
	}
	free(text);
	rv_metrics_reset();
	ASSERT_EQ_INT(found, 300);
}
