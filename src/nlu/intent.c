/* Intent classifier: see intent.h. */
#include "nlu/intent.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 256
#define MAX_FEATS  4096
#define MAGIC      0x4d495652u /* "RVIM" */
#define VERSION    1u
/* Trained weights stay far below this; a file with larger ones (or NaN) is corrupt, and refusing
 * it keeps every score finite, so confidences are never NaN. */
#define MAX_WEIGHT 1e4f
/* Share of an utterance's features the model must know for an answer other than OOS. */
#define MIN_COVERAGE 0.3

struct rv_intent_model {
	unsigned k;
	char labels[RV_INTENT_MAX_LABELS][RV_INTENT_MAX_LABEL];
	const char *label_ptr[RV_INTENT_MAX_LABELS];
	int oos; /* index of the out_of_scope label, -1 when the model has none */
	float t; /* temperature */
	float min_conf;
	size_t nf;
	uint32_t *ids; /* sorted feature hashes */
	float *w;      /* nf x k */
	float bias[RV_INTENT_MAX_LABELS];
};

static void errmsg(char *why, size_t len, const char *msg)
{
	if (why && len)
		snprintf(why, len, "%s", msg);
}

void rv_intent_train_defaults(struct rv_intent_train_cfg *cfg)
{
	*cfg = (struct rv_intent_train_cfg){
	    .epochs = 40, .l2 = 1e-4, .lr = 0.1, .holdout = 0.2, .min_conf = 0.35, .seed = 1};
}

/* ---- Features ---- */

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t fnv_tag(char tag)
{
	return fnv(2166136261u, &tag, 1);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * The features of a text, sorted and unique: "w" words, "b" word pairs (with start and end
 * marks), "c" character 3-5-grams of each word framed by ^ and $. Letters are folded to lower
 * case, apostrophes dropped ("don't" = "dont"), digit runs become one "<num>" word; anything
 * else separates words. Returns the count.
 */
static size_t features(const char *text, uint32_t *ids)
{
	char buf[RV_INTENT_MAX_TEXT + 1];
	const char *tok[MAX_TOKENS + 2];
	size_t tlen[MAX_TOKENS + 2];
	size_t nt = 0, n = 0, nf = 0;

	tok[nt] = "^";
	tlen[nt++] = 1;
	for (const char *p = text; *p && n < RV_INTENT_MAX_TEXT && nt <= MAX_TOKENS;) {
		unsigned char c = (unsigned char)*p;
		if (isalpha(c) || c == '\'') {
			size_t start = n;
			while (*p && n < RV_INTENT_MAX_TEXT &&
			       (isalpha((unsigned char)*p) || *p == '\'')) {
				if (*p != '\'')
					buf[n++] = (char)tolower((unsigned char)*p);
				p++;
			}
			if (n > start) {
				tok[nt] = buf + start;
				tlen[nt++] = n - start;
			}
		} else if (isdigit(c)) {
			while (isdigit((unsigned char)*p))
				p++;
			tok[nt] = "<num>";
			tlen[nt++] = 5;
		} else {
			p++;
		}
	}
	tok[nt] = "$";
	tlen[nt++] = 1;

	for (size_t i = 0; i < nt && nf + 16 < MAX_FEATS; i++) {
		bool mark = i == 0 || i == nt - 1;
		if (!mark)
			ids[nf++] = fnv(fnv_tag('w'), tok[i], tlen[i]);
		if (i + 1 < nt) {
			uint32_t h = fnv(fnv_tag('b'), tok[i], tlen[i]);
			h = fnv(h, " ", 1);
			ids[nf++] = fnv(h, tok[i + 1], tlen[i + 1]);
		}
		if (mark || tlen[i] > 40)
			continue;
		char framed[48];
		size_t fl = tlen[i] + 2;
		framed[0] = '^';
		memcpy(framed + 1, tok[i], tlen[i]);
		framed[fl - 1] = '$';
		for (size_t g = 3; g <= 5; g++)
			for (size_t s = 0; s + g <= fl && nf < MAX_FEATS; s++)
				ids[nf++] = fnv(fnv_tag((char)('0' + g)), framed + s, g);
	}
	qsort(ids, nf, sizeof(*ids), cmp_u32);
	size_t u = 0;
	for (size_t i = 0; i < nf; i++)
		if (u == 0 || ids[u - 1] != ids[i])
			ids[u++] = ids[i];
	return u;
}

/* ---- Scoring ---- */

static void softmax(const double *s, unsigned k, double t, double *p)
{
	double mx = s[0];
	for (unsigned i = 1; i < k; i++)
		if (s[i] > mx)
			mx = s[i];
	double z = 0;
	for (unsigned i = 0; i < k; i++) {
		p[i] = exp((s[i] - mx) / t);
		z += p[i];
	}
	for (unsigned i = 0; i < k; i++)
		p[i] /= z;
}

static long find_feat(const struct rv_intent_model *m, uint32_t id)
{
	size_t lo = 0, hi = m->nf;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->ids[mid] < id)
			lo = mid + 1;
		else if (m->ids[mid] > id)
			hi = mid;
		else
			return (long)mid;
	}
	return -1;
}

