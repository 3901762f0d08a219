/*
 * VAD bench: builds labelled phone-audio streams and scores voice activity detectors per 20 ms
 * frame. See bench/vad/run.sh and docs/adr/0008-vad.md.
 *
 * Streams: sentences spoken by espeak-ng (en-us) and flite (slt, rms, kal), each utterance at
 * its own level, separated by silences; noise (none, white or pink at 20 and 10 dB SNR against
 * the active speech level) is added on the 8 kHz line, which then goes through a G.711 μ-law
 * round trip and the project's resampler up to 16 kHz. Labels come from the clean utterances.
 * Echo streams: the agent's prompts (flite rms) come back attenuated 10/20/30 dB and delayed
 * 0/60 ms, with caller answers both over the prompt (barge-in) and after it.
 *
 * Detectors: ours (src/speech/vad.c; per-frame decision and the smoothed state), a fixed energy
 * threshold, speexdsp's preprocessor VAD and, when built with -DHAVE_WEBRTC, the WebRTC VAD of
 * libwebrtc-audio-processing (aggressive mode). CPU is thread CPU time per audio second.
 *
 *   vad_eval [-q]      -q: fewer sentences (a quick run)
 */
#include <errno.h>
#include <espeak-ng/speak_lib.h>
#include <flite.h>
#include <math.h>
#include <re.h>
#include <speex/speex_preprocess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "media/media_g711.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"
#include "speech/vad.h"
#ifdef HAVE_WEBRTC
#include "vad_webrtc.h"
#endif

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);

#define F8  160 /* 20 ms at 8 kHz */
#define F16 RV_MEDIA_FRAME

static const char *const sentences[] = {
    "Yes, that's right.",
    "My number is five five five, two three four, six seven eight nine.",
    "I'd like to book an appointment for next Tuesday, in the afternoon if possible.",
    "No, I'm not interested, thank you.",
    "Could you tell me how much it costs, and whether there is a contract?",
    "Sure, my email is john at example dot com.",
    "Well, I think so, but let me check with my wife first.",
    "The order number is four one seven two nine.",
    "Hello? Who is calling, please?",
    "I already paid the bill last week, so please stop calling me.",
};
#define NSENT (sizeof(sentences) / sizeof(sentences[0]))

static const char *const prompts[] = {
    "Thank you for calling. This call may be recorded for quality and training purposes.",
    "I can help you book, change or cancel an appointment. What would you like to do today?",
    "Please tell me the date that works best for you, for example next Monday morning.",
    "Your appointment is confirmed. You will receive a text message with all the details.",
};
#define NPROMPT (sizeof(prompts) / sizeof(prompts[0]))

enum voice { V_ESPEAK, V_SLT, V_RMS, V_KAL, NVOICE };

struct buf {
	int16_t *s;
	size_t n, cap;
};

static void die(const char *what)
{
	fprintf(stderr, "vad_eval: %s\n", what);
	exit(1);
}

static void buf_push(struct buf *b, const int16_t *s, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n)
			cap *= 2;
		int16_t *p = realloc(b->s, cap * sizeof(*p));
		if (!p)
			die("out of memory");
		b->s = p;
		b->cap = cap;
	}
	if (s)
		memcpy(b->s + b->n, s, n * sizeof(*s));
	else
		memset(b->s + b->n, 0, n * sizeof(*s));
	b->n += n;
}

/* Resample a whole buffer (speexdsp via the project's wrapper), flushing its tail. */
static void resample(const int16_t *in, size_t n, uint32_t from, uint32_t to, struct buf *out)
{
	struct rv_resampler *r = NULL;
	size_t cap = (size_t)((double)n * to / from) + 4096, got = 0;
	int16_t *tmp = malloc(cap * sizeof(*tmp));
	int16_t zeros[512] = {0};

	if (!tmp || rv_resampler_alloc(from, to, 3, &r))
		die("resampler");
	if (rv_resampler_run(r, in, n, tmp, cap, &got))
		die("resample run");
	buf_push(out, tmp, got);
	if (rv_resampler_run(r, zeros, 512, tmp, cap, &got) == 0)
		buf_push(out, tmp, got);
	free(tmp);
	mem_deref(r);
}

static struct buf espeak_acc;
static int espeak_cb(short *wav, int n, espeak_EVENT *ev)
{
	(void)ev;
	if (wav && n > 0)
		buf_push(&espeak_acc, wav, (size_t)n);
	return 0;
}

static cst_voice *fvoice[NVOICE];
static int espeak_rate;

