/*
 * libFuzzer target: arbitrary bytes through the lead CSV parser (lead_csv.c), which is the part
 * of the import that reads outside input. Checks the contract as well as memory safety: on
 * success the counts add up and every lead has an E.164 phone and JSON custom fields; on failure
 * there is a reason and a sentence that is valid UTF-8 (it goes into a JSON error body).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign/lead_csv.h"
#include "core/log.h"
#include "core/util.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		rv_log_set_level(RV_LOG_ERROR + 1);
		quiet = 1;
	}
	/* The first byte picks the default region, so national formats of several plans run. */
	static const char *const regions[] = {"US", "GB", "IN", "DE", "ZZ"};
	const char *region = regions[size ? data[0] % RV_ARRAY_LEN(regions) : 0];
	if (size) {
		data++;
		size--;
	}
	struct rv_lead_csv *res = NULL;
	char err[256];
	const char *reason = NULL;
	int rc =
	    rv_lead_csv_parse((const char *)data, size, region, &res, err, sizeof(err), &reason);
	if (rc != 0) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(res == NULL);
		CHECK(reason != NULL);
		CHECK(err[0] != '\0');
		CHECK(rv_utf8_valid(err, strlen(err)));
		return 0;
	}
	CHECK(res != NULL);
	CHECK(res->rows <= RV_LEAD_CSV_MAX_ROWS);
	CHECK(res->nleads + res->failed_rows + res->skipped_duplicates == res->rows);
	CHECK(json_array_size(res->errors) <= res->nerrors);
	CHECK(res->nerrors >= res->failed_rows);
	for (size_t i = 0; i < res->nleads; i++) {
		const struct rv_lead_csv_lead *l = &res->leads[i];
		CHECK(l->phone[0] == '+' && strlen(l->phone) <= 16);
		for (const char *p = l->phone + 1; *p; p++)
			CHECK(*p >= '0' && *p <= '9');
		CHECK(l->row >= 2);
		json_t *cf = json_loads(l->custom_fields, 0, NULL);
		CHECK(json_is_object(cf));
		json_decref(cf);
		CHECK(rv_utf8_valid(l->first_name, strlen(l->first_name)));
	}
	rv_lead_csv_free(res);
	return 0;
}
