/*
 * Turn-taking units: flite speech (and noise bursts) through the real VAD into the endpointer.
 * Times are stream times (20 ms per frame), so the assertions do not depend on machine load.
 */
#include <errno.h>
#include <flite.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "media/media_pcm.h"
#include "speech/turn.h"
#include "speech/vad.h"
#include "../test.h"

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);

#define FR RV_MEDIA_FRAME

static cst_voice *voice_slt, *voice_rms;

/* Speak `text` at 16 kHz, loud frames at -22 dBFS; *n is a whole number of frames. */
static int16_t *speak(const char *text, bool rms, size_t *n)
{
	if (!voice_slt) {
		flite_init();
		voice_slt = register_cmu_us_slt(NULL);
		voice_rms = register_cmu_us_rms(NULL);
	}
	cst_wave *w = flite_text_to_wave(text, rms ? voice_rms : voice_slt);
	if (!w || w->sample_rate != RV_MEDIA_RATE || w->num_samples < FR) {
		if (w)
			delete_wave(w);
		return NULL;
	}
	size_t len = (size_t)w->num_samples - (size_t)w->num_samples % FR;
	double acc = 0;
	size_t cnt = 0;
	for (size_t f = 0; f < len; f += FR) {
		double m = 0;
		for (size_t i = 0; i < FR; i++)
			m += (double)w->samples[f + i] * w->samples[f + i];
		if (m / FR > 32768.0 * 32768.0 * 1e-5) {
			acc += m / FR;
			cnt++;
		}
	}
	double gain = sqrt(32768.0 * 32768.0 * pow(10, -22.0 / 10) / (acc / (double)cnt));
	int16_t *s = malloc(len * sizeof(*s));
	for (size_t i = 0; s && i < len; i++) {
		double y = w->samples[i] * gain;
		s[i] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : lrint(y));
	}
	delete_wave(w);
	*n = len;
	return s;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
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

/* The VAD and the endpointer fed together, with every event kept. */
struct rig {
	struct rv_vad *vad;
	struct rv_turn *turn;
	struct rv_turn_event ev[64];
	size_t nev;
	uint64_t now;
	int err;
};

static int rig_open(struct rig *r, const struct rv_turn_cfg *cfg)
{
	memset(r, 0, sizeof(*r));
	int err = rv_vad_alloc(NULL, &r->vad);
	if (!err)
		err = rv_turn_alloc(cfg, &r->turn);
	return err;
}

static void rig_close(struct rig *r)
{
	rv_turn_free(r->turn);
	rv_vad_free(r->vad);
}

static void rig_frame(struct rig *r, const int16_t *pcm)
{
	struct rv_vad_frame f;
	struct rv_turn_event ev[RV_TURN_MAX_EVENTS];
	size_t n = 0;
	int err = rv_vad_process(r->vad, pcm, NULL, &f);
	if (!err)
		err = rv_turn_process(r->turn, &f, ev, RV_TURN_MAX_EVENTS, &n);
	if (err && !r->err)
		r->err = err;
	for (size_t i = 0; i < n && r->nev < 64; i++)
		r->ev[r->nev++] = ev[i];
	r->now = f.t_ms + 20;
}

/* Audio plus a quiet line (white noise at -60 dBFS, so never digital silence). */
static void rig_feed(struct rig *r, const int16_t *pcm, size_t n)
{
	int16_t fr[FR];
	for (size_t f = 0; f + FR <= n; f += FR) {
		for (size_t i = 0; i < FR; i++) {
			double y = pcm[f + i] + 32.8 * gauss();
			fr[i] = (int16_t)(y > 32767 ? 32767 : y < -32768 ? -32768 : lrint(y));
		}
		rig_frame(r, fr);
	}
}

static void rig_silence(struct rig *r, uint32_t ms)
{
	int16_t z[FR] = {0};
	for (uint32_t t = 0; t < ms; t += 20)
		rig_feed(r, z, FR);
}

static size_t count(const struct rig *r, enum rv_turn_ev_type type)
{
	size_t c = 0;
	for (size_t i = 0; i < r->nev; i++)
		c += r->ev[i].type == type;
	return c;
}

static const struct rv_turn_event *find(const struct rig *r, enum rv_turn_ev_type type)
{
	for (size_t i = 0; i < r->nev; i++)
		if (r->ev[i].type == type)
			return &r->ev[i];
	return NULL;
}