static void synth_init(void)
{
	flite_init();
	fvoice[V_SLT] = register_cmu_us_slt(NULL);
	fvoice[V_RMS] = register_cmu_us_rms(NULL);
	fvoice[V_KAL] = register_cmu_us_kal(NULL);
	espeak_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, 0);
	if (espeak_rate <= 0)
		die("espeak-ng init");
	espeak_SetSynthCallback(espeak_cb);
	if (espeak_SetVoiceByName("en-us") != EE_OK)
		die("espeak-ng voice en-us");
}

/* Speak text with a voice, as PCM at `rate`. */
static void synth(enum voice v, const char *text, uint32_t rate, struct buf *out)
{
	if (v == V_ESPEAK) {
		espeak_acc.n = 0;
		if (espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_AUTO,
		                 NULL, NULL) != EE_OK)
			die("espeak_Synth");
		espeak_Synchronize();
		resample(espeak_acc.s, espeak_acc.n, (uint32_t)espeak_rate, rate, out);
		return;
	}
	cst_wave *w = flite_text_to_wave(text, fvoice[v]);
	if (!w || w->num_samples <= 0)
		die("flite_text_to_wave");
	if ((uint32_t)w->sample_rate == rate)
		buf_push(out, w->samples, (size_t)w->num_samples);
	else
		resample(w->samples, (size_t)w->num_samples, (uint32_t)w->sample_rate, rate, out);
	delete_wave(w);
}

/* Deterministic random numbers. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}
static double grand(void)
{
	double u = urand(), v = urand();
	if (u < 1e-12)
		u = 1e-12;
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static double frame_ms(const int16_t *s, size_t n)
{
	double a = 0;
	for (size_t i = 0; i < n; i++)
		a += (double)s[i] * s[i];
	return a / (double)n;
}

static double db(double ms)
{
	return ms > 0 ? 10 * log10(ms / (32768.0 * 32768.0)) : -120;
}

/* A labelled stream. x: the clean 8 kHz line signal of the caller; lab: per 20 ms frame, 1 for
 * speech; utt: first/last speech frame of each utterance. ref16/echo: the echo case. */
struct stream {
	struct buf x;
	uint8_t *lab;
	size_t nf;
	size_t utt_first[256], utt_last[256], nutt;
	struct buf ref16; /* agent playback at 16 kHz (echo streams only) */
	uint8_t *ref_on;  /* per frame: the agent was playing (echo streams) */
	double active_ms; /* mean square over speech frames */
};

static void label_utterance(struct stream *st, size_t off, const int16_t *u, size_t n)
{
	size_t f0 = off / F8, nf = n / F8;
	double peak = 0;
	for (size_t f = 0; f < nf; f++) {
		double m = frame_ms(u + f * F8, F8);
		if (m > peak)
			peak = m;
	}
	double thr = peak * pow(10, -35.0 / 10);
	if (thr < 32768.0 * 32768.0 * 1e-6)
		thr = 32768.0 * 32768.0 * 1e-6;
	size_t first = (size_t)-1, last = 0;
	for (size_t f = 0; f < nf; f++) {
		if (frame_ms(u + f * F8, F8) >= thr) {
			st->lab[f0 + f] = 1;
			if (first == (size_t)-1)
				first = f0 + f;
			last = f0 + f;
		}
	}
	/* Close gaps of up to 100 ms inside the utterance: stop closures are speech. */
	for (size_t f = first; first != (size_t)-1 && f < last; f++) {
		if (st->lab[f])
			continue;
		size_t g = f;
		while (g < last && !st->lab[g])
			g++;
		if (g - f <= 5)
			for (size_t k = f; k < g; k++)
				st->lab[k] = 1;
		f = g;
	}
	if (first != (size_t)-1 && st->nutt < 256) {
		st->utt_first[st->nutt] = first;
		st->utt_last[st->nutt] = last;
		st->nutt++;
	}
}

static void stream_alloc_labels(struct stream *st, size_t max_samples)
{
	st->nf = max_samples / F8;
	st->lab = calloc(st->nf + 1, 1);
	st->ref_on = calloc(st->nf + 1, 1);
	if (!st->lab || !st->ref_on)
		die("out of memory");
}

