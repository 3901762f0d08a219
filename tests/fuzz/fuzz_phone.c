/*
 * libFuzzer target: arbitrary bytes through rv_phone_e164 (libphonenumber behind a C wrapper).
 * No exception may escape, and any number accepted must be E.164 and stable: normalising the
 * output again gives the same output.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/phone.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const regions[] = {"US", "GB", "IN", "BR", "JP", "ZZ", "xx", ""};
	char out[32], again[32];
	const char *why = NULL;

	if (size == 0 || size > 512)
		return 0;
	const char *region = regions[data[0] % (sizeof(regions) / sizeof(regions[0]))];
	char *s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	int rc = rv_phone_e164(s, region, out, sizeof(out), &why);
	if (rc == 0) {
		size_t n = strlen(out);
		CHECK(n >= 3 && n <= 16 && out[0] == '+');
		for (size_t i = 1; i < n; i++)
			CHECK(out[i] >= '0' && out[i] <= '9');
		CHECK(rv_phone_e164(out, "ZZ", again, sizeof(again), &why) == 0);
		CHECK(strcmp(out, again) == 0);
	} else {
		CHECK(rc == -EINVAL && why != NULL);
	}
	(void)rv_phone_region_valid(s);
	free(s);
	return 0;
}
