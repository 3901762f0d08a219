/*
 * Voice activity detection on the speech pipeline's frames (16 kHz mono, 20 ms, RV_MEDIA_FRAME
 * samples). It knows nothing of SIP or calls: frames in, a decision and events out.
 *
 * How it decides (docs/adr/0008-vad.md has the measurements behind it):
 *  - a 512-point spectrum per frame and a per-bin noise floor that adapts (recursive average
 *    while the frame looks like noise, minimum statistics so the floor can also rise while the
 *    line never goes quiet);
 *  - two spectral features against that floor: the statistical-model likelihood ratio
 *    (Sohn et al., decision-directed a-priori SNR) and harmonicity (the autocorrelation peak
 *    in the pitch range, computed from the noise-subtracted spectrum) — white and pink noise
 *    score low on both, voiced speech high;
 *  - echo of our own prompt: when the caller passes the frame being played (the reference),
 *    the expected echo per bin is (echo gain estimate) × (loudest reference spectrum over the
 *    echo delay window) and is added to the noise the features are measured against. The echo
 *    gain starts at the G.168 worst case and follows the measured echo return loss down while
 *    the prompt plays and the microphone carries nothing the echo does not explain;
 *  - speech starts after min_speech_ms of voiced frames, its start time walked back over the
 *    weak frames just before (a soft onset is still the caller's speech); it ends after
 *    hangover_ms of unvoiced frames, with the end time of the last voiced frame.
 *
 * Ownership and threads: one instance per call (per audio direction), used by one thread at a
 * time; it is not thread-safe. All memory is taken by rv_vad_alloc(): processing a frame
 * never allocates, never blocks and never logs.
 */
#ifndef RV_SPEECH_VAD_H
#define RV_SPEECH_VAD_H

#include <stdbool.h>
#include <stdint.h>

struct rv_vad;

struct rv_vad_cfg {
	uint32_t min_speech_ms;     /* voiced time before speech is declared (20..1000) */
	uint32_t hangover_ms;       /* unvoiced time before speech ends (20..5000) */
	uint32_t preroll_ms;        /* how far a start may be walked back (0..500) */
	float threshold;            /* frame probability for "voiced" (0.05..0.95) */
	float min_level_db;         /* frames quieter than this (dBFS) are never voiced */
	float echo_init_gain_db;    /* echo level vs reference assumed at first (-60..0) */
	float echo_margin_db;       /* headroom over the expected echo (0..30) */
	uint32_t echo_max_delay_ms; /* longest echo delay covered (0..300) */
};

/* Events of rv_vad_process(), a bit mask in rv_vad_frame.events. */
#define RV_VAD_EV_START 0x1u /* speech began at start_ms (before this frame) */
#define RV_VAD_EV_END   0x2u /* speech ended at end_ms */

struct rv_vad_frame {
	uint64_t t_ms;      /* start of this frame: 20 ms × frames processed before it */
	float prob;         /* speech probability of this frame, 0..1 */
	bool voiced;        /* this frame alone: prob >= threshold and above min_level_db */
	bool speech;        /* smoothed state: inside speech (onset and hangover applied) */
	unsigned events;    /* RV_VAD_EV_* raised by this frame */
	uint64_t start_ms;  /* while speech (and with EV_START): when it really began */
	uint64_t end_ms;    /* with EV_END: end of the last voiced frame */
	uint32_t voiced_ms; /* voiced time since start_ms (counts only voiced frames) */
	float level_db;     /* frame level, dBFS */
	float noise_db;     /* noise floor over the analysis band, dBFS */
	float echo_db;      /* expected echo level, dBFS (-120 without a reference) */
	float erl_db;       /* current echo return loss estimate, dB (positive) */
};

/* Fill *cfg with the defaults: 80 ms onset, 240 ms hangover, 200 ms preroll, threshold 0.5,
 * -55 dBFS floor, echo assumed 6 dB under the reference at first with 6 dB margin over 80 ms
 * of delay. */
void rv_vad_cfg_defaults(struct rv_vad_cfg *cfg);

/*
 * New detector. cfg is copied (NULL means the defaults). Returns 0 and sets *out (owned by the
 * caller, release with rv_vad_free), -EINVAL when a cfg field is out of its range, -ENOMEM.
 * On failure *out is untouched.
 */
int rv_vad_alloc(const struct rv_vad_cfg *cfg, struct rv_vad **out);

/* Release a detector; NULL is a no-op. */
void rv_vad_free(struct rv_vad *vad);

/*
 * Forget the signal (noise floor, echo estimate, state, clock back to 0); keep the config.
 */
void rv_vad_reset(struct rv_vad *vad);

/*
 * Analyse one frame. mic: RV_MEDIA_FRAME samples heard from the caller (borrowed). ref: the
 * RV_MEDIA_FRAME samples the agent was playing at the same moment, or NULL when nothing plays
 * (borrowed). Fills *out. Returns 0, or -EINVAL for NULL vad/mic/out (nothing changes).
 */
int rv_vad_process(struct rv_vad *vad, const int16_t *mic, const int16_t *ref,
                   struct rv_vad_frame *out);

#endif
