/*
 * The embedded STT backend on pocketsphinx (Debian 0.8+5prealpha).
 *
 * Model: a private copy of the en-us acoustic model folder whose feat.params carries a
 * telephone CMN start value (Debian's feat.params silently overrides -cmninit given on the
 * command line; without it the first utterance of a call is garbage, SPEECH.md).
 *
 * Bias: for each utterance the state's phrases become a small trigram model, interpolated
 * with the general en-us model (ngram_model_set_init with weights), so expected answers win
 * when the audio allows and anything else can still be recognised. See docs/adr/0010-stt.md
 * for the weights and beams chosen by measurement.
 *
 * Decoders: a pocketsphinx decoder is not thread-safe and its language model carries a
 * scoring cache, so neither can be shared between threads. The engine keeps a pool: a session
 * takes a decoder at start_utt and gives it back at end_utt, so the number of decoders is the
 * peak number of utterances decoded at once, not the number of calls. Each decoder caches the
 * mixed model it built last, keyed by the phrase list, so calls in the same dialog state do
 * not rebuild it.
 */
#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/stt_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/ngram_model.h>

#define SPHINX_DEFAULT_MODEL "/usr/share/pocketsphinx/model/en-us"
/* Telephone cepstral mean (SPEECH.md), measured on 8 kHz mu-law speech upsampled to 16 kHz. */
#define SPHINX_CMNINIT                                                                             \
	"45.74,29.83,-27.30,43.27,-18.75,4.81,14.98,-23.82,25.08,-8.10,2.61,16.05,-7.72"
#define SPHINX_BIAS_WEIGHT 0.8
/* Words of the general model kept in the decoding vocabulary, most frequent first. */
#define SPHINX_VOCAB_WORDS 5000
#define SPHINX_MAX_ARGS    64
#define SPHINX_BIAS_SEARCH "rv_bias"
/* Name pocketsphinx gives the search built from -lm at ps_init (not in its headers). */
#define SPHINX_GENERAL_SEARCH "_default"
/* Words in one phrase-model build (vocabulary and n-gram caps keep the build O(small)). */
#define SPHINX_MAX_VOCAB  2048
#define SPHINX_MAX_NGRAMS 16384
#define SPHINX_CEPLEN     13

/*
 * Decoder options used unless sphinx_args overrides them. They trade a little accuracy for
 * speed (RTF target 0.15); the figures behind them are in docs/adr/0010-stt.md.
 */
static const char *const default_args[] = {
    "-fwdflat",
    "no",
    "-bestpath",
    "yes",
};

/* Files of the acoustic model folder linked, not copied, into the private copy. */
static const char *const model_files[] = {
    "mdef", "means", "variances", "sendump", "transition_matrices", "noisedict",
};

struct sphinx_engine;

struct sphinx_dec {
	struct sphinx_engine *eng;
	ps_decoder_t *ps;
	ngram_model_t *general; /* our reference to the general model inside the default search */
	unsigned id;
	uint64_t bias_gen; /* phrase list of the installed bias search; 0 = none */
	char *bias_key;    /* the same list joined, to rule out hash collisions */
	bool bias_ok;      /* the bias search is usable */
};

struct sphinx_engine {
	char dir[PATH_MAX]; /* private model copy (temporary; removed at free) */
	char hmm[PATH_MAX + 8];
	char lm[PATH_MAX];
	char dict[PATH_MAX + 16]; /* the cut-down decoding dictionary in the model copy */
	char fulldict[PATH_MAX];  /* cmudict, for bias words outside the cut */
	char *dictbuf;            /* cmudict's text, lines indexed by dictidx (sorted by word) */
	char **dictidx;
	size_t ndict;
	char **argv; /* decoder options: defaults merged with sphinx_args */
	int argc;
	float bias_weight;
	bool no_bias;
	mfcc_t cmninit[SPHINX_CEPLEN]; /* the telephone start value, parsed */
	pthread_mutex_t lock;
	struct sphinx_dec **idle;
	size_t nidle;
	size_t cap;
	unsigned ndec; /* decoders created, also the next decoder id */
};

/*
 * A session remembers its own line's cepstral mean between utterances and puts it into the
 * decoder it borrows: decoders move between calls, and one caller's channel must not set the
 * starting point for another caller. A new session starts from the telephone value.
 */
struct sphinx_sess {
	struct sphinx_engine *eng;
	struct sphinx_dec *dec; /* held from start_utt to end_utt */
	size_t fed;
	mfcc_t cmn[SPHINX_CEPLEN];
};

