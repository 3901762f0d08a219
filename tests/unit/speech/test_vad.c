/*
 * VAD units on real speech: flite (slt, rms) utterances sent down a telephone line (16 kHz ->
 * 8 kHz G.711 μ-law -> 16 kHz with the project's resampler), in silence, in white and pink
 * noise at 10 dB SNR, and with the agent's own prompt coming back as echo.
 */
#include <errno.h>
#include <flite.h>
#include <math.h>
#include <re.h>
#include <stdlib.h>
#include <string.h>

#include "media/media_g711.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"
#include "speech/vad.h"
#include "../test.h"

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);

#define FR RV_MEDIA_FRAME

struct pcm16 {
	int16_t *s;
	size_t n;
};

static cst_voice *voice_slt, *voice_rms;

/* Speak `text` at 16 kHz with slt or rms, scaled so its loud frames average level_db dBFS. */
static int speak(const char *text, bool rms, double level_db, struct pcm16 *out)
{
	if (!voice_slt) {
		flite_init();
		voice_slt = register_cmu_us_slt(NULL);
		voice_rms = register_cmu_us_rms(NULL);
	}
	cst_wave *w = flite_text_to_wave(text, rms ? voice_rms : voice_slt);
	if (!w || w->sample_rate != RV_MEDIA_RATE || w->num_samples < FR)
		return -EIO;
	size_t n = (size_t)w->num_samples - (size_t)w->num_samples % FR;
	double acc = 0;
	size_t cnt = 0;
	for (size_t f = 0; f < n; f += FR) {
		double m = 0;
		for (size_t i = 0; i < FR; i++)
			m += (double)w->samples[f + i] * w->samples[f + i];
		m /= FR;
		if (m > 32768.0 * 32768.0 * 1e-5) {
			acc += m;
			cnt++;
		}
	}
	double gain = sqrt(32768.0 * 32768.0 * pow(10, level_db / 10) / (acc / (double)cnt));
	out->s = malloc(n * sizeof(int16_t));
	if (!out->s) {
		delete_wave(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		double y = w->samples[i] * gain;
		out->s[i] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : lrint(y));
	}
	out->n = n;
	delete_wave(w);
	return 0;
}

/* First and last frame of an utterance whose level is within 35 dB of its loudest frame. */
static void speech_span(const struct pcm16 *u, size_t *first, size_t *last)
{
	size_t nf = u->n / FR;
	double *m = calloc(nf, sizeof(*m)), peak = 0;
	for (size_t f = 0; m && f < nf; f++) {
		for (size_t i = 0; i < FR; i++)
			m[f] += (double)u->s[f * FR + i] * u->s[f * FR + i];
		if (m[f] > peak)
			peak = m[f];
	}
	*first = nf;
	*last = 0;
	for (size_t f = 0; m && f < nf; f++)
		if (m[f] >= peak * 3.16e-4) {
			if (*first == nf)
				*first = f;
			*last = f;
		}
	free(m);
}

static uint64_t rng_state = 88172645463325252ull;
static double gauss(void)
{
	double u[2];
	for (int k = 0; k < 2; k++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		u[k] = ((double)(rng_state >> 11) + 1.0) / 9007199254740993.0;
	}
	return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

enum noise { NZ_WHITE, NZ_PINK };

/* Add noise of the given kind at level_db dBFS (power) to x. */
static void add_noise(int16_t *x, size_t n, enum noise kind, double level_db)
{
	double sigma = 32768.0 * pow(10, level_db / 20), b0 = 0, b1 = 0, b2 = 0;
	/* A three-pole approximation of 1/f noise; its gain on unit white noise is ~3.2, which
	 * is divided out so that level_db holds. */
	for (size_t i = 0; i < n; i++) {
		double w = gauss(), v;
		if (kind == NZ_PINK) {
			b0 = 0.99765 * b0 + w * 0.0990460;
			b1 = 0.96300 * b1 + w * 0.2965164;
			b2 = 0.57000 * b2 + w * 1.0526913;
			v = (b0 + b1 + b2 + w * 0.1848) / 3.2;
		} else {
			v = w;
		}
		double y = x[i] + sigma * v;
		x[i] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : lrint(y));
	}
}

