/*
 * A call's RTP media stream: one RTP/RTCP socket pair, the receive path (jitter buffer ->
 * G.711 decode -> 16 kHz -> frame handler and recording), the send path (playback queue ->
 * 8 kHz -> G.711 encode -> RTP) and RFC 4733 DTMF reception, all driven by one absolute 20 ms
 * clock on the media loop. Loop-thread only.
 */
#ifndef RV_MEDIA_STREAM_H
#define RV_MEDIA_STREAM_H

#include <stdint.h>

#include "media/media_audio.h"

struct sa;
struct rv_media_stream;

struct rv_media_stats {
	uint64_t rx_packets, rx_bytes;
	uint64_t rx_bad_source; /* dropped: from an address other than the latched one */
	uint64_t rx_malformed;  /* dropped: empty/oversized payload, unknown payload type */
	uint64_t rx_lost;       /* sequence gaps seen by the jitter buffer */
	uint64_t tx_packets;
	uint64_t frames;          /* 20 ms ticks processed */
	uint64_t frames_received; /* ticks whose caller frame carried received audio */
	uint64_t frames_skipped;  /* ticks given up after a stalled loop */
	uint64_t dtmf_events;
	double jitter_ms; /* RFC 3550 interarrival jitter of the received audio packets */
};

/* Called on the loop for each RFC 4733 digit ('0'-'9', '*', '#', 'A'-'D'), once per press. */
typedef void(rv_media_dtmf_h)(char digit, void *arg);

/*
 * Open an RTP socket on ip (port ignored) with a port in [port_min, port_max] and RTCP on
 * the next port. Returns 0 and sets *out (release with mem_deref, which stops everything), or a
 * negative errno.
 */
int rv_media_stream_alloc(const struct sa *ip, uint16_t port_min, uint16_t port_max,
                          struct rv_media_stream **out);

/* Local RTP port (for the SDP). */
uint16_t rv_media_stream_port(const struct rv_media_stream *ms);

/*
 * Start sending to raddr with payload type send_pt (0 PCMU or 8 PCMA) and receiving;
 * telev_pt is the negotiated telephone-event payload type or -1. The first packet from the
 * peer latches the send address (symmetric RTP). Returns 0, -EINVAL (bad pt), -EALREADY.
 */
int rv_media_stream_start(struct rv_media_stream *ms, const struct sa *raddr, int send_pt,
                          int telev_pt, rv_media_dtmf_h *dtmf_h, void *arg);

/* Stop the clock and close the recording; the socket stays open until mem_deref. */
void rv_media_stream_stop(struct rv_media_stream *ms);

/* The stream's audio interface (valid while the stream lives). */
struct rv_audio *rv_media_stream_audio(struct rv_media_stream *ms);

void rv_media_stream_stats(const struct rv_media_stream *ms, struct rv_media_stats *out);

#endif