static void sphinx_log_cb(void *arg, err_lvl_t lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	size_t len;

	if (lvl < ERR_WARN)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	len = strlen(buf);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0)
		return;
	rv_logf(lvl == ERR_WARN ? RV_LOG_DEBUG : RV_LOG_WARN, RV_STT_LOG, "pocketsphinx: %s", buf);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_init(void)
{
	/* Route warnings and errors to our log; the configuration dump and INFO lines go nowhere.
	 */
	err_set_logfp(NULL);
	err_set_callback(sphinx_log_cb, NULL);
}

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Remove the private model folder and everything we put in it. */
static void model_copy_remove(const char *dir)
{
	char p[PATH_MAX + 64];

	for (size_t i = 0; i < RV_ARRAY_LEN(model_files); i++) {
		snprintf(p, sizeof(p), "%s/en-us/%s", dir, model_files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/en-us/feat.params", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/vocab.dict", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/en-us", dir);
	rmdir(p);
	rmdir(dir);
}

/*
 * Build `eng->dir`/en-us: symlinks to the read-only model files and a feat.params with the
 * telephone -cmninit in place of Debian's.
 */
static int model_copy_make(struct sphinx_engine *eng, const char *model_dir, const char *work_dir)
{
	char src[PATH_MAX + 64], dst[PATH_MAX + 64], line[512];
	FILE *in = NULL, *outf = NULL;
	const char *base = work_dir ? work_dir : getenv("TMPDIR");
	int err = 0;

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(eng->dir, sizeof(eng->dir), "%s/rv-stt-model-XXXXXX", base) >=
	    sizeof(eng->dir))
		return -ENAMETOOLONG;
	if (work_dir)
		mkdir(work_dir, 0700);
	if (!mkdtemp(eng->dir)) {
		err = -errno;
		rv_error(RV_STT_LOG, "cannot create the model copy under %s: %s", base,
		         strerror(errno));
		eng->dir[0] = '\0';
		return err;
	}
	snprintf(dst, sizeof(dst), "%s/en-us", eng->dir);
	if (mkdir(dst, 0700) != 0) {
		err = -errno;
		goto out;
	}
	for (size_t i = 0; i < RV_ARRAY_LEN(model_files); i++) {
		snprintf(src, sizeof(src), "%s/en-us/%s", model_dir, model_files[i]);
		snprintf(dst, sizeof(dst), "%s/en-us/%s", eng->dir, model_files[i]);
		if (!file_exists(src)) {
			rv_error(RV_STT_LOG, "acoustic model file %s is missing", src);
			err = -ENOENT;
			goto out;
		}
		if (symlink(src, dst) != 0) {
			err = -errno;
			rv_error(RV_STT_LOG, "cannot link %s: %s", dst, strerror(errno));
			goto out;
		}
	}
	snprintf(src, sizeof(src), "%s/en-us/feat.params", model_dir);
	snprintf(dst, sizeof(dst), "%s/en-us/feat.params", eng->dir);
	in = fopen(src, "r");
	if (!in) {
		rv_error(RV_STT_LOG, "cannot read %s: %s", src, strerror(errno));
		err = -ENOENT;
		goto out;
	}
	outf = fopen(dst, "w");
	if (!outf) {
		err = -errno;
		goto out;
	}
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "-cmninit", 8) == 0)
			continue;
		fputs(line, outf);
	}
	fprintf(outf, "-cmninit %s\n", SPHINX_CMNINIT);
	if (fclose(outf) != 0)
		err = -EIO;
	outf = NULL;
out:
	if (in)
		fclose(in);
	if (outf)
		fclose(outf);
	if (err) {
		model_copy_remove(eng->dir);
		eng->dir[0] = '\0';
	}
	return err;
}

/* Merge the default options with the operator's: a name given in `extra` replaces ours. */
static int args_build(struct sphinx_engine *eng, const char *extra)
{
	char *tok[SPHINX_MAX_ARGS];
	int ntok = 0, err = 0;
	char *copy = NULL, *save = NULL;

	eng->argv =
	    rv_xcalloc(SPHINX_MAX_ARGS + RV_ARRAY_LEN(default_args) + 12, sizeof(*eng->argv));
	if (extra) {
		copy = rv_xstrdup(extra);
		for (char *t = strtok_r(copy, " \t\n", &save); t;
		     t = strtok_r(NULL, " \t\n", &save)) {
			if (ntok == SPHINX_MAX_ARGS) {
				rv_error(RV_STT_LOG, "too many sphinx options");
				err = -EINVAL;
				goto out;
			}
			tok[ntok++] = t;
		}
		if (ntok % 2 != 0 || (ntok && tok[0][0] != '-')) {
			rv_error(RV_STT_LOG, "sphinx options must be \"-name value\" pairs");
			err = -EINVAL;
			goto out;
		}
	}
	eng->argv[eng->argc++] = rv_xstrdup("-hmm");
	eng->argv[eng->argc++] = rv_xstrdup(eng->hmm);
	eng->argv[eng->argc++] = rv_xstrdup("-lm");
	eng->argv[eng->argc++] = rv_xstrdup(eng->lm);
	eng->argv[eng->argc++] = rv_xstrdup("-dict");
	eng->argv[eng->argc++] = rv_xstrdup(eng->dict);
	for (size_t i = 0; i < RV_ARRAY_LEN(default_args); i += 2) {
		bool overridden = false;

		for (int j = 0; j < ntok; j += 2)
			if (strcmp(tok[j], default_args[i]) == 0)
				overridden = true;
		if (overridden)
			continue;
		eng->argv[eng->argc++] = rv_xstrdup(default_args[i]);
		eng->argv[eng->argc++] = rv_xstrdup(default_args[i + 1]);
	}
	for (int j = 0; j < ntok; j++)
		eng->argv[eng->argc++] = rv_xstrdup(tok[j]);
out:
	free(copy);
	return err;
}