/* The telephone line: 16 kHz -> 8 kHz -> μ-law -> 16 kHz, frame by frame. */
static int phone_line(int16_t *x, size_t n)
{
	struct rv_resampler *down = NULL, *up = NULL;
	int err = rv_resampler_alloc(RV_MEDIA_RATE, 8000, 3, &down);
	if (!err)
		err = rv_resampler_alloc(8000, RV_MEDIA_RATE, 3, &up);
	for (size_t f = 0; !err && f + FR <= n; f += FR) {
		int16_t n8[FR / 2];
		uint8_t mu[FR / 2];
		size_t got = 0;
		err = rv_resampler_run(down, x + f, FR, n8, FR / 2, &got);
		if (err || got != FR / 2)
			break;
		rv_g711_encode(RV_G711_ULAW, n8, mu, FR / 2);
		rv_g711_decode(RV_G711_ULAW, mu, n8, FR / 2);
		err = rv_resampler_run(up, n8, FR / 2, x + f, FR, &got);
		if (!err && got != FR)
			err = -EIO;
	}
	mem_deref(down);
	mem_deref(up);
	return err;
}

/* A stream: lead-in silence, the utterances with gaps, trailing silence; speech frame spans
 * (in stream frames, before the line's few-sample delay) for each utterance. */
struct scene {
	int16_t *x;
	size_t n;
	size_t first[4], last[4], nutt;
};

static int scene_build(struct scene *sc, const char *const *texts, size_t nt, double lead_s,
                       double gap_s)
{
	memset(sc, 0, sizeof(*sc));
	struct pcm16 u[4] = {{0}};
	size_t total = (size_t)(lead_s * RV_MEDIA_RATE) + (size_t)(gap_s * RV_MEDIA_RATE) * nt;
	int err = 0;
	for (size_t i = 0; i < nt && !err; i++) {
		err = speak(texts[i], i % 2, -20 - 4.0 * (double)(i % 2), &u[i]);
		total += u[i].n;
	}
	total -= total % FR;
	sc->x = err ? NULL : calloc(total, sizeof(int16_t));
	if (!err && !sc->x)
		err = -ENOMEM;
	size_t pos = (size_t)(lead_s * RV_MEDIA_RATE);
	pos -= pos % FR;
	for (size_t i = 0; i < nt && !err; i++) {
		size_t a, b;
		speech_span(&u[i], &a, &b);
		memcpy(sc->x + pos, u[i].s, u[i].n * sizeof(int16_t));
		sc->first[i] = pos / FR + a;
		sc->last[i] = pos / FR + b;
		pos += u[i].n + (size_t)(gap_s * RV_MEDIA_RATE);
		pos -= pos % FR;
	}
	sc->nutt = nt;
	sc->n = total;
	for (size_t i = 0; i < nt; i++)
		free(u[i].s);
	return err;
}

static int is_speech_frame(const struct scene *sc, size_t f, size_t margin)
{
	for (size_t i = 0; i < sc->nutt; i++)
		if (f + margin >= sc->first[i] && f <= sc->last[i] + margin)
			return 1;
	return 0;
}

struct run {
	uint64_t start_ms[16], start_at[16], end_ms[16], end_at[16];
	size_t nstart, nend;
	size_t speech_hit, speech_frames, noise_hit, noise_frames;
};

static int run_vad(struct rv_vad *v, const struct scene *sc, const int16_t *ref, struct run *r)
{
	memset(r, 0, sizeof(*r));
	for (size_t f = 0; f < sc->n / FR; f++) {
		struct rv_vad_frame o;
		int err = rv_vad_process(v, sc->x + f * FR, ref ? ref + f * FR : NULL, &o);
		if (err)
			return err;
		if ((o.events & RV_VAD_EV_START) && r->nstart < 16) {
			r->start_ms[r->nstart] = o.start_ms;
			r->start_at[r->nstart++] = o.t_ms;
		}
		if ((o.events & RV_VAD_EV_END) && r->nend < 16) {
			r->end_ms[r->nend] = o.end_ms;
			r->end_at[r->nend++] = o.t_ms;
		}
		/* Score the smoothed state; frames at the utterances' edges (where onset and
		 * hangover are by design) count for neither. */
		if (is_speech_frame(sc, f, 0)) {
			r->speech_frames++;
			r->speech_hit += o.speech;
		} else if (!is_speech_frame(sc, f, 15)) {
			r->noise_frames++;
			r->noise_hit += o.speech;
		}
	}
	return 0;
}

static const char *const two_answers[] = {
    "Please call me back tomorrow morning.",
    "I would like to cancel my order.",
};

