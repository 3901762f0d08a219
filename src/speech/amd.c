/* Answering-machine detection: see amd.h. */
#include "speech/amd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "media/media_pcm.h"

#define FRAME_MS    RV_MEDIA_PTIME_MS
#define BEEP_LO     300 /* Hz: answering-machine beeps sit between these */
#define BEEP_HI     2500
#define BEEP_STEP   25 /* half the 50 Hz resolution of a 20 ms frame, against scalloping */
#define BEEP_BINS   ((BEEP_HI - BEEP_LO) / BEEP_STEP + 1)
#define BEEP_MAX_MS 5000 /* a tone longer than this is a line tone, not a beep */
#define TONAL_RATIO 0.6  /* share of the frame's energy in one frequency */
#define BEEP_DRIFT  50   /* Hz a beep may wander */

struct rv_amd {
	struct rv_amd_cfg cfg;
	struct rv_amd_state st;
	uint32_t t_ms;
	bool heard;          /* any word started */
	bool in_voice;       /* inside a voiced run (short gaps included) */
	uint32_t run_ms;     /* voiced time of the current run */
	bool run_counted;    /* the current run already counted as a word */
	uint32_t silence_ms; /* silence since the last voiced frame */
	double floor;        /* internal detector: noise floor RMS */
	float coef[BEEP_BINS];
	uint32_t tone_ms, tone_hz;
};

void rv_amd_cfg_defaults(struct rv_amd_cfg *cfg)
{
	*cfg = (struct rv_amd_cfg){
	    .initial_silence_ms = 2500,
	    .greeting_ms = 1500,
	    .after_greeting_ms = 800,
	    .total_analysis_ms = 5000,
	    .min_word_ms = 100,
	    .between_words_ms = 50,
	    .max_words = 5,
	    .max_word_ms = 5000,
	    .beep_min_ms = 120,
	    .silence_threshold = 256,
	};
}

int rv_amd_alloc(const struct rv_amd_cfg *cfg, struct rv_amd **out)
{
	if (!cfg || cfg->total_analysis_ms == 0 || cfg->max_words == 0 || cfg->min_word_ms == 0 ||
	    cfg->beep_min_ms < FRAME_MS)
		return -EINVAL;
	struct rv_amd *amd = calloc(1, sizeof(*amd));
	if (!amd)
		return -ENOMEM;
	amd->cfg = *cfg;
	amd->floor = cfg->silence_threshold / 4.0;
	for (int i = 0; i < BEEP_BINS; i++)
		amd->coef[i] =
		    (float)(2.0 * cos(2.0 * M_PI * (BEEP_LO + i * BEEP_STEP) / RV_MEDIA_RATE));
	*out = amd;
	return 0;
}

void rv_amd_free(struct rv_amd *amd)
{
	free(amd);
}

/*
 * Is the frame one steady pure tone? Goertzel power at each candidate frequency against the
 * frame's energy: a sine at a bin holds all of it (ratio 1), speech spreads over harmonics.
 */
static bool tonal(const struct rv_amd *amd, const int16_t *x, size_t n, double energy, uint32_t *hz)
{
	if (energy <= 0)
		return false;
	double best = 0;
	int best_i = 0;
	for (int i = 0; i < BEEP_BINS; i++) {
		float c = amd->coef[i], s1 = 0, s2 = 0;
		for (size_t k = 0; k < n; k++) {
			float s0 = (float)x[k] + c * s1 - s2;
			s2 = s1;
			s1 = s0;
		}
		double p = (double)s1 * s1 + (double)s2 * s2 - (double)c * s1 * s2;
		if (p > best) {
			best = p;
			best_i = i;
		}
	}
	*hz = (uint32_t)(BEEP_LO + best_i * BEEP_STEP);
	return best / ((double)n / 2.0 * energy) >= TONAL_RATIO;
}

static void decide(struct rv_amd *amd, enum rv_amd_result r, enum rv_amd_cause c)
{
	if (amd->st.result != RV_AMD_PENDING)
		return;
	amd->st.result = r;
	amd->st.cause = c;
	amd->st.decided_ms = amd->t_ms;
}

