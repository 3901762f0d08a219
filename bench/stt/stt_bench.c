/*
 * STT benchmark: word error rate and real-time factor of an STT engine on a set of phone
 * utterances (bench/stt/make_audio.sh), in-domain and off-script, with or without the dialog
 * state's bias phrases.
 *
 *   stt_bench AUDIO_DIR BIAS_FILE [--general] [--weight W] [--args "-beam 1e-40 ..."]
 *             [--voices "slt rms"] [--out results.tsv]
 *
 * Each voice plays one caller: one session, utterances in file order, the bias list of the
 * utterance's state set before it. Audio goes in 20 ms frames, as the pipeline feeds it. CPU
 * time is the decoding thread's (feed + end of utterance). Prints one summary line per voice
 * and kind, then totals, as "key=value" pairs that bench/stt/run.sh turns into a table.
 */
#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/stt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <re.h>

#define MAX_PHRASES 1024
#define MAX_WORDS   64

struct tally {
	char voice[16];
	char kind[8];
	long errs, refs, n;
	double cpu, audio;
};

static struct tally tallies[64];
static size_t ntallies;
static unsigned npartials;

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int split(char *s, char **w, int max)
{
	int n = 0;

	for (char *t = strtok(s, " "); t && n < max; t = strtok(NULL, " "))
		w[n++] = t;
	return n;
}

/* Word-level Levenshtein distance between two normalised strings. */
static long word_errors(const char *ref, const char *hyp, long *nref)
{
	char rb[1024], hb[1024], *r[MAX_WORDS], *h[MAX_WORDS];
	long d[MAX_WORDS + 1][MAX_WORDS + 1];
	int nr, nh;

	rv_strlcpy(rb, ref, sizeof(rb));
	rv_strlcpy(hb, hyp, sizeof(hb));
	nr = split(rb, r, MAX_WORDS);
	nh = split(hb, h, MAX_WORDS);
	for (int i = 0; i <= nr; i++)
		d[i][0] = i;
	for (int j = 0; j <= nh; j++)
		d[0][j] = j;
	for (int i = 1; i <= nr; i++) {
		for (int j = 1; j <= nh; j++) {
			long sub = d[i - 1][j - 1] + (strcmp(r[i - 1], h[j - 1]) != 0);
			long del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;

			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	}
	*nref = nr;
	return d[nr][nh];
}

static struct tally *tally_get(const char *voice, const char *kind)
{
	for (size_t i = 0; i < ntallies; i++)
		if (!strcmp(tallies[i].voice, voice) && !strcmp(tallies[i].kind, kind))
			return &tallies[i];
	if (ntallies == RV_ARRAY_LEN(tallies)) {
		fprintf(stderr, "too many voice/kind pairs\n");
		exit(2);
	}
	rv_strlcpy(tallies[ntallies].voice, voice, sizeof(tallies[0].voice));
	rv_strlcpy(tallies[ntallies].kind, kind, sizeof(tallies[0].kind));
	return &tallies[ntallies++];
}

static void partial_h(const struct rv_stt_result *res, void *arg)
{
	npartials++;
}

struct phrases {
	char *state[MAX_PHRASES];
	char *text[MAX_PHRASES];
	size_t n;
};

static void load_bias(const char *path, struct phrases *p)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (!f) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof(line), f) && p->n < MAX_PHRASES) {
		char *tab = strchr(line, '\t');

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || !tab)
			continue;
		*tab = '\0';
		p->state[p->n] = rv_xstrdup(line);
		p->text[p->n] = rv_xstrdup(tab + 1);
		p->n++;
	}
	fclose(f);
}

