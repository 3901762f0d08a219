/*
 * The metrics registry and its Prometheus text output. The renderer's output is parsed back
 * with a strict little parser, so format slips (missing TYPE, bad escapes, unsorted buckets)
 * fail here rather than in a scraper.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "obs/metrics.h"

#define MAXS 256

struct sample {
	char name[128];
	int nlabels;
	char lname[8][64];
	char lvalue[8][256];
	double value;
};

struct parsed {
	struct sample s[MAXS];
	int n;
	char types[64][2][128]; /* family name, type */
	int ntypes;
	char error[128];
};

static const char *type_of(const struct parsed *p, const char *family)
{
	for (int i = 0; i < p->ntypes; i++)
		if (strcmp(p->types[i][0], family) == 0)
			return p->types[i][1];
	return NULL;
}

/* The family a sample line belongs to: histograms add _bucket, _sum and _count. */
static int sample_has_family(const struct parsed *p, const char *name)
{
	if (type_of(p, name))
		return 1;
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(name), k = strlen(suffixes[i]);
		if (n > k && strcmp(name + n - k, suffixes[i]) == 0) {
			char fam[128];
			snprintf(fam, sizeof(fam), "%.*s", (int)(n - k), name);
			const char *t = type_of(p, fam);
			if (t && strcmp(t, "histogram") == 0)
				return 1;
		}
	}
	return 0;
}

/* Parse the exposition text; returns 0 or -1 with p->error set. */
static int parse(const char *text, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	const char *line = text;
	while (*line) {
		const char *eol = strchr(line, '\n');
		if (!eol) {
			snprintf(p->error, sizeof(p->error), "last line has no newline");
			return -1;
		}
		if (strncmp(line, "# HELP ", 7) == 0) {
			/* HELP text may hold only escaped backslashes and newlines. */
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			char fam[128], type[32];
			if (sscanf(line + 7, "%127s %31s", fam, type) != 2 || p->ntypes >= 64) {
				snprintf(p->error, sizeof(p->error), "bad TYPE line");
				return -1;
			}
			snprintf(p->types[p->ntypes][0], 128, "%s", fam);
			snprintf(p->types[p->ntypes][1], 128, "%s", type);
			p->ntypes++;
		} else {
			struct sample *s = &p->s[p->n];
			if (p->n >= MAXS)
				return -1;
			memset(s, 0, sizeof(*s));
			const char *c = line;
			size_t k = 0;
			while (c < eol && *c != '{' && *c != ' ' && k + 1 < sizeof(s->name))
				s->name[k++] = *c++;
			if (*c == '{') {
				c++;
				while (*c != '}') {
					if (s->nlabels >= 8)
						return -1;
					k = 0;
					while (c < eol && *c != '=' && k + 1 < 64)
						s->lname[s->nlabels][k++] = *c++;
					if (c[0] != '=' || c[1] != '"') {
						snprintf(p->error, sizeof(p->error),
						         "bad label in %.40s", line);
						return -1;
					}
					c += 2;
					k = 0;
					while (c < eol && *c != '"') {
						char ch = *c++;
						if (ch == '\\') {
							ch = *c++;
							if (ch == 'n')
								ch = '\n';
							else if (ch != '\\' && ch != '"') {
								snprintf(p->error, sizeof(p->error),
								         "bad escape");
								return -1;
							}
						}
						if (k + 1 < 256)
							s->lvalue[s->nlabels][k++] = ch;
					}
					if (*c != '"') {
						snprintf(p->error, sizeof(p->error),
						         "unterminated");
						return -1;
					}
					c++;
					s->nlabels++;
					if (*c == ',')
						c++;
					else if (*c != '}')
						return -1;
				}
				c++;
			}
			if (*c != ' ') {
				snprintf(p->error, sizeof(p->error), "no space before value");
				return -1;
			}
			char *end;
			s->value = strtod(c + 1, &end);
			if (end != eol) {
				snprintf(p->error, sizeof(p->error), "junk after value: %.40s",
				         line);
				return -1;
			}
			if (!sample_has_family(p, s->name)) {
				snprintf(p->error, sizeof(p->error), "sample %s before its TYPE",
				         s->name);
				return -1;
			}
			p->n++;
		}
		line = eol + 1;
	}
	return 0;
}

static const struct sample *find(const struct parsed *p, const char *name, const char *l1,
                                 const char *v1)
{
	for (int i = 0; i < p->n; i++) {
		if (strcmp(p->s[i].name, name) != 0)
			continue;
		if (!l1)
			return &p->s[i];
		for (int k = 0; k < p->s[i].nlabels; k++)
			if (strcmp(p->s[i].lname[k], l1) == 0 && strcmp(p->s[i].lvalue[k], v1) == 0)
				return &p->s[i];
	}
	return NULL;
}