RV_TEST(vad_rejects_bad_config_and_arguments)
{
	struct rv_vad_cfg cfg;
	struct rv_vad *v = (struct rv_vad *)0x1;
	rv_vad_cfg_defaults(&cfg);
	cfg.min_speech_ms = 0;
	ASSERT_EQ_INT(rv_vad_alloc(&cfg, &v), -EINVAL);
	ASSERT(v == (struct rv_vad *)0x1);
	rv_vad_cfg_defaults(&cfg);
	cfg.threshold = 1.5f;
	ASSERT_EQ_INT(rv_vad_alloc(&cfg, &v), -EINVAL);
	rv_vad_cfg_defaults(&cfg);
	cfg.echo_max_delay_ms = 1000;
	ASSERT_EQ_INT(rv_vad_alloc(&cfg, &v), -EINVAL);
	ASSERT(v == (struct rv_vad *)0x1);
	v = NULL;
	ASSERT_OK(rv_vad_alloc(NULL, &v));
	int16_t pcm[FR] = {0};
	struct rv_vad_frame o;
	ASSERT_EQ_INT(rv_vad_process(v, NULL, NULL, &o), -EINVAL);
	ASSERT_EQ_INT(rv_vad_process(v, pcm, NULL, NULL), -EINVAL);
	ASSERT_OK(rv_vad_process(v, pcm, NULL, &o));
	ASSERT_EQ_INT(o.t_ms, 0);
	ASSERT_OK(rv_vad_process(v, pcm, NULL, &o));
	ASSERT_EQ_INT(o.t_ms, 20);
	ASSERT(!o.voiced && !o.speech && o.events == 0);
	rv_vad_reset(v);
	ASSERT_OK(rv_vad_process(v, pcm, NULL, &o));
	ASSERT_EQ_INT(o.t_ms, 0);
	rv_vad_free(v);
	rv_vad_free(NULL);
}

RV_TEST(vad_finds_speech_where_it_is)
{
	struct scene sc;
	struct rv_vad *v = NULL;
	struct run r;
	ASSERT_OK(scene_build(&sc, two_answers, 2, 1.0, 1.5));
	add_noise(sc.x, sc.n, NZ_WHITE, -65); /* a quiet line, not digital silence */
	ASSERT_OK(phone_line(sc.x, sc.n));
	ASSERT_OK(rv_vad_alloc(NULL, &v));
	int err = run_vad(v, &sc, NULL, &r);
	rv_vad_free(v);
	free(sc.x);
	ASSERT_OK(err);
	ASSERT_EQ_INT(r.nstart, 2);
	ASSERT_EQ_INT(r.nend, 2);
	for (size_t i = 0; i < 2; i++) {
		int64_t s = (int64_t)sc.first[i] * 20, e = (int64_t)(sc.last[i] + 1) * 20;
		/* Start: the time speech began (not when it was decided), within 100 ms. */
		ASSERT_MSG(llabs((int64_t)r.start_ms[i] - s) <= 100, "start %llu vs %lld",
		           (unsigned long long)r.start_ms[i], (long long)s);
		ASSERT_MSG(r.start_at[i] >= r.start_ms[i] + 60, "decided %llu, began %llu",
		           (unsigned long long)r.start_at[i], (unsigned long long)r.start_ms[i]);
		ASSERT_MSG(llabs((int64_t)r.end_ms[i] - e) <= 120, "end %llu vs %lld",
		           (unsigned long long)r.end_ms[i], (long long)e);
		/* The end is announced after the hangover (240 ms by default). */
		ASSERT_MSG(r.end_at[i] + 20 >= r.end_ms[i] + 240 &&
		               r.end_at[i] <= r.end_ms[i] + 300,
		           "end decided at %llu for %llu", (unsigned long long)r.end_at[i],
		           (unsigned long long)r.end_ms[i]);
	}
	ASSERT_MSG(r.speech_hit * 100 >= r.speech_frames * 95, "recall %zu/%zu", r.speech_hit,
	           r.speech_frames);
	ASSERT_EQ_INT(r.noise_hit, 0);
}

static void noisy_case(enum noise kind)
{
	struct scene sc;
	struct rv_vad *v = NULL;
	struct run r;
	ASSERT_OK(scene_build(&sc, two_answers, 2, 3.0, 4.0));
	/* Speech is at -20 and -24 dBFS: noise at -32 dBFS is 10 dB under their mean. */
	add_noise(sc.x, sc.n, kind, -32);
	ASSERT_OK(phone_line(sc.x, sc.n));
	ASSERT_OK(rv_vad_alloc(NULL, &v));
	int err = run_vad(v, &sc, NULL, &r);
	rv_vad_free(v);
	free(sc.x);
	ASSERT_OK(err);
	ASSERT_MSG(r.noise_hit * 100 <= r.noise_frames * 5, "noise called speech %zu/%zu",
	           r.noise_hit, r.noise_frames);
	ASSERT_MSG(r.speech_hit * 100 >= r.speech_frames * 80, "recall %zu/%zu", r.speech_hit,
	           r.speech_frames);
	ASSERT(r.nstart >= 2 && r.nstart <= 4);
}

RV_TEST(vad_white_noise_10db)
{
	noisy_case(NZ_WHITE);
}

RV_TEST(vad_pink_noise_10db)
{
	noisy_case(NZ_PINK);
}

