/*
 * The SIP user agent, on libre (sip, sipsess, sdp): listens on UDP and TCP, answers inbound
 * INVITEs (100 Trying, 180 Ringing, then 200 OK with an SDP answer that picks PCMU or PCMA
 * in the offerer's order, plus telephone-event when offered; 488 when no codec is common,
 * 486 at capacity), handles CANCEL before the answer and BYE from either side, and answers
 * OPTIONS with 200 so load balancers can probe it. Each call owns an RTP media stream whose
 * audio interface (media/media_audio.h) the application drives.
 *
 * Everything here runs on the media loop thread; so do the event handlers, which must not
 * block.
 */
#ifndef RV_SIP_UA_H
#define RV_SIP_UA_H

#include <stdint.h>

struct rv_audio;
struct rv_call;
struct rv_sip_ua;

struct rv_sip_ua_cfg {
	const char *listen; /* "HOST:PORT" for UDP and TCP, e.g. "127.0.0.1:5060" */
	uint16_t rtp_port_min, rtp_port_max;
	uint32_t ring_ms;   /* time between 180 Ringing and 200 OK */
	uint32_t max_calls; /* concurrent calls; more get 486 Busy Here */
};

enum rv_call_event_type {
	RV_CALL_EV_INCOMING, /* INVITE accepted for processing; 180 follows */
	RV_CALL_EV_RINGING,  /* 180 sent */
	RV_CALL_EV_ANSWERED, /* 200 sent, media running */
	RV_CALL_EV_DTMF,     /* an RFC 4733 digit */
	RV_CALL_EV_HANGUP,   /* the call is over; the last event of a call */
};

enum rv_hangup_cause {
	RV_HANGUP_REMOTE_BYE, /* the caller hung up after the answer */
	RV_HANGUP_LOCAL,      /* we hung up (rv_call_hangup) */
	RV_HANGUP_CANCELLED,  /* the caller cancelled before the answer */
	RV_HANGUP_ERROR,      /* transport or protocol failure */
};

struct rv_call_event {
	enum rv_call_event_type type;
	char digit;                 /* RV_CALL_EV_DTMF */
	enum rv_hangup_cause cause; /* RV_CALL_EV_HANGUP */
};

typedef void(rv_call_event_h)(struct rv_call *call, const struct rv_call_event *ev, void *arg);

/*
 * Start the UA on the loop thread. cfg is copied. evh receives every call's events. Returns 0
 * and sets *out (release with mem_deref, which ends every call), or a negative errno with the
 * reason logged (component "sip").
 */
int rv_sip_ua_alloc(const struct rv_sip_ua_cfg *cfg, rv_call_event_h *evh, void *arg,
                    struct rv_sip_ua **out);

/* The UDP/TCP port actually bound (useful with port 0). */
uint16_t rv_sip_ua_port(const struct rv_sip_ua *ua);

/* Calls in progress. */
uint32_t rv_sip_ua_ncalls(const struct rv_sip_ua *ua);

/*
 * End a call: BYE after the answer, 480 before it. The HANGUP event follows from this
 * function. Calling it on a call that is already over does nothing.
 */
void rv_call_hangup(struct rv_call *call);

/* The call's audio interface; NULL before RV_CALL_EV_INCOMING or after the hang-up. */
struct rv_audio *rv_call_audio(struct rv_call *call);

/* SIP Call-ID (borrowed; valid while the call lives), negotiated codec name ("PCMU"/"PCMA"). */
const char *rv_call_id(const struct rv_call *call);
const char *rv_call_codec(const struct rv_call *call);

/* Digits received so far as one string (borrowed). */
const char *rv_call_digits(const struct rv_call *call);

/* RTP counters of the call's media stream (zeros before the media exists). */
struct rv_media_stats;
void rv_call_media_stats(const struct rv_call *call, struct rv_media_stats *out);

/* Application data slot, for the handler's own per-call state. */
void rv_call_set_user(struct rv_call *call, void *user);
void *rv_call_user(const struct rv_call *call);

#endif
