/* Emotion: lexicon with negation and intensifiers, pitch/energy measurement, fusion. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "nlu/emotion.h"

static const char *label_of(const char *text)
{
	struct rv_emotion_text t;
	struct rv_emotion e;
	rv_emotion_text(text, &t);
	rv_emotion_fuse(&t, NULL, NULL, &e);
	return e.label;
}

RV_TEST(nlu_emotion_words)
{
	ASSERT_EQ_STR(label_of("this is ridiculous, stop wasting my time"), "frustrated");
	ASSERT_EQ_STR(label_of("I'm really annoyed with you people"), "frustrated");
	ASSERT_EQ_STR(label_of("that's great, thank you so much"), "positive");
	ASSERT_EQ_STR(label_of("sorry, I don't understand what you mean"), "confused");
	ASSERT_EQ_STR(label_of("my husband passed away last month and I'm sad"), "sad");
	ASSERT_EQ_STR(label_of("I would like to book for Tuesday"), "neutral");
	/* Negation flips, intensifiers scale. */
	struct rv_emotion_text a, b, c;
	rv_emotion_text("I am happy", &a);
	rv_emotion_text("I am not happy", &b);
	rv_emotion_text("I am very happy", &c);
	ASSERT(a.valence > 0 && b.valence < 0);
	ASSERT(c.valence > a.valence);
	struct rv_emotion_text d;
	rv_emotion_text("not bad at all", &d);
	ASSERT(d.valence > 0 && d.valence < 0.5); /* mildly positive, not "bad" */
}

/* A voiced-like pulse train at f0 (rich in harmonics like a glottal source). */
static int16_t *pulses(double f0, double amp, size_t n, uint32_t rate)
{
	int16_t *x = malloc(n * sizeof(int16_t));
	for (size_t i = 0; i < n; i++) {
		double ph = fmod((double)i * f0 / rate, 1.0);
		x[i] = (int16_t)(amp * (ph < 0.1 ? 1.0 - ph * 10 : -0.1));
	}
	return x;
}

RV_TEST(nlu_emotion_voice_pitch_and_level)
{
	struct rv_voice_feat f;
	int16_t *x = pulses(150, 12000, 16000, 16000);
	ASSERT_OK(rv_voice_features(x, 16000, 16000, 3, &f));
	ASSERT(f.valid);
	ASSERT_MSG(fabs(f.f0_hz - 150) < 8, "f0 %.1f", f.f0_hz);
	ASSERT_MSG(f.energy_db < 0 && f.energy_db > -30, "level %.1f dBFS", f.energy_db);
	ASSERT_MSG(fabs(f.rate_wps - 3.0) < 0.01, "rate %.2f", f.rate_wps);
	free(x);
	int16_t silence[16000] = {0};
	ASSERT_OK(rv_voice_features(silence, 16000, 16000, 0, &f));
	ASSERT(!f.valid);
	ASSERT_EQ_INT(rv_voice_features(silence, 16000, 1000, 0, &f), -EINVAL);
}

RV_TEST(nlu_emotion_voice_against_callers_baseline)
{
	struct rv_emotion_baseline base = {0};
	struct rv_emotion_text neutral;
	struct rv_emotion e;
	rv_emotion_text("okay I see", &neutral);
	/* Three calm turns set the baseline (slightly different each time). */
	for (int i = 0; i < 3; i++) {
		int16_t *x = pulses(140 + 5 * i, 6000 + 300 * i, 16000, 16000);
		struct rv_voice_feat f;
		ASSERT_OK(rv_voice_features(x, 16000, 16000, 0, &f));
		free(x);
		rv_emotion_fuse(&neutral, &f, &base, &e);
	}
	ASSERT_EQ_INT(base.n, 3);
	/* A turn at the caller's usual pitch and level: voice arousal near the middle. */
	int16_t *x = pulses(145, 6300, 16000, 16000);
	struct rv_voice_feat f;
	ASSERT_OK(rv_voice_features(x, 16000, 16000, 0, &f));
	free(x);
	rv_emotion_fuse(&neutral, &f, &base, &e);
	ASSERT_MSG(e.voice_arousal > 0.3 && e.voice_arousal < 0.7, "usual: %.2f", e.voice_arousal);
	/* Much louder and higher than usual: agitated. */
	x = pulses(230, 24000, 16000, 16000);
	ASSERT_OK(rv_voice_features(x, 16000, 16000, 0, &f));
	free(x);
	rv_emotion_fuse(&neutral, &f, &base, &e);
	ASSERT_MSG(e.voice_arousal > 0.85, "agitated: %.2f", e.voice_arousal);
}