/* The agent's prompt comes back 15 dB down and 40 ms late. Without the reference the echo is
 * speech to the detector (so the scene really does hold audible echo); with it, the echo alone
 * never starts speech, and a caller talking over the prompt still does. */
RV_TEST(vad_echo_of_our_prompt_is_not_speech)
{
	struct pcm16 prompt = {0}, caller = {0};
	ASSERT_OK(speak("Thank you for calling. Your appointment is confirmed for Monday at nine "
	                "in the morning. You will receive a text message with the details.",
	                true, -18, &prompt));
	ASSERT_OK(speak("No wait, I need to change it.", false, -22, &caller));
	size_t lead = RV_MEDIA_RATE / 2, n = lead + prompt.n + RV_MEDIA_RATE;
	n -= n % FR;
	int16_t *ref = calloc(n, sizeof(int16_t)), *mic = calloc(n, sizeof(int16_t)),
	        *mic2 = calloc(n, sizeof(int16_t));
	ASSERT(ref && mic && mic2);
	memcpy(ref + lead, prompt.s, prompt.n * sizeof(int16_t));
	size_t delay = RV_MEDIA_RATE * 40 / 1000;
	double g = pow(10, -15.0 / 20);
	for (size_t i = delay; i < n; i++)
		mic[i] = (int16_t)lrint(ref[i - delay] * g);
	add_noise(mic, n, NZ_WHITE, -60);
	memcpy(mic2, mic, n * sizeof(int16_t));
	/* The caller talks 3 s into the prompt in mic2. */
	size_t at = lead + 3 * RV_MEDIA_RATE;
	for (size_t i = 0; i < caller.n && at + i < n; i++) {
		int y = mic2[at + i] + caller.s[i];
		mic2[at + i] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : y);
	}
	int err = phone_line(mic, n);
	if (!err)
		err = phone_line(mic2, n);
	struct scene sc = {.x = mic, .n = n};
	struct rv_vad *v = NULL;
	struct run with, without, talk;
	if (!err)
		err = rv_vad_alloc(NULL, &v);
	if (!err)
		err = run_vad(v, &sc, NULL, &without);
	rv_vad_reset(v);
	if (!err)
		err = run_vad(v, &sc, ref, &with);
	rv_vad_reset(v);
	sc.x = mic2;
	if (!err)
		err = run_vad(v, &sc, ref, &talk);
	rv_vad_free(v);
	free(ref);
	free(mic);
	free(mic2);
	free(prompt.s);
	free(caller.s);
	ASSERT_OK(err);
	ASSERT_MSG(without.nstart >= 1, "the echo should be audible without a reference");
	ASSERT_EQ_INT(with.nstart, 0);
	ASSERT_MSG(talk.nstart >= 1, "caller over the prompt not heard");
	uint64_t at_ms = (uint64_t)at / (RV_MEDIA_RATE / 1000);
	ASSERT_MSG(talk.start_ms[0] + 200 >= at_ms && talk.start_ms[0] <= at_ms + 400,
	           "caller started at %llu, heard at %llu", (unsigned long long)at_ms,
	           (unsigned long long)talk.start_ms[0]);
}

/* The onset and hangover follow the configuration. */
RV_TEST(vad_onset_and_hangover_follow_config)
{
	static const char *const one[] = {"Yes, please send it to my office."};
	struct scene sc;
	struct rv_vad_cfg cfg;
	struct rv_vad *v = NULL;
	struct run r;
	ASSERT_OK(scene_build(&sc, one, 1, 1.0, 2.0));
	add_noise(sc.x, sc.n, NZ_WHITE, -60);
	ASSERT_OK(phone_line(sc.x, sc.n));
	rv_vad_cfg_defaults(&cfg);
	cfg.min_speech_ms = 200;
	cfg.hangover_ms = 1000;
	cfg.preroll_ms = 0;
	ASSERT_OK(rv_vad_alloc(&cfg, &v));
	int err = run_vad(v, &sc, NULL, &r);
	rv_vad_free(v);
	free(sc.x);
	ASSERT_OK(err);
	/* A 1 s hangover bridges the comma pause: one segment. */
	ASSERT_EQ_INT(r.nstart, 1);
	ASSERT_EQ_INT(r.nend, 1);
	/* 200 ms of voice (10 frames) before the start is
	 * declared, one unvoiced frame at a time tolerated inside the onset; with no preroll the
	 * start is the first voiced frame. */
	ASSERT_MSG(r.start_at[0] >= r.start_ms[0] + 180 && r.start_at[0] <= r.start_ms[0] + 280,
	           "decided %llu began %llu", (unsigned long long)r.start_at[0],
	           (unsigned long long)r.start_ms[0]);
	ASSERT_EQ_INT(r.end_at[0] + 20 - r.end_ms[0], 1000);
}