static char *render(void)
{
	char *text = NULL;
	size_t len = 0;
	if (rv_metrics_render(&text, &len) != 0)
		return NULL;
	if (strlen(text) != len) {
		free(text);
		return NULL;
	}
	return text;
}

static struct parsed P;

RV_TEST(metrics_counter_exact_text)
{
	rv_metrics_reset();
	ASSERT_OK(rv_metrics_register("rv_test_jobs_total", RV_METRIC_COUNTER, "Jobs done.",
	                              "kind,result", NULL, 0));
	rv_metrics_inc("rv_test_jobs_total", 1, "import", "ok", NULL);
	rv_metrics_inc("rv_test_jobs_total", 2, "import", "ok", NULL);
	rv_metrics_inc("rv_test_jobs_total", 0.5, "export", "failed", NULL);
	char *text = render();
	ASSERT(text);
	const char *want = "# HELP rv_test_jobs_total Jobs done.\n"
	                   "# TYPE rv_test_jobs_total counter\n"
	                   "rv_test_jobs_total{kind=\"import\",result=\"ok\"} 3\n"
	                   "rv_test_jobs_total{kind=\"export\",result=\"failed\"} 0.5\n";
	ASSERT_MSG(strstr(text, want) != NULL, "rendered:\n%s", text);
	int rc = parse(text, &P);
	free(text);
	ASSERT_MSG(rc == 0, "%s", P.error);
	rv_metrics_reset();
}

RV_TEST(metrics_label_values_escaped)
{
	rv_metrics_reset();
	ASSERT_OK(rv_metrics_register("rv_test_paths", RV_METRIC_GAUGE,
	                              "Help with \\ and\nnewline.", "path", NULL, 0));
	rv_metrics_set("rv_test_paths", 7, "a\\b\"c\nd", NULL);
	char *text = render();
	ASSERT(text);
	ASSERT_MSG(strstr(text, "rv_test_paths{path=\"a\\\\b\\\"c\\nd\"} 7\n"), "%s", text);
	ASSERT_MSG(strstr(text, "# HELP rv_test_paths Help with \\\\ and\\nnewline.\n"), "%s",
	           text);
	int rc = parse(text, &P);
	free(text);
	ASSERT_MSG(rc == 0, "%s", P.error);
	const struct sample *s = find(&P, "rv_test_paths", NULL, NULL);
	ASSERT(s);
	ASSERT_EQ_STR(s->lvalue[0], "a\\b\"c\nd");
	ASSERT(s->value == 7);
	rv_metrics_reset();
}

RV_TEST(metrics_histogram_cumulative)
{
	static const double b[] = {0.1, 1, 2.5};
	rv_metrics_reset();
	ASSERT_OK(rv_metrics_register("rv_test_latency_seconds", RV_METRIC_HISTOGRAM, "Latency.",
	                              "op", b, 3));
	const double obs[] = {0.05, 0.1, 0.5, 2, 7};
	for (size_t i = 0; i < 5; i++)
		rv_metrics_observe("rv_test_latency_seconds", obs[i], "dial", NULL);
	char *text = render();
	ASSERT(text);
	const char *want = "# TYPE rv_test_latency_seconds histogram\n"
	                   "rv_test_latency_seconds_bucket{op=\"dial\",le=\"0.1\"} 2\n"
	                   "rv_test_latency_seconds_bucket{op=\"dial\",le=\"1\"} 3\n"
	                   "rv_test_latency_seconds_bucket{op=\"dial\",le=\"2.5\"} 4\n"
	                   "rv_test_latency_seconds_bucket{op=\"dial\",le=\"+Inf\"} 5\n"
	                   "rv_test_latency_seconds_sum{op=\"dial\"} 9.65\n"
	                   "rv_test_latency_seconds_count{op=\"dial\"} 5\n";
	ASSERT_MSG(strstr(text, want) != NULL, "rendered:\n%s", text);
	int rc = parse(text, &P);
	free(text);
	ASSERT_MSG(rc == 0, "%s", P.error);
	rv_metrics_reset();
}

