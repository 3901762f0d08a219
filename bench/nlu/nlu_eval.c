/*
 * NLU benchmark: intent accuracy, macro-F1, out-of-scope precision/recall and entity
 * precision/recall/F1 (type + value exact; yes/no not scored) on a labelled set of caller
 * utterances (bench/nlu/eval.tsv), with the time the understanding takes per utterance.
 *
 *   nlu_eval EVAL.tsv [--model MODEL.bin] [--out rows.tsv] [--errors]
 *   nlu_eval EVAL.tsv --audio DIR [--bias PHRASES.txt] [--general] [--voices "slt rms"] ...
 *
 * Text mode understands the written utterances. Audio mode reads DIR/index.tsv (file, voice,
 * item number) made by bench/nlu/run.sh: each utterance spoken by a synthetic voice and sent
 * through a G.711 mu-law round trip; the embedded STT (one session per voice, biased with the
 * phrases file unless --general) transcribes it in 20 ms frames and the transcript is
 * understood the same way. Prints one "key=value" summary line per voice (and "all").
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "media/media_pcm.h"
#include "nlu/entities.h"
#include "nlu/intent.h"
#include "speech/stt.h"

int rv_bench_nlu_audio_init(void);
void rv_bench_nlu_audio_close(void);
int rv_bench_nlu_audio_load(const char *path, int16_t **out, size_t *n);

#define MAX_ITEMS   2000
#define MAX_ENTS    8
#define MAX_PHRASES RV_STT_MAX_BIAS_PHRASES
/* Sunday 2026-11-22 10:00 in New York: what the set's relative dates are written against. */
#define NOW_MS 1795359600000LL
#define TZ     "America/New_York"

struct gold_ent {
	char type[16];
	char value[96];
	char unit[8];
};

struct item {
	char intent[RV_INTENT_MAX_LABEL];
	char text[512];
	struct gold_ent ents[MAX_ENTS];
	size_t nents;
	bool expect_name;
};

static struct item items[MAX_ITEMS];
static size_t nitems;

struct score {
	char voice[16];
	size_t n, right;
	size_t tp[RV_INTENT_MAX_LABELS], fp[RV_INTENT_MAX_LABELS], fn[RV_INTENT_MAX_LABELS];
	size_t etp, efp, efn;
	double ms_total, ms_max;
	double stt_cpu, audio_s;
};

static const char *const *labels;
static unsigned nlabels;

static int label_index(const char *l)
{
	for (unsigned i = 0; i < nlabels; i++)
		if (strcmp(labels[i], l) == 0)
			return (int)i;
	return -1;
}