static void dec_free(struct sphinx_dec *d)
{
	if (!d)
		return;
	if (d->general)
		ngram_model_free(d->general);
	if (d->ps)
		ps_free(d->ps);
	free(d->bias_key);
	free(d);
}

/* Load one decoder (a second or so: acoustic model, dictionary and the general model). */
static int dec_new(struct sphinx_engine *eng, struct sphinx_dec **out)
{
	struct sphinx_dec *d = rv_xcalloc(1, sizeof(*d));
	cmd_ln_t *config;
	ngram_model_t *set;
	int err = 0;

	d->eng = eng;
	config = cmd_ln_parse_r(NULL, ps_args(), eng->argc, eng->argv, FALSE);
	if (!config) {
		rv_error(RV_STT_LOG, "pocketsphinx rejected the decoder options");
		err = -EINVAL;
		goto out;
	}
	d->ps = ps_init(config);
	cmd_ln_free_r(config); /* ps_init keeps its own reference */
	if (!d->ps) {
		rv_error(RV_STT_LOG, "pocketsphinx failed to load the model from %s", eng->dir);
		err = -ENOENT;
		goto out;
	}
	set = ps_get_lm(d->ps, SPHINX_GENERAL_SEARCH);
	if (set)
		d->general = ngram_model_set_lookup(set, "default");
	if (!d->general) {
		rv_error(RV_STT_LOG, "pocketsphinx has no general language model");
		err = -ENOENT;
		goto out;
	}
	ngram_model_retain(d->general);
	pthread_mutex_lock(&eng->lock);
	d->id = eng->ndec++;
	pthread_mutex_unlock(&eng->lock);
	*out = d;
	d = NULL;
out:
	dec_free(d);
	return err;
}

static int dec_get(struct sphinx_engine *eng, struct sphinx_dec **out)
{
	struct sphinx_dec *d = NULL;

	pthread_mutex_lock(&eng->lock);
	if (eng->nidle)
		d = eng->idle[--eng->nidle];
	pthread_mutex_unlock(&eng->lock);
	if (d) {
		*out = d;
		return 0;
	}
	rv_info(RV_STT_LOG, "all pocketsphinx decoders busy; loading another");
	return dec_new(eng, out);
}

static void dec_put(struct sphinx_engine *eng, struct sphinx_dec *d)
{
	pthread_mutex_lock(&eng->lock);
	if (eng->nidle == eng->cap) {
		size_t ncap = eng->cap ? eng->cap * 2 : 4;
		struct sphinx_dec **n = realloc(eng->idle, ncap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&eng->lock);
			dec_free(d);
			return;
		}
		eng->idle = n;
		eng->cap = ncap;
	}
	eng->idle[eng->nidle++] = d;
	pthread_mutex_unlock(&eng->lock);
}

/* ---- vocabulary: the general model's most frequent words, and cmudict for the rest ---- */

/* Compare two cmudict lines by their word, "word(2)" sorting with "word". */
static int dict_word_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ea = *a == '(' || *a == ' ' || *a == '\t' || *a == '\0';
		int eb = *b == '(' || *b == ' ' || *b == '\t' || *b == '\0';

		if (ea || eb)
			return ea - eb ? (ea ? -1 : 1) : 0;
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
	}
}

static int dict_line_cmp(const void *x, const void *y)
{
	const char *a = *(char *const *)x, *b = *(char *const *)y;
	int c = dict_word_cmp(a, b);

	return c ? c : strcmp(a, b);
}

/* Index of the first cmudict line for `word`, or -1. */
static ssize_t dict_find(const struct sphinx_engine *eng, const char *word)
{
	size_t lo = 0, hi = eng->ndict;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (dict_word_cmp(eng->dictidx[mid], word) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < eng->ndict && dict_word_cmp(eng->dictidx[lo], word) == 0)
		return (ssize_t)lo;
	return -1;
}

/* The phones of a cmudict line (after the word), or NULL. */
static const char *dict_phones(const char *line)
{
	const char *p = line + strcspn(line, " \t");

	p += strspn(p, " \t");
	return *p ? p : NULL;
}

struct ranked {
	const char *w;
	int32 score;
};