/* Scores of every label; returns how many of the n features the model knows. */
static size_t scores(const struct rv_intent_model *m, const uint32_t *ids, size_t n, double *s)
{
	double x = n ? 1.0 / sqrt((double)n) : 0;
	size_t known = 0;
	for (unsigned c = 0; c < m->k; c++)
		s[c] = m->bias[c];
	for (size_t i = 0; i < n; i++) {
		long f = find_feat(m, ids[i]);
		if (f < 0)
			continue;
		known++;
		const float *w = m->w + (size_t)f * m->k;
		for (unsigned c = 0; c < m->k; c++)
			s[c] += x * w[c];
	}
	return known;
}

void rv_intent_classify(const struct rv_intent_model *m, const char *text,
                        struct rv_intent_result *out)
{
	uint32_t ids[MAX_FEATS];
	double s[RV_INTENT_MAX_LABELS], p[RV_INTENT_MAX_LABELS];
	memset(out, 0, sizeof(*out));
	size_t n = features(text ? text : "", ids);
	/* Only the start/end pair: no words at all. */
	if (n <= 1) {
		out->intent = RV_INTENT_OOS;
		out->confidence = 1;
		return;
	}
	double coverage = (double)scores(m, ids, n, s) / (double)n;
	softmax(s, m->k, m->t, p);
	for (int r = 0; r < 3 && r < (int)m->k; r++) {
		int best = -1;
		for (unsigned c = 0; c < m->k; c++) {
			bool taken = false;
			for (int q = 0; q < r; q++)
				taken |= out->top[q].label == m->label_ptr[c];
			if (!taken && (best < 0 || p[c] > p[best]))
				best = (int)c;
		}
		out->top[r].label = m->label_ptr[best];
		out->top[r].conf = p[best];
	}
	bool oos_top = m->oos >= 0 && out->top[0].label == m->label_ptr[m->oos];
	if (coverage < MIN_COVERAGE) {
		/* Mostly words and spellings the model never saw: whatever wins, wins on noise. */
		out->intent = RV_INTENT_OOS;
		out->confidence = 1.0 - coverage;
	} else if (oos_top || out->top[0].conf < m->min_conf) {
		out->intent = RV_INTENT_OOS;
		out->confidence = oos_top ? out->top[0].conf : 1.0 - out->top[0].conf;
	} else {
		out->intent = out->top[0].label;
		out->confidence = out->top[0].conf;
	}
}

unsigned rv_intent_labels(const struct rv_intent_model *m, const char *const **labels)
{
	*labels = m->label_ptr;
	return m->k;
}

/* ---- Training ---- */

struct tex {
	uint32_t *ids; /* dense column indexes after mapping */
	size_t n;
	unsigned y;
};

/* Open-addressing map from feature hash to column. */
struct fmap {
	uint32_t *key;
	uint32_t *val;
	size_t cap, n;
};