static void set_state(struct rv_stt_session *sess, const struct phrases *p, const char *state)
{
	const char *list[MAX_PHRASES];
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->state[i], state))
			list[n++] = p->text[i];
	if (rv_stt_set_bias(sess, list, n) != 0) {
		fprintf(stderr, "set_bias failed\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct rv_stt_config cfg = {.provider = "sphinx"};
	struct phrases bias = {0};
	const char *dir, *voices = NULL, *outpath = NULL;
	struct rv_stt_engine *eng = NULL;
	char path[4096], line[1024];
	FILE *idx, *outf = NULL;
	double load_s;
	int err;

	if (argc < 3) {
		fprintf(stderr, "usage: stt_bench AUDIO_DIR BIAS_FILE [options]\n");
		return 2;
	}
	dir = argv[1];
	load_bias(argv[2], &bias);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--general"))
			cfg.no_bias = true;
		else if (!strcmp(argv[i], "--weight") && i + 1 < argc)
			cfg.bias_weight = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--args") && i + 1 < argc)
			cfg.sphinx_args = argv[++i];
		else if (!strcmp(argv[i], "--voices") && i + 1 < argc)
			voices = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			outpath = argv[++i];
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	libre_init();
	load_s = (double)rv_time_mono_ns() / 1e9;
	err = rv_stt_engine_new(&cfg, &eng);
	if (err) {
		fprintf(stderr, "engine: %s\n", rv_stt_strerror(err));
		return 1;
	}
	load_s = (double)rv_time_mono_ns() / 1e9 - load_s;
	snprintf(path, sizeof(path), "%s/index.tsv", dir);
	idx = fopen(path, "r");
	if (!idx) {
		perror(path);
		return 2;
	}
	if (outpath)
		outf = fopen(outpath, "w");

	/* One caller (session) per voice, kept across that voice's utterances. */
	struct {
		char voice[16];
		struct rv_stt_session *sess;
	} callers[16];
	size_t ncallers = 0;

	memset(callers, 0, sizeof(callers));

	while (fgets(line, sizeof(line), idx)) {
		char *f[5], *save = NULL, ref[512];
		struct rv_stt_session *sess = NULL;
		struct rv_stt_result *res = NULL;
		struct rv_pcm *pcm = NULL;
		struct tally *t;
		long errs, nref;
		double c0, cpu;
		int nf = 0;

		line[strcspn(line, "\r\n")] = '\0';
		for (char *tok = strtok_r(line, "\t", &save); tok && nf < 5;
		     tok = strtok_r(NULL, "\t", &save))
			f[nf++] = tok;
		if (nf < 5)
			continue;
		if (voices && !strstr(voices, f[1]))
			continue;
		for (size_t i = 0; i < ncallers; i++)
			if (!strcmp(callers[i].voice, f[1]))
				sess = callers[i].sess;
		if (!sess) {
			if (ncallers == RV_ARRAY_LEN(callers) ||
			    rv_stt_session_new(eng, 0, partial_h, NULL, &sess) != 0)
				return 1;
			rv_strlcpy(callers[ncallers].voice, f[1], sizeof(callers[0].voice));
			callers[ncallers++].sess = sess;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, f[0]);
		if (rv_pcm_load_file(path, RV_MEDIA_RATE, &pcm) != 0)
			return 1;
		set_state(sess, &bias, f[2]);
		c0 = cpu_now();
		if (rv_stt_start_utt(sess) != 0)
			return 1;
		for (size_t off = 0; off < pcm->n; off += RV_MEDIA_FRAME) {
			size_t n = pcm->n - off < RV_MEDIA_FRAME ? pcm->n - off : RV_MEDIA_FRAME;

			if (rv_stt_feed(sess, pcm->s + off, n) != 0)
				return 1;
		}
		if (rv_stt_end_utt(sess, &res) != 0)
			return 1;
		cpu = cpu_now() - c0;
		rv_strlcpy(ref, f[4], sizeof(ref));
		errs = word_errors(ref, res->text, &nref);
		t = tally_get(f[1], f[3]);
		t->errs += errs;
		t->refs += nref;
		t->n++;
		t->cpu += cpu;
		t->audio += (double)pcm->n / pcm->rate;
		if (outf)
			fprintf(outf, "%s\t%s\t%s\t%ld/%ld\t%.3f\t%s\t%s\n", f[0], f[1], f[3], errs,
			        nref, res->conf, ref, res->text);
		rv_stt_result_free(res);
		mem_deref(pcm);
	}
	fclose(idx);
	if (outf)
		fclose(outf);

	struct tally all_in = {.kind = "in"}, all_off = {.kind = "off"};
	for (size_t i = 0; i < ntallies; i++) {
		struct tally *t = &tallies[i], *a = !strcmp(t->kind, "in") ? &all_in : &all_off;

		printf("voice=%s kind=%s n=%ld wer=%.1f rtf=%.3f\n", t->voice, t->kind, t->n,
		       t->refs ? 100.0 * t->errs / t->refs : 0, t->audio ? t->cpu / t->audio : 0);
		a->errs += t->errs, a->refs += t->refs, a->n += t->n, a->cpu += t->cpu,
		    a->audio += t->audio;
	}
	printf("voice=all kind=in n=%ld wer=%.1f rtf=%.3f\n", all_in.n,
	       all_in.refs ? 100.0 * all_in.errs / all_in.refs : 0,
	       all_in.audio ? all_in.cpu / all_in.audio : 0);
	printf("voice=all kind=off n=%ld wer=%.1f rtf=%.3f\n", all_off.n,
	       all_off.refs ? 100.0 * all_off.errs / all_off.refs : 0,
	       all_off.audio ? all_off.cpu / all_off.audio : 0);
	printf("load_s=%.2f partials=%u\n", load_s, npartials);
	for (size_t i = 0; i < ncallers; i++)
		rv_stt_session_free(callers[i].sess);
	rv_stt_engine_free(eng);
	for (size_t i = 0; i < bias.n; i++)
		free(bias.state[i]), free(bias.text[i]);
	libre_close();
	return 0;
}
