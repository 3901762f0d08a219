/*
 * Answering-machine detection on real synthesized speech (flite) sent through the telephone
 * path (16 kHz -> 8 kHz -> mu-law -> 8 kHz -> 16 kHz), as the detector will hear it.
 */
#include <flite.h>
#include <math.h>
#include <pthread.h>
#include <re.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "media/media_g711.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"
#include "speech/amd.h"

cst_voice *register_cmu_us_slt(const char *voxdir);

static cst_voice *slt;
static pthread_once_t flite_once = PTHREAD_ONCE_INIT;

static void flite_setup(void)
{
	flite_init();
	slt = register_cmu_us_slt(NULL);
}

/* A growable 16 kHz signal the tests assemble from speech, tones, silence and noise. */
struct sig {
	int16_t *s;
	size_t n, cap;
};

static void sig_put(struct sig *g, const int16_t *x, size_t n)
{
	if (g->n + n > g->cap) {
		g->cap = (g->n + n) * 2;
		g->s = realloc(g->s, g->cap * sizeof(int16_t));
	}
	if (x)
		memcpy(g->s + g->n, x, n * sizeof(int16_t));
	else
		memset(g->s + g->n, 0, n * sizeof(int16_t));
	g->n += n;
}

static void sig_silence(struct sig *g, unsigned ms)
{
	sig_put(g, NULL, (size_t)RV_MEDIA_RATE * ms / 1000);
}

static int sig_speech(struct sig *g, const char *text)
{
	pthread_once(&flite_once, flite_setup);
	cst_wave *w = flite_text_to_wave(text, slt);
	if (!w)
		return -1;
	if (cst_wave_sample_rate(w) != RV_MEDIA_RATE)
		cst_wave_resample(w, RV_MEDIA_RATE);
	sig_put(g, cst_wave_samples(w), (size_t)cst_wave_num_samples(w));
	delete_wave(w);
	return 0;
}

static void sig_tone(struct sig *g, double hz, unsigned ms, double amp)
{
	size_t n = (size_t)RV_MEDIA_RATE * ms / 1000;
	for (size_t i = 0; i < n; i++) {
		int16_t v = (int16_t)(amp * sin(2 * M_PI * hz * (double)i / RV_MEDIA_RATE));
		sig_put(g, &v, 1);
	}
}

