/* Emotion from words and voice: see emotion.h. */
#include "nlu/emotion.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Lexicon: valence -1..1 and arousal 0..1 of words callers use; a = anger word. */
static const struct lex {
	const char *w;
	float v, ar;
	bool anger;
} LEX[] = {
    {"angry", -0.8f, 0.9f, true},         {"furious", -0.9f, 1.0f, true},
    {"mad", -0.7f, 0.8f, true},           {"pissed", -0.8f, 0.9f, true},
    {"ridiculous", -0.7f, 0.7f, true},    {"unacceptable", -0.8f, 0.8f, true},
    {"outrageous", -0.8f, 0.9f, true},    {"stupid", -0.7f, 0.7f, true},
    {"idiot", -0.8f, 0.8f, true},         {"hate", -0.8f, 0.8f, true},
    {"scam", -0.8f, 0.8f, true},          {"harass", -0.8f, 0.8f, true},
    {"harassing", -0.8f, 0.8f, true},     {"sick", -0.5f, 0.6f, true},
    {"annoyed", -0.6f, 0.6f, true},       {"annoying", -0.6f, 0.6f, true},
    {"frustrated", -0.7f, 0.7f, true},    {"frustrating", -0.7f, 0.7f, true},
    {"fed", -0.5f, 0.6f, true},           {"damn", -0.6f, 0.8f, true},
    {"terrible", -0.8f, 0.6f, false},     {"awful", -0.8f, 0.6f, false},
    {"horrible", -0.8f, 0.6f, false},     {"bad", -0.6f, 0.4f, false},
    {"worst", -0.9f, 0.7f, false},        {"problem", -0.4f, 0.4f, false},
    {"wrong", -0.4f, 0.4f, false},        {"waste", -0.6f, 0.5f, false},
    {"disappointed", -0.6f, 0.3f, false}, {"upset", -0.6f, 0.6f, false},
    {"sad", -0.7f, 0.2f, false},          {"unhappy", -0.6f, 0.3f, false},
    {"depressed", -0.8f, 0.1f, false},    {"lonely", -0.6f, 0.2f, false},
    {"sorry", -0.3f, 0.2f, false},        {"passed", -0.5f, 0.2f, false},
    {"died", -0.8f, 0.3f, false},         {"lost", -0.5f, 0.3f, false},
    {"tired", -0.4f, 0.1f, false},        {"worried", -0.5f, 0.5f, false},
    {"afraid", -0.6f, 0.6f, false},       {"scared", -0.6f, 0.7f, false},
    {"hard", -0.3f, 0.3f, false},         {"difficult", -0.4f, 0.4f, false},
    {"good", 0.6f, 0.4f, false},          {"great", 0.8f, 0.6f, false},
    {"excellent", 0.9f, 0.6f, false},     {"wonderful", 0.9f, 0.6f, false},
    {"amazing", 0.9f, 0.8f, false},       {"awesome", 0.9f, 0.8f, false},
    {"perfect", 0.8f, 0.5f, false},       {"love", 0.8f, 0.6f, false},
    {"happy", 0.8f, 0.5f, false},         {"glad", 0.7f, 0.4f, false},
    {"nice", 0.6f, 0.3f, false},          {"thanks", 0.5f, 0.3f, false},
    {"thank", 0.5f, 0.3f, false},         {"appreciate", 0.6f, 0.3f, false},
    {"helpful", 0.6f, 0.3f, false},       {"fantastic", 0.9f, 0.7f, false},
    {"pleased", 0.7f, 0.4f, false},       {"excited", 0.8f, 0.8f, false},
    {"interested", 0.4f, 0.4f, false},    {"fine", 0.2f, 0.2f, false},
    {"okay", 0.1f, 0.1f, false},          {"sure", 0.2f, 0.2f, false},
    {"yes", 0.1f, 0.1f, false},           {"wow", 0.5f, 0.8f, false},
};

static const char *const NEGATORS[] = {"not",   "no",    "never", "dont", "doesnt", "didnt", "isnt",
                                       "wasnt", "arent", "cant",  "wont", "hardly", NULL};
static const char *const BOOST[] = {"very",       "really",     "so",         "extremely",
                                    "totally",    "absolutely", "completely", "too",
                                    "incredibly", "super",      NULL};