static int ranked_cmp(const void *x, const void *y)
{
	const struct ranked *a = x, *b = y;

	return (b->score > a->score) - (b->score < a->score);
}

/*
 * Read cmudict into memory (for bias words), then write the decoding dictionary: every
 * pronunciation of the SPHINX_VOCAB_WORDS most probable words of the general model. Searching
 * 5,000 words instead of the model's whole vocabulary is what brings the general model to the
 * RTF target (docs/adr/0010-stt.md).
 */
static int vocab_build(struct sphinx_engine *eng)
{
	FILE *f = NULL;
	long size;
	size_t cap = 0, nr = 0, nuni;
	logmath_t *lmath = NULL;
	ngram_model_t *lm = NULL;
	struct ranked *r = NULL;
	int err = 0;

	f = fopen(eng->fulldict, "r");
	if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || size > (64L << 20) ||
	    fseek(f, 0, SEEK_SET) != 0) {
		rv_error(RV_STT_LOG, "cannot read the dictionary %s", eng->fulldict);
		err = -ENOENT;
		goto out;
	}
	eng->dictbuf = rv_xmalloc((size_t)size + 1);
	if (fread(eng->dictbuf, 1, (size_t)size, f) != (size_t)size) {
		err = -EIO;
		goto out;
	}
	fclose(f);
	f = NULL;
	eng->dictbuf[size] = '\0';
	for (char *line = eng->dictbuf, *next; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (!*line || !dict_phones(line))
			continue;
		if (eng->ndict == cap) {
			cap = cap ? cap * 2 : 65536;
			eng->dictidx = realloc(eng->dictidx, cap * sizeof(*eng->dictidx));
			if (!eng->dictidx) {
				rv_error(RV_STT_LOG, "out of memory indexing the dictionary");
				abort();
			}
		}
		eng->dictidx[eng->ndict++] = line;
	}
	qsort(eng->dictidx, eng->ndict, sizeof(*eng->dictidx), dict_line_cmp);

	lmath = logmath_init(1.0001, 0, 0);
	lm = lmath ? ngram_model_read(NULL, eng->lm, NGRAM_AUTO, lmath) : NULL;
	if (!lm) {
		rv_error(RV_STT_LOG, "cannot read the general language model %s", eng->lm);
		err = -ENOENT;
		goto out;
	}
	nuni = (size_t)ngram_model_get_counts(lm)[0];
	r = rv_xcalloc(nuni, sizeof(*r));
	for (size_t i = 0; i < nuni; i++) {
		const char *w = ngram_word(lm, (int32)i);

		if (!w || w[0] == '<')
			continue;
		r[nr].w = w;
		r[nr].score = ngram_score(lm, w, NULL);
		nr++;
	}
	qsort(r, nr, sizeof(*r), ranked_cmp);
	snprintf(eng->dict, sizeof(eng->dict), "%s/vocab.dict", eng->dir);
	f = fopen(eng->dict, "w");
	if (!f) {
		err = -errno;
		goto out;
	}
	for (size_t i = 0; i < nr && i < SPHINX_VOCAB_WORDS; i++) {
		ssize_t k = dict_find(eng, r[i].w);

		for (; k >= 0 && (size_t)k < eng->ndict &&
		       dict_word_cmp(eng->dictidx[k], r[i].w) == 0;
		     k++)
			fprintf(f, "%s\n", eng->dictidx[k]);
	}
	if (fclose(f) != 0)
		err = -EIO;
	f = NULL;
out:
	if (f)
		fclose(f);
	free(r);
	if (lm)
		ngram_model_free(lm);
	if (lmath)
		logmath_free(lmath);
	return err;
}

/* ---- phrase model: a small back-off trigram model written as ARPA text ---- */

struct pm_ngram {
	int w[3];
	int n;
	int count;
	double logp; /* log10 */
	double bow;  /* log10 back-off weight */
};

struct pm {
	char **vocab;
	int nvocab;
	struct pm_ngram *ng;
	int nng;
	bool full;
};

static int pm_word(struct pm *pm, const char *w)
{
	for (int i = 0; i < pm->nvocab; i++)
		if (strcmp(pm->vocab[i], w) == 0)
			return i;
	if (pm->nvocab == SPHINX_MAX_VOCAB) {
		pm->full = true;
		return -1;
	}
	pm->vocab[pm->nvocab] = rv_xstrdup(w);
	return pm->nvocab++;
}

static void pm_count(struct pm *pm, const int *w, int n)
{
	for (int i = 0; i < pm->nng; i++) {
		struct pm_ngram *g = &pm->ng[i];

		if (g->n == n && memcmp(g->w, w, (size_t)n * sizeof(int)) == 0) {
			g->count++;
			return;
		}
	}
	if (pm->nng == SPHINX_MAX_NGRAMS) {
		pm->full = true;
		return;
	}
	memset(&pm->ng[pm->nng], 0, sizeof(pm->ng[0]));
	memcpy(pm->ng[pm->nng].w, w, (size_t)n * sizeof(int));
	pm->ng[pm->nng].n = n;
	pm->ng[pm->nng].count = 1;
	pm->nng++;
}

