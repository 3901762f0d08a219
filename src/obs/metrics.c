#include "obs/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

#ifndef RV_VERSION
#define RV_VERSION "0.0.0"
#endif
#ifndef RV_GIT_COMMIT
#define RV_GIT_COMMIT "unknown"
#endif

#define MAX_LABELS   8
#define MAX_FAMILIES 512
#define MAX_BUCKETS  64
/* A family with more children than this has a label fed from unbounded input: stop growing. */
#define MAX_CHILDREN  10000
#define MAX_VALUE_LEN 256

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct child {
	struct child *hnext; /* hash chain */
	struct child *next;  /* creation order, which is also render order */
	uint64_t hash;
	double value;            /* counter, gauge */
	double sum;              /* histogram */
	uint64_t count;          /* histogram */
	uint64_t *bucket_counts; /* histogram: per bucket, not cumulative; [nbounds] is +Inf */
	char *values[MAX_LABELS];
};

struct family {
	char *name;
	char *help;
	enum rv_metric_type type;
	size_t nlabels;
	char *labels[MAX_LABELS];
	double *bounds;
	size_t nbounds;
	struct child **table;
	size_t nslots; /* power of two */
	size_t nchildren;
	struct child *first, *last;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct family *families[MAX_FAMILIES];
static size_t nfamilies;
static int builtin_ready;
static double process_start;

/* Taken when the binary loads, which is as close to process start as we can cheaply get. */
__attribute__((constructor)) static void remember_start(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	process_start = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int valid_name(const char *s, int colon_ok)
{
	if (!s || !*s)
		return 0;
	for (const char *p = s; *p; p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		         (colon_ok && c == ':') || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

static struct family *find_family(const char *name)
{
	for (size_t i = 0; i < nfamilies; i++)
		if (strcmp(families[i]->name, name) == 0)
			return families[i];
	return NULL;
}

static uint64_t hash_values(const char *const *values, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		/* Over the stored (capped) form, so a long value finds the child it created. */
		size_t len = strnlen(values[i], MAX_VALUE_LEN);
		for (size_t k = 0; k < len; k++) {
			h ^= (unsigned char)values[i][k];
			h *= 1099511628211ull;
		}
		h ^= 0xff; /* separator, so ("ab","c") and ("a","bc") differ */
		h *= 1099511628211ull;
	}
	return h;
}

static void child_free(struct child *c)
{
	for (size_t i = 0; i < MAX_LABELS; i++)
		free(c->values[i]);
	free(c->bucket_counts);
	free(c);
}

static void family_free(struct family *f)
{
	struct child *c = f->first;
	while (c) {
		struct child *next = c->next;
		child_free(c);
		c = next;
	}
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->table);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}

static void grow_table(struct family *f)
{
	size_t n = f->nslots * 2;
	struct child **t = rv_xcalloc(n, sizeof(*t));
	for (struct child *c = f->first; c; c = c->next) {
		c->hnext = t[c->hash & (n - 1)];
		t[c->hash & (n - 1)] = c;
	}
	free(f->table);
	f->table = t;
	f->nslots = n;
}

/* The child for these label values, created on first use; NULL when the family is full. */
static struct child *get_child(struct family *f, const char *const *values)
{
	uint64_t h = hash_values(values, f->nlabels);
	for (struct child *c = f->table[h & (f->nslots - 1)]; c; c = c->hnext) {
		if (c->hash != h)
			continue;
		size_t i = 0;
		while (i < f->nlabels &&
		       strlen(c->values[i]) == strnlen(values[i], MAX_VALUE_LEN) &&
		       strncmp(c->values[i], values[i], MAX_VALUE_LEN) == 0)
			i++;
		if (i == f->nlabels)
			return c;
	}
	if (f->nchildren >= MAX_CHILDREN)
		return NULL;
	struct child *c = rv_xcalloc(1, sizeof(*c));
	c->hash = h;
	for (size_t i = 0; i < f->nlabels; i++) {
		size_t len = strnlen(values[i], MAX_VALUE_LEN);
		c->values[i] = rv_xmalloc(len + 1);
		memcpy(c->values[i], values[i], len);
		c->values[i][len] = '\0';
	}
	if (f->type == RV_METRIC_HISTOGRAM)
		c->bucket_counts = rv_xcalloc(f->nbounds + 1, sizeof(uint64_t));
	if (f->last)
		f->last->next = c;
	else
		f->first = c;
	f->last = c;
	f->nchildren++;
	/*
	 * grow_table() rehashes every child on the list, this one included, so the new child is
	 * linked into the table by one path or the other, never both (that would make a cycle).
	 */
	if (f->nchildren > f->nslots * 2) {
		grow_table(f);
	} else {
		c->hnext = f->table[h & (f->nslots - 1)];
		f->table[h & (f->nslots - 1)] = c;
	}
	return c;
}

static int register_locked(const char *name, enum rv_metric_type type, const char *help,
                           const char *labels, const double *buckets, size_t nbuckets);

static void count_error_locked(void)
{
	struct family *f = find_family("rv_metrics_errors_total");
	if (f && f->first)
		f->first->value += 1;
}

/* The families every process exports; created on first use and again after a reset. */
static void ensure_builtin_locked(void)
{
	if (builtin_ready)
		return;
	builtin_ready = 1;
	register_locked("rv_metrics_errors_total", RV_METRIC_COUNTER,
	                "Metric updates dropped: unknown family, wrong label count or type, or too "
	                "many label combinations.",
	                NULL, NULL, 0);
	register_locked("rv_build_info", RV_METRIC_GAUGE,
	                "Version and commit of the running binary (always 1).", "version,commit",
	                NULL, 0);
	struct family *f = find_family("rv_build_info");
	const char *vals[] = {RV_VERSION, RV_GIT_COMMIT};
	struct child *c = f ? get_child(f, vals) : NULL;
	if (c)
		c->value = 1;
	register_locked("rv_process_start_time_seconds", RV_METRIC_GAUGE,
	                "Start time of the process since the Unix epoch in seconds.", NULL, NULL,
	                0);
	f = find_family("rv_process_start_time_seconds");
	if (f && f->first)
		f->first->value = process_start;
}

static int register_locked(const char *name, enum rv_metric_type type, const char *help,
                           const char *labels, const double *buckets, size_t nbuckets)
{
	struct family *f = find_family(name);
	if (f)
		return f->type == type ? 0 : -EINVAL;
	if (!valid_name(name, 1) || nfamilies >= MAX_FAMILIES)
		return -EINVAL;
	if (type == RV_METRIC_HISTOGRAM && !buckets) {
		buckets = default_buckets;
		nbuckets = RV_ARRAY_LEN(default_buckets);
	}
	if (type == RV_METRIC_HISTOGRAM && (nbuckets > MAX_BUCKETS))
		return -EINVAL;
	for (size_t i = 0; type == RV_METRIC_HISTOGRAM && i < nbuckets; i++) {
		if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
			return -EINVAL;
	}

	f = rv_xcalloc(1, sizeof(*f));
	int err = 0;
	if (labels && *labels) {
		const char *p = labels;
		for (;;) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			if (f->nlabels >= MAX_LABELS || len == 0 || len > 64) {
				err = -EINVAL;
				goto out;
			}
			char *l = rv_xmalloc(len + 1);
			memcpy(l, p, len);
			l[len] = '\0';
			f->labels[f->nlabels++] = l;
			if (!valid_name(l, 0) || strncmp(l, "__", 2) == 0 ||
			    (type == RV_METRIC_HISTOGRAM && strcmp(l, "le") == 0)) {
				err = -EINVAL;
				goto out;
			}
			for (size_t j = 0; j + 1 < f->nlabels; j++) {
				if (strcmp(f->labels[j], l) == 0) {
					err = -EINVAL;
					goto out;
				}
			}
			if (!end)
				break;
			p = end + 1;
		}
	}
	f->name = rv_xstrdup(name);
	f->help = rv_xstrdup(help ? help : "");
	f->type = type;
	if (type == RV_METRIC_HISTOGRAM) {
		f->nbounds = nbuckets;
		f->bounds = rv_xcalloc(nbuckets ? nbuckets : 1, sizeof(double));
		memcpy(f->bounds, buckets, nbuckets * sizeof(double));
	}
	f->nslots = 16;
	f->table = rv_xcalloc(f->nslots, sizeof(*f->table));
	/* A family without labels has exactly one series; show it (as 0) from the start. */
	if (f->nlabels == 0)
		get_child(f, NULL);
	families[nfamilies++] = f;
	f = NULL;
out:
	if (f)
		family_free(f);
	return err;
}

int rv_metrics_register(const char *name, enum rv_metric_type type, const char *help,
                        const char *labels, const double *buckets, size_t nbuckets)
{
	pthread_mutex_lock(&mu);
	ensure_builtin_locked();
	int err = register_locked(name, type, help, labels, buckets, nbuckets);
	pthread_mutex_unlock(&mu);
	return err;
}

enum op { OP_INC, OP_SET, OP_OBSERVE };

static void update(const char *name, enum op op, double v, va_list ap)
{
	const char *values[MAX_LABELS + 1];
	size_t n = 0;
	const char *s;
	while ((s = va_arg(ap, const char *)) != NULL) {
		if (n < MAX_LABELS + 1)
			values[n] = s;
		n++;
	}

	pthread_mutex_lock(&mu);
	ensure_builtin_locked();
	struct family *f = name ? find_family(name) : NULL;
	struct child *c = NULL;
	int ok = f && n == f->nlabels;
	if (ok) {
		switch (op) {
		case OP_INC:
			ok = f->type == RV_METRIC_GAUGE || (f->type == RV_METRIC_COUNTER && v >= 0);
			break;
		case OP_SET:
			ok = f->type == RV_METRIC_GAUGE;
			break;
		case OP_OBSERVE:
			ok = f->type == RV_METRIC_HISTOGRAM;
			break;
		}
	}
	if (ok)
		c = get_child(f, values);
	if (!c) {
		count_error_locked();
		goto out;
	}
	switch (op) {
	case OP_INC:
		c->value += v;
		break;
	case OP_SET:
		c->value = v;
		break;
	case OP_OBSERVE: {
		size_t i = 0;
		while (i < f->nbounds && !(v <= f->bounds[i]))
			i++;
		c->bucket_counts[i]++;
		c->sum += v;
		c->count++;
		break;
	}
	}
out:
	pthread_mutex_unlock(&mu);
}

void rv_metrics_inc(const char *name, double by, ...)
{
	va_list ap;
	va_start(ap, by);
	update(name, OP_INC, by, ap);
	va_end(ap);
}

void rv_metrics_set(const char *name, double value, ...)
{
	va_list ap;
	va_start(ap, value);
	update(name, OP_SET, value, ap);
	va_end(ap);
}

void rv_metrics_observe(const char *name, double value, ...)
{
	va_list ap;
	va_start(ap, value);
	update(name, OP_OBSERVE, value, ap);
	va_end(ap);
}

/* A growable output buffer; `failed` latches on the first allocation failure. */
struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* Prometheus float syntax: the shortest text that reads back to the same double. */
static void fmt_double(char *tmp, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(tmp, len, "NaN");
	} else if (isinf(v)) {
		snprintf(tmp, len, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(tmp, len, "%.0f", v);
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(tmp, len, "%.*g", prec, v);
			if (strtod(tmp, NULL) == v)
				break;
		}
	}
}

