/* Voice activity detector: see vad.h for the method and docs/adr/0008-vad.md for the numbers. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "media/media_pcm.h"
#include "speech/vad.h"

#define NFFT  512
#define NBIN  (NFFT / 2 + 1)
#define NHIST (NFFT - RV_MEDIA_FRAME) /* samples of the previous frame in each window */

/* Analysis band of the likelihood ratio: the telephone band, 150..3800 Hz (31.25 Hz bins). */
#define BAND_LO 5
#define BAND_HI 121
/* Harmonicity band: where voiced speech has its strongest harmonics, 100..3000 Hz. */
#define HARM_LO 3
#define HARM_HI 96
/* Pitch lags at 16 kHz: 400 Hz down to 80 Hz. */
#define LAG_MIN 40
#define LAG_MAX 200

/* Minimum statistics: sub-windows of 0.5 s, 4 of them; the floor may only be lifted by them
 * once 3 are complete (1.5 s of history), so a call that opens with speech is not taken for
 * noise. */
#define MIN_SUB_FRAMES 25
#define MIN_SUBS       4
#define MIN_SUBS_READY 3

#define REF_RING  16 /* frames of reference history: 320 ms, the cap of echo_max_delay_ms */
#define PROB_RING 32 /* frames of history for walking a start back */
/* A steady, non-harmonic signal over this many frames (240 ms) is noise, whatever its level:
 * this is how the floor catches up with a line that is noisy from the first frame or gets
 * noisier at once, long before minimum statistics would. */
#define STEADY_FRAMES   12
#define STEADY_RANGE_DB 4.0f
#define STEADY_HARM     0.5f
/* The first frames of a stream: the floor is still a guess, so only harmonic frames count as
 * voiced (a call that opens with "hello" is voiced), and non-harmonic ones teach the floor. */
#define STARTUP_FRAMES 15
#define STARTUP_HARM   0.55f
#define FRAME_MS       RV_MEDIA_PTIME_MS
#define FLOOR_POW      1e-3f /* per-bin power floor: far under one LSB of noise, avoids 0/0 */
#define LEVEL_NONE     (-120.0f)

/* Feature weights of the frame probability: the logistic of a weighted sum of the log mean
 * likelihood ratio and the harmonicity. Chosen on the bench streams (ADR 0008). */
static const float W_LLR = 2.2f, LLR0 = 0.2f; /* log(mean LLR / LLR0) */
static const float W_HARM = 9.0f, HARM0 = 0.35f;
static const float DD_ALPHA = 0.96f; /* decision-directed a-priori SNR smoothing */
static const float XI_MIN = 0.003f;  /* -25 dB a-priori SNR floor */

struct rv_vad {
	struct rv_vad_cfg cfg;
	uint32_t min_speech_frames, hangover_frames, preroll_frames, echo_frames;
	float echo_margin; /* linear power */

	/* constant tables */
	float win[NFFT];
	float tw_re[NFFT / 2], tw_im[NFFT / 2];
	uint16_t bitrev[NFFT];
	float costab[NFFT];
	float lagnorm[LAG_MAX + 1]; /* window autocorrelation at each lag, relative to lag 0 */
	float pow_scale;            /* one-sided bin power -> mean square of the samples */

	/* scratch */
	float re[NFFT], im[NFFT];
	float P[NBIN]; /* this frame's mic power */
	float Rmax[NBIN];
	float X[NBIN];

	/* signal state */
	int16_t mic_hist[NHIST], ref_hist[NHIST];
	float S[NBIN];       /* smoothed mic power */
	float N[NBIN];       /* noise floor */
	float A2[NBIN];      /* previous frame's clean-speech power estimate */
	float cur_min[NBIN]; /* minimum of S in the running sub-window */
	float sub_min[MIN_SUBS][NBIN];
	uint32_t sub_frames, subs_done, sub_pos;
	float R[REF_RING][NBIN];    /* reference spectra, ring */
	uint32_t ref_pos, ref_live; /* ref_live: frames until the ring holds only zeros */
	float echo_gain_db;

