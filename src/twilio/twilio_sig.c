/*
 * X-Twilio-Signature: HMAC-SHA1 over the URL Twilio requested followed by the POST parameters
 * sorted by name, each name then value with no separator, in base64. libre's hmac_sha1 and
 * base64 (this file includes re.h, so no jansson); libsodium's constant-time comparison.
 */
#include <errno.h>
#include <re.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "twilio/twilio_int.h"

#define SIG_LEN 28 /* base64 of 20 bytes */

static int pair_cmp(const void *a, const void *b)
{
	const struct tw_pair *x = *(const struct tw_pair *const *)a;
	const struct tw_pair *y = *(const struct tw_pair *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

int tw_signature(const char *token, const char *url, const struct tw_form *form, char *out,
                 size_t outlen)
{
	const struct tw_pair **sorted = NULL;
	char *data = NULL;
	size_t n = form ? form->n : 0, len;
	int err = 0;

	if (!token || !url || !out || outlen < SIG_LEN + 1)
		return -EINVAL;
	len = strlen(url);
	for (size_t i = 0; i < n; i++)
		len += strlen(form->p[i].name) + strlen(form->p[i].value);
	sorted = calloc(n ? n : 1, sizeof(*sorted));
	data = malloc(len + 1);
	if (!sorted || !data) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		sorted[i] = &form->p[i];
	qsort(sorted, n, sizeof(*sorted), pair_cmp);

	size_t pos = strlen(url);
	memcpy(data, url, pos);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(sorted[i]->name), vl = strlen(sorted[i]->value);
		memcpy(data + pos, sorted[i]->name, nl);
		memcpy(data + pos + nl, sorted[i]->value, vl);
		pos += nl + vl;
	}

	uint8_t mac[20];
	size_t olen = outlen - 1;
	hmac_sha1((const uint8_t *)token, strlen(token), (const uint8_t *)data, pos, mac,
	          sizeof(mac));
	if (base64_encode(mac, sizeof(mac), out, &olen) != 0 || olen != SIG_LEN) {
		err = -EINVAL;
		goto out;
	}
	out[olen] = '\0';
out:
	free(sorted);
	free(data);
	return err;
}

int tw_signature_check(const char *token, const char *url, const struct tw_form *form,
                       const char *header)
{
	char want[SIG_LEN + 1];
	int err = tw_signature(token, url, form, want, sizeof(want));
	if (err)
		return err;
	/* The length is public (every signature has 28 characters); the bytes are compared in
	 * constant time so a forger learns nothing from how long a refusal took. */
	if (!header || strlen(header) != SIG_LEN)
		return 0;
	return sodium_memcmp(want, header, SIG_LEN) == 0 ? 1 : 0;
}