static void put_double(struct buf *b, double v)
{
	char tmp[40];
	fmt_double(tmp, sizeof(tmp), v);
	puts_(b, tmp);
}

static void put_u64(struct buf *b, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	put(b, tmp, (size_t)n);
}

/* Label values escape backslash, double quote and newline; HELP text escapes all but quotes. */
static void put_escaped(struct buf *b, const char *s, int quote)
{
	const char *run = s;
	for (; *s; s++) {
		const char *rep = NULL;
		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (quote && *s == '"')
			rep = "\\\"";
		if (!rep)
			continue;
		put(b, run, (size_t)(s - run));
		puts_(b, rep);
		run = s + 1;
	}
	put(b, run, (size_t)(s - run));
}

/* `{a="x",b="y"` plus an optional extra label, closed with `}`; nothing when there are none. */
static void put_labels(struct buf *b, const struct family *f, const struct child *c,
                       const char *extra_name, const char *extra_value)
{
	if (f->nlabels == 0 && !extra_name)
		return;
	puts_(b, "{");
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i)
			puts_(b, ",");
		puts_(b, f->labels[i]);
		puts_(b, "=\"");
		put_escaped(b, c->values[i], 1);
		puts_(b, "\"");
	}
	if (extra_name) {
		if (f->nlabels)
			puts_(b, ",");
		puts_(b, extra_name);
		puts_(b, "=\"");
		puts_(b, extra_value);
		puts_(b, "\"");
	}
	puts_(b, "}");
}