/* Gaussian-ish white noise of RMS nrms, added everywhere. */
static void sig_noise_rms(struct sig *g, double nrms)
{
	unsigned seed = 7;
	for (size_t i = 0; i < g->n; i++) {
		double u = 0;
		for (int k = 0; k < 12; k++)
			u += (double)rand_r(&seed) / RAND_MAX;
		double v = g->s[i] + (u - 6) * nrms;
		g->s[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
	}
}

/* White noise `snr_db` below the RMS of the signal's voiced part. */
static void sig_noise(struct sig *g, double snr_db)
{
	double e = 0;
	size_t nv = 0;
	for (size_t i = 0; i < g->n; i++) {
		if (abs(g->s[i]) > 300) {
			e += (double)g->s[i] * g->s[i];
			nv++;
		}
	}
	sig_noise_rms(g, (nv ? sqrt(e / (double)nv) : 1000) / pow(10, snr_db / 20));
}

/* The telephone round trip, in place. */
static int sig_phone(struct sig *g)
{
	struct rv_resampler *down = NULL, *up = NULL;
	int err = rv_resampler_alloc(RV_MEDIA_RATE, 8000, 3, &down);
	if (!err)
		err = rv_resampler_alloc(8000, RV_MEDIA_RATE, 3, &up);
	for (size_t off = 0; !err && off + RV_MEDIA_FRAME <= g->n; off += RV_MEDIA_FRAME) {
		int16_t n8[200], back[400];
		uint8_t law[200];
		size_t m = 0, k = 0;
		err = rv_resampler_run(down, g->s + off, RV_MEDIA_FRAME, n8, 200, &m);
		if (err)
			break;
		rv_g711_encode(RV_G711_ULAW, n8, law, m);
		rv_g711_decode(RV_G711_ULAW, law, n8, m);
		err = rv_resampler_run(up, n8, m, back, 400, &k);
		memset(g->s + off, 0, RV_MEDIA_FRAME * sizeof(int16_t));
		memcpy(g->s + off, back,
		       (k < RV_MEDIA_FRAME ? k : RV_MEDIA_FRAME) * sizeof(int16_t));
	}
	mem_deref(down);
	mem_deref(up);
	return err;
}

/* Run the detector over the signal; returns the final state (copied). */
static struct rv_amd_state run_amd(const struct sig *g)
{
	struct rv_amd_cfg cfg;
	struct rv_amd *amd = NULL;
	struct rv_amd_state st = {0};
	rv_amd_cfg_defaults(&cfg);
	if (rv_amd_alloc(&cfg, &amd) != 0)
		return st;
	for (size_t off = 0; off + RV_MEDIA_FRAME <= g->n; off += RV_MEDIA_FRAME)
		st = *rv_amd_process(amd, g->s + off, RV_MEDIA_FRAME, -1);
	rv_amd_free(amd);
	return st;
}

RV_TEST(amd_machine_greeting_and_beep)
{
	struct sig g = {0};
	sig_silence(&g, 400);
	ASSERT_OK(sig_speech(&g, "Hi, you have reached the voicemail of John Smith. I am not "
	                         "available right now. Please leave your name and number "
	                         "after the tone."));
	size_t beep_at_ms = g.n * 1000 / RV_MEDIA_RATE + 400;
	sig_silence(&g, 400);
	sig_tone(&g, 1000, 500, 8000);
	sig_silence(&g, 1500);
	ASSERT_OK(sig_phone(&g));
	struct rv_amd_state st = run_amd(&g);
	free(g.s);
	ASSERT_EQ_STR(rv_amd_result_name(st.result), "machine");
	ASSERT_MSG(st.decided_ms <= 3000, "decided at %u ms", st.decided_ms);
	ASSERT_MSG(st.beep, "the beep was not detected");
	ASSERT_MSG(st.beep_hz >= 950 && st.beep_hz <= 1050, "beep at %u Hz", st.beep_hz);
	/* The beep ends 500 ms after it starts; allow a frame or two either way. */
	ASSERT_MSG(st.beep_end_ms >= beep_at_ms + 440 && st.beep_end_ms <= beep_at_ms + 580,
	           "beep ended at %u ms, expected about %zu", st.beep_end_ms, beep_at_ms + 500);
}

RV_TEST(amd_human_hello_then_silence)
{
	struct sig g = {0};
	sig_silence(&g, 600);
	ASSERT_OK(sig_speech(&g, "Hello?"));
	size_t end_ms = g.n * 1000 / RV_MEDIA_RATE;
	sig_silence(&g, 3000);
	ASSERT_OK(sig_phone(&g));
	struct rv_amd_state st = run_amd(&g);
	free(g.s);
	ASSERT_EQ_STR(rv_amd_result_name(st.result), "human");
	ASSERT_EQ_STR(rv_amd_cause_name(st.cause), "human_silence");
	ASSERT_MSG(st.decided_ms <= end_ms + 1200, "decided at %u ms, hello ended at %zu",
	           st.decided_ms, end_ms);
	ASSERT(!st.beep);
}

RV_TEST(amd_human_in_line_noise)
{
	struct sig g = {0};
	sig_silence(&g, 800);
	ASSERT_OK(sig_speech(&g, "Hello, who is this?"));
	sig_silence(&g, 3000);
	sig_noise(&g, 20);
	ASSERT_OK(sig_phone(&g));
	struct rv_amd_state st = run_amd(&g);
	free(g.s);
	ASSERT_MSG(st.result == RV_AMD_HUMAN, "got %s (%s), %u words",
	           rv_amd_result_name(st.result), rv_amd_cause_name(st.cause), st.words);
}

RV_TEST(amd_dead_air_is_unknown)
{
	struct sig g = {0};
	sig_silence(&g, 4000);
	sig_noise_rms(&g, 60); /* faint line hiss: nothing voiced in it */
	struct rv_amd_state st = run_amd(&g);
	free(g.s);
	ASSERT_EQ_STR(rv_amd_result_name(st.result), "unknown");
	ASSERT_EQ_STR(rv_amd_cause_name(st.cause), "initial_silence");
	ASSERT_EQ_INT(st.decided_ms, 2500);
}

RV_TEST(amd_speech_alone_has_no_beep)
{
	struct sig g = {0};
	ASSERT_OK(sig_speech(&g, "Thanks for calling, we are open from nine to five, Monday "
	                         "through Friday. Please call back during business hours."));
	ASSERT_OK(sig_phone(&g));
	struct rv_amd_state st = run_amd(&g);
	free(g.s);
	ASSERT_EQ_STR(rv_amd_result_name(st.result), "machine");
	ASSERT_MSG(!st.beep, "speech taken for a beep at %u Hz", st.beep_hz);
}

RV_TEST(amd_bad_config)
{
	struct rv_amd_cfg cfg;
	struct rv_amd *amd = NULL;
	rv_amd_cfg_defaults(&cfg);
	cfg.max_words = 0;
	ASSERT_EQ_INT(rv_amd_alloc(&cfg, &amd), -EINVAL);
	ASSERT_EQ_INT(rv_amd_alloc(NULL, &amd), -EINVAL);
}
