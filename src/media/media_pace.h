/*
 * Absolute-clock pacing for 20 ms media frames. Frame n is due at start + n * ptime; deadlines
 * are never computed from "now + ptime", so a late timer does not push every later frame back
 * and the stream does not drift over a long call. Pure arithmetic on millisecond timestamps
 * (the media loop's tmr_jiffies()), so it is tested without a clock.
 */
#ifndef RV_MEDIA_PACE_H
#define RV_MEDIA_PACE_H

#include <stdint.h>

struct rv_pace {
	uint64_t start_ms;  /* deadline of frame 0 */
	uint64_t next;      /* index of the next frame to produce */
	uint32_t ptime_ms;  /* frame length */
	uint32_t max_burst; /* frames produced at most per wake-up before skipping */
	uint64_t skipped;   /* frames given up because the loop was stalled too long */
};

/* Start a clock whose first frame is due at now_ms. ptime_ms > 0; max_burst >= 1. */
void rv_pace_init(struct rv_pace *p, uint64_t now_ms, uint32_t ptime_ms, uint32_t max_burst);

/* Deadline of frame `n`. */
uint64_t rv_pace_deadline(const struct rv_pace *p, uint64_t n);

/*
 * How many frames to produce at now_ms, and consume them: frames whose deadline has passed are
 * produced back to back (catch-up after a late wake-up) up to max_burst; beyond that the
 * oldest are skipped (counted in p->skipped), keeping the clock's phase. Returns 0 when woken
 * early.
 */
uint32_t rv_pace_take(struct rv_pace *p, uint64_t now_ms);

/* Milliseconds from now_ms until the next deadline; 0 if it has passed. */
uint64_t rv_pace_delay(const struct rv_pace *p, uint64_t now_ms);

#endif