	uint64_t frame; /* frames processed */
	float level_ring[STEADY_FRAMES], harm_ring[STEADY_FRAMES];
	uint8_t soft_hist[PROB_RING]; /* frame could be part of speech: look-back for a start */
	bool in_speech;
	uint32_t onset_voiced, onset_gap;
	uint64_t onset_first; /* frame index of the first voiced frame of the onset run */
	uint64_t start_frame, last_voiced;
	uint32_t unvoiced_run, voiced_frames;
};

void rv_vad_cfg_defaults(struct rv_vad_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->min_speech_ms = 80;
	cfg->hangover_ms = 240;
	cfg->preroll_ms = 200;
	cfg->threshold = 0.5f;
	cfg->min_level_db = -55.0f;
	cfg->echo_init_gain_db = -6.0f;
	cfg->echo_margin_db = 6.0f;
	cfg->echo_max_delay_ms = 80;
}

static int cfg_check(const struct rv_vad_cfg *c)
{
	if (c->min_speech_ms < FRAME_MS || c->min_speech_ms > 1000)
		return -EINVAL;
	if (c->hangover_ms < FRAME_MS || c->hangover_ms > 5000)
		return -EINVAL;
	if (c->preroll_ms > 500)
		return -EINVAL;
	if (!(c->threshold >= 0.05f && c->threshold <= 0.95f))
		return -EINVAL;
	if (!(c->min_level_db >= -100.0f && c->min_level_db <= 0.0f))
		return -EINVAL;
	if (!(c->echo_init_gain_db >= -60.0f && c->echo_init_gain_db <= 0.0f))
		return -EINVAL;
	if (!(c->echo_margin_db >= 0.0f && c->echo_margin_db <= 30.0f))
		return -EINVAL;
	if (c->echo_max_delay_ms > (REF_RING - 2) * FRAME_MS)
		return -EINVAL;
	return 0;
}

static uint32_t ms_to_frames(uint32_t ms)
{
	return (ms + FRAME_MS - 1) / FRAME_MS;
}

static void tables_init(struct rv_vad *v)
{
	const double pi = 3.14159265358979323846;
	double wsum2 = 0;

	for (int i = 0; i < NFFT; i++) {
		/* Periodic Hann: overlapping windows sum flat, and its autocorrelation is smooth.
		 */
		v->win[i] = (float)(0.5 - 0.5 * cos(2 * pi * i / NFFT));
		wsum2 += (double)v->win[i] * v->win[i];
		v->costab[i] = (float)cos(2 * pi * i / NFFT);
	}
	for (int i = 0; i < NFFT / 2; i++) {
		v->tw_re[i] = (float)cos(-2 * pi * i / NFFT);
		v->tw_im[i] = (float)sin(-2 * pi * i / NFFT);
	}
	for (int i = 0; i < NFFT; i++) {
		unsigned r = 0;
		for (int b = 0; b < 9; b++)
			r |= (unsigned)((i >> b) & 1) << (8 - b);
		v->bitrev[i] = (uint16_t)r;
	}
	double w0 = 0;
	for (int i = 0; i < NFFT; i++)
		w0 += (double)v->win[i] * v->win[i];
	for (int lag = 0; lag <= LAG_MAX; lag++) {
		double a = 0;
		for (int i = 0; i + lag < NFFT; i++)
			a += (double)v->win[i] * v->win[i + lag];
		v->lagnorm[lag] = (float)(a / w0);
	}
	v->pow_scale = (float)(2.0 / (NFFT * wsum2));
}

