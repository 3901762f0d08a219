/*
 * The per-call audio interface: the contract between the media plane and whatever runs the
 * conversation (the speech pipeline, or the play-and-record flow).
 *
 * - Frame source: every 20 ms the handler receives one frame of the caller's audio, 16 kHz
 *   mono, 320 samples, with its media time. The frames come on the absolute 20 ms clock, so
 *   a frame arrives even when the network delivered nothing (then `received` is false and the
 *   samples are silence).
 * - Playback queue: PCM buffers at 16 kHz play back to back; rv_audio_flush() drops them and
 *   the caller hears silence from the next frame on; each item reports when it has played
 *   or was flushed, and how much was heard. With nothing queued the caller hears comfort
 *   silence.
 * - Recording: a stereo WAV, caller left and agent right, time-aligned frame by frame.
 *
 * Every function here runs on the media loop thread only (use rv_media_loop_exec() from
 * elsewhere), and every handler is called there and must not block. The interface lives as
 * long as the call's media stream.
 */
#ifndef RV_MEDIA_AUDIO_H
#define RV_MEDIA_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/media_pcm.h"
#include "media/media_playq.h"

struct rv_audio;

struct rv_audio_frame {
	const int16_t *samples; /* RV_MEDIA_FRAME samples at RV_MEDIA_RATE; borrowed for the call */
	size_t n;
	uint64_t ts_ms;  /* media time: frame index * 20 ms since the media started */
	uint32_t rtp_ts; /* RTP timestamp of the newest packet in the frame (8 kHz units) */
	bool received;   /* false: nothing arrived in time, samples are silence */
};

typedef void(rv_audio_frame_h)(const struct rv_audio_frame *f, void *arg);

/* Set (or clear, h = NULL) the handler that receives the caller's frames. */
void rv_audio_set_frame_handler(struct rv_audio *a, rv_audio_frame_h *h, void *arg);

/* Queue a PCM buffer (16 kHz; borrowed, the queue takes a reference). See rv_playq_push(). */
int rv_audio_play(struct rv_audio *a, struct rv_pcm *pcm, rv_play_done_h *done_h, void *arg,
                  uint32_t *idp);

/*
 * Called on the loop when the first samples of queued item `id` go out in a tick: the moment
 * the caller starts hearing it (latency marks). h NULL clears it.
 */
typedef void(rv_audio_start_h)(uint32_t id, void *arg);
void rv_audio_set_start_handler(struct rv_audio *a, rv_audio_start_h *h, void *arg);

/*
 * The agent audio sent in the last tick (RV_MEDIA_FRAME samples at 16 kHz, silence before the
 * first): the echo reference for a VAD that runs on the caller frame of the next tick.
 * Borrowed; valid until the next tick.
 */
const int16_t *rv_audio_last_played(const struct rv_audio *a);

/* Drop everything queued; silence from the next frame. See rv_playq_flush(). */
void rv_audio_flush(struct rv_audio *a);

/*
 * Send DTMF digits ('0'-'9', '*', '#', 'A'-'D') to the far end, each lasting duration_ms (0:
 * 100 ms; clamped to 40..8000 ms), 100 ms apart, out of band (RFC 4733 on RTP; the event
 * packets replace the audio packets while a digit is sent). On RTP without a negotiated
 * telephone-event the digits go in-band as tones instead. All or nothing: returns 0 once
 * queued, -EINVAL for an empty string or a bad digit, -E2BIG beyond 64 waiting digits,
 * -ENOTSUP when the transport cannot send digits at all.
 */
int rv_audio_send_dtmf(struct rv_audio *a, const char *digits, uint32_t duration_ms);

/*
 * Bridge two calls (a transfer to a human): from the next tick each side hears the other's
 * caller audio (a FIFO of at most 60 ms per direction absorbs the two legs' unaligned
 * clocks) instead of its own playback queue, and recordings keep running.
 * rv_audio_unbridge() (on either side, or when either side's media ends) returns both to
 * their own queues (items queued meanwhile play then). Returns 0, -EINVAL (a == b),
 * -EALREADY if either is bridged, -ENOMEM.
 */
int rv_audio_bridge(struct rv_audio *a, struct rv_audio *b);
void rv_audio_unbridge(struct rv_audio *a);

/* Is anything queued for playback? */
bool rv_audio_playing(const struct rv_audio *a);

/*
 * Record both directions to a stereo WAV at `path` from the next frame on, until
 * rv_audio_record_stop() or the end of the media. Returns 0, -EALREADY when recording, or the
 * error of rv_rec_open().
 */
int rv_audio_record(struct rv_audio *a, const char *path);
void rv_audio_record_stop(struct rv_audio *a);

#endif