RV_TEST(turn_rejects_bad_config_and_arguments)
{
	struct rv_turn_cfg cfg;
	struct rv_turn *t = NULL;
	rv_turn_cfg_defaults(&cfg);
	cfg.end_silence_ms = 50;
	ASSERT_EQ_INT(rv_turn_alloc(&cfg, &t), -EINVAL);
	ASSERT(t == NULL);
	rv_turn_cfg_defaults(&cfg);
	cfg.barge_in_min_db = 3;
	ASSERT_EQ_INT(rv_turn_alloc(&cfg, &t), -EINVAL);
	ASSERT_OK(rv_turn_alloc(NULL, &t));
	struct rv_vad_frame f = {0};
	struct rv_turn_event ev[RV_TURN_MAX_EVENTS];
	size_t n = 99;
	ASSERT_EQ_INT(rv_turn_process(t, &f, ev, 2, &n), -EINVAL);
	ASSERT_EQ_INT(rv_turn_process(t, NULL, ev, RV_TURN_MAX_EVENTS, &n), -EINVAL);
	ASSERT_OK(rv_turn_process(t, &f, ev, RV_TURN_MAX_EVENTS, &n));
	ASSERT_EQ_INT(n, 0);
	/* A partial longer than the buffer keeps its tail, which decides "unfinished". */
	char big[RV_TURN_PARTIAL_MAX + 100];
	memset(big, 'x', sizeof(big));
	memcpy(big + sizeof(big) - 16, " my number is", 14);
	ASSERT_EQ_INT(rv_turn_set_partial(t, big), -E2BIG);
	rv_turn_free(t);
}

RV_TEST(turn_unfinished_and_backchannel_phrases)
{
	static const char *const unfinished[] = {
	    "my number is",
	    "I want to go to the",
	    "yes and",
	    "um",
	    "so I was thinking, uh",
	    "it's five five five two three",
	    "call me at 555 1234",
	    "the code is 4 2",
	    "well,",
	    "my email is john dot",
	};
	static const char *const finished[] = {
	    "yes",
	    "no thanks",
	    "that's right",
	    "tomorrow at noon",
	    "I want to cancel my order",
	    "my number is five five five.",
	    "",
	    "Is it?",
	    "I already have one",
	    "two",
	};
	for (size_t i = 0; i < sizeof(unfinished) / sizeof(*unfinished); i++)
		ASSERT_MSG(rv_turn_partial_unfinished(unfinished[i]), "'%s'", unfinished[i]);
	for (size_t i = 0; i < sizeof(finished) / sizeof(*finished); i++)
		ASSERT_MSG(!rv_turn_partial_unfinished(finished[i]), "'%s'", finished[i]);
	ASSERT(!rv_turn_partial_unfinished(NULL));
	ASSERT(rv_turn_partial_backchannel("mhm"));
	ASSERT(rv_turn_partial_backchannel("Okay."));
	ASSERT(rv_turn_partial_backchannel("uh-huh yeah"));
	ASSERT(!rv_turn_partial_backchannel("okay stop"));
	ASSERT(!rv_turn_partial_backchannel("wait"));
	ASSERT(!rv_turn_partial_backchannel(""));
}

/* A cough-length (150 ms) burst during a prompt does not barge in, whether it is noise or a
 * slice of speech; a 1 s utterance does, once 400 ms of it are voiced. */
RV_TEST(turn_barge_in_needs_real_speech)
{
	size_t n = 0;
	int16_t *u = speak("No, wait a moment please.", false, &n);
	ASSERT(u && n >= RV_MEDIA_RATE);
	struct rig r;
	ASSERT_OK(rig_open(&r, NULL));
	rv_turn_prompt_start(r.turn, true);
	rig_silence(&r, 1000);
	/* 150 ms of loud noise. */
	int16_t burst[FR * 8];
	for (size_t i = 0; i < FR * 8; i++)
		burst[i] = i < (size_t)FR * 15 / 2 ? (int16_t)lrint(2600 * gauss()) : 0;
	rig_feed(&r, burst, FR * 8);
	rig_silence(&r, 1000);
	/* 150 ms from the middle of the utterance (voiced speech). */
	size_t mid = n / 2 - n / 2 % FR;
	rig_feed(&r, u + mid, FR * 15 / 2);
	rig_silence(&r, 1000);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_BARGE_IN), 0);
	/* The whole utterance. */
	uint64_t t0 = r.now;
	rig_feed(&r, u, n);
	rig_silence(&r, 1000);
	ASSERT_OK(r.err);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_BARGE_IN), 1);
	const struct rv_turn_event *b = find(&r, RV_TURN_EV_BARGE_IN);
	ASSERT(b->speech_start_ms >= t0 && b->speech_start_ms < t0 + 400);
	ASSERT_MSG(b->t_ms >= b->speech_start_ms + 400 && b->t_ms <= b->speech_start_ms + 800,
	           "barge-in at %llu, speech from %llu", (unsigned long long)b->t_ms,
	           (unsigned long long)b->speech_start_ms);
	/* The barge-in made it the caller's turn: it ends after the silence. */
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_END_OF_TURN), 1);
	rig_close(&r);
	free(u);
}

