/*
 * DTMF for the RTP stream: RFC 4733 telephone-event payloads (decode, encode, one report per
 * key press on receive), the sender's per-tick schedule of digits (as RFC 4733 event packets,
 * or as in-band tones when no telephone-event was negotiated), and in-band tone detection on
 * the caller's 8 kHz audio with spandsp, guarded against talk-off. Pure state machines driven
 * by the stream's 20 ms ticks: no sockets, no clocks, so they are tested offline.
 * Loop-thread only, like the stream that owns them.
 */
#ifndef RV_MEDIA_DTMF_H
#define RV_MEDIA_DTMF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RV_DTMF_RATE        8000 /* RTP clock of telephone-event with G.711 */
#define RV_DTMF_TICK        160  /* samples per 20 ms tick at RV_DTMF_RATE */
#define RV_DTMF_DEFAULT_MS  100
#define RV_DTMF_MIN_MS      40   /* ITU-T Q.24: receivers must accept 40 ms tones */
#define RV_DTMF_MAX_MS      8000 /* fits the 16-bit duration field: no long-event segments */
#define RV_DTMF_GAP_MS      100  /* pause between two digits, from one's end to the next */
#define RV_DTMF_END_PACKETS 3    /* RFC 4733 2.5.1.4: the end packet is sent three times */
#define RV_DTMF_QUEUE       64   /* digits waiting to be sent, per stream */

/* The event code (0-15) of a DTMF digit ('0'-'9', '*', '#', 'A'-'D', 'a'-'d'), or -1. */
int rv_dtmf_code(char digit);

/* The digit of an event code 0-15, or 0 for any other code. */
char rv_dtmf_digit(int code);

/* One RFC 4733 event block (section 2.3). */
struct rv_telev {
	uint8_t event;
	bool end;
	uint8_t volume;    /* 0-63, -dBm0 */
	uint16_t duration; /* in RTP clock units since the event's timestamp */
};

/*
 * Decode the first event block of a telephone-event payload. Returns 0, or -EBADMSG when the
 * payload is shorter than one block (4 bytes).
 */
int rv_telev_decode(const uint8_t *p, size_t len, struct rv_telev *out);

/* Encode one event block into out[4]. */
void rv_telev_encode(const struct rv_telev *ev, uint8_t out[4]);

/*
 * RFC 4733 receive side. A key press is one event timestamp: its start, updates and the three
 * end packets all carry the same RTP timestamp, so each timestamp is reported once, whichever
 * of its packets arrives first (a lost start packet still yields the digit from an update or
 * an end packet). A few recent timestamps are remembered so a late retransmitted end packet of
 * the previous press is not taken for a new one.
 */
struct rv_dtmf_rx {
	uint32_t recent_ts[4];
	uint8_t recent_ev[4];
	unsigned n, next;
};

/*
 * Feed one received event block with its packet's RTP timestamp. Returns the digit when the
 * block starts a new press, 0 when it belongs to a press already reported. Event codes other
 * than DTMF digits (flash, tones) return 0 and are never reported.
 */
char rv_dtmf_rx_event(struct rv_dtmf_rx *rx, uint32_t ts, const struct rv_telev *ev);

/*
 * The send side: a queue of digits played out one tick at a time, either as RFC 4733 events
 * (rv_dtmf_tx_event) or as in-band tones (rv_dtmf_tx_tones). A stream uses one of the two.
 */
struct rv_dtmf_tx;

/* New sender (release with mem_deref). Returns 0 and sets *out, or -ENOMEM. */
int rv_dtmf_tx_alloc(struct rv_dtmf_tx **out);

/*
 * Queue digits, each lasting duration_ms (0: RV_DTMF_DEFAULT_MS; clamped to
 * [RV_DTMF_MIN_MS, RV_DTMF_MAX_MS] and rounded up to whole 20 ms ticks). All or nothing:
 * returns 0, -EINVAL (empty string or a character that is not a DTMF digit) or -E2BIG (more
 * than RV_DTMF_QUEUE digits would be waiting).
 */
int rv_dtmf_tx_queue(struct rv_dtmf_tx *tx, const char *digits, uint32_t duration_ms);

/* Is a digit being sent or waiting? */
bool rv_dtmf_tx_busy(const struct rv_dtmf_tx *tx);

/* Digits begun so far (tx may be NULL: 0). */
uint64_t rv_dtmf_tx_started(const struct rv_dtmf_tx *tx);

/*
 * RFC 4733 schedule for the tick whose audio would carry RTP timestamp tick_ts. Returns true
 * when this tick sends an event packet instead of audio, and fills *ev, *marker (the first
 * packet of an event) and *ts (the event's timestamp: the tick at which it began). A digit is
 * one packet per tick with a growing duration, then RV_DTMF_END_PACKETS end packets on the
 * following ticks; the next digit starts RV_DTMF_GAP_MS after the previous one's end, audio
 * flowing in between. Returns false when audio goes out this tick.
 */
bool rv_dtmf_tx_event(struct rv_dtmf_tx *tx, uint32_t tick_ts, struct rv_telev *ev, bool *marker,
                      uint32_t *ts);

/*
 * In-band schedule: while a digit or the gap after it is in progress, overwrite pcm (n samples
 * at 8 kHz, one tick) with the tone pair (spandsp's generator) or silence and return true;
 * return false when the tick's own audio should go out. Returns false too when the tone
 * generator cannot be created (out of memory); the digits are then dropped.
 */
bool rv_dtmf_tx_tones(struct rv_dtmf_tx *tx, int16_t *pcm, size_t n);

/*
 * In-band detection on the caller's 8 kHz audio (spandsp dtmf_rx). Talk-off guard: spandsp's
 * tests (twist, each tone against its row/column neighbours, the pair's share of the total
 * energy, two consecutive 12.75 ms blocks to switch on or off), with a per-tone threshold of
 * -32 dBm0; ticks quieter than -50 dBm0 skip the detector altogether (most of a call).
 */
struct rv_dtmf_detect;

/* New detector (release with mem_deref). Returns 0 and sets *out, or -ENOMEM. */
int rv_dtmf_detect_alloc(struct rv_dtmf_detect **out);

/*
 * Run n samples (8 kHz) through the detector. Returns a digit once per tone, in the call in
 * which the tone has lasted long enough, and 0 otherwise.
 */
char rv_dtmf_detect_run(struct rv_dtmf_detect *d, const int16_t *pcm, size_t n);

#endif
