/*
 * JSON library benchmark: jansson vs libre's odict JSON.
 *
 *   json_bench run jansson|re N   parse + serialise two API bodies N times
 *   json_bench checks             how each library treats awkward input
 *
 * The bodies are a campaign object (25 top-level fields, a few nested) and a
 * page of 500 leads, both built here with snprintf so that neither library
 * is involved in making the input. "parse" is text -> tree -> freed tree;
 * "serialise" is tree -> compact text -> freed text; figures are the median
 * of five rounds, in thread CPU time. Each library runs in its own process so ru_maxrss (peak
 * RSS) is not shared.
 *
 * jansson.h and libre's re_json.h cannot share a translation unit: both
 * declare the enumerators JSON_STRING and JSON_NULL. The libre side
 * therefore lives in json_bench_re.c behind json_bench_re.h.
 */
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <sys/resource.h>

#include "bench_common.h"
#include "json_bench_re.h"

#define RV_LEADS 500

struct rv_buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct rv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_add(struct rv_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 1;
		b->p = realloc(b->p, b->cap);
		if (!b->p) {
			fprintf(stderr, "json_bench: out of memory\n");
			abort();
		}
	}
	b->len += (size_t)n;
}

static char *make_campaign(size_t *len)
{
	struct rv_buf b = {malloc(256), 0, 256};

	buf_add(&b, "{\"id\":\"cmp_42\",\"name\":\"Rappel de rendez-vous \\u2014 "
	            "caf\xc3\xa9 Z\xc3\xbcrich\",\"status\":\"running\","
	            "\"flow_id\":\"flow_7\",\"voice\":{\"provider\":\"espeak-ng\","
	            "\"voice_id\":\"fr\",\"rate\":1.05},");
	buf_add(&b, "\"calling_window\":{\"start\":\"09:00\",\"end\":\"18:30\","
	            "\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"]},"
	            "\"timezone\":\"Europe/Zurich\",\"pacing_per_min\":12,"
	            "\"max_concurrent\":8,\"retry\":{\"max_attempts\":3,"
	            "\"backoff_min\":90,\"on\":[\"no_answer\",\"busy\"]},");
	buf_add(&b, "\"caller_id\":\"+41445550100\",\"amd_policy\":\"hangup\","
	            "\"recording_policy\":\"consent\",\"consent_required\":true,"
	            "\"created_at\":\"2024-04-30T08:00:00Z\","
	            "\"updated_at\":\"2024-05-01T14:03:11Z\","
	            "\"owner_id\":\"usr_3\",\"tags\":[\"q2\",\"reminders\",\"fr\"],");
	buf_add(&b, "\"description\":\"Reminds patients of tomorrow's "
	            "appointment and offers to reschedule.\","
	            "\"budget_microcents\":9007199254740993,"
	            "\"webhook_url\":\"https://crm.example.com/hooks/revovoice\","
	            "\"locale\":\"fr-CH\",\"stt_engine\":\"pocketsphinx\","
	            "\"tts_engine\":\"espeak-ng\",\"llm\":{\"model\":\"local\","
	            "\"temperature\":0.3},\"dnc_check\":true,\"notes\":null}");
	*len = b.len;
	return b.p;
}

static char *make_leads(size_t *len)
{
	struct rv_buf b = {malloc(65536), 0, 65536};
	int i;

	buf_add(&b, "{\"items\":[");
	for (i = 0; i < RV_LEADS; i++) {
		buf_add(&b,
		        "%s{\"id\":\"ld_%05d\",\"phone\":\"+1415555%04d\","
		        "\"name\":\"Lead %d M\xc3\xbcller\","
		        "\"timezone\":\"America/Los_Angeles\","
		        "\"status\":\"%s\",\"attempts\":%d,"
		        "\"next_attempt_at\":\"2024-05-02T16:%02d:00Z\","
		        "\"custom_fields\":{\"company\":\"Acme %d\","
		        "\"plan\":\"gold\",\"score\":0.%02d},"
		        "\"consent\":true,\"last_disposition\":null}",
		        i ? "," : "", i, i, i, (i % 3) ? "pending" : "callback", i % 4, i % 60, i,
		        i % 100);
	}
	buf_add(&b, "],\"total\":%d,\"next_cursor\":\"ld_%05d\"}", RV_LEADS, RV_LEADS);
	*len = b.len;
	return b.p;
}