static void render_family(struct buf *b, const struct family *f)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	puts_(b, "# HELP ");
	puts_(b, f->name);
	puts_(b, " ");
	put_escaped(b, f->help, 0);
	puts_(b, "\n# TYPE ");
	puts_(b, f->name);
	puts_(b, " ");
	puts_(b, type_names[f->type]);
	puts_(b, "\n");
	for (const struct child *c = f->first; c; c = c->next) {
		if (f->type != RV_METRIC_HISTOGRAM) {
			puts_(b, f->name);
			put_labels(b, f, c, NULL, NULL);
			puts_(b, " ");
			put_double(b, c->value);
			puts_(b, "\n");
			continue;
		}
		uint64_t cum = 0;
		for (size_t i = 0; i <= f->nbounds; i++) {
			char le[40];
			cum += c->bucket_counts[i];
			if (i < f->nbounds)
				fmt_double(le, sizeof(le), f->bounds[i]);
			else
				rv_strlcpy(le, "+Inf", sizeof(le));
			puts_(b, f->name);
			puts_(b, "_bucket");
			put_labels(b, f, c, "le", le);
			puts_(b, " ");
			put_u64(b, cum);
			puts_(b, "\n");
		}
		puts_(b, f->name);
		puts_(b, "_sum");
		put_labels(b, f, c, NULL, NULL);
		puts_(b, " ");
		put_double(b, c->sum);
		puts_(b, "\n");
		puts_(b, f->name);
		puts_(b, "_count");
		put_labels(b, f, c, NULL, NULL);
		puts_(b, " ");
		put_u64(b, c->count);
		puts_(b, "\n");
	}
}

int rv_metrics_render(char **out, size_t *len)
{
	struct buf b = {0};
	pthread_mutex_lock(&mu);
	ensure_builtin_locked();
	for (size_t i = 0; i < nfamilies; i++)
		render_family(&b, families[i]);
	pthread_mutex_unlock(&mu);
	if (b.failed || !b.p) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	if (len)
		*len = b.len;
	return 0;
}

void rv_metrics_reset(void)
{
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nfamilies; i++) {
		family_free(families[i]);
		families[i] = NULL;
	}
	nfamilies = 0;
	builtin_ready = 0;
	pthread_mutex_unlock(&mu);
}
