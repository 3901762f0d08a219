/*
 * A call's playback queue: what the agent says, in order, one 20 ms frame at a time. Items are
 * PCM buffers at the pipeline rate; each may carry a completion callback that says whether it
 * played to the end or was flushed, and how much of it was heard. With nothing queued the
 * reader gets comfort silence. Loop-thread only, like everything that touches a call's media.
 */
#ifndef RV_MEDIA_PLAYQ_H
#define RV_MEDIA_PLAYQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rv_pcm;
struct rv_playq;

enum rv_play_end {
	RV_PLAY_DONE,    /* the last sample went out in a frame */
	RV_PLAY_FLUSHED, /* dropped by rv_playq_flush() (barge-in, hang-up) */
};

/*
 * Completion callback, called once per item on the loop thread from rv_playq_read() or
 * rv_playq_flush() (and with RV_PLAY_FLUSHED when the queue is destroyed). `played` samples of
 * `total` were read into frames. It may push new items; it must not block.
 */
typedef void(rv_play_done_h)(uint32_t id, enum rv_play_end how, size_t played, size_t total,
                             void *arg);

/* Cap on queued audio: ten minutes at 16 kHz. Pushing beyond it fails with -E2BIG. */
#define RV_PLAYQ_MAX_SAMPLES ((size_t)16000 * 600)

/* New empty queue. Returns 0 and sets *out (release with mem_deref), or -ENOMEM. */
int rv_playq_alloc(struct rv_playq **out);

/*
 * Queue `pcm` (borrowed: the queue takes its own reference) to play after what is queued.
 * done_h may be NULL. Sets *idp (may be NULL) to the item's id, unique per queue, starting at 1.
 * Returns 0, or -EINVAL (NULL/empty pcm), -E2BIG (queue full), -ENOMEM; on failure done_h is
 * never called.
 */
int rv_playq_push(struct rv_playq *q, struct rv_pcm *pcm, rv_play_done_h *done_h, void *arg,
                  uint32_t *idp);

/*
 * Fill `frame` with the next n samples: queued audio, items back to back, and zeros after the
 * last one (comfort silence). Items that end inside this frame complete (RV_PLAY_DONE) before
 * this returns. Returns true if any queued audio went into the frame.
 */
bool rv_playq_read(struct rv_playq *q, int16_t *frame, size_t n);

/*
 * Drop every queued item, calling each one's callback with RV_PLAY_FLUSHED, in queue order.
 * The next rv_playq_read() returns silence, so playback stops within one frame.
 */
void rv_playq_flush(struct rv_playq *q);

/* Samples still queued, and whether the queue is idle (nothing queued). */
size_t rv_playq_pending(const struct rv_playq *q);
bool rv_playq_idle(const struct rv_playq *q);

/*
 * Id of the item now playing (the head of the queue), 0 when idle. Ids rise in push order, so
 * a transport that reads it before and after rv_playq_read() knows which items finished in
 * that frame (the Twilio socket sends a mark per item).
 */
uint32_t rv_playq_head_id(const struct rv_playq *q);

#endif