static void state_init(struct rv_vad *v)
{
	/* Start the floor at a quiet line (-70 dBFS white noise): a call that opens with speech
	 * is then heard at once; a noisy line lifts the floor within 1.5 s, and harmonicity keeps
	 * that noise from being called speech meanwhile. */
	float ms = powf(10.0f, -70.0f / 10.0f) * 32768.0f * 32768.0f;
	float per_bin = ms / (v->pow_scale * (NBIN - 1));

	memset(v->mic_hist, 0, sizeof(v->mic_hist));
	memset(v->ref_hist, 0, sizeof(v->ref_hist));
	for (int k = 0; k < NBIN; k++) {
		v->N[k] = per_bin;
		v->S[k] = per_bin;
		v->A2[k] = 0;
		v->cur_min[k] = INFINITY;
	}
	memset(v->sub_min, 0, sizeof(v->sub_min));
	memset(v->R, 0, sizeof(v->R));
	v->sub_frames = v->subs_done = v->sub_pos = 0;
	v->ref_pos = v->ref_live = 0;
	v->echo_gain_db = v->cfg.echo_init_gain_db;
	v->frame = 0;
	memset(v->soft_hist, 0, sizeof(v->soft_hist));
	memset(v->level_ring, 0, sizeof(v->level_ring));
	memset(v->harm_ring, 0, sizeof(v->harm_ring));
	v->in_speech = false;
	v->onset_voiced = v->onset_gap = 0;
	v->onset_first = v->start_frame = v->last_voiced = 0;
	v->unvoiced_run = v->voiced_frames = 0;
}

int rv_vad_alloc(const struct rv_vad_cfg *cfg, struct rv_vad **out)
{
	struct rv_vad_cfg def;
	struct rv_vad *v = NULL;
	int err;

	if (!out)
		return -EINVAL;
	if (!cfg) {
		rv_vad_cfg_defaults(&def);
		cfg = &def;
	}
	err = cfg_check(cfg);
	if (err)
		goto out;
	v = calloc(1, sizeof(*v));
	if (!v) {
		err = -ENOMEM;
		goto out;
	}
	v->cfg = *cfg;
	v->min_speech_frames = ms_to_frames(cfg->min_speech_ms);
	v->hangover_frames = ms_to_frames(cfg->hangover_ms);
	v->preroll_frames = cfg->preroll_ms / FRAME_MS;
	/* The echo of frame t is heard in frames t .. t + delay; the analysis window also reaches
	 * 12 ms into the previous frame, hence the extra frame. */
	v->echo_frames = ms_to_frames(cfg->echo_max_delay_ms) + 1;
	v->echo_margin = powf(10.0f, cfg->echo_margin_db / 10.0f);
	tables_init(v);
	state_init(v);
	*out = v;
	v = NULL;
out:
	free(v);
	return err;
}

void rv_vad_free(struct rv_vad *vad)
{
	free(vad);
}

void rv_vad_reset(struct rv_vad *vad)
{
	if (vad)
		state_init(vad);
}

/* In-place radix-2 FFT of re/im (NFFT points). */
static void fft(struct rv_vad *v)
{
	float *re = v->re, *im = v->im;

	for (int i = 0; i < NFFT; i++) {
		int j = v->bitrev[i];
		if (j > i) {
			float t = re[i];
			re[i] = re[j];
			re[j] = t;
			t = im[i];
			im[i] = im[j];
			im[j] = t;
		}
	}
	for (int len = 2; len <= NFFT; len <<= 1) {
		int half = len >> 1, step = NFFT / len;
		for (int i = 0; i < NFFT; i += len) {
			for (int j = 0; j < half; j++) {
				float wr = v->tw_re[j * step], wi = v->tw_im[j * step];
				int a = i + j, b = a + half;
				float xr = re[b] * wr - im[b] * wi;
				float xi = re[b] * wi + im[b] * wr;
				re[b] = re[a] - xr;
				im[b] = im[a] - xi;
				re[a] += xr;
				im[a] += xi;
			}
		}
	}
}

/* Power spectrum of the window made of hist (NHIST samples) and frame; hist is then updated.
 * Returns the frame's mean square. */