/* One library behind four calls, so the timing loop is shared. */
struct rv_jlib {
	const char *name;
	void *(*parse)(const char *s, size_t len);
	char *(*dump)(void *tree);
	void (*free_tree)(void *tree);
	void (*free_text)(char *s);
};

static void *jansson_parse(const char *s, size_t len)
{
	json_error_t err;

	return json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);
}

static char *jansson_dump(void *tree)
{
	return json_dumps(tree, JSON_COMPACT);
}

static void jansson_free_tree(void *tree)
{
	json_decref(tree);
}

static void jansson_free_text(char *s)
{
	free(s);
}

static const struct rv_jlib libs[] = {
    {"jansson", jansson_parse, jansson_dump, jansson_free_tree, jansson_free_text},
    {"re", rvb_re_parse, rvb_re_dump, rvb_re_free, rvb_re_free_text},
};

static long peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Does the library's compact output mean the same as the input? jansson is
 * the referee here (it is the stricter parser, see "checks"). */
static const char *round_trip(const char *in, size_t len, const char *out)
{
	json_t *a = json_loadb(in, len, 0, NULL), *b = json_loads(out, 0, NULL);
	const char *res = !b ? "output not valid JSON" : json_equal(a, b) ? "equal" : "DIFFERS";

	json_decref(a);
	json_decref(b);
	return res;
}

#define RV_ROUNDS 5

/* CPU time of this thread, not wall time: the benchmark machine is shared
 * and preemption would otherwise count against whichever library ran then. */
static uint64_t cpu_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median over RV_ROUNDS rounds of n operations, in µs per operation: the
 * machine is shared, so one slow round should not decide the figure. */
static double median_us(const double *v)
{
	double s[RV_ROUNDS];

	memcpy(s, v, sizeof(s));
	qsort(s, RV_ROUNDS, sizeof(s[0]), cmp_double);
	return s[RV_ROUNDS / 2];
}

static int bench_doc(const struct rv_jlib *lib, const char *docname, const char *text, size_t len,
                     unsigned n)
{
	double parse_us[RV_ROUNDS], dump_us[RV_ROUNDS];
	size_t used_before, used_after, outlen = 0;
	struct mallinfo2 mi;
	uint64_t t0;
	void *tree;
	char *out;
	unsigned i, r;

	/* Warm up and check once. */
	tree = lib->parse(text, len);
	if (!tree) {
		printf("%s %s: parse failed\n", lib->name, docname);
		return -1;
	}
	out = lib->dump(tree);
	if (!out) {
		printf("%s %s: serialise failed\n", lib->name, docname);
		return -1;
	}
	printf("%s %s: input %zu bytes, output %zu bytes, round trip %s\n", lib->name, docname, len,
	       strlen(out), round_trip(text, len, out));
	lib->free_text(out);
	lib->free_tree(tree);

	for (r = 0; r < RV_ROUNDS; r++) {
		t0 = cpu_now_us();
		for (i = 0; i < n; i++) {
			tree = lib->parse(text, len);
			lib->free_tree(tree);
		}
		parse_us[r] = (double)(cpu_now_us() - t0) / n;
	}

	/* Heap held by one parsed tree (glibc's count of bytes in use). */
	mi = mallinfo2();
	used_before = mi.uordblks;
	tree = lib->parse(text, len);
	mi = mallinfo2();
	used_after = mi.uordblks;

	for (r = 0; r < RV_ROUNDS; r++) {
		t0 = cpu_now_us();
		for (i = 0; i < n; i++) {
			out = lib->dump(tree);
			outlen += strlen(out);
			lib->free_text(out);
		}
		dump_us[r] = (double)(cpu_now_us() - t0) / n;
	}
	lib->free_tree(tree);

	printf("RESULT lib=%s doc=%s n=%ux%d parse_us=%.2f serialise_us=%.2f "
	       "tree_heap_kib=%.1f\n",
	       lib->name, docname, n, RV_ROUNDS, median_us(parse_us), median_us(dump_us),
	       (double)(used_after - used_before) / 1024.0);
	return outlen ? 0 : -1;
}