/* Place utterances u[] with silences; return the stream at 8 kHz with labels. */
static void build_speech_stream(struct buf *utts, size_t nutt, struct stream *st)
{
	size_t total = 8000;
	for (size_t i = 0; i < nutt; i++)
		total += utts[i].n + 8000 * 3;
	memset(st, 0, sizeof(*st));
	stream_alloc_labels(st, total);
	buf_push(&st->x, NULL, 8000); /* 1 s of line before the first word */
	static const double levels[] = {-18, -22, -26, -20, -24};
	for (size_t i = 0; i < nutt; i++) {
		/* Scale to the utterance's level: active level of its loud frames. */
		double acc = 0;
		size_t cnt = 0, nf = utts[i].n / F8;
		for (size_t f = 0; f < nf; f++) {
			double m = frame_ms(utts[i].s + f * F8, F8);
			if (db(m) > -50) {
				acc += m;
				cnt++;
			}
		}
		double gain = cnt ? sqrt(32768.0 * 32768.0 * pow(10, levels[i % 5] / 10) /
		                         (acc / (double)cnt))
		                  : 1;
		size_t off = st->x.n;
		buf_push(&st->x, NULL, nf * F8);
		for (size_t k = 0; k < nf * F8; k++) {
			double y = utts[i].s[k] * gain;
			st->x.s[off + k] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : y);
		}
		label_utterance(st, off, st->x.s + off, nf * F8);
		size_t gap = (size_t)(8000 * (0.7 + 1.8 * urand()));
		gap -= gap % F8;
		buf_push(&st->x, NULL, gap);
	}
	st->nf = st->x.n / F8;
	double acc = 0;
	size_t cnt = 0;
	for (size_t f = 0; f < st->nf; f++)
		if (st->lab[f]) {
			acc += frame_ms(st->x.s + f * F8, F8);
			cnt++;
		}
	st->active_ms = cnt ? acc / (double)cnt : 0;
}

enum noise { N_NONE, N_WHITE, N_PINK };

/* The line: clean + noise at snr_db, μ-law round trip, up to 16 kHz. */
static void line_out(const struct buf *x8, double active_ms, enum noise nz, double snr_db,
                     struct buf *out16)
{
	int16_t *y = malloc(x8->n * sizeof(*y));
	uint8_t *mu = malloc(x8->n);
	if (!y || !mu)
		die("out of memory");
	double sigma = sqrt(active_ms / pow(10, snr_db / 10));
	double b0 = 0, b1 = 0, b2 = 0;
	/* The pink filter's gain on unit white noise, measured once so the level is exact. */
	double pink_rms = 0;
	if (nz == N_PINK) {
		double acc = 0;
		for (int i = 0; i < 200000; i++) {
			double w = grand();
			b0 = 0.99765 * b0 + w * 0.0990460;
			b1 = 0.96300 * b1 + w * 0.2965164;
			b2 = 0.57000 * b2 + w * 1.0526913;
			double p = b0 + b1 + b2 + w * 0.1848;
			acc += p * p;
		}
		pink_rms = sqrt(acc / 200000);
	}
	for (size_t i = 0; i < x8->n; i++) {
		double v = x8->s[i];
		if (nz == N_WHITE) {
			v += sigma * grand();
		} else if (nz == N_PINK) {
			double w = grand();
			b0 = 0.99765 * b0 + w * 0.0990460;
			b1 = 0.96300 * b1 + w * 0.2965164;
			b2 = 0.57000 * b2 + w * 1.0526913;
			v += sigma * (b0 + b1 + b2 + w * 0.1848) / pink_rms;
		}
		y[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : lrint(v));
	}
	rv_g711_encode(RV_G711_ULAW, y, mu, x8->n);
	rv_g711_decode(RV_G711_ULAW, mu, y, x8->n);
	/* Frame by frame, as the media plane does, so the resampler state carries over. */
	struct rv_resampler *r = NULL;
	if (rv_resampler_alloc(8000, RV_MEDIA_RATE, 3, &r))
		die("resampler");
	out16->n = 0;
	for (size_t f = 0; f + F8 <= x8->n; f += F8) {
		int16_t o[F16];
		size_t got = 0;
		if (rv_resampler_run(r, y + f, F8, o, F16, &got) || got != F16)
			die("upsample");
		buf_push(out16, o, F16);
	}
	mem_deref(r);
	free(y);
	free(mu);
}

/* Scores of one detector on one stream. */
struct score {
	size_t tp, fn, fp, tn;
	size_t gfp, gtn; /* false positives away from speech (see near_speech) */
	double cpu;
};

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int near_speech(const struct stream *st, size_t f);

static void tally(struct score *s, const struct stream *st, size_t f, int said)
{
	if (st->lab[f]) {
		said ? s->tp++ : s->fn++;
		return;
	}
	said ? s->fp++ : s->tn++;
	if (!near_speech(st, f))
		said ? s->gfp++ : s->gtn++;
}

/* Frames within 100 ms before or 300 ms after a labelled segment, excluded when scoring the
 * smoothed state (whose onset look-back and hangover are there by design). */
static int near_speech(const struct stream *st, size_t f)
{
	for (size_t k = f >= 15 ? f - 15 : 0; k <= f + 5 && k < st->nf; k++)
		if (st->lab[k])
			return 1;
	return 0;
}