static void load_items(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	long lineno = 0;
	if (!f) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		char *col[4] = {0}, *save = NULL;
		int nc = 0;
		for (char *t = strtok_r(line, "\t", &save); t && nc < 4;
		     t = strtok_r(NULL, "\t", &save))
			col[nc++] = t;
		if (nc < 3 || nitems == MAX_ITEMS) {
			fprintf(stderr, "%s:%ld: expected intent<TAB>text<TAB>entities\n", path,
			        lineno);
			exit(2);
		}
		struct item *it = &items[nitems];
		rv_strlcpy(it->intent, col[0], sizeof(it->intent));
		rv_strlcpy(it->text, col[1], sizeof(it->text));
		it->expect_name = col[3] && strstr(col[3], "name");
		json_error_t je;
		json_t *arr = json_loads(col[2], 0, &je);
		if (!json_is_array(arr) || json_array_size(arr) > MAX_ENTS) {
			fprintf(stderr, "%s:%ld: entities must be a JSON list: %s\n", path, lineno,
			        je.text);
			exit(2);
		}
		size_t i;
		json_t *e;
		json_array_foreach(arr, i, e)
		{
			const char *ty = json_string_value(json_object_get(e, "type"));
			const char *v = json_string_value(json_object_get(e, "value"));
			const char *u = json_string_value(json_object_get(e, "unit"));
			if (!ty || !v) {
				fprintf(stderr, "%s:%ld: an entity needs type and value\n", path,
				        lineno);
				exit(2);
			}
			rv_strlcpy(it->ents[i].type, ty, sizeof(it->ents[i].type));
			rv_strlcpy(it->ents[i].value, v, sizeof(it->ents[i].value));
			rv_strlcpy(it->ents[i].unit, u ? u : "", sizeof(it->ents[i].unit));
		}
		it->nents = json_array_size(arr);
		json_decref(arr);
		nitems++;
	}
	fclose(f);
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Understand one text (intent + entities, as /api/voice-ai/understand does) and score it. */
static void judge(const struct rv_intent_model *m, const struct item *it, const char *text,
                  struct score *sc, FILE *out, const char *voice)
{
	struct rv_intent_result r;
	struct rv_entity ents[RV_ENTITY_MAX];
	size_t n = 0;
	struct rv_entity_ctx ctx = {
	    .timezone = TZ, .now_ms = NOW_MS, .region = "US", .expect_name = it->expect_name};
	/* CPU time of this thread: other processes on a shared machine do not inflate it. */
	double t0 = cpu_now();
	rv_intent_classify(m, text, &r);
	if (rv_entities_extract(text, &ctx, ents, RV_ENTITY_MAX, &n) != 0)
		n = 0;
	double ms = (cpu_now() - t0) * 1e3;
	sc->ms_total += ms;
	if (ms > sc->ms_max)
		sc->ms_max = ms;
	sc->n++;
	int g = label_index(it->intent), p = label_index(r.intent);
	if (g < 0) {
		fprintf(stderr, "intent \"%s\" is not a label of the model\n", it->intent);
		exit(2);
	}
	if (g == p) {
		sc->right++;
		sc->tp[g]++;
	} else {
		sc->fn[g]++;
		if (p >= 0)
			sc->fp[p]++;
	}
	/* Entities: greedy one-to-one matching on (type, value, unit). */
	bool used[MAX_ENTS] = {false};
	size_t tp = 0, npred = 0;
	char got[512] = "";
	for (size_t i = 0; i < n; i++) {
		if (ents[i].type == RV_ENT_YESNO)
			continue;
		npred++;
		const char *ty = rv_entity_type_name(ents[i].type);
		const char *unit = ents[i].type == RV_ENT_MONEY ? ents[i].unit : "";
		size_t gl = strlen(got);
		snprintf(got + gl, sizeof(got) - gl, "%s%s=%s%s%s", gl ? " " : "", ty,
		         ents[i].value, *unit ? " " : "", unit);
		for (size_t j = 0; j < it->nents; j++) {
			if (!used[j] && strcmp(it->ents[j].type, ty) == 0 &&
			    strcmp(it->ents[j].value, ents[i].value) == 0 &&
			    strcmp(it->ents[j].unit, unit) == 0) {
				used[j] = true;
				tp++;
				break;
			}
		}
	}
	sc->etp += tp;
	sc->efp += npred - tp;
	sc->efn += it->nents - tp;
	if (out) {
		char want[512] = "";
		for (size_t j = 0; j < it->nents; j++) {
			size_t wl = strlen(want);
			snprintf(want + wl, sizeof(want) - wl, "%s%s=%s%s%s", wl ? " " : "",
			         it->ents[j].type, it->ents[j].value, *it->ents[j].unit ? " " : "",
			         it->ents[j].unit);
		}
		fprintf(out, "%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%.3f\n", voice,
		        g == p ? "ok" : "MISS", it->intent, r.confidence, r.intent, it->text, text,
		        want, got, ms);
	}
}

static double f1(size_t tp, size_t fp, size_t fn)
{
	return tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0;
}

static void report(const struct score *sc, const char *mode)
{
	double macro = 0;
	unsigned used = 0;
	int oos = label_index(RV_INTENT_OOS);
	for (unsigned c = 0; c < nlabels; c++) {
		if (sc->tp[c] + sc->fn[c] == 0)
			continue; /* macro-F1 over the intents the set contains */
		macro += f1(sc->tp[c], sc->fp[c], sc->fn[c]);
		used++;
	}
	double ep = sc->etp + sc->efp ? (double)sc->etp / (double)(sc->etp + sc->efp) : 0;
	double er = sc->etp + sc->efn ? (double)sc->etp / (double)(sc->etp + sc->efn) : 0;
	double oos_p = oos >= 0 && sc->tp[oos] + sc->fp[oos]
	                   ? (double)sc->tp[oos] / (double)(sc->tp[oos] + sc->fp[oos])
	                   : 0;
	double oos_r = oos >= 0 && sc->tp[oos] + sc->fn[oos]
	                   ? (double)sc->tp[oos] / (double)(sc->tp[oos] + sc->fn[oos])
	                   : 0;
	printf("mode=%s voice=%s n=%zu accuracy=%.3f macro_f1=%.3f oos_precision=%.3f "
	       "oos_recall=%.3f entity_precision=%.3f entity_recall=%.3f entity_f1=%.3f "
	       "entities=%zu ms_mean=%.3f ms_max=%.3f",
	       mode, sc->voice, sc->n, sc->n ? (double)sc->right / (double)sc->n : 0,
	       used ? macro / used : 0, oos_p, oos_r, ep, er, ep + er ? 2 * ep * er / (ep + er) : 0,
	       sc->etp + sc->efn, sc->n ? sc->ms_total / (double)sc->n : 0, sc->ms_max);
	if (sc->audio_s > 0)
		printf(" stt_rtf=%.3f stt_ms_mean=%.1f", sc->stt_cpu / sc->audio_s,
		       sc->stt_cpu * 1000 / (double)sc->n);
	printf("\n");
}

