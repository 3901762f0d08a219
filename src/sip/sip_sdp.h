/*
 * The SDP offer/answer decision of the SIP UA as a pure function: given the far end's SDP
 * (an offer, or the answer to our offer), which G.711 codec we use, where its audio goes,
 * whether it carries telephone-event and whether it puts us on hold. No sockets, no state:
 * the UA calls it on every SDP it receives, and the libFuzzer target tests/fuzz/fuzz_sdp.c
 * feeds it arbitrary bytes.
 */
#ifndef RV_SIP_SDP_H
#define RV_SIP_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger SDP bodies are refused (-EMSGSIZE) before parsing. */
#define RV_SIP_SDP_MAX 16384

struct rv_sdp_choice {
	const char *codec; /* "PCMU" or "PCMA" (static strings) */
	int pt;            /* its payload type as the far end numbers it (0 or 8) */
	int telev_pt;      /* the far end's telephone-event payload type, or -1 */
	bool pcmu, pcma;   /* which G.711 laws the far end lists */
	char addr[64];     /* its audio address ("" when the SDP has none or 0.0.0.0) */
	uint16_t port;     /* its audio port */
	/* The far end does not want our audio: a=sendonly or a=inactive, or no usable
	 * connection address (c=0.0.0.0, the RFC 2543 way of holding). */
	bool hold;
	bool recv; /* the far end sends audio (not a=recvonly / a=inactive) */
};

/*
 * Decide how to take `len` bytes of SDP (not NUL-terminated; untrusted). Returns 0 and fills
 * *out, or a negative errno and leaves *out untouched:
 *   -EMSGSIZE   over RV_SIP_SDP_MAX bytes
 *   -EBADMSG    not parseable as SDP (garbage, a bad line, v= other than 0)
 *   -ENOMEDIUM  no m=audio line we can pair with (none, another medium first, or a profile
 *               other than RTP/AVP such as RTP/SAVP)
 *   -ENOTCONN   the audio line is disabled (port 0)
 *   -ENOTSUP    no codec in common (neither PCMU nor PCMA)
 *   -ENOMEM     out of memory
 * A missing or 0.0.0.0 address is not an error here (it means hold); the caller decides
 * whether it can start media without one.
 */
int rv_sip_sdp_choose(const char *sdp, size_t len, struct rv_sdp_choice *out);

/* The label for a rv_sip_sdp_choose() error in logs and metrics ("malformed", "no_audio",
 * "port0", "codec", "too_big", "error"). */
const char *rv_sip_sdp_reason(int err);

#endif