static float spectrum(struct rv_vad *v, int16_t *hist, const int16_t *frame, float *pw)
{
	double ms = 0;

	for (int i = 0; i < NHIST; i++) {
		v->re[i] = v->win[i] * hist[i];
		v->im[i] = 0;
	}
	for (int i = 0; i < RV_MEDIA_FRAME; i++) {
		v->re[NHIST + i] = v->win[NHIST + i] * frame[i];
		v->im[NHIST + i] = 0;
		ms += (double)frame[i] * frame[i];
	}
	memcpy(hist, frame + RV_MEDIA_FRAME - NHIST, NHIST * sizeof(*hist));
	fft(v);
	for (int k = 0; k < NBIN; k++)
		pw[k] = v->re[k] * v->re[k] + v->im[k] * v->im[k];
	return (float)(ms / RV_MEDIA_FRAME);
}

static float db_of_ms(double ms)
{
	if (ms <= 0)
		return LEVEL_NONE;
	float d = (float)(10.0 * log10(ms / (32768.0 * 32768.0)));
	return d < LEVEL_NONE ? LEVEL_NONE : d;
}

/* The reference side: store this frame's spectrum (or silence) and build Rmax, the loudest
 * reference over the echo window. Returns false when no reference was heard in the window. */
static bool reference_update(struct rv_vad *v, const int16_t *ref)
{
	float *slot = v->R[v->ref_pos];
	bool any = false;

	if (ref) {
		for (int i = 0; i < RV_MEDIA_FRAME && !any; i++)
			any = ref[i] != 0;
	}
	if (any) {
		spectrum(v, v->ref_hist, ref, slot);
		v->ref_live = v->echo_frames + 1;
	} else {
		memset(slot, 0, sizeof(v->R[0]));
		memset(v->ref_hist, 0, sizeof(v->ref_hist));
		if (v->ref_live)
			v->ref_live--;
	}
	v->ref_pos = (v->ref_pos + 1) % REF_RING;
	if (!v->ref_live)
		return false;
	memset(v->Rmax, 0, sizeof(v->Rmax));
	for (uint32_t d = 0; d < v->echo_frames && d < REF_RING; d++) {
		const float *r = v->R[(v->ref_pos + REF_RING - 1 - d) % REF_RING];
		for (int k = BAND_LO; k <= BAND_HI; k++)
			if (r[k] > v->Rmax[k])
				v->Rmax[k] = r[k];
	}
	return true;
}

/* Follow the echo return loss: while the reference plays, the part of the mic over the noise
 * floor, relative to the loudest reference, is at most the echo gain unless the caller talks.
 * A quantile tracker in dB moves up 0.5 dB on frames above the estimate and down 0.25 dB on
 * frames under it; frames more than 12 dB above it are double talk and are ignored, so a
 * caller talking over the prompt does not teach us that the echo is loud. */
static void echo_gain_update(struct rv_vad *v, double mic_excess, double ref_sum)
{
	if (ref_sum * v->pow_scale < 1e-6 * 32768.0 * 32768.0) /* reference under -60 dBFS */
		return;
	float g = mic_excess > 0 ? (float)(10.0 * log10(mic_excess / ref_sum)) : -100.0f;
	if (g > v->echo_gain_db + 12.0f)
		return;
	v->echo_gain_db += g > v->echo_gain_db ? 0.5f : -0.25f;
	if (v->echo_gain_db > 0.0f)
		v->echo_gain_db = 0.0f;
	if (v->echo_gain_db < -60.0f)
		v->echo_gain_db = -60.0f;
}

