/*
 * libre side of json_bench: json_decode_odict / json_encode_odict.
 */
#include <re.h>
#include <string.h>

#include "json_bench_re.h"

/* maxdepth and hash buckets per container, as a server would pass them. */
#define RVB_DEPTH 16
#define RVB_HASH  32

int rvb_re_init(void)
{
	return libre_init();
}

void rvb_re_close(void)
{
	libre_close();
}

void *rvb_re_parse(const char *s, size_t len)
{
	struct odict *o = NULL;

	if (json_decode_odict(&o, RVB_HASH, s, len, RVB_DEPTH))
		return NULL;
	return o;
}

char *rvb_re_dump(void *tree)
{
	char *s = NULL;

	if (re_sdprintf(&s, "%H", json_encode_odict, (struct odict *)tree))
		return NULL;
	return s;
}

void rvb_re_free(void *tree)
{
	mem_deref(tree);
}

void rvb_re_free_text(char *s)
{
	mem_deref(s);
}

void rvb_re_check(const char *text)
{
	const struct odict_entry *e;
	struct odict *o = NULL;
	int err;

	err = json_decode_odict(&o, RVB_HASH, text, strlen(text), RVB_DEPTH);
	if (err) {
		re_printf("rejected (%s)", strerror(err));
		return;
	}
	e = odict_lookup(o, "a");
	if (!e) {
		re_printf("accepted, no key \"a\" (%zu entries)", odict_count(o, false));
		goto out;
	}
	switch (e->type) {
	case ODICT_INT:
		re_printf("accepted, int %lld", (long long)e->u.integer);
		break;
	case ODICT_DOUBLE:
		re_printf("accepted, double %f", e->u.dbl);
		break;
	case ODICT_BOOL:
		re_printf("accepted, bool %d", e->u.boolean);
		break;
	case ODICT_STRING:
		re_printf("accepted, string of %zu bytes", strlen(e->u.str));
		break;
	default:
		re_printf("accepted, %s", odict_type_name(e->type));
	}
	if (odict_count(o, false) > 1)
		re_printf(" (%zu entries)", odict_count(o, false));
out:
	mem_deref(o);
}