static const char *const DAMP[] = {"bit", "little", "slightly", "somewhat", "kinda", "kind", NULL};
/* Word sequences that mean the caller is lost. */
static const char *const CONFUSED[] = {"dont understand", "do not understand", "what do you mean",
                                       "im confused",     "confused",          "not sure what",
                                       "makes no sense",  "doesnt make sense", "what are you",
                                       "i dont get it",   "lost me",           NULL};

static bool in(const char *w, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(w, *list) == 0)
			return true;
	return false;
}

void rv_emotion_text(const char *text, struct rv_emotion_text *out)
{
	char norm[2001];
	size_t n = 0;
	memset(out, 0, sizeof(*out));
	/* Lower case, apostrophes dropped, everything else but letters a single space. */
	for (const char *p = text ? text : ""; *p && n < sizeof(norm) - 1; p++) {
		unsigned char c = (unsigned char)*p;
		if (isalpha(c))
			norm[n++] = (char)tolower(c);
		else if (c != '\'' && n && norm[n - 1] != ' ')
			norm[n++] = ' ';
	}
	norm[n] = '\0';
	for (size_t i = 0; CONFUSED[i]; i++)
		if (strstr(norm, CONFUSED[i]))
			out->confused = true;

	char *words[400];
	size_t nw = 0;
	for (char *save = NULL, *w = strtok_r(norm, " ", &save); w && nw < 400;
	     w = strtok_r(NULL, " ", &save))
		words[nw++] = w;

	double vsum = 0, asum = 0, wsum = 0;
	for (size_t i = 0; i < nw; i++) {
		const struct lex *hit = NULL;
		for (size_t k = 0; k < sizeof(LEX) / sizeof(LEX[0]); k++)
			if (strcmp(words[i], LEX[k].w) == 0)
				hit = &LEX[k];
		if (!hit)
			continue;
		double v = hit->v, a = hit->ar, mul = 1.0;
		bool negated = false;
		for (size_t b = 1; b <= 3 && b <= i; b++) {
			const char *prev = words[i - b];
			if (in(prev, NEGATORS))
				negated = true;
			else if (in(prev, BOOST))
				mul *= 1.5;
			else if (in(prev, DAMP))
				mul *= 0.5;
		}
		if (negated) {
			/* "not happy" is mildly negative; "not bad" mildly positive. */
			v = -v * 0.6;
			a *= 0.7;
		} else if (hit->anger) {
			out->anger = true;
		}
		vsum += v * mul;
		asum += a * (mul > 1 ? 1.2 : mul < 1 ? 0.7 : 1.0);
		wsum += 1;
		out->cues++;
	}
	if (wsum > 0) {
		double v = vsum / wsum;
		out->valence = v > 1 ? 1 : v < -1 ? -1 : v;
		double a = asum / wsum;
		out->arousal = a > 1 ? 1 : a;
	}
	if (out->confused) {
		out->valence = out->valence > -0.2 ? -0.2 : out->valence;
		out->arousal = out->arousal < 0.4 ? 0.4 : out->arousal;
	}
}