static struct pm_ngram *pm_find(struct pm *pm, const int *w, int n)
{
	for (int i = 0; i < pm->nng; i++)
		if (pm->ng[i].n == n && memcmp(pm->ng[i].w, w, (size_t)n * sizeof(int)) == 0)
			return &pm->ng[i];
	return NULL;
}

/*
 * Absolute discounting (D = 0.5) with back-off, enough for a few hundred short phrases:
 * p(w|h) = (c(h w) - D) / c(h), the freed mass spread over the lower order by a back-off
 * weight that keeps each distribution summing to one.
 */
static void pm_estimate(struct pm *pm, int bos)
{
	const double D = 0.5;
	double total = 0;

	for (int i = 0; i < pm->nng; i++)
		if (pm->ng[i].n == 1 && pm->ng[i].w[0] != bos)
			total += pm->ng[i].count;
	for (int i = 0; i < pm->nng; i++) {
		struct pm_ngram *g = &pm->ng[i];

		if (g->n == 1)
			g->logp = g->w[0] == bos ? -99 : log10(g->count / total);
	}
	for (int order = 2; order <= 3; order++) {
		for (int i = 0; i < pm->nng; i++) {
			struct pm_ngram *g = &pm->ng[i];
			double ctx = 0;

			if (g->n != order)
				continue;
			for (int j = 0; j < pm->nng; j++)
				if (pm->ng[j].n == order &&
				    memcmp(pm->ng[j].w, g->w, (size_t)(order - 1) * sizeof(int)) ==
				        0)
					ctx += pm->ng[j].count;
			g->logp = log10((g->count - D) / ctx);
		}
	}
	/* Back-off weights of every context of order 1 and 2. */
	for (int i = 0; i < pm->nng; i++) {
		struct pm_ngram *h = &pm->ng[i];
		double ctx = 0, types = 0, lower = 0;

		if (h->n > 2)
			continue;
		for (int j = 0; j < pm->nng; j++) {
			struct pm_ngram *g = &pm->ng[j];
			struct pm_ngram *lo;

			if (g->n != h->n + 1 || memcmp(g->w, h->w, (size_t)h->n * sizeof(int)) != 0)
				continue;
			ctx += g->count;
			types++;
			lo = pm_find(pm, g->w + 1, h->n);
			if (lo)
				lower += pow(10, lo->logp);
		}
		if (types == 0) {
			h->bow = 0;
			continue;
		}
		if (lower > 0.999)
			lower = 0.999;
		h->bow = log10((D * types / ctx) / (1 - lower));
	}
}

static int pm_cmp(const void *a, const void *b)
{
	const struct pm_ngram *x = a, *y = b;

	if (x->n != y->n)
		return x->n - y->n;
	for (int i = 0; i < x->n; i++)
		if (x->w[i] != y->w[i])
			return x->w[i] - y->w[i];
	return 0;
}

static void pm_free(struct pm *pm)
{
	for (int i = 0; i < pm->nvocab; i++)
		free(pm->vocab[i]);
	free(pm->vocab);
	free(pm->ng);
}

/*
 * Write the phrase model of `bias` to `path`. Words the dictionary cannot pronounce are left
 * out. Returns 0, -ENODATA when no phrase has a known word, -EIO, -E2BIG past the caps.
 */