RV_TEST(metrics_default_buckets)
{
	rv_metrics_reset();
	ASSERT_OK(
	    rv_metrics_register("rv_test_d_seconds", RV_METRIC_HISTOGRAM, "D.", NULL, NULL, 0));
	rv_metrics_observe("rv_test_d_seconds", 0.003, NULL);
	char *text = render();
	ASSERT(text);
	int rc = parse(text, &P);
	free(text);
	ASSERT_MSG(rc == 0, "%s", P.error);
	static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
	                                  "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
	                                  "1",      "2.5",   "5",      "10",    "+Inf"};
	int k = 0;
	double prev = -1;
	for (int i = 0; i < P.n; i++) {
		if (strcmp(P.s[i].name, "rv_test_d_seconds_bucket") != 0)
			continue;
		ASSERT(k < 15);
		ASSERT_EQ_STR(P.s[i].lname[0], "le");
		ASSERT_EQ_STR(P.s[i].lvalue[0], les[k]);
		ASSERT(P.s[i].value >= prev);
		ASSERT_EQ_INT((long)P.s[i].value, k < 3 ? 0 : 1);
		prev = P.s[i].value;
		k++;
	}
	ASSERT_EQ_INT(k, 15);
	const struct sample *s = find(&P, "rv_test_d_seconds_count", NULL, NULL);
	ASSERT(s && s->value == 1);
	rv_metrics_reset();
}

RV_TEST(metrics_errors_and_validation)
{
	rv_metrics_reset();
	ASSERT_EQ_INT(rv_metrics_register("9bad", RV_METRIC_COUNTER, "x", NULL, NULL, 0), -EINVAL);
	ASSERT_EQ_INT(rv_metrics_register("rv_ok", RV_METRIC_COUNTER, "x", "a,a", NULL, 0),
	              -EINVAL);
	ASSERT_EQ_INT(rv_metrics_register("rv_ok", RV_METRIC_COUNTER, "x", "bad-label", NULL, 0),
	              -EINVAL);
	ASSERT_EQ_INT(rv_metrics_register("rv_h", RV_METRIC_HISTOGRAM, "x", "le", NULL, 0),
	              -EINVAL);
	static const double desc[] = {1, 0.5};
	ASSERT_EQ_INT(rv_metrics_register("rv_h", RV_METRIC_HISTOGRAM, "x", NULL, desc, 2),
	              -EINVAL);
	ASSERT_OK(rv_metrics_register("rv_ok", RV_METRIC_COUNTER, "x", "a", NULL, 0));
	ASSERT_OK(rv_metrics_register("rv_ok", RV_METRIC_COUNTER, "x", "a", NULL, 0));
	ASSERT_EQ_INT(rv_metrics_register("rv_ok", RV_METRIC_GAUGE, "x", "a", NULL, 0), -EINVAL);

	rv_metrics_inc("rv_nope_total", 1, NULL);       /* unknown family */
	rv_metrics_inc("rv_ok", 1, "v", "extra", NULL); /* too many label values */
	rv_metrics_inc("rv_ok", -1, "v", NULL);         /* counters never go down */
	rv_metrics_set("rv_ok", 3, "v", NULL);          /* set is for gauges */
	rv_metrics_inc("rv_ok", 1, "v", NULL);          /* fine */
	char *text = render();
	ASSERT(text);
	int rc = parse(text, &P);
	free(text);
	ASSERT_MSG(rc == 0, "%s", P.error);
	const struct sample *e = find(&P, "rv_metrics_errors_total", NULL, NULL);
	ASSERT(e);
	ASSERT(e->value == 4);
	const struct sample *ok = find(&P, "rv_ok", "a", "v");
	ASSERT(ok && ok->value == 1);
	ASSERT(!find(&P, "rv_nope_total", NULL, NULL));
	rv_metrics_reset();
}

RV_TEST(metrics_builtin_families)
{
	rv_metrics_reset();
	char *text = render();
	ASSERT(text);
	int rc = parse(text, &P);
	free(text);
	ASSERT_MSG(rc == 0, "%s", P.error);
	const struct sample *b = find(&P, "rv_build_info", "version", RV_VERSION);
	ASSERT(b);
	ASSERT(b->value == 1);
	ASSERT_EQ_STR(b->lname[1], "commit");
	/*
	 * Not compared with RV_GIT_COMMIT: an incremental build after a commit leaves metrics.o
	 * and this file compiled against different HEADs. The shape is what matters here.
	 */
	ASSERT(b->lvalue[1][0] != '\0');
	ASSERT(strspn(b->lvalue[1], "0123456789abcdef") == strlen(b->lvalue[1]) ||
	       strcmp(b->lvalue[1], "unknown") == 0);
	ASSERT_EQ_STR(type_of(&P, "rv_build_info"), "gauge");
	const struct sample *st = find(&P, "rv_process_start_time_seconds", NULL, NULL);
	ASSERT(st);
	ASSERT(st->value > 1.6e9 && st->value < 4.1e9);
	rv_metrics_reset();
}