enum det {
	D_OURS,
	D_OURS_STATE,
	D_ENERGY,
	D_SPEEX,
#ifdef HAVE_WEBRTC
	D_WEBRTC,
#endif
	NDET
};
static const char *const det_name[NDET] = {
    "ours (frame)",      "ours (state, hangover)", "fixed energy -45 dBFS", "speexdsp VAD",
#ifdef HAVE_WEBRTC
    "WebRTC VAD mode 3",
#endif
};

/* Per-utterance endpointing figures from our detector: the longest pause inside an utterance
 * as the endpointer sees it (speech end to the next speech start), and how late the final
 * speech end is against the label. */
struct turnstat {
	double max_gap_ms[256];
	double end_err_ms[256];
	size_t n;
};

static void eval_stream(const struct stream *st, const struct buf *mic16, const int16_t *ref16,
                        struct score sc[NDET], struct turnstat *ts, int which_mask)
{
	size_t nf = mic16->n / F16;
	if (nf > st->nf)
		nf = st->nf;

	/* ours */
	struct rv_vad *v = NULL;
	if (rv_vad_alloc(NULL, &v))
		die("rv_vad_alloc");
	uint8_t *said = calloc(nf, 1), *state = calloc(nf, 1);
	uint64_t *end_ms = calloc(nf, sizeof(*end_ms)), *start_at = calloc(nf, sizeof(*start_at));
	if (!said || !state || !end_ms || !start_at)
		die("out of memory");
	double t0 = cpu_now();
	for (size_t f = 0; f < nf; f++) {
		struct rv_vad_frame o;
		const int16_t *ref = ref16 && st->ref_on[f] ? ref16 + f * F16 : NULL;
		rv_vad_process(v, mic16->s + f * F16, ref, &o);
		said[f] = o.voiced;
		state[f] = o.speech;
		if (o.events & RV_VAD_EV_END)
			end_ms[f] = o.end_ms + 1; /* +1: 0 means none */
		if (o.events & RV_VAD_EV_START)
			start_at[f] = 1;
	}
	double cpu = cpu_now() - t0;
	rv_vad_free(v);
	for (size_t f = 0; f < nf; f++) {
		tally(&sc[D_OURS], st, f, said[f]);
		tally(&sc[D_OURS_STATE], st, f, state[f]);
	}
	sc[D_OURS].cpu += cpu;
	sc[D_OURS_STATE].cpu += cpu;

	/* Endpointing view of each utterance. */
	for (size_t u = 0; ts && u < st->nutt && ts->n < 256; u++) {
		size_t a = st->utt_first[u], b = st->utt_last[u];
		double gap = 0, last_end = -1;
		uint64_t open_end = 0;
		for (size_t f = a; f < nf && f <= b + 100; f++) {
			if (end_ms[f]) {
				open_end = end_ms[f] - 1;
				if (f > b)
					last_end = (double)open_end;
			}
			if (start_at[f] && open_end && f <= b) {
				double g = (double)(f + 1) * 20 - (double)open_end;
				if (g > gap)
					gap = g;
				open_end = 0;
			}
			if (last_end >= 0)
				break;
		}
		ts->max_gap_ms[ts->n] = gap;
		ts->end_err_ms[ts->n] = last_end >= 0 ? last_end - (double)(b + 1) * 20 : NAN;
		ts->n++;
	}

	/* fixed energy */
	if (which_mask & (1 << D_ENERGY)) {
		t0 = cpu_now();
		for (size_t f = 0; f < nf; f++)
			said[f] = db(frame_ms(mic16->s + f * F16, F16)) > -45;
		sc[D_ENERGY].cpu += cpu_now() - t0;
		for (size_t f = 0; f < nf; f++)
			tally(&sc[D_ENERGY], st, f, said[f]);
	}

	/* speexdsp's preprocessor VAD (denoise on, as shipped) */
	if (which_mask & (1 << D_SPEEX)) {
		SpeexPreprocessState *sp = speex_preprocess_state_init(F16, RV_MEDIA_RATE);
		int on = 1;
		speex_preprocess_ctl(sp, SPEEX_PREPROCESS_SET_VAD, &on);
		int16_t tmp[F16];
		t0 = cpu_now();
		for (size_t f = 0; f < nf; f++) {
			memcpy(tmp, mic16->s + f * F16, sizeof(tmp));
			said[f] = speex_preprocess_run(sp, tmp) != 0;
		}
		sc[D_SPEEX].cpu += cpu_now() - t0;
		speex_preprocess_state_destroy(sp);
		for (size_t f = 0; f < nf; f++)
			tally(&sc[D_SPEEX], st, f, said[f]);
	}

#ifdef HAVE_WEBRTC
	if (which_mask & (1 << D_WEBRTC)) {
		struct bench_wrtc *w = bench_wrtc_new(3);
		if (!w)
			die("webrtc apm");
		t0 = cpu_now();
		for (size_t f = 0; f < nf; f++)
			said[f] = bench_wrtc_frame(w, mic16->s + f * F16) > 0;
		sc[D_WEBRTC].cpu += cpu_now() - t0;
		bench_wrtc_free(w);
		for (size_t f = 0; f < nf; f++)
			tally(&sc[D_WEBRTC], st, f, said[f]);
	}
#endif
	free(said);
	free(state);
	free(end_ms);
	free(start_at);
}

