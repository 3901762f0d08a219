/*
 * For media transports only (the RTP stream, the Twilio Media Streams socket): the shared core
 * of the per-call audio interface. A transport embeds a struct rv_audio, calls
 * rv_audio_step() once per 20 ms tick with the caller's decoded frame, and sends the agent
 * frame it gets back. The hooks let the interface's generic calls reach the transport.
 */
#ifndef RV_MEDIA_AUDIO_INT_H
#define RV_MEDIA_AUDIO_INT_H

#include "media/media_audio.h"

struct rv_rec;
struct rv_audio_fifo;

struct rv_audio_ops {
	/* Called after rv_audio_flush() emptied the queue (e.g. Twilio's "clear"); may be NULL. */
	void (*flushed)(void *arg);
	/* Send digits out of band; NULL when the transport cannot (then -ENOTSUP). */
	int (*send_dtmf)(void *arg, const char *digits, uint32_t duration_ms);
};

struct rv_audio {
	struct rv_playq *playq;
	rv_audio_frame_h *frame_h;
	void *frame_arg;
	struct rv_rec *rec;
	const struct rv_audio_ops *ops;
	void *ops_arg;
	/* While bridged (rv_audio_bridge): the other leg, and its caller audio for our ticks. */
	struct rv_audio *bridge;
	struct rv_audio_fifo *bridge_in;
	uint64_t bridge_underruns; /* ticks that found no frame from the other leg: silence */
	uint64_t bridge_dropped;   /* frames dropped to keep the bridge's delay bounded */
	/* What the last tick sent the caller (the echo reference for the VAD), and the queue
	 * item then at the head, to report when a new item starts going out. */
	int16_t last_agent[RV_MEDIA_FRAME];
	uint32_t last_head;
	rv_audio_start_h *start_h;
	void *start_arg;
};

/* Most audio a bridge holds per direction; older frames are dropped beyond it. */
#define RV_AUDIO_BRIDGE_MAX_MS 60

/* Set up `a` in place (an empty queue). Returns 0 or -ENOMEM. */
int rv_audio_init(struct rv_audio *a, const struct rv_audio_ops *ops, void *ops_arg);

/*
 * Release what rv_audio_init and the recording hold; queued items complete as FLUSHED. A bridge
 * is undone first, so the other leg never keeps a pointer to `a`.
 */
void rv_audio_fini(struct rv_audio *a);

/*
 * One 20 ms tick: hand the caller's frame to the frame handler first (so a barge-in flush it
 * makes silences this very tick), then read the agent's frame (RV_MEDIA_FRAME samples) from
 * the queue into `agent` (while bridged: the other leg's caller audio instead, and our caller
 * frame goes to the other leg), and record both.
 */
void rv_audio_step(struct rv_audio *a, const struct rv_audio_frame *caller, int16_t *agent);

#endif