static void add(struct score *a, const struct score *b)
{
	a->n += b->n;
	a->right += b->right;
	for (unsigned c = 0; c < RV_INTENT_MAX_LABELS; c++) {
		a->tp[c] += b->tp[c];
		a->fp[c] += b->fp[c];
		a->fn[c] += b->fn[c];
	}
	a->etp += b->etp;
	a->efp += b->efp;
	a->efn += b->efn;
	a->ms_total += b->ms_total;
	if (b->ms_max > a->ms_max)
		a->ms_max = b->ms_max;
	a->stt_cpu += b->stt_cpu;
	a->audio_s += b->audio_s;
}

static size_t load_phrases(const char *path, char **ph)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t n = 0;
	if (!f) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof(line), f) && n < MAX_PHRASES) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] && line[0] != '#')
			ph[n++] = rv_xstrdup(line);
	}
	fclose(f);
	return n;
}

static int run_audio(const struct rv_intent_model *m, const char *dir, const char *bias_path,
                     bool general, const char *voices, FILE *out)
{
	struct rv_stt_config cfg = {.provider = "sphinx", .no_bias = general};
	struct rv_stt_engine *eng = NULL;
	char *ph[MAX_PHRASES];
	size_t nph = bias_path ? load_phrases(bias_path, ph) : 0;
	char path[4096], line[1024];
	struct {
		struct score sc;
		struct rv_stt_session *sess;
	} v[8];
	size_t nv = 0;
	int ret = 1;
	memset(v, 0, sizeof(v));
	if (rv_bench_nlu_audio_init() != 0 || rv_stt_engine_new(&cfg, &eng) != 0) {
		fprintf(stderr, "nlu_eval: the STT engine could not be made\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/index.tsv", dir);
	FILE *idx = fopen(path, "r");
	if (!idx) {
		perror(path);
		goto out;
	}
	while (fgets(line, sizeof(line), idx)) {
		char *f[3], *save = NULL;
		int nf = 0;
		line[strcspn(line, "\r\n")] = '\0';
		for (char *t = strtok_r(line, "\t", &save); t && nf < 3;
		     t = strtok_r(NULL, "\t", &save))
			f[nf++] = t;
		int64_t k;
		if (nf < 3 || rv_parse_int64(f[2], 1, (int64_t)nitems, &k) != 0)
			continue;
		if (voices && !strstr(voices, f[1]))
			continue;
		size_t vi = 0;
		while (vi < nv && strcmp(v[vi].sc.voice, f[1]) != 0)
			vi++;
		if (vi == nv) {
			if (nv == RV_ARRAY_LEN(v) ||
			    rv_stt_session_new(eng, 0, NULL, NULL, &v[nv].sess) != 0)
				goto out;
			rv_strlcpy(v[nv].sc.voice, f[1], sizeof(v[nv].sc.voice));
			if (nph && rv_stt_set_bias(v[nv].sess, (const char *const *)ph, nph) != 0) {
				fprintf(stderr, "nlu_eval: the bias phrases were refused\n");
				goto out;
			}
			nv++;
		}
		int16_t *pcm = NULL;
		size_t ns = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, f[0]);
		if (rv_bench_nlu_audio_load(path, &pcm, &ns) != 0) {
			fprintf(stderr, "nlu_eval: cannot read %s\n", path);
			goto out;
		}
		struct rv_stt_result *res = NULL;
		double c0 = cpu_now();
		int err = rv_stt_start_utt(v[vi].sess);
		for (size_t off = 0; !err && off < ns; off += RV_MEDIA_FRAME)
			err = rv_stt_feed(v[vi].sess, pcm + off,
			                  ns - off < RV_MEDIA_FRAME ? ns - off : RV_MEDIA_FRAME);
		int e2 = rv_stt_end_utt(v[vi].sess, &res);
		v[vi].sc.stt_cpu += cpu_now() - c0;
		v[vi].sc.audio_s += (double)ns / RV_MEDIA_RATE;
		free(pcm);
		if (err || e2) {
			fprintf(stderr, "nlu_eval: STT failed on %s: %s\n", f[0],
			        rv_stt_strerror(err ? err : e2));
			rv_stt_result_free(res);
			goto out;
		}
		judge(m, &items[k - 1], res->text, &v[vi].sc, out, f[1]);
		rv_stt_result_free(res);
	}
	struct score all = {.voice = "all"};
	for (size_t i = 0; i < nv; i++) {
		report(&v[i].sc, general ? "phone-general" : "phone");
		add(&all, &v[i].sc);
	}
	report(&all, general ? "phone-general" : "phone");
	ret = 0;
out:
	if (idx)
		fclose(idx);
	for (size_t i = 0; i < nv; i++)
		rv_stt_session_free(v[i].sess);
	rv_stt_engine_free(eng);
	for (size_t i = 0; i < nph; i++)
		free(ph[i]);
	rv_bench_nlu_audio_close();
	return ret;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, 65536, f);
		n += got;
		if (got < 65536)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	const char *model_path = NULL, *out_path = NULL, *audio = NULL, *bias = NULL,
	           *voices = NULL;
	bool general = false, errors = false;
	if (argc < 2) {
		fprintf(stderr, "usage: nlu_eval EVAL.tsv [--model M.bin] [--out F] [--errors] "
		                "[--audio DIR [--bias F] [--general] [--voices V]]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--model") && i + 1 < argc)
			model_path = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out_path = argv[++i];
		else if (!strcmp(argv[i], "--audio") && i + 1 < argc)
			audio = argv[++i];
		else if (!strcmp(argv[i], "--bias") && i + 1 < argc)
			bias = argv[++i];
		else if (!strcmp(argv[i], "--voices") && i + 1 < argc)
			voices = argv[++i];
		else if (!strcmp(argv[i], "--general"))
			general = true;
		else if (!strcmp(argv[i], "--errors"))
			errors = true;
		else {
			fprintf(stderr, "nlu_eval: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	load_items(argv[1]);
	struct rv_intent_model *own = NULL;
	const struct rv_intent_model *m = rv_intent_builtin();
	if (model_path) {
		size_t len = 0;
		uint8_t *buf = read_file(model_path, &len);
		if (!buf || rv_intent_load(buf, len, &own) != 0) {
			fprintf(stderr, "nlu_eval: %s is not a readable intent model\n",
			        model_path);
			free(buf);
			return 1;
		}
		free(buf);
		m = own;
	}
	if (!m)
		return 1;
	nlabels = rv_intent_labels(m, &labels);
	/* One untimed pass first: ICU's zone data, libphonenumber's metadata and the built-in
	 * model load at first use, once per process: start-up cost rather than per-turn cost. */
	if (nitems) {
		struct score warm = {0};
		judge(m, &items[0], "call me tomorrow at 3 on 415 555 0100, jo at example dot com",
		      &warm, NULL, "warm-up");
		judge(m, &items[0], "555 0199", &warm, NULL, "warm-up");
	}
	FILE *out = out_path ? fopen(out_path, "w") : NULL;
	int ret = 0;
	if (audio) {
		ret = run_audio(m, audio, bias, general, voices, out);
	} else {
		struct score sc = {.voice = "text"};
		for (size_t i = 0; i < nitems; i++)
			judge(m, &items[i], items[i].text, &sc, out, "text");
		report(&sc, "text");
	}
	if (out)
		fclose(out);
	if (errors && out_path) {
		FILE *f = fopen(out_path, "r");
		char line[2048];
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "\tMISS\t"))
				fputs(line, stderr);
		if (f)
			fclose(f);
	}
	rv_intent_free(own);
	return ret;
}
