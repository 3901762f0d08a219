/*
 * Emotion per caller turn, from the words and from the voice, fused into one label with
 * valence (-1 unpleasant .. +1 pleasant) and arousal (0 calm .. 1 agitated):
 *   neutral, positive, frustrated (angry included), confused, sad.
 * Words: a lexicon with negation ("not happy") and intensifiers ("really annoyed"). Voice:
 * pitch, pitch range, loudness and speaking rate measured on the turn's audio and compared with
 * the caller's own baseline from earlier turns, so a naturally loud or fast speaker is not
 * "angry". Pure functions and a small per-call baseline struct; thread-safe.
 */
#ifndef RV_NLU_EMOTION_H
#define RV_NLU_EMOTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rv_emotion_text {
	double valence; /* -1..1, 0 when no cue */
	double arousal; /* 0..1 */
	unsigned cues;  /* lexicon words that counted */
	bool confused;  /* "I don't understand", "what do you mean" */
	bool anger;     /* words of anger, not only displeasure */
};

/* Score a text (at most 2000 bytes read). */
void rv_emotion_text(const char *text, struct rv_emotion_text *out);

struct rv_voice_feat {
	bool valid;       /* enough voiced audio to measure (>= 300 ms) */
	double f0_hz;     /* median pitch of voiced frames */
	double f0_range;  /* 90th - 10th percentile of pitch, semitones */
	double energy_db; /* mean level of voiced frames, dBFS */
	double rate_wps;  /* words per second, when the caller gave a word count; else 0 */
	double voiced_s;  /* voiced seconds */
};

/*
 * Measure a turn's audio (mono 16-bit at `rate`, 8000-48000 Hz). `words` (0 = unknown) with the
 * audio's length gives the speaking rate. Returns 0 (out->valid false when too little voiced
 * audio), -EINVAL for a bad rate, -ENOMEM.
 */
int rv_voice_features(const int16_t *pcm, size_t n, uint32_t rate, unsigned words,
                      struct rv_voice_feat *out);

/* The caller's running baseline: means and spreads over their earlier turns. Zero it at the
 * start of a call. */
struct rv_emotion_baseline {
	unsigned n;
	double f0_mean, f0_m2;
	double en_mean, en_m2;
	double rate_mean, rate_m2;
	double range_mean, range_m2;
};

struct rv_emotion {
	const char *label; /* "neutral", "positive", "frustrated", "confused", "sad" */
	double valence;
	double arousal;
	double confidence;    /* 0..1 */
	double voice_arousal; /* the voice's part of arousal (0 when no voice) */
};

/*
 * Fuse the text score with the voice features (NULL or !valid: words only). The voice is
 * judged against `base` (NULL: no baseline; then the voice adds nothing) and then folded into
 * it (so call once per turn, in order).
 */
void rv_emotion_fuse(const struct rv_emotion_text *text, const struct rv_voice_feat *voice,
                     struct rv_emotion_baseline *base, struct rv_emotion *out);

#endif