static int pm_write(struct sphinx_dec *d, const struct rv_stt_bias *bias, const char *path)
{
	struct pm pm = {0};
	FILE *f = NULL;
	int bos, eos, counts[4] = {0}, err = 0, nphr = 0;
	const char *add_w[64], *add_p[64];
	char add_buf[64][RV_STT_MAX_PHRASE_LEN + 1];
	int nadd = 0;

	pm.vocab = rv_xcalloc(SPHINX_MAX_VOCAB, sizeof(*pm.vocab));
	pm.ng = rv_xcalloc(SPHINX_MAX_NGRAMS, sizeof(*pm.ng));
	bos = pm_word(&pm, "<s>");
	eos = pm_word(&pm, "</s>");
	for (size_t i = 0; i < bias->n; i++) {
		int seq[RV_STT_MAX_PHRASE_LEN / 2 + 3], len = 0;
		char buf[RV_STT_MAX_PHRASE_LEN + 1], *save = NULL;

		rv_strlcpy(buf, bias->phrases[i], sizeof(buf));
		seq[len++] = bos;
		for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			char *pron = ps_lookup_word(d->ps, w);

			if (pron) {
				free(pron);
			} else {
				ssize_t k = dict_find(d->eng, w);
				bool dup = false;

				if (k < 0 || nadd == (int)RV_ARRAY_LEN(add_w)) {
					rv_debug(RV_STT_LOG,
					         "bias word \"%s\" has no pronunciation", w);
					continue;
				}
				for (int a = 0; a < nadd; a++)
					dup = dup || strcmp(add_w[a], w) == 0;
				if (!dup) {
					rv_strlcpy(add_buf[nadd], w, sizeof(add_buf[0]));
					add_w[nadd] = add_buf[nadd];
					add_p[nadd] = dict_phones(d->eng->dictidx[k]);
					nadd++;
				}
			}
			seq[len] = pm_word(&pm, w);
			if (seq[len] >= 0)
				len++;
		}
		if (len == 1)
			continue;
		seq[len++] = eos;
		nphr++;
		for (int s = 0; s < len; s++)
			for (int n = 1; n <= 3 && s + n <= len; n++)
				pm_count(&pm, seq + s, n);
	}
	if (pm.full) {
		rv_warn(RV_STT_LOG, "bias phrases exceed the phrase-model caps");
		err = -E2BIG;
		goto out;
	}
	if (nphr == 0) {
		err = -ENODATA;
		goto out;
	}
	/*
	 * Words outside the cut-down vocabulary join the decoder's dictionary; the searches are
	 * rebuilt once, with the last word. A decoder's dictionary only grows, bounded by the
	 * words of the flows it serves.
	 */
	for (int a = 0; a < nadd; a++) {
		if (ps_add_word(d->ps, add_w[a], add_p[a], a == nadd - 1) < 0)
			rv_warn(RV_STT_LOG, "cannot add \"%s\" to the dictionary", add_w[a]);
	}
	pm_estimate(&pm, bos);
	qsort(pm.ng, (size_t)pm.nng, sizeof(*pm.ng), pm_cmp);
	for (int i = 0; i < pm.nng; i++)
		counts[pm.ng[i].n]++;
	f = fopen(path, "w");
	if (!f) {
		err = -errno;
		rv_error(RV_STT_LOG, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	fprintf(f, "\\data\\\nngram 1=%d\nngram 2=%d\nngram 3=%d\n", counts[1], counts[2],
	        counts[3]);
	for (int n = 1; n <= 3; n++) {
		fprintf(f, "\n\\%d-grams:\n", n);
		for (int i = 0; i < pm.nng; i++) {
			const struct pm_ngram *g = &pm.ng[i];

			if (g->n != n)
				continue;
			fprintf(f, "%.4f", g->logp);
			for (int k = 0; k < n; k++)
				fprintf(f, " %s", pm.vocab[g->w[k]]);
			if (n < 3)
				fprintf(f, " %.4f", g->bow);
			fputc('\n', f);
		}
	}
	fputs("\n\\end\\\n", f);
	if (fclose(f) != 0)
		err = -EIO;
	f = NULL;
out:
	if (f)
		fclose(f);
	pm_free(&pm);
	return err;
}

static char *bias_join(const struct rv_stt_bias *b)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < b->n; i++)
		len += strlen(b->phrases[i]) + 1;
	s = p = rv_xmalloc(len);
	for (size_t i = 0; i < b->n; i++) {
		size_t l = strlen(b->phrases[i]);

		memcpy(p, b->phrases[i], l);
		p += l;
		*p++ = '\n';
	}
	*p = '\0';
	return s;
}

/*
 * Make the decoder's active search the general model mixed with `bias`'s phrase model,
 * reusing the one it built last when the phrases are the same. On failure the decoder falls
 * back to the general model alone (logged), so recognition still works.
 */
static void dec_use_bias(struct sphinx_dec *d, const struct rv_stt_bias *bias)
{
	struct sphinx_engine *eng = d->eng;
	char path[PATH_MAX + 64], *key;
	ngram_model_t *models[2] = {NULL, NULL}, *set = NULL;
	char *names[2] = {"general", "state"};
	float32 weights[2];
	int err;

	if (eng->no_bias || bias->gen == 0) {
		ps_set_search(d->ps, SPHINX_GENERAL_SEARCH);
		return;
	}
	key = bias_join(bias);
	if (d->bias_ok && d->bias_gen == bias->gen && d->bias_key &&
	    strcmp(d->bias_key, key) == 0) {
		free(key);
		ps_set_search(d->ps, SPHINX_BIAS_SEARCH);
		return;
	}
	free(d->bias_key);
	d->bias_key = key;
	d->bias_gen = bias->gen;
	d->bias_ok = false;
	snprintf(path, sizeof(path), "%s/bias-%u.arpa", eng->dir, d->id);
	err = pm_write(d, bias, path);
	if (err)
		goto out;
	models[1] = ngram_model_read(ps_get_config(d->ps), path, NGRAM_ARPA, ps_get_logmath(d->ps));
	unlink(path);
	if (!models[1]) {
		err = -EINVAL;
		goto out;
	}
	models[0] = ngram_model_retain(d->general);
	weights[0] = 1.0f - eng->bias_weight;
	weights[1] = eng->bias_weight;
	/* The set takes references of its own to both models (checked under LeakSanitizer). */
	set = ngram_model_set_init(ps_get_config(d->ps), models, names, weights, 2);
	ngram_model_free(models[0]);
	ngram_model_free(models[1]);
	if (!set) {
		err = -EINVAL;
		goto out;
	}
	/* ps_set_lm replaces a search of the same name; the search keeps its own reference. */
	if (ps_set_lm(d->ps, SPHINX_BIAS_SEARCH, set) != 0) {
		err = -EINVAL;
		goto out;
	}
	d->bias_ok = true;
out:
	if (set)
		ngram_model_free(set);
	if (err) {
		rv_warn(RV_STT_LOG, "cannot build the bias model (%d); using the general model",
		        err);
		ps_set_search(d->ps, SPHINX_GENERAL_SEARCH);
		return;
	}
	ps_set_search(d->ps, SPHINX_BIAS_SEARCH);
}