static double pct(size_t a, size_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Echo streams: prompts at 16 kHz (the reference) and caller answers, ERL and delay fixed per
 * stream. Caller speech is labelled; frames where only the echo is heard are the false-alarm
 * test. */
static void build_echo_stream(struct buf *prompt16, size_t nprompt, struct buf *ans8, size_t nans,
                              double erl_db, int delay_ms, struct stream *st, struct buf *mic16)
{
	/* Timeline in 20 ms frames at 16 kHz; caller line built at 8 kHz alongside. */
	size_t blocks = nprompt * 3;
	size_t total16 = RV_MEDIA_RATE;
	for (size_t b = 0; b < blocks; b++)
		total16 += prompt16[b % nprompt].n + RV_MEDIA_RATE * 6;
	memset(st, 0, sizeof(*st));
	stream_alloc_labels(st, total16 / 2);
	buf_push(&st->ref16, NULL, total16);
	buf_push(&st->x, NULL, total16 / 2);
	size_t pos16 = RV_MEDIA_RATE, ai = 0;
	for (size_t b = 0; b < blocks; b++) {
		const struct buf *p = &prompt16[b % nprompt];
		size_t plen = p->n - p->n % F16;
		memcpy(st->ref16.s + pos16, p->s, plen * sizeof(int16_t));
		for (size_t f = pos16 / F16; f < (pos16 + plen) / F16; f++)
			st->ref_on[f] = 1;
		/* Odd blocks: the caller answers over the prompt 1.2 s in (a barge-in); even
		 * blocks: 0.4 s after it ends. */
		const struct buf *a = &ans8[ai++ % nans];
		size_t at16 = (b % 2) ? pos16 + (size_t)(1.2 * RV_MEDIA_RATE) : pos16 + plen + 6400;
		size_t at8 = (at16 / 2) - (at16 / 2) % F8;
		size_t alen = a->n - a->n % F8;
		if (at8 + alen > st->x.n)
			break;
		memcpy(st->x.s + at8, a->s, alen * sizeof(int16_t));
		label_utterance(st, at8, st->x.s + at8, alen);
		size_t end16 = at16 + alen * 2 > pos16 + plen ? at16 + alen * 2 : pos16 + plen;
		pos16 = end16 + (size_t)(RV_MEDIA_RATE * (1.0 + urand()));
		pos16 -= pos16 % F16;
		if (pos16 + RV_MEDIA_RATE * 6 > total16)
			break;
	}
	st->nf = st->x.n / F8;
	double acc = 0;
	size_t cnt = 0;
	for (size_t f = 0; f < st->nf; f++)
		if (st->lab[f]) {
			acc += frame_ms(st->x.s + f * F8, F8);
			cnt++;
		}
	st->active_ms = cnt ? acc / (double)cnt : 0;

	/* The echo path: our 16 kHz playback down to the 8 kHz line, μ-law, attenuated and
	 * delayed by the hybrid, summed with the caller on the way back. */
	struct buf ref8 = {0};
	struct rv_resampler *down = NULL;
	if (rv_resampler_alloc(RV_MEDIA_RATE, 8000, 3, &down))
		die("resampler");
	for (size_t f = 0; f + F16 <= st->ref16.n; f += F16) {
		int16_t o[F8];
		size_t got = 0;
		if (rv_resampler_run(down, st->ref16.s + f, F16, o, F8, &got) || got != F8)
			die("downsample");
		buf_push(&ref8, o, F8);
	}
	mem_deref(down);
	/* The hybrid is not a flat attenuator: a short dispersive response (taps at 0, 0.4, 0.9
	 * and 1.5 ms) gives the echo a spectral tilt and ripple of several dB, normalised so the
	 * echo return loss holds in power. */
	static const double h[4] = {1.0, 0.45, -0.25, 0.1};
	static const size_t ht[4] = {0, 3, 7, 12};
	double hn = 0;
	for (int k = 0; k < 4; k++)
		hn += h[k] * h[k];
	double g = pow(10, -erl_db / 20) / sqrt(hn);
	size_t d = (size_t)delay_ms * 8;
	int16_t *line = malloc(ref8.n * sizeof(*line));
	uint8_t *mu = malloc(ref8.n);
	if (!line || !mu)
		die("out of memory");
	rv_g711_encode(RV_G711_ULAW, ref8.s, mu, ref8.n);
	rv_g711_decode(RV_G711_ULAW, mu, line, ref8.n);
	for (size_t i = 0; i < st->x.n; i++) {
		double e = 0;
		for (int k = 0; k < 4; k++)
			if (i >= d + ht[k] && i - d - ht[k] < ref8.n)
				e += h[k] * line[i - d - ht[k]];
		e *= g;
		double y = st->x.s[i] + e;
		st->x.s[i] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : lrint(y));
	}
	free(ref8.s);
	free(line);
	free(mu);
	/* A quiet line: white noise 40 dB under the caller. */
	line_out(&st->x, st->active_ms, N_WHITE, 40, mic16);
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "-q") == 0;
	size_t nsent = quick ? 4 : NSENT;

	synth_init();
	fprintf(stderr, "vad_eval: synthesizing %zu sentences x %d voices\n", nsent, NVOICE);
	struct buf utts[NVOICE * NSENT];
	memset(utts, 0, sizeof(utts));
	size_t nutt = 0;
	/* Interleave voices so every part of the stream has each of them. */
	for (size_t s = 0; s < nsent; s++)
		for (int v = 0; v < NVOICE; v++)
			synth((enum voice)v, sentences[s], 8000, &utts[nutt++]);

	struct stream st;
	build_speech_stream(utts, nutt, &st);
	double secs = (double)st.nf * 0.02;
	printf(
	    "Speech stream: %zu utterances (%zu sentences x espeak-ng en-us, flite slt/rms/kal), "
	    "%.0f s; active level of the stream %.1f dBFS.\n",
	    nutt, nsent, secs, db(st.active_ms));
	{
		size_t sp = 0;
		for (size_t f = 0; f < st.nf; f++)
			sp += st.lab[f];
		printf("Speech frames: %zu of %zu (%.0f %%).\n\n", sp, st.nf, pct(sp, st.nf));
	}

	struct {
		const char *name;
		enum noise nz;
		double snr;
	} conds[] = {
	    {"quiet line", N_NONE, 0},  {"white 20 dB", N_WHITE, 20}, {"white 10 dB", N_WHITE, 10},
	    {"pink 20 dB", N_PINK, 20}, {"pink 10 dB", N_PINK, 10},
	};
	size_t ncond = sizeof(conds) / sizeof(conds[0]);
	struct score sc[8][NDET];
	memset(sc, 0, sizeof(sc));
	struct turnstat ts[8];
	memset(ts, 0, sizeof(ts));
	double audio_s = 0;
	struct buf mic = {0};
	for (size_t c = 0; c < ncond; c++) {
		line_out(&st.x, st.active_ms, conds[c].nz, conds[c].snr, &mic);
		eval_stream(&st, &mic, NULL, sc[c], &ts[c], ~0);
		audio_s += (double)(mic.n / F16) * 0.02;
	}

	for (int table = 0; table < 2; table++) {
		printf(table == 0 ? "All frames:\n\n"
		                  : "Away from speech edges (false positives counted only on "
		                    "non-speech frames more than 100 ms before and 300 ms after "
		                    "a labelled segment, where onset look-back and hangover are by "
		                    "design; recall as above):\n\n");
		printf("| VAD | CPU s per audio s |");
		for (size_t c = 0; c < ncond; c++)
			printf(" %s |", conds[c].name);
		printf("\n|---|---:|");
		for (size_t c = 0; c < ncond; c++)
			printf("---|");
		printf("\n");
		for (int d = 0; d < NDET; d++) {
			double cpu = 0;
			for (size_t c = 0; c < ncond; c++)
				cpu += sc[c][d].cpu;
			printf("| %s | %.5f |", det_name[d], cpu / audio_s);
			for (size_t c = 0; c < ncond; c++) {
				struct score *s = &sc[c][d];
				size_t fp = table ? s->gfp : s->fp, tn = table ? s->gtn : s->tn;
				printf(" %.1f / %.1f %% |", pct(s->tp, s->tp + s->fn),
				       pct(fp, fp + tn));
			}
			printf("\n");
		}
		printf("\n");
	}
	printf("Cells: speech recall / false positives, per 20 ms frame. \"frame\" is the "
	       "per-frame decision, \"state\" the smoothed one (80 ms onset, 240 ms "
	       "hangover) that the turn-taking logic uses.\n\n");

	/* Endpointing: the pauses our detector leaves inside utterances. */
	printf("Pauses inside one utterance as the endpointer sees them (speech end to next speech "
	       "start, ours, state), and utterances that an end-of-turn silence T would cut:\n\n");
	printf(
	    "| condition | utterances | pause p50 / p95 / max ms | T=300 | T=400 | T=500 | T=600 | "
	    "T=700 | T=800 | T=1000 | end error p50 / p95 ms |\n|---|---:|---|---:|---:|---:|---:|"
	    "---:|---:|---:|---|\n");
	for (size_t c = 0; c < ncond; c++) {
		struct turnstat *t = &ts[c];
		double g[256], e[256];
		size_t ne = 0;
		memcpy(g, t->max_gap_ms, t->n * sizeof(double));
		for (size_t i = 0; i < t->n; i++)
			if (!isnan(t->end_err_ms[i]))
				e[ne++] = t->end_err_ms[i];
		qsort(g, t->n, sizeof(double), cmpd);
		qsort(e, ne, sizeof(double), cmpd);
		printf("| %s | %zu | %.0f / %.0f / %.0f |", conds[c].name, t->n, g[t->n / 2],
		       g[(t->n * 95) / 100], g[t->n - 1]);
		static const int T[] = {300, 400, 500, 600, 700, 800, 1000};
		for (size_t k = 0; k < 7; k++) {
			size_t cut = 0;
			for (size_t i = 0; i < t->n; i++)
				cut += t->max_gap_ms[i] >= T[k];
			printf(" %zu |", cut);
		}
		if (ne)
			printf(" %.0f / %.0f |\n", e[ne / 2], e[(ne * 95) / 100]);
		else
			printf(" n/a |\n");
	}

	/* Echo. */
	struct buf prompt16[NPROMPT];
	memset(prompt16, 0, sizeof(prompt16));
	for (size_t p = 0; p < NPROMPT; p++) {
		synth(V_RMS, prompts[p], RV_MEDIA_RATE, &prompt16[p]);
		/* Agent prompts at -18 dBFS. */
		double m = frame_ms(prompt16[p].s, prompt16[p].n);
		double gain = sqrt(32768.0 * 32768.0 * pow(10, -20.0 / 10) / m);
		for (size_t i = 0; i < prompt16[p].n; i++)
			prompt16[p].s[i] = (int16_t)lrint(prompt16[p].s[i] * gain);
	}
	struct buf ans8[NVOICE * 2];
	memset(ans8, 0, sizeof(ans8));
	size_t nans = 0;
	for (size_t s = 0; s < 2; s++)
		for (int v = 0; v < NVOICE; v++) {
			if (v == V_RMS)
				continue; /* the agent's voice */
			synth((enum voice)v, sentences[(s * 3 + (size_t)v) % NSENT], 8000,
			      &ans8[nans]);
			/* Caller at -22 dBFS active level. */
			double acc = 0;
			size_t cnt = 0;
			for (size_t f = 0; f + F8 <= ans8[nans].n; f += F8) {
				double m = frame_ms(ans8[nans].s + f, F8);
				if (db(m) > -50) {
					acc += m;
					cnt++;
				}
			}
			double gain =
			    sqrt(32768.0 * 32768.0 * pow(10, -22.0 / 10) / (acc / (double)cnt));
			for (size_t i = 0; i < ans8[nans].n; i++) {
				double y = ans8[nans].s[i] * gain;
				ans8[nans].s[i] = (int16_t)(y > 32767    ? 32767
				                            : y < -32768 ? -32768
				                                         : lrint(y));
			}
			nans++;
		}
	printf(
	    "\nEcho of our own prompts (flite rms at -20 dBFS; callers espeak/slt/kal at -22 dBFS; "
	    "white noise 40 dB under the caller). Caller recall over the prompt (barge-in) and "
	    "after it; false positives on frames where only the echo is heard:\n\n");
	printf("| ERL / delay | ours with reference: recall over prompt / after / echo FP | ours "
	       "without reference: echo FP | speexdsp echo FP | fixed energy echo FP |"
#ifdef HAVE_WEBRTC
	       " WebRTC echo FP |"
#endif
	       "\n|---|---|---:|---:|---:|"
#ifdef HAVE_WEBRTC
	       "---:|"
#endif
	       "\n");
	static const double erls[] = {10, 20, 30};
	static const int delays[] = {0, 60};
	double echo_cpu = 0, echo_s = 0;
	for (size_t e = 0; e < 3; e++)
		for (size_t dl = 0; dl < 2; dl++) {
			struct stream es;
			struct buf m16 = {0};
			build_echo_stream(prompt16, NPROMPT, ans8, nans, erls[e], delays[dl], &es,
			                  &m16);
			/* Split the scoring: a stream copy whose labels pick the frame classes. */
			size_t nf = m16.n / F16 < es.nf ? m16.n / F16 : es.nf;
			struct score with[NDET], without[NDET];
			memset(with, 0, sizeof(with));
			memset(without, 0, sizeof(without));
			uint8_t *said_with = calloc(nf, 1), *said_without = calloc(nf, 1);
			struct rv_vad *v1 = NULL, *v2 = NULL;
			if (rv_vad_alloc(NULL, &v1) || rv_vad_alloc(NULL, &v2))
				die("rv_vad_alloc");
			double t0 = cpu_now();
			for (size_t f = 0; f < nf; f++) {
				struct rv_vad_frame o;
				rv_vad_process(v1, m16.s + f * F16,
				               es.ref_on[f] ? es.ref16.s + f * F16 : NULL, &o);
				said_with[f] = o.speech;
			}
			echo_cpu += cpu_now() - t0;
			echo_s += (double)nf * 0.02;
			for (size_t f = 0; f < nf; f++) {
				struct rv_vad_frame o;
				rv_vad_process(v2, m16.s + f * F16, NULL, &o);
				said_without[f] = o.speech;
			}
			rv_vad_free(v1);
			rv_vad_free(v2);
			/* Other detectors through eval_stream (no reference). */
			eval_stream(&es, &m16, NULL, without, NULL, ~0);
			size_t over_tp = 0, over_n = 0, after_tp = 0, after_n = 0, efp = 0, en = 0,
			       efp_wo = 0;
			for (size_t f = 0; f < nf; f++) {
				int echo_here = es.ref_on[f] || (f >= 4 && es.ref_on[f - 4]);
				if (es.lab[f]) {
					if (echo_here) {
						over_n++;
						over_tp += said_with[f];
					} else {
						after_n++;
						after_tp += said_with[f];
					}
				} else if (echo_here && !near_speech(&es, f)) {
					en++;
					efp += said_with[f];
					efp_wo += said_without[f];
				}
			}
			/* Echo FP of the other detectors: their frame decisions on echo-only
			 * frames, recomputed from a second pass. */
			struct score echo_only[NDET];
			memset(echo_only, 0, sizeof(echo_only));
			{
				struct stream tmp = es;
				uint8_t *lab2 = calloc(nf + 1, 1);
				/* Mark everything that is not echo-only as speech, so FP counts
				 * only echo-only frames. */
				for (size_t f = 0; f < nf; f++) {
					int echo_here =
					    es.ref_on[f] || (f >= 4 && es.ref_on[f - 4]);
					lab2[f] =
					    !(echo_here && !es.lab[f] && !near_speech(&es, f));
				}
				tmp.lab = lab2;
				tmp.nutt = 0;
				eval_stream(&tmp, &m16, NULL, echo_only, NULL, ~0);
				free(lab2);
			}
			printf("| %.0f dB / %d ms | %.1f / %.1f / %.1f %% | %.1f %% | %.1f %% | "
			       "%.1f %% |",
			       erls[e], delays[dl], pct(over_tp, over_n), pct(after_tp, after_n),
			       pct(efp, en), pct(efp_wo, en),
			       pct(echo_only[D_SPEEX].fp,
			           echo_only[D_SPEEX].fp + echo_only[D_SPEEX].tn),
			       pct(echo_only[D_ENERGY].fp,
			           echo_only[D_ENERGY].fp + echo_only[D_ENERGY].tn));
#ifdef HAVE_WEBRTC
			printf(" %.1f %% |", pct(echo_only[D_WEBRTC].fp,
			                         echo_only[D_WEBRTC].fp + echo_only[D_WEBRTC].tn));
#endif
			printf("\n");
			free(said_with);
			free(said_without);
			free(es.x.s);
			free(es.ref16.s);
			free(es.lab);
			free(es.ref_on);
			free(m16.s);
		}
	printf(
	    "\nEcho rows score the smoothed state of ours (onset + hangover); CPU of ours with a "
	    "reference: %.5f s per audio s.\n",
	    echo_s > 0 ? echo_cpu / echo_s : 0);

	for (size_t i = 0; i < nutt; i++)
		free(utts[i].s);
	for (size_t i = 0; i < NPROMPT; i++)
		free(prompt16[i].s);
	for (size_t i = 0; i < nans; i++)
		free(ans8[i].s);
	free(mic.s);
	free(st.x.s);
	free(st.lab);
	free(st.ref_on);
	free(espeak_acc.s);
	espeak_Terminate();
	return 0;
}