/* Barge-in off for this prompt: the same speech does not interrupt; talk still going on when
 * the prompt ends is the caller's turn. */
RV_TEST(turn_barge_in_disabled_per_prompt)
{
	size_t n = 0;
	int16_t *u =
	    speak("Hello, hello, can you hear me? I have a question about my bill.", true, &n);
	ASSERT(u && n > RV_MEDIA_RATE * 2);
	struct rig r;
	ASSERT_OK(rig_open(&r, NULL));
	rv_turn_prompt_start(r.turn, false);
	rig_silence(&r, 500);
	rig_feed(&r, u, n / 2 - (n / 2) % FR);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_BARGE_IN), 0);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_SPEECH_START), 1);
	rv_turn_prompt_end(r.turn);
	rig_feed(&r, u + n / 2 - (n / 2) % FR, n - (n / 2 - (n / 2) % FR));
	rig_silence(&r, 1500);
	ASSERT_OK(r.err);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_BARGE_IN), 0);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_END_OF_TURN), 1);
	/* The turn began with the speech during the prompt. */
	ASSERT(find(&r, RV_TURN_EV_END_OF_TURN)->speech_start_ms ==
	       find(&r, RV_TURN_EV_SPEECH_START)->speech_start_ms);
	rig_close(&r);
	free(u);
}

/* The end of turn comes the configured silence after the last voiced frame, not before, and
 * pauses inside the answer (commas) do not end it. */
static void end_after(uint32_t silence_ms)
{
	size_t n = 0;
	int16_t *u = speak("Yes, that's right, I would like to book it for Tuesday.", false, &n);
	ASSERT(u);
	struct rv_turn_cfg cfg;
	rv_turn_cfg_defaults(&cfg);
	cfg.end_silence_ms = silence_ms;
	struct rig r;
	ASSERT_OK(rig_open(&r, &cfg));
	rv_turn_listen(r.turn);
	rig_silence(&r, 600);
	uint64_t t0 = r.now;
	rig_feed(&r, u, n);
	uint64_t t1 = r.now;
	rig_silence(&r, silence_ms + 1000);
	ASSERT_OK(r.err);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_END_OF_TURN), 1);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_NO_INPUT), 0);
	const struct rv_turn_event *e = find(&r, RV_TURN_EV_END_OF_TURN);
	ASSERT_EQ_INT(e->reason, RV_TURN_REASON_SILENCE);
	ASSERT_EQ_INT(e->silence_ms, silence_ms);
	ASSERT(e->speech_start_ms >= t0 && e->speech_start_ms < t0 + 400);
	ASSERT(e->speech_end_ms <= t1 && e->speech_end_ms + 600 > t1);
	ASSERT_EQ_INT(e->t_ms - e->speech_end_ms, silence_ms);
	rig_close(&r);
	free(u);
}

RV_TEST(turn_end_after_default_silence)
{
	end_after(700);
}

RV_TEST(turn_end_after_configured_silence)
{
	end_after(1200);
}

static int calls;
static float expects_yes(const char *partial, void *arg)
{
	(void)arg;
	calls++;
	return strstr(partial, "yes") || strstr(partial, "Yes") ? 0.9f : 0.1f;
}

/* Semantic endpointing: the same answer ends 300 ms after the speech when the dialog says the
 * partial completes what it expected; 1.5 s when the partial is mid-sentence. */