/* ---- backend table ---- */

static void sphinx_engine_free(void *state)
{
	struct sphinx_engine *eng = state;

	if (!eng)
		return;
	for (size_t i = 0; i < eng->nidle; i++)
		dec_free(eng->idle[i]);
	free(eng->idle);
	free(eng->dictidx);
	free(eng->dictbuf);
	if (eng->dir[0])
		model_copy_remove(eng->dir);
	for (int i = 0; i < eng->argc; i++)
		free(eng->argv[i]);
	free(eng->argv);
	pthread_mutex_destroy(&eng->lock);
	free(eng);
}

static int sphinx_engine_new(const struct rv_stt_config *cfg, void **out)
{
	struct sphinx_engine *eng = rv_xcalloc(1, sizeof(*eng));
	const char *model = cfg->model_dir ? cfg->model_dir : SPHINX_DEFAULT_MODEL;
	unsigned pool = cfg->pool_size ? cfg->pool_size : 1;
	int err;

	pthread_once(&log_once, log_init);
	pthread_mutex_init(&eng->lock, NULL);
	if (cfg->bias_weight < 0 || cfg->bias_weight >= 1) {
		rv_error(RV_STT_LOG, "bias_weight must be in [0, 1)");
		err = -EINVAL;
		goto out;
	}
	eng->bias_weight = (float)(cfg->bias_weight > 0 ? cfg->bias_weight : SPHINX_BIAS_WEIGHT);
	eng->no_bias = cfg->no_bias;
	{
		const char *p = SPHINX_CMNINIT;

		for (int i = 0; i < SPHINX_CEPLEN; i++) {
			char *end;

			eng->cmninit[i] = (mfcc_t)strtod(p, &end);
			p = *end == ',' ? end + 1 : end;
		}
	}
	if ((size_t)snprintf(eng->lm, sizeof(eng->lm), "%s/en-us.lm.bin", model) >=
	        sizeof(eng->lm) ||
	    (size_t)snprintf(eng->fulldict, sizeof(eng->fulldict), "%s/cmudict-en-us.dict",
	                     model) >= sizeof(eng->fulldict)) {
		err = -ENAMETOOLONG;
		goto out;
	}
	if (!file_exists(eng->lm) || !file_exists(eng->fulldict)) {
		rv_error(RV_STT_LOG, "pocketsphinx model files missing under %s", model);
		err = -ENOENT;
		goto out;
	}
	err = model_copy_make(eng, model, cfg->work_dir);
	if (err)
		goto out;
	snprintf(eng->hmm, sizeof(eng->hmm), "%s/en-us", eng->dir);
	err = vocab_build(eng);
	if (err)
		goto out;
	err = args_build(eng, cfg->sphinx_args);
	if (err)
		goto out;
	for (unsigned i = 0; i < pool; i++) {
		struct sphinx_dec *d;

		err = dec_new(eng, &d);
		if (err)
			goto out;
		dec_put(eng, d);
	}
	rv_info(RV_STT_LOG, "pocketsphinx ready: %u decoder(s), model copy %s", pool, eng->dir);
	*out = eng;
	eng = NULL;
out:
	sphinx_engine_free(eng);
	return err;
}

static cmn_t *dec_cmn(struct sphinx_dec *d)
{
	feat_t *feat = ps_get_feat(d->ps);

	if (!feat || !feat->cmn_struct || feat->cmn_struct->veclen != SPHINX_CEPLEN)
		return NULL;
	return feat->cmn_struct;
}

static int sphinx_session_new(void *state, void **out)
{
	struct sphinx_sess *s = rv_xcalloc(1, sizeof(*s));

	s->eng = state;
	memcpy(s->cmn, s->eng->cmninit, sizeof(s->cmn));
	*out = s;
	return 0;
}