static int fmap_get(struct fmap *fm, uint32_t key, bool add, uint32_t *val)
{
	size_t i = (key * 2654435761u) & (fm->cap - 1);
	while (fm->val[i] != UINT32_MAX) {
		if (fm->key[i] == key) {
			*val = fm->val[i];
			return 0;
		}
		i = (i + 1) & (fm->cap - 1);
	}
	if (!add)
		return -ENOENT;
	fm->key[i] = key;
	fm->val[i] = (uint32_t)fm->n++;
	*val = fm->val[i];
	return 0;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* AdaGrad on the softmax loss over examples ex[order[0..n)]. w is nf x k, b is k. */
static void sgd(const struct tex *ex, const size_t *order_in, size_t n, unsigned k, size_t nf,
                const struct rv_intent_train_cfg *cfg, double *w, double *b, uint64_t seed)
{
	double *g2 = calloc(nf * k + k, sizeof(double));
	size_t *order = malloc(n * sizeof(size_t));
	if (!g2 || !order) {
		free(g2);
		free(order);
		return;
	}
	memcpy(order, order_in, n * sizeof(size_t));
	double *gb = g2 + nf * k;
	uint64_t rs = seed ? seed : 1;
	for (unsigned ep = 0; ep < cfg->epochs; ep++) {
		for (size_t i = n; i > 1; i--) {
			size_t j = (size_t)(rnd(&rs) % i);
			size_t t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
		for (size_t e = 0; e < n; e++) {
			const struct tex *x = &ex[order[e]];
			double xv = x->n ? 1.0 / sqrt((double)x->n) : 0;
			double s[RV_INTENT_MAX_LABELS], p[RV_INTENT_MAX_LABELS];
			for (unsigned c = 0; c < k; c++)
				s[c] = b[c];
			for (size_t f = 0; f < x->n; f++)
				for (unsigned c = 0; c < k; c++)
					s[c] += xv * w[(size_t)x->ids[f] * k + c];
			softmax(s, k, 1.0, p);
			for (unsigned c = 0; c < k; c++) {
				double g = p[c] - (c == x->y ? 1.0 : 0.0);
				gb[c] += g * g;
				b[c] -= cfg->lr * g / sqrt(gb[c] + 1e-8);
				for (size_t f = 0; f < x->n; f++) {
					size_t wi = (size_t)x->ids[f] * k + c;
					double gw = g * xv + cfg->l2 * w[wi];
					g2[wi] += gw * gw;
					w[wi] -= cfg->lr * gw / sqrt(g2[wi] + 1e-8);
				}
			}
		}
	}
	free(g2);
	free(order);
}

static void dense_scores(const struct tex *x, unsigned k, const double *w, const double *b,
                         double *s)
{
	double xv = x->n ? 1.0 / sqrt((double)x->n) : 0;
	for (unsigned c = 0; c < k; c++)
		s[c] = b[c];
	for (size_t f = 0; f < x->n; f++)
		for (unsigned c = 0; c < k; c++)
			s[c] += xv * w[(size_t)x->ids[f] * k + c];
}

int rv_intent_train(const struct rv_intent_example *ex, size_t n,
                    const struct rv_intent_train_cfg *cfg_in, struct rv_intent_model **out,
                    struct rv_intent_report *rep, char *why, size_t whylen)
{
	struct rv_intent_train_cfg cfg;
	if (cfg_in)
		cfg = *cfg_in;
	else
		rv_intent_train_defaults(&cfg);
	if (cfg.epochs == 0 || cfg.epochs > 1000 || cfg.holdout < 0 || cfg.holdout > 0.5 ||
	    cfg.lr <= 0 || cfg.l2 < 0 || cfg.min_conf < 0 || cfg.min_conf >= 1) {
		errmsg(why, whylen, "bad training settings");
		return -EINVAL;
	}
	if (n < 4 || n > RV_INTENT_MAX_EXAMPLES) {
		errmsg(why, whylen, "need between 4 and 50000 examples");
		return -EINVAL;
	}
	struct rv_intent_model *m = calloc(1, sizeof(*m));
	struct tex *tx = calloc(n, sizeof(*tx));
	size_t *order = malloc(n * sizeof(size_t));
	uint32_t *tmp = malloc(MAX_FEATS * sizeof(uint32_t));
	struct fmap fm = {0};
	double *w = NULL, *b = NULL;
	int ret = -ENOMEM;
	if (!m || !tx || !order || !tmp)
		goto out;
	m->oos = -1;

	/* Labels. */
	for (size_t i = 0; i < n; i++) {
		const char *l = ex[i].label;
		size_t ll = l ? strlen(l) : 0;
		if (ll == 0 || ll >= RV_INTENT_MAX_LABEL || !ex[i].text) {
			if (why && whylen)
				snprintf(why, whylen, "example %zu: the label must be 1-%d bytes",
				         i + 1, RV_INTENT_MAX_LABEL - 1);
			ret = -EINVAL;
			goto out;
		}
		unsigned c = 0;
		while (c < m->k && strcmp(m->labels[c], l) != 0)
			c++;
		if (c == m->k) {
			if (m->k == RV_INTENT_MAX_LABELS) {
				errmsg(why, whylen, "more than 64 labels");
				ret = -EINVAL;
				goto out;
			}
			memcpy(m->labels[m->k], l, ll + 1);
			m->label_ptr[m->k] = m->labels[m->k];
			if (strcmp(l, RV_INTENT_OOS) == 0)
				m->oos = (int)m->k;
			m->k++;
		}
		tx[i].y = c;
	}
	if (m->k < 2) {
		errmsg(why, whylen, "need at least two labels");
		ret = -EINVAL;
		goto out;
	}

	/* Features, mapped to dense columns. */
	fm.cap = 1;
	while (fm.cap < n * 64 * 2)
		fm.cap <<= 1;
	fm.key = malloc(fm.cap * sizeof(uint32_t));
	fm.val = malloc(fm.cap * sizeof(uint32_t));
	if (!fm.key || !fm.val)
		goto out;
	memset(fm.val, 0xff, fm.cap * sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		size_t nfe = features(ex[i].text, tmp);
		tx[i].ids = malloc((nfe ? nfe : 1) * sizeof(uint32_t));
		if (!tx[i].ids)
			goto out;
		for (size_t f = 0; f < nfe; f++) {
			if (fm.n * 2 >= fm.cap)
				break; /* map full: later rare features are dropped */
			fmap_get(&fm, tmp[f], true, &tx[i].ids[tx[i].n++]);
		}
	}
	size_t nf = fm.n;
	unsigned k = m->k;
	w = calloc(nf * k, sizeof(double));
	b = calloc(k, sizeof(double));
	if (!w || !b)
		goto out;

	/* Stratified-ish split: every example's slot by a seeded shuffle. */
	uint64_t rs = cfg.seed ? cfg.seed : 1;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(rnd(&rs) % i);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	size_t nh = (size_t)((double)n * cfg.holdout);
	double acc = -1, temp = 1;
	if (nh > 0 && n - nh >= 2) {
		sgd(tx, order + nh, n - nh, k, nf, &cfg, w, b, cfg.seed + 7);
		size_t right = 0;
		double best_nll = INFINITY;
		for (double t = 0.2; t <= 5.0; t += 0.05) {
			double nll = 0;
			for (size_t h = 0; h < nh; h++) {
				double s[RV_INTENT_MAX_LABELS], p[RV_INTENT_MAX_LABELS];
				dense_scores(&tx[order[h]], k, w, b, s);
				softmax(s, k, t, p);
				nll -= log(p[tx[order[h]].y] + 1e-12);
			}
			if (nll < best_nll) {
				best_nll = nll;
				temp = t;
			}
		}
		for (size_t h = 0; h < nh; h++) {
			double s[RV_INTENT_MAX_LABELS];
			dense_scores(&tx[order[h]], k, w, b, s);
			unsigned best = 0;
			for (unsigned c = 1; c < k; c++)
				if (s[c] > s[best])
					best = c;
			right += best == tx[order[h]].y;
		}
		acc = (double)right / (double)nh;
		memset(w, 0, nf * k * sizeof(double));
		memset(b, 0, k * sizeof(double));
	}
	sgd(tx, order, n, k, nf, &cfg, w, b, cfg.seed + 11);

	/* Keep the model sparse: hashes sorted with their weight rows. */
	m->nf = nf;
	m->ids = malloc((nf ? nf : 1) * sizeof(uint32_t));
	m->w = malloc((nf ? nf : 1) * k * sizeof(float));
	uint32_t *rowof = malloc((nf ? nf : 1) * sizeof(uint32_t));
	if (!m->ids || !m->w || !rowof) {
		free(rowof);
		goto out;
	}
	size_t fi = 0;
	for (size_t s = 0; s < fm.cap; s++) {
		if (fm.val[s] != UINT32_MAX) {
			m->ids[fi] = fm.key[s];
			rowof[fi] = fm.val[s];
			fi++;
		}
	}
	/* Sort ids and carry rows along: sort index pairs. */
	uint64_t *pairs = malloc((nf ? nf : 1) * sizeof(uint64_t));
	if (!pairs) {
		free(rowof);
		goto out;
	}
	for (size_t i = 0; i < nf; i++)
		pairs[i] = ((uint64_t)m->ids[i] << 32) | rowof[i];
	qsort(pairs, nf, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < nf; i++) {
		m->ids[i] = (uint32_t)(pairs[i] >> 32);
		uint32_t row = (uint32_t)pairs[i];
		for (unsigned c = 0; c < k; c++)
			m->w[i * k + c] = (float)w[(size_t)row * k + c];
	}
	free(pairs);
	free(rowof);
	for (unsigned c = 0; c < k; c++)
		m->bias[c] = (float)b[c];
	m->t = (float)temp;
	m->min_conf = (float)cfg.min_conf;
	if (rep)
		*rep = (struct rv_intent_report){.n_train = n,
		                                 .n_holdout = acc >= 0 ? nh : 0,
		                                 .holdout_accuracy = acc,
		                                 .temperature = temp,
		                                 .n_features = nf,
		                                 .n_labels = k};
	*out = m;
	m = NULL;
	ret = 0;
out:
	if (tx)
		for (size_t i = 0; i < n; i++)
			free(tx[i].ids);
	free(tx);
	free(order);
	free(tmp);
	free(fm.key);
	free(fm.val);
	free(w);
	free(b);
	rv_intent_free(m);
	if (ret == -ENOMEM)
		errmsg(why, whylen, "out of memory");
	return ret;
}

void rv_intent_free(struct rv_intent_model *m)
{
	if (!m)
		return;
	free(m->ids);
	free(m->w);
	free(m);
}

/* ---- Serialisation: little-endian, every count checked against the buffer on load ---- */

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	int err;
};

static void put(struct wbuf *b, const void *src, size_t n)
{
	if (b->err)
		return;
	if (b->n + n > b->cap) {
		size_t cap = (b->n + n) * 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void put_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(b, x, 4);
}

static void put_f32(struct wbuf *b, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	put_u32(b, v);
}

int rv_intent_save(const struct rv_intent_model *m, uint8_t **buf, size_t *len)
{
	struct wbuf b = {0};
	put_u32(&b, MAGIC);
	put_u32(&b, VERSION);
	put_u32(&b, m->k);
	put_u32(&b, (uint32_t)m->nf);
	put_f32(&b, m->t);
	put_f32(&b, m->min_conf);
	for (unsigned c = 0; c < m->k; c++) {
		uint8_t ll = (uint8_t)strlen(m->labels[c]);
		put(&b, &ll, 1);
		put(&b, m->labels[c], ll);
	}
	for (unsigned c = 0; c < m->k; c++)
		put_f32(&b, m->bias[c]);
	for (size_t i = 0; i < m->nf; i++)
		put_u32(&b, m->ids[i]);
	for (size_t i = 0; i < m->nf * m->k; i++)
		put_f32(&b, m->w[i]);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*buf = b.p;
	*len = b.n;
	return 0;
}

struct rbuf {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static uint32_t get_u32(struct rbuf *r)
{
	if (r->bad || r->n - r->off < 4) {
		r->bad = true;
		return 0;
	}
	const uint8_t *x = r->p + r->off;
	r->off += 4;
	return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static float get_f32(struct rbuf *r)
{
	uint32_t v = get_u32(r);
	float f;
	memcpy(&f, &v, 4);
	return f;
}

int rv_intent_load(const uint8_t *buf, size_t len, struct rv_intent_model **out)
{
	struct rbuf r = {.p = buf, .n = len};
	if (get_u32(&r) != MAGIC || get_u32(&r) != VERSION)
		return -EINVAL;
	uint32_t k = get_u32(&r), nf = get_u32(&r);
	float t = get_f32(&r), mc = get_f32(&r);
	if (r.bad || k < 2 || k > RV_INTENT_MAX_LABELS || !(t > 0.01f && t < 100) ||
	    !(mc >= 0 && mc < 1))
		return -EINVAL;
	/* The arrays must fit in what is left: k biases, nf ids, nf*k weights. */
	if ((uint64_t)nf * (k + 1) * 4 + (uint64_t)k * 4 > len)
		return -EINVAL;
	struct rv_intent_model *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->k = k;
	m->nf = nf;
	m->t = t;
	m->min_conf = mc;
	m->oos = -1;
	for (unsigned c = 0; c < k; c++) {
		if (r.off >= len) {
			r.bad = true;
			break;
		}
		uint8_t ll = buf[r.off++];
		if (ll == 0 || ll >= RV_INTENT_MAX_LABEL || len - r.off < ll ||
		    memchr(buf + r.off, '\0', ll)) {
			r.bad = true;
			break;
		}
		memcpy(m->labels[c], buf + r.off, ll);
		m->labels[c][ll] = '\0';
		r.off += ll;
		m->label_ptr[c] = m->labels[c];
		if (strcmp(m->labels[c], RV_INTENT_OOS) == 0)
			m->oos = (int)c;
	}
	for (unsigned c = 0; c < k && !r.bad; c++)
		m->bias[c] = get_f32(&r);
	m->ids = malloc((nf ? nf : 1) * sizeof(uint32_t));
	m->w = malloc((nf ? nf : 1) * (size_t)k * sizeof(float));
	if (!m->ids || !m->w) {
		rv_intent_free(m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nf && !r.bad; i++) {
		m->ids[i] = get_u32(&r);
		if (i > 0 && m->ids[i] <= m->ids[i - 1])
			r.bad = true; /* binary search needs strictly sorted ids */
	}
	for (size_t i = 0; i < (size_t)nf * k && !r.bad; i++) {
		m->w[i] = get_f32(&r);
		if (!(fabsf(m->w[i]) <= MAX_WEIGHT))
			r.bad = true;
	}
	for (unsigned c = 0; c < k && !r.bad; c++)
		if (!(fabsf(m->bias[c]) <= MAX_WEIGHT))
			r.bad = true;
	if (r.bad || r.off != len) {
		rv_intent_free(m);
		return -EINVAL;
	}
	*out = m;
	return 0;
}

long rv_intent_read_tsv(const char *path, char **bufp, struct rv_intent_example **exp, char *why,
                        size_t whylen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		if (why && whylen)
			snprintf(why, whylen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			char *nb = cap > (64u << 20) ? NULL : realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(fp);
				errmsg(why, whylen, "file too large or out of memory");
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, 4096, fp);
		n += got;
		if (got < 4096)
			break;
	}
	fclose(fp);
	buf[n] = '\0';
	size_t lines = 1;
	for (size_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	struct rv_intent_example *ex = calloc(lines, sizeof(*ex));
	if (!ex) {
		free(buf);
		return -ENOMEM;
	}
	long count = 0, lineno = 0;
	for (char *line = buf, *next; line && *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t ll = strlen(line);
		if (ll && line[ll - 1] == '\r')
			line[--ll] = '\0';
		if (ll == 0 || line[0] == '#')
			continue;
		char *tab = strchr(line, '\t');
		if (!tab || tab == line || !tab[1]) {
			if (why && whylen)
				snprintf(why, whylen, "%s:%ld: expected label<TAB>text", path,
				         lineno);
			free(ex);
			free(buf);
			return -EINVAL;
		}
		*tab = '\0';
		ex[count].label = line;
		ex[count].text = tab + 1;
		count++;
	}
	*bufp = buf;
	*exp = ex;
	return count;
}