static void semantic_case(const char *partial, enum rv_turn_reason want, uint32_t want_ms)
{
	size_t n = 0;
	int16_t *u = speak("Yes, I can do that.", true, &n);
	ASSERT(u);
	struct rv_turn_cfg cfg;
	rv_turn_cfg_defaults(&cfg);
	cfg.complete_h = expects_yes;
	struct rig r;
	ASSERT_OK(rig_open(&r, &cfg));
	rv_turn_listen(r.turn);
	rig_silence(&r, 400);
	calls = 0;
	rig_feed(&r, u, n / 2);
	ASSERT_OK(rv_turn_set_partial(r.turn, partial));
	rig_feed(&r, u + n / 2, n - n / 2);
	rig_silence(&r, 2500);
	ASSERT_OK(r.err);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_END_OF_TURN), 1);
	const struct rv_turn_event *e = find(&r, RV_TURN_EV_END_OF_TURN);
	ASSERT_EQ_INT(e->reason, want);
	ASSERT_EQ_INT(e->silence_ms, want_ms);
	ASSERT_EQ_INT(e->t_ms - e->speech_end_ms, want_ms);
	/* The callback judged the partial once, not once per frame. */
	ASSERT_EQ_INT(calls, 1);
	rig_close(&r);
	free(u);
}

RV_TEST(turn_semantic_complete_shortens)
{
	semantic_case("yes I can do that", RV_TURN_REASON_COMPLETE, 200);
}

RV_TEST(turn_mid_sentence_lengthens)
{
	semantic_case("my number is", RV_TURN_REASON_INCOMPLETE, 1000);
}

RV_TEST(turn_plain_partial_uses_default)
{
	semantic_case("I can do that", RV_TURN_REASON_SILENCE, 700);
}

/* Nobody talks: one no-input event, no_input_ms after listening began; speech before the
 * timeout prevents it. */
RV_TEST(turn_no_input_fires_once)
{
	struct rig r;
	ASSERT_OK(rig_open(&r, NULL));
	rig_silence(&r, 1000);
	rv_turn_listen(r.turn);
	uint64_t t0 = r.now;
	rig_silence(&r, 12000);
	ASSERT_OK(r.err);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_NO_INPUT), 1);
	const struct rv_turn_event *e = find(&r, RV_TURN_EV_NO_INPUT);
	ASSERT_EQ_INT(e->t_ms - t0, 5000);
	ASSERT_EQ_INT(e->speech_start_ms, t0);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_END_OF_TURN), 0);
	rig_close(&r);

	size_t n = 0;
	int16_t *u = speak("Sorry, who is this?", false, &n);
	ASSERT(u);
	ASSERT_OK(rig_open(&r, NULL));
	rv_turn_listen(r.turn);
	rig_silence(&r, 3000);
	rig_feed(&r, u, n);
	rig_silence(&r, 8000);
	ASSERT_OK(r.err);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_NO_INPUT), 0);
	ASSERT_EQ_INT(count(&r, RV_TURN_EV_END_OF_TURN), 1);
	rig_close(&r);
	free(u);
}

/* A backchannel over the prompt ("yeah, okay": 580 ms of voice with flite slt), recognised as
 * such by the partial transcript, needs backchannel_ms (900) of voice;
 * the same audio without that transcript barges in at barge_in_min_ms. */
RV_TEST(turn_backchannel_does_not_interrupt)
{
	size_t n = 0;
	int16_t *u = speak("Yeah, okay.", false, &n);
	ASSERT(u);
	struct rig r;
	for (int with_partial = 1; with_partial >= 0; with_partial--) {
		ASSERT_OK(rig_open(&r, NULL));
		rv_turn_prompt_start(r.turn, true);
		rig_silence(&r, 600);
		if (with_partial)
			ASSERT_OK(rv_turn_set_partial(r.turn, "yeah okay"));
		rig_feed(&r, u, n);
		rig_silence(&r, 600);
		ASSERT_OK(r.err);
		size_t voiced_ok = count(&r, RV_TURN_EV_SPEECH_START) >= 1;
		ASSERT(voiced_ok);
		ASSERT_MSG(count(&r, RV_TURN_EV_BARGE_IN) == (with_partial ? 0u : 1u),
		           "with_partial=%d barge-ins=%zu", with_partial,
		           count(&r, RV_TURN_EV_BARGE_IN));
		rig_close(&r);
	}
	free(u);
}
