/* Form bodies (application/x-www-form-urlencoded), decoded with libcurl: see twilio_int.h. */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "twilio/twilio_int.h"

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Decode one name or value: '+' is a space, %XX by curl_easy_unescape. NULL on bad input. */
static char *decode(const char *s, size_t n, int *err)
{
	char *plus = malloc(n + 1);
	if (!plus) {
		*err = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		plus[i] = s[i] == '+' ? ' ' : s[i];
	plus[n] = '\0';
	/* curl decodes a malformed escape ("%G1", a trailing "%") as literal text; a form
	 * whose escapes are broken was not written by a real client, so it is refused. */
	for (size_t i = 0; i < n; i++) {
		if (plus[i] == '%' &&
		    (i + 2 >= n || !is_hex(plus[i + 1]) || !is_hex(plus[i + 2]))) {
			free(plus);
			*err = -EINVAL;
			return NULL;
		}
	}
	int outlen = 0;
	char *dec = n > INT_MAX ? NULL : curl_easy_unescape(NULL, plus, (int)n, &outlen);
	free(plus);
	if (!dec) {
		*err = n > INT_MAX ? -EINVAL : -ENOMEM;
		return NULL;
	}
	/* An escaped NUL would cut the value short for every C string user after us. */
	if (outlen < 0 || strlen(dec) != (size_t)outlen) {
		curl_free(dec);
		*err = -EINVAL;
		return NULL;
	}
	/* Hand out malloc'd memory so tw_form_free need not know who allocated it. */
	char *copy = strdup(dec);
	curl_free(dec);
	if (!copy)
		*err = -ENOMEM;
	return copy;
}

int tw_form_parse(const char *body, size_t len, struct tw_form *out)
{
	struct tw_form f = {0};
	int err = 0;

	if (!body)
		len = 0;
	if (memchr(body ? body : "", '\0', len)) {
		err = -EINVAL;
		goto out;
	}
	f.p = calloc(TW_FORM_MAX_PAIRS, sizeof(*f.p));
	if (!f.p) {
		err = -ENOMEM;
		goto out;
	}
	size_t pos = 0;
	while (pos < len) {
		const char *seg = body + pos;
		const char *amp = memchr(seg, '&', len - pos);
		size_t slen = amp ? (size_t)(amp - seg) : len - pos;
		pos += slen + 1;
		if (slen == 0)
			continue;
		if (f.n == TW_FORM_MAX_PAIRS) {
			err = -EINVAL;
			goto out;
		}
		const char *eq = memchr(seg, '=', slen);
		size_t nlen = eq ? (size_t)(eq - seg) : slen;
		struct tw_pair *p = &f.p[f.n];
		p->name = decode(seg, nlen, &err);
		if (!p->name)
			goto out;
		p->value = eq ? decode(eq + 1, slen - nlen - 1, &err) : strdup("");
		if (!p->value) {
			if (!eq)
				err = -ENOMEM;
			free(p->name);
			p->name = NULL;
			goto out;
		}
		f.n++;
	}
out:
	if (err) {
		tw_form_free(&f);
		return err;
	}
	*out = f;
	return 0;
}

void tw_form_free(struct tw_form *f)
{
	if (!f || !f->p)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->p[i].name);
		free(f->p[i].value);
	}
	free(f->p);
	f->p = NULL;
	f->n = 0;
}

const char *tw_form_get(const struct tw_form *f, const char *name)
{
	for (size_t i = 0; f && i < f->n; i++)
		if (strcmp(f->p[i].name, name) == 0)
			return f->p[i].value;
	return NULL;
}