/* noise_like: the frame may teach the floor; fast: at a quicker rate (startup, steady). */
static void noise_update(struct rv_vad *v, bool noise_like, bool fast)
{
	float a = fast ? 0.8f : 0.95f;

	for (int k = 0; k < NBIN; k++) {
		v->S[k] = 0.7f * v->S[k] + 0.3f * v->P[k];
		if (v->S[k] < v->cur_min[k])
			v->cur_min[k] = v->S[k];
		if (noise_like)
			v->N[k] = a * v->N[k] + (1.0f - a) * v->P[k];
		else if (v->S[k] < 0.25f * v->N[k])
			v->N[k] *= 0.5f; /* the line went quieter: follow it down fast */
	}
	if (++v->sub_frames >= MIN_SUB_FRAMES) {
		memcpy(v->sub_min[v->sub_pos], v->cur_min, sizeof(v->cur_min));
		v->sub_pos = (v->sub_pos + 1) % MIN_SUBS;
		if (v->subs_done < MIN_SUBS)
			v->subs_done++;
		v->sub_frames = 0;
		for (int k = 0; k < NBIN; k++)
			v->cur_min[k] = INFINITY;
	}
	if (v->subs_done >= MIN_SUBS_READY) {
		/* The minimum of the smoothed power sits well under the mean of noise; twice the
		 * minimum is a floor the noise estimate may not stay below (a line that got noisier
		 * while every frame looked like speech). */
		for (int k = 0; k < NBIN; k++) {
			float m = v->sub_min[0][k];
			for (uint32_t s = 1; s < v->subs_done; s++)
				if (v->sub_min[s][k] < m)
					m = v->sub_min[s][k];
			if (v->N[k] < 2.0f * m)
				v->N[k] = 2.0f * m;
		}
	}
	for (int k = 0; k < NBIN; k++)
		if (v->N[k] < FLOOR_POW)
			v->N[k] = FLOOR_POW;
}

/* Onset and hangover. */
static void decide(struct rv_vad *v, bool voiced, struct rv_vad_frame *out)
{
	uint64_t f = v->frame;

	if (!v->in_speech) {
		if (voiced) {
			if (v->onset_voiced == 0)
				v->onset_first = f;
			v->onset_voiced++;
			v->onset_gap = 0;
		} else if (v->onset_voiced) {
			/* One unvoiced frame inside an onset is tolerated (a stop consonant). */
			if (++v->onset_gap > 1)
				v->onset_voiced = v->onset_gap = 0;
		}
		if (v->onset_voiced >= v->min_speech_frames) {
			uint64_t s = v->onset_first;
			for (uint32_t n = 0;
			     n < v->preroll_frames && s > 0 && f - (s - 1) < PROB_RING; n++) {
				if (!v->soft_hist[(s - 1) % PROB_RING])
					break;
				s--;
			}
			v->in_speech = true;
			v->start_frame = s;
			v->last_voiced = f;
			v->voiced_frames = v->onset_voiced;
			v->unvoiced_run = 0;
			v->onset_voiced = v->onset_gap = 0;
			out->events |= RV_VAD_EV_START;
		}
	} else if (voiced) {
		v->last_voiced = f;
		v->voiced_frames++;
		v->unvoiced_run = 0;
	} else if (++v->unvoiced_run >= v->hangover_frames) {
		v->in_speech = false;
		out->events |= RV_VAD_EV_END;
		out->end_ms = (v->last_voiced + 1) * FRAME_MS;
		out->start_ms = v->start_frame * FRAME_MS;
		out->voiced_ms = v->voiced_frames * FRAME_MS;
		v->unvoiced_run = 0;
	}
	if (v->in_speech) {
		out->start_ms = v->start_frame * FRAME_MS;
		out->voiced_ms = v->voiced_frames * FRAME_MS;
	}
	out->speech = v->in_speech;
}