/* ---- Voice ---- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int rv_voice_features(const int16_t *pcm, size_t n, uint32_t rate, unsigned words,
                      struct rv_voice_feat *out)
{
	memset(out, 0, sizeof(*out));
	if (rate < 8000 || rate > 48000)
		return -EINVAL;
	size_t frame = rate / 25;                         /* 40 ms: two periods of a 50 Hz voice */
	size_t hop = rate / 100;                          /* 10 ms */
	size_t lag_min = rate / 400, lag_max = rate / 60; /* 60-400 Hz */
	if (n < frame)
		return 0;
	size_t nfr = (n - frame) / hop + 1;
	double *f0 = malloc(nfr * sizeof(double));
	if (!f0)
		return -ENOMEM;
	size_t nv = 0;
	double esum = 0;
	for (size_t f = 0; f < nfr; f++) {
		const int16_t *x = pcm + f * hop;
		double e = 0;
		for (size_t i = 0; i < frame; i++)
			e += (double)x[i] * x[i];
		double rms = sqrt(e / (double)frame);
		if (rms < 300) /* about -40 dBFS: silence or line noise */
			continue;
		/* Normalised autocorrelation over the pitch range; a periodic signal peaks at every
		 * multiple of its period, so take the shortest lag close to the best peak (octave
		 * errors otherwise halve the pitch). */
		double r_at[1024];
		double best = 0;
		size_t best_lag = 0, nl = 0;
		for (size_t lag = lag_min; lag <= lag_max && lag < frame && nl < 1024;
		     lag++, nl++) {
			double num = 0, d1 = 0, d2 = 0;
			for (size_t i = 0; i + lag < frame; i++) {
				num += (double)x[i] * x[i + lag];
				d1 += (double)x[i] * x[i];
				d2 += (double)x[i + lag] * x[i + lag];
			}
			r_at[nl] = d1 > 0 && d2 > 0 ? num / sqrt(d1 * d2) : 0;
			if (r_at[nl] > best)
				best = r_at[nl];
		}
		for (size_t k = 0; k < nl; k++) {
			bool peak = (k == 0 || r_at[k] >= r_at[k - 1]) &&
			            (k + 1 == nl || r_at[k] >= r_at[k + 1]);
			if (peak && r_at[k] >= 0.9 * best) {
				best_lag = lag_min + k;
				break;
			}
		}
		if (best < 0.6 || !best_lag)
			continue;
		f0[nv++] = (double)rate / (double)best_lag;
		esum += 20 * log10(rms / 32768.0);
	}
	out->voiced_s = (double)nv * (double)hop / rate;
	if (out->voiced_s >= 0.3) {
		qsort(f0, nv, sizeof(double), cmp_d);
		out->valid = true;
		out->f0_hz = f0[nv / 2];
		double p10 = f0[nv / 10], p90 = f0[nv * 9 / 10];
		out->f0_range = 12 * log2(p90 / p10);
		out->energy_db = esum / (double)nv;
		double dur = (double)n / rate;
		out->rate_wps = words && dur > 0 ? words / dur : 0;
	}
	free(f0);
	return 0;
}

/* ---- Fusion ---- */

static void welford(unsigned n, double x, double *mean, double *m2)
{
	double d = x - *mean;
	*mean += d / n;
	*m2 += d * (x - *mean);
}

static double zscore(unsigned n, double x, double mean, double m2, double floor_sd)
{
	double sd = n > 1 ? sqrt(m2 / (n - 1)) : 0;
	if (sd < floor_sd)
		sd = floor_sd;
	return (x - mean) / sd;
}

void rv_emotion_fuse(const struct rv_emotion_text *t, const struct rv_voice_feat *v,
                     struct rv_emotion_baseline *base, struct rv_emotion *out)
{
	memset(out, 0, sizeof(*out));
	double valence = t->valence, arousal = t->cues ? t->arousal : 0.3;
	double conf = t->cues ? 0.5 + 0.1 * (t->cues > 3 ? 3 : t->cues) : 0.4;

	if (v && v->valid && base) {
		if (base->n >= 2) {
			/* Louder, higher, livelier and faster than this caller's own normal. */
			double z =
			    0.4 * zscore(base->n, v->energy_db, base->en_mean, base->en_m2, 2.0) +
			    0.3 *
			        zscore(base->n, log2(v->f0_hz), base->f0_mean, base->f0_m2, 0.08) +
			    0.2 *
			        zscore(base->n, v->f0_range, base->range_mean, base->range_m2, 1.0);
			if (v->rate_wps > 0 && base->rate_mean > 0)
				z += 0.1 * zscore(base->n, v->rate_wps, base->rate_mean,
				                  base->rate_m2, 0.3);
			double va = 1.0 / (1.0 + exp(-z)); /* 0.5 = the caller's usual */
			out->voice_arousal = va;
			arousal = 0.5 * arousal + 0.5 * va;
			conf += 0.1;
		}
		base->n++;
		welford(base->n, v->energy_db, &base->en_mean, &base->en_m2);
		welford(base->n, log2(v->f0_hz), &base->f0_mean, &base->f0_m2);
		welford(base->n, v->f0_range, &base->range_mean, &base->range_m2);
		if (v->rate_wps > 0)
			welford(base->n, v->rate_wps, &base->rate_mean, &base->rate_m2);
	}

	const char *label = "neutral";
	if (t->confused)
		label = "confused";
	else if (valence <= -0.3 && (t->anger || arousal >= 0.55))
		label = "frustrated";
	else if (valence <= -0.3)
		label = "sad";
	else if (valence >= 0.3)
		label = "positive";
	else if (out->voice_arousal >= 0.85 && valence < 0)
		label = "frustrated"; /* words say little, the voice a lot */
	out->label = label;
	out->valence = valence;
	out->arousal = arousal > 1 ? 1 : arousal < 0 ? 0 : arousal;
	out->confidence = conf > 1 ? 1 : conf;
}