static int cmd_run(const char *libname, unsigned n)
{
	const struct rv_jlib *lib = NULL;
	char *campaign, *leads;
	size_t clen, llen;
	long rss0;
	size_t i;
	int err = 0;

	for (i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
		if (!strcmp(libs[i].name, libname))
			lib = &libs[i];
	if (!lib) {
		fprintf(stderr, "json_bench: unknown library %s\n", libname);
		return 2;
	}
	campaign = make_campaign(&clen);
	leads = make_leads(&llen);
	rss0 = peak_rss_kib();
	err |= bench_doc(lib, "campaign", campaign, clen, n * 20);
	err |= bench_doc(lib, "leads500", leads, llen, n);
	printf("RESULT lib=%s peak_rss_kib=%ld before_bench_kib=%ld\n", lib->name, peak_rss_kib(),
	       rss0);
	free(campaign);
	free(leads);
	return err ? 1 : 0;
}

/* Awkward inputs an API will see. Each line: what jansson and libre do. */
static const struct {
	const char *what, *text;
} cases[] = {
    {"duplicate key", "{\"a\":1,\"a\":2}"},
    {"syntax error (double comma)", "{\"a\":1,,\"b\":2}"},
    {"syntax error on line 3", "{\n\"a\": 1,\n\"b\": tru\n}"},
    {"trailing garbage", "{\"a\":1} x"},
    {"int64 max", "{\"a\":9223372036854775807}"},
    {"int64 overflow", "{\"a\":9223372036854775808}"},
    {"2^53+1", "{\"a\":9007199254740993}"},
    {"huge exponent", "{\"a\":1e400}"},
    {"leading zero", "{\"a\":01}"},
    {"leading plus", "{\"a\":+1}"},
    {"TRUE in capitals", "{\"a\":TRUE}"},
    {"invalid UTF-8 byte", "{\"a\":\"\xff\"}"},
    {"lone surrogate escape", "{\"a\":\"\\ud800\"}"},
    {"escaped NUL", "{\"a\":\"x\\u0000y\"}"},
    {"unterminated object", "{\"a\":1"},
    {"bare word", "{\"a\":hello}"},
};

static void show_jansson_value(json_t *root)
{
	json_t *a = json_object_get(root, "a");

	if (json_is_integer(a))
		printf("accepted, int %lld", (long long)json_integer_value(a));
	else if (json_is_real(a))
		printf("accepted, double %g", json_real_value(a));
	else if (json_is_boolean(a))
		printf("accepted, bool %d", json_is_true(a));
	else if (json_is_string(a))
		printf("accepted, string of %zu bytes", json_string_length(a));
	else
		printf("accepted");
}

static int cmd_checks(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *j;

		printf("%-28s | jansson: ", cases[i].what);
		j = json_loads(cases[i].text, JSON_REJECT_DUPLICATES, &jerr);
		if (j)
			show_jansson_value(j);
		else
			printf("rejected (line %d col %d: %s)", jerr.line, jerr.column, jerr.text);
		json_decref(j);

		printf(" | re: ");
		rvb_re_check(cases[i].text);
		printf("\n");
	}
	return 0;
}

int main(int argc, char **argv)
{
	int ret;

	if (rvb_re_init())
		return 1;
	if (argc == 4 && !strcmp(argv[1], "run"))
		ret = cmd_run(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
	else if (argc == 2 && !strcmp(argv[1], "checks"))
		ret = cmd_checks();
	else {
		fprintf(stderr, "usage: json_bench run jansson|re N | checks\n");
		ret = 2;
	}
	rvb_re_close();
	return ret;
}