static void track_beep(struct rv_amd *amd, bool tone, uint32_t hz)
{
	bool same = amd->tone_ms > 0 &&
	            (hz > amd->tone_hz ? hz - amd->tone_hz : amd->tone_hz - hz) <= BEEP_DRIFT;
	if (tone && (same || amd->tone_ms == 0)) {
		if (amd->tone_ms == 0)
			amd->tone_hz = hz;
		amd->tone_ms += FRAME_MS;
		return;
	}
	/* The tone ended (or changed pitch): was it a beep? */
	if (amd->tone_ms >= amd->cfg.beep_min_ms && amd->tone_ms <= BEEP_MAX_MS) {
		amd->st.beep = true;
		amd->st.beep_end_ms = amd->t_ms;
		amd->st.beep_hz = amd->tone_hz;
		decide(amd, RV_AMD_MACHINE, RV_AMD_CAUSE_BEEP);
	}
	amd->tone_ms = tone ? FRAME_MS : 0;
	amd->tone_hz = hz;
}

static void track_words(struct rv_amd *amd, bool voiced)
{
	const struct rv_amd_cfg *c = &amd->cfg;
	if (voiced) {
		if (!amd->in_voice) {
			amd->in_voice = true;
			amd->run_ms = 0;
			amd->run_counted = false;
		}
		amd->run_ms += FRAME_MS;
		amd->silence_ms = 0;
		if (amd->heard || amd->run_ms >= c->min_word_ms)
			amd->st.greeting_ms += FRAME_MS;
		if (!amd->run_counted && amd->run_ms >= c->min_word_ms) {
			/* The run is a word: its first frames belong to the greeting too. */
			if (!amd->heard)
				amd->st.greeting_ms = amd->run_ms;
			amd->heard = true;
			amd->run_counted = true;
			amd->st.words++;
		}
		return;
	}
	amd->silence_ms += FRAME_MS;
	if (amd->in_voice && amd->silence_ms >= c->between_words_ms)
		amd->in_voice = false;
}

const struct rv_amd_state *rv_amd_process(struct rv_amd *amd, const int16_t *frame, size_t n,
                                          int voiced)
{
	const struct rv_amd_cfg *c = &amd->cfg;
	double energy = 0;
	for (size_t i = 0; i < n; i++)
		energy += (double)frame[i] * frame[i];
	double rms = n ? sqrt(energy / (double)n) : 0;
	amd->t_ms += FRAME_MS;

	uint32_t hz = 0;
	bool tone = rms >= c->silence_threshold && tonal(amd, frame, n, energy, &hz);
	track_beep(amd, tone, hz);
	if (amd->st.result != RV_AMD_PENDING)
		return &amd->st;

	if (voiced < 0) {
		/* A slow-rising, fast-falling floor; speech stands 4x (12 dB) above it. */
		if (rms < amd->floor)
			amd->floor = 0.7 * amd->floor + 0.3 * rms;
		else
			amd->floor = 0.995 * amd->floor + 0.005 * rms;
		double thr =
		    amd->floor * 4 > c->silence_threshold ? amd->floor * 4 : c->silence_threshold;
		voiced = rms > thr;
	}
	/* A beep is not a word. */
	track_words(amd, voiced && !tone);

	if (!amd->heard) {
		if (amd->t_ms >= c->initial_silence_ms)
			decide(amd, RV_AMD_UNKNOWN, RV_AMD_CAUSE_INITIAL_SILENCE);
	} else if (amd->st.words >= c->max_words) {
		decide(amd, RV_AMD_MACHINE, RV_AMD_CAUSE_MAX_WORDS);
	} else if (amd->in_voice && amd->run_ms >= c->max_word_ms) {
		decide(amd, RV_AMD_MACHINE, RV_AMD_CAUSE_LONG_WORD);
	} else if (amd->st.greeting_ms >= c->greeting_ms) {
		decide(amd, RV_AMD_MACHINE, RV_AMD_CAUSE_LONG_GREETING);
	} else if (amd->silence_ms >= c->after_greeting_ms) {
		decide(amd, RV_AMD_HUMAN, RV_AMD_CAUSE_HUMAN_SILENCE);
	}
	if (amd->t_ms >= c->total_analysis_ms)
		decide(amd, RV_AMD_UNKNOWN, RV_AMD_CAUSE_TIMEOUT);
	return &amd->st;
}

const char *rv_amd_result_name(enum rv_amd_result r)
{
	static const char *const names[] = {"pending", "human", "machine", "unknown"};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

const char *rv_amd_cause_name(enum rv_amd_cause c)
{
	static const char *const names[] = {"none",          "initial_silence", "human_silence",
	                                    "long_greeting", "max_words",       "long_word",
	                                    "beep",          "timeout"};
	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "unknown";
}
