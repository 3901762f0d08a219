/*
 * A call's RTP media stream: one RTP/RTCP socket pair, the receive path (jitter buffer ->
 * G.711 decode -> 16 kHz -> frame handler and recording), the send path (playback queue ->
 * 8 kHz -> G.711 encode -> RTP) and RFC 4733 DTMF reception, all driven by one absolute 20 ms
 * clock on the media loop. Loop-thread only.
 */
#ifndef RV_MEDIA_STREAM_H
#define RV_MEDIA_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/media_audio.h"

struct sa;
struct rv_media_stream;

/*
 * A stream's counters. Every dropped packet also counts in the metric
 * rv_media_rtp_dropped_total{reason=...} and in a rate-limited log line (component "media").
 */
struct rv_media_stats {
	uint64_t rx_packets, rx_bytes;
	uint64_t rx_bad_source; /* dropped: RTP/RTCP from an address other than the peer's */
	uint64_t rx_malformed;  /* dropped: truncated, bad version/padding, empty/oversized payload,
	                           unknown payload type, bad telephone-event, undecodable RTCP */
	uint64_t rx_lost;       /* sequence gaps seen by the jitter buffer */
	uint64_t tx_packets;
	uint64_t frames;          /* 20 ms ticks processed */
	uint64_t frames_received; /* ticks whose caller frame carried received audio */
	uint64_t frames_skipped;  /* ticks given up after a stalled loop */
	uint64_t dtmf_events;
	double jitter_ms; /* RFC 3550 interarrival jitter of the received audio packets */
	/* Added with RTCP, in-band DTMF and bridging. */
	uint64_t rx_late;      /* dropped: too late for the jitter buffer, or duplicates */
	uint64_t dtmf_inband;  /* digits detected as tones in the caller's audio */
	uint64_t dtmf_sent;    /* digits sent (RFC 4733 events, or tones without telephone-event) */
	uint64_t rtcp_rx;      /* RTCP packets received from the peer (each part of a compound) */
	uint64_t peer_reports; /* report blocks about our stream in the peer's SR/RR */
	/* From the peer's latest report block about our stream (0 until peer_reports > 0): */
	double peer_fraction_lost; /* 0..1, since its previous report */
	int64_t peer_lost;         /* cumulative packets lost */
	double peer_jitter_ms;     /* interarrival jitter it measured on our packets */
	double rtt_ms;             /* RTCP round trip (RFC 3550 6.4.1); -1 until computable */
	uint64_t bridge_underruns; /* bridged ticks with no frame from the other leg (silence) */
	uint64_t bridge_dropped;   /* frames of the other leg dropped to bound the delay */
};

/*
 * Called on the loop for each digit ('0'-'9', '*', '#', 'A'-'D'), once per press: RFC 4733
 * events, or tones detected in the caller's audio. A peer that sends both reports each press
 * once: a detected tone is held for 100 ms and ignored once the peer has sent any RFC 4733
 * event on this stream.
 */
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
 * telev_pt is the negotiated telephone-event payload type or -1 (then digits are sent as
 * in-band tones). The first packet from the peer latches the send address (symmetric RTP).
 * RTCP reports (SR/RR with a random CNAME) go every 5 s to the port above raddr's, or to
 * raddr with rtcp-mux. Returns 0, -EINVAL (bad pt), -EALREADY.
 */
int rv_media_stream_start(struct rv_media_stream *ms, const struct sa *raddr, int send_pt,
                          int telev_pt, rv_media_dtmf_h *dtmf_h, void *arg);

/*
 * Negotiated rtcp-mux (RFC 5761): RTCP shares the RTP port, both ways. Call before
 * rv_media_stream_start(); ignored afterwards. Off by default (RTCP on the port above).
 */
void rv_media_stream_set_rtcp_mux(struct rv_media_stream *ms, bool on);

/*
 * A re-INVITE moved the far end's media: send to raddr from now on and latch again on the
 * first packet from it. Returns 0, or -EINVAL for an unset address.
 */
int rv_media_stream_set_remote(struct rv_media_stream *ms, const struct sa *raddr);

/* Hold: stop sending RTP (false) while the clock, reception and recording go on; true resumes. */
void rv_media_stream_set_sending(struct rv_media_stream *ms, bool send);

/*
 * Feed one received datagram as if it came from `src` on the RTP socket: RTCP (RFC 5761
 * demultiplexing on the second byte) or RTP, with the header decoded by libre, through the
 * same checks, counters and handlers as the socket path, except libre's own RTCP reception
 * statistics. Borrowed buffer, never written. For fuzzing and tests; loop thread only.
 */
void rv_media_stream_input(struct rv_media_stream *ms, const struct sa *src, const uint8_t *pkt,
                           size_t len);

/*
 * Run one 20 ms tick now, outside the stream's clock (which is not adjusted): decode what the
 * jitter buffer holds, detect digits, step the audio interface and send a packet. For fuzzing
 * and offline tests; the clock does this on its own in a call. No-op unless started.
 */
void rv_media_stream_tick(struct rv_media_stream *ms);

/*
 * Stop the clock, the RTCP reports, any bridge and the recording; the socket stays open until
 * mem_deref.
 */
void rv_media_stream_stop(struct rv_media_stream *ms);

/* The stream's audio interface (valid while the stream lives). */
struct rv_audio *rv_media_stream_audio(struct rv_media_stream *ms);

void rv_media_stream_stats(const struct rv_media_stream *ms, struct rv_media_stats *out);

#endif