static void sphinx_abort_utt(void *state)
{
	struct sphinx_sess *s = state;

	if (!s->dec)
		return;
	ps_end_utt(s->dec->ps);
	dec_put(s->eng, s->dec);
	s->dec = NULL;
}

static void sphinx_session_free(void *state)
{
	struct sphinx_sess *s = state;

	if (!s)
		return;
	sphinx_abort_utt(s);
	free(s);
}

static int sphinx_start_utt(void *state, const struct rv_stt_bias *bias)
{
	struct sphinx_sess *s = state;
	int err;

	err = dec_get(s->eng, &s->dec);
	if (err)
		return err;
	dec_use_bias(s->dec, bias);
	/* A new stream per utterance: word times count from its start, noise level from fresh. */
	if (ps_start_stream(s->dec->ps) < 0 || ps_start_utt(s->dec->ps) < 0) {
		rv_error(RV_STT_LOG, "pocketsphinx could not start an utterance");
		dec_put(s->eng, s->dec);
		s->dec = NULL;
		return -EIO;
	}
	if (dec_cmn(s->dec))
		cmn_live_set(dec_cmn(s->dec), s->cmn);
	s->fed = 0;
	return 0;
}

static int sphinx_feed(void *state, const int16_t *samples, size_t n)
{
	struct sphinx_sess *s = state;

	if (ps_process_raw(s->dec->ps, samples, n, FALSE, FALSE) < 0) {
		rv_error(RV_STT_LOG, "pocketsphinx failed to process audio");
		return -EIO;
	}
	s->fed += n;
	return 0;
}

static int sphinx_partial(void *state, struct rv_stt_result **out)
{
	struct sphinx_sess *s = state;
	int32 score;
	const char *hyp = ps_get_hyp(s->dec->ps, &score);

	if (!hyp || !*hyp)
		return -EAGAIN;
	/* Posteriors exist only at the end of the utterance; partials carry no confidence. */
	*out = rv_stt_result_new(hyp, 0, false);
	return 0;
}

/* Is a segment a real word (not silence, noise or a sentence mark)? */
static bool seg_is_word(const char *w)
{
	return w[0] != '<' && w[0] != '[' && !(w[0] == '+' && w[1] == '+');
}

static int sphinx_end_utt(void *state, struct rv_stt_result **out)
{
	struct sphinx_sess *s = state;
	struct sphinx_dec *d = s->dec;
	logmath_t *lmath = ps_get_logmath(d->ps);
	struct rv_stt_result *res;
	const char *hyp;
	int32 score;
	double conf = 0;
	uint32_t audio_ms = (uint32_t)(s->fed / (RV_MEDIA_RATE / 1000));

	if (ps_end_utt(d->ps) < 0) {
		rv_error(RV_STT_LOG, "pocketsphinx could not end the utterance");
		dec_put(s->eng, d);
		s->dec = NULL;
		return -EIO;
	}
	if (dec_cmn(d))
		cmn_live_get(dec_cmn(d), s->cmn);
	hyp = ps_get_hyp(d->ps, &score);
	if (hyp && *hyp)
		conf = logmath_exp(lmath, ps_get_prob(d->ps));
	res = rv_stt_result_new(hyp, (float)conf, true);
	if (res->text[0]) {
		for (ps_seg_t *seg = ps_seg_iter(d->ps); seg; seg = ps_seg_next(seg)) {
			char word[RV_STT_MAX_PHRASE_LEN];
			int sf, ef;
			int32 ascr, lscr, lback, prob;
			char *alt;
			uint32_t st, en;

			rv_strlcpy(word, ps_seg_word(seg), sizeof(word));
			if (!seg_is_word(word))
				continue;
			alt = strchr(word, '('); /* "word(2)": an alternate pronunciation */
			if (alt)
				*alt = '\0';
			ps_seg_frames(seg, &sf, &ef);
			prob = ps_seg_prob(seg, &ascr, &lscr, &lback);
			/* Frames are 10 ms; keep the timings inside the audio that was fed. */
			st = sf < 0 ? 0 : (uint32_t)sf * 10;
			en = ef < 0 ? 0 : (uint32_t)(ef + 1) * 10;
			if (en > audio_ms)
				en = audio_ms;
			if (st > en)
				st = en;
			rv_stt_result_add_word(res, word, st, en, (float)logmath_exp(lmath, prob));
		}
	}
	dec_put(s->eng, d);
	s->dec = NULL;
	*out = res;
	return 0;
}

const struct rv_stt_backend rv_stt_sphinx_backend = {
    .name = "sphinx",
    .engine_new = sphinx_engine_new,
    .engine_free = sphinx_engine_free,
    .session_new = sphinx_session_new,
    .session_free = sphinx_session_free,
    .start_utt = sphinx_start_utt,
    .feed = sphinx_feed,
    .partial = sphinx_partial,
    .end_utt = sphinx_end_utt,
    .abort_utt = sphinx_abort_utt,
};