int rv_vad_process(struct rv_vad *v, const int16_t *mic, const int16_t *ref,
                   struct rv_vad_frame *out)
{
	if (!v || !mic || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->t_ms = v->frame * FRAME_MS;

	float ms = spectrum(v, v->mic_hist, mic, v->P);
	bool have_ref = reference_update(v, ref);
	float g = powf(10.0f, v->echo_gain_db / 10.0f);

	/* Likelihood ratio against noise + expected echo, and the band sums for the levels. */
	double llr = 0, nsum = 0, esum = 0, rsum = 0, excess = 0, bsum = 0;
	for (int k = BAND_LO; k <= BAND_HI; k++) {
		float e = have_ref ? g * v->Rmax[k] : 0.0f;
		float d = v->N[k] + e * v->echo_margin;
		float gam = v->P[k] / d;
		if (gam > 1000.0f)
			gam = 1000.0f;
		float xi =
		    DD_ALPHA * v->A2[k] / d + (1.0f - DD_ALPHA) * (gam > 1.0f ? gam - 1.0f : 0);
		if (xi < XI_MIN)
			xi = XI_MIN;
		float gain = xi / (1.0f + xi);
		llr += gam * gain - log1pf(xi);
		v->A2[k] = gain * gain * v->P[k];
		v->X[k] = v->P[k] > d ? v->P[k] - d : 0.0f;
		nsum += v->N[k];
		bsum += v->P[k];
		esum += e;
		if (have_ref) {
			rsum += v->Rmax[k];
			excess += v->P[k] > v->N[k] ? v->P[k] - v->N[k] : 0.0f;
		}
	}
	llr /= (BAND_HI - BAND_LO + 1);

	/* Harmonicity: the autocorrelation of the noise-subtracted spectrum over the pitch lags,
	 * corrected for the window. */
	float harm = 0;
	double r0 = 0, dsum = 0;
	for (int k = HARM_LO; k <= HARM_HI; k++) {
		r0 += v->X[k];
		dsum += v->N[k];
	}
	/* Half the floor joins the normaliser: a noise frame leaves a few random bins over the
	 * floor, whose autocorrelation alone can look periodic. */
	double rnorm = r0 + 0.5 * dsum;
	if (r0 > 0) {
		for (int lag = LAG_MIN; lag <= LAG_MAX; lag++) {
			double r = 0;
			unsigned idx = 0, step = (unsigned)lag;
			idx = (unsigned)(HARM_LO * lag) % NFFT;
			for (int k = HARM_LO; k <= HARM_HI; k++) {
				r += v->X[k] * v->costab[idx];
				idx = (idx + step) & (NFFT - 1);
			}
			float h = (float)(r / (rnorm * v->lagnorm[lag]));
			if (h > harm)
				harm = h;
		}
		if (harm > 1.0f)
			harm = 1.0f;
	}

	float z = W_LLR * logf((float)(llr > 1e-6 ? llr : 1e-6) / LLR0) + W_HARM * (harm - HARM0);
	float prob = 1.0f / (1.0f + expf(-z));

	out->prob = prob;
	out->level_db = db_of_ms(ms);
	out->noise_db = db_of_ms(nsum * v->pow_scale);
	out->echo_db = have_ref ? db_of_ms(esum * v->pow_scale) : LEVEL_NONE;
	out->erl_db = -v->echo_gain_db;
	/* Steadiness over the last STEADY_FRAMES frames, this one included. */
	float band_db = db_of_ms(bsum * v->pow_scale);
	v->level_ring[v->frame % STEADY_FRAMES] = band_db;
	v->harm_ring[v->frame % STEADY_FRAMES] = harm;
	bool steady = false;
	if (v->frame + 1 >= STEADY_FRAMES) {
		float lo = band_db, hi = band_db, hmax = 0;
		for (int i = 0; i < STEADY_FRAMES; i++) {
			if (v->level_ring[i] < lo)
				lo = v->level_ring[i];
			if (v->level_ring[i] > hi)
				hi = v->level_ring[i];
			if (v->harm_ring[i] > hmax)
				hmax = v->harm_ring[i];
		}
		steady = hi - lo < STEADY_RANGE_DB && hmax < STEADY_HARM;
	}
	bool startup = v->frame < STARTUP_FRAMES;
	bool loud = out->level_db >= v->cfg.min_level_db;
	out->voiced =
	    prob >= v->cfg.threshold && loud && !steady && (!startup || harm >= STARTUP_HARM);

	if (have_ref)
		echo_gain_update(v, excess, rsum);
	bool echo_active = have_ref && esum > 0.5 * nsum;
	bool noise_like =
	    (prob < 0.3f || steady || !loud || (startup && harm < STARTUP_HARM)) && !echo_active;
	noise_update(v, noise_like, (steady || startup) && noise_like);
	v->soft_hist[v->frame % PROB_RING] = prob >= 0.5f * v->cfg.threshold && loud && !steady;
	decide(v, out->voiced, out);
	v->frame++;
	return 0;
}