RV_TEST(metrics_float_formatting)
{
	rv_metrics_reset();
	ASSERT_OK(rv_metrics_register("rv_test_g", RV_METRIC_GAUGE, "G.", "k", NULL, 0));
	rv_metrics_set("rv_test_g", 0.1, "a", NULL);
	rv_metrics_set("rv_test_g", -2, "b", NULL);
	rv_metrics_set("rv_test_g", INFINITY, "c", NULL);
	rv_metrics_set("rv_test_g", 1e20, "d", NULL);
	rv_metrics_set("rv_test_g", NAN, "e", NULL);
	char *text = render();
	ASSERT(text);
	ASSERT_MSG(strstr(text, "rv_test_g{k=\"a\"} 0.1\n"), "%s", text);
	ASSERT_MSG(strstr(text, "rv_test_g{k=\"b\"} -2\n"), "%s", text);
	ASSERT_MSG(strstr(text, "rv_test_g{k=\"c\"} +Inf\n"), "%s", text);
	ASSERT_MSG(strstr(text, "rv_test_g{k=\"d\"} 1e+20\n"), "%s", text);
	ASSERT_MSG(strstr(text, "rv_test_g{k=\"e\"} NaN\n"), "%s", text);
	free(text);
	rv_metrics_reset();
}

RV_TEST(metrics_many_children)
{
	char v[32];
	rv_metrics_reset();
	ASSERT_OK(
	    rv_metrics_register("rv_test_many_total", RV_METRIC_COUNTER, "Many.", "id", NULL, 0));
	/* Enough series to grow the family's hash table several times over. */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3000; i++) {
			snprintf(v, sizeof(v), "%d", i);
			rv_metrics_inc("rv_test_many_total", (double)(i + 1), v, NULL);
		}
	}
	char *text = render();
	ASSERT(text);
	int n = 0, wrong = 0;
	for (const char *p = text; (p = strstr(p, "\nrv_test_many_total{id=\"")) != NULL; p++) {
		int id;
		double val;
		if (sscanf(p, "\nrv_test_many_total{id=\"%d\"} %lf", &id, &val) != 2 ||
		    val != 2.0 * (id + 1))
			wrong++;
		n++;
	}
	free(text);
	ASSERT_EQ_INT(n, 3000);
	ASSERT_EQ_INT(wrong, 0);
	rv_metrics_reset();
}

RV_TEST(metrics_children_capped)
{
	char v[32];
	rv_metrics_reset();
	ASSERT_OK(
	    rv_metrics_register("rv_test_cap_total", RV_METRIC_COUNTER, "Cap.", "id", NULL, 0));
	for (int i = 0; i < 10050; i++) {
		snprintf(v, sizeof(v), "%d", i);
		rv_metrics_inc("rv_test_cap_total", 1, v, NULL);
	}
	char *text = render();
	ASSERT(text);
	const char *e = strstr(text, "\nrv_metrics_errors_total ");
	ASSERT(e);
	ASSERT_EQ_INT(strtol(e + strlen("\nrv_metrics_errors_total "), NULL, 10), 50);
	ASSERT(strstr(text, "rv_test_cap_total{id=\"9999\"} 1\n"));
	ASSERT(!strstr(text, "rv_test_cap_total{id=\"10000\"}"));
	free(text);
	rv_metrics_reset();
}

/* A value past the stored length must still find the child it made, not add one per update. */
RV_TEST(metrics_long_label_value_one_series)
{
	char v[400];
	memset(v, 'a', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	rv_metrics_reset();
	ASSERT_OK(
	    rv_metrics_register("rv_test_long_total", RV_METRIC_COUNTER, "Long.", "v", NULL, 0));
	for (int i = 0; i < 5; i++)
		rv_metrics_inc("rv_test_long_total", 1, v, NULL);
	char *text = render();
	ASSERT(text);
	int series = 0;
	for (const char *p = text; (p = strstr(p, "\nrv_test_long_total{")) != NULL; p++)
		series++;
	const char *e = strstr(text, "\nrv_test_long_total{");
	const char *val = e ? strstr(e, "} ") : NULL;
	long count = val ? strtol(val + 2, NULL, 10) : -1;
	free(text);
	ASSERT_EQ_INT(series, 1);
	ASSERT_EQ_INT(count, 5);
	rv_metrics_reset();
}
