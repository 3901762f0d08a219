/*
 * The SIP user agent, on libre (sip, sipsess, sipevent, sipreg, sdp, dns): listens on UDP and
 * TCP, answers inbound INVITEs (100 Trying, 180 Ringing, then 200 OK with an SDP answer that
 * picks PCMU or PCMA in the offerer's order, plus telephone-event when offered; an INVITE
 * without SDP gets our offer in the 200 and its answer comes in the ACK), refuses what it
 * cannot take (488 on no usable media, 503 + Retry-After beyond max_calls, or the routing
 * hook's status), handles CANCEL before the answer and BYE from either side, follows
 * re-INVITE and UPDATE (hold, unhold, a moved media address) and answers OPTIONS with 200 so
 * load balancers can probe it. It also places outbound calls (rv_sip_ua_dial) to IP or DNS
 * targets, directly or through an outbound proxy: an INVITE with an SDP offer, early media
 * from a 183, digest authentication on 401/407, a no-answer timeout that sends CANCEL, final
 * failures mapped to dispositions; it transfers answered calls blind (REFER + NOTIFY) and
 * registers with providers (REGISTER with refresh). Each call owns an RTP media stream whose
 * audio interface (media/media_audio.h) the application drives.
 *
 * Everything here runs on the media loop thread; so do the event handlers, which must not
 * block.
 */
#ifndef RV_SIP_UA_H
#define RV_SIP_UA_H

#include <stdbool.h>
#include <stdint.h>

struct rv_audio;
struct rv_call;
struct rv_sip_ua;

struct rv_sip_ua_cfg {
	const char *listen; /* "HOST:PORT" for UDP and TCP, e.g. "127.0.0.1:5060" */
	uint16_t rtp_port_min, rtp_port_max;
	uint32_t ring_ms;   /* time between 180 Ringing and 200 OK */
	uint32_t max_calls; /* concurrent calls; more get 503 Service Unavailable + Retry-After */
	/* Address put in SDP c= and Contact when it differs from the listen address (NAT, or a
	 * 0.0.0.0 listener); NULL or "": the listen address, or the default interface's. */
	const char *public_addr;
};

/* An inbound INVITE as the routing hook sees it (strings borrowed for the call). */
struct rv_sip_inbound {
	const char *call_id;
	const char *from_uri, *from_user; /* caller */
	const char *to_uri, *to_user;     /* To header */
	const char *ruri_user;            /* Request-URI user part: the called number/user */
};

/*
 * Routing hook, called on the loop for each new inbound INVITE before 180 Ringing: return 0
 * to take the call (then RV_CALL_EV_INCOMING follows), or a SIP status >= 400 to refuse it
 * (e.g. 404 no route, 486 the route is at its own capacity). Must not block. A refused call
 * gets no event and is freed after the hook returns (other values are treated as 500). The
 * capacity check (503) and the SDP check (488) come first.
 */
typedef int(rv_sip_route_h)(struct rv_call *call, const struct rv_sip_inbound *in, void *arg);
void rv_sip_ua_set_route_handler(struct rv_sip_ua *ua, rv_sip_route_h *h, void *arg);

enum rv_call_event_type {
	RV_CALL_EV_INCOMING,    /* inbound INVITE accepted for processing; 180 follows */
	RV_CALL_EV_RINGING,     /* inbound: 180 sent; outbound: 180/183 received (sip_status) */
	RV_CALL_EV_EARLY_MEDIA, /* outbound: a 183 carried an SDP answer; media is running */
	RV_CALL_EV_ANSWERED,    /* 200 sent / received and ACKed, media running */
	RV_CALL_EV_DTMF,        /* a digit: RFC 4733 or in-band tone */
	RV_CALL_EV_HOLD,        /* the far end put us on hold (re-INVITE sendonly/inactive) */
	RV_CALL_EV_UNHOLD,      /* ... and took us off hold (re-INVITE sendrecv) */
	RV_CALL_EV_TRANSFER, /* REFER progress: sip_status from NOTIFY's sipfrag (final >= 200) */
	RV_CALL_EV_HANGUP,   /* the call is over; the last event of a call */
};

enum rv_hangup_cause {
	RV_HANGUP_REMOTE_BYE,  /* the far end hung up after the answer */
	RV_HANGUP_LOCAL,       /* we hung up (rv_call_hangup), BYE or CANCEL */
	RV_HANGUP_CANCELLED,   /* the caller cancelled before the answer (inbound) */
	RV_HANGUP_ERROR,       /* transport or protocol failure */
	RV_HANGUP_REJECTED,    /* outbound: a final failure response (sip_status) */
	RV_HANGUP_NO_ANSWER,   /* outbound: our no-answer timeout fired; CANCEL sent */
	RV_HANGUP_TRANSFERRED, /* a blind transfer succeeded and we left the call */
	RV_HANGUP_TIMEOUT,     /* outbound: no response at all to the INVITE (failover case) */
};

/* How a call attempt ended, as stored on the call row and used by retry rules. */
enum rv_call_disposition {
	RV_DISP_ANSWERED,
	RV_DISP_BUSY,           /* 486, 600 */
	RV_DISP_NO_ANSWER,      /* 408, 480, 487, our no-answer timeout */
	RV_DISP_INVALID_NUMBER, /* 404, 484 */
	RV_DISP_FAILED,         /* 5xx, other failures, transport errors */
	RV_DISP_CANCELLED,      /* we gave up before the answer for another reason */
};

struct rv_call_event {
	enum rv_call_event_type type;
	char digit;                 /* RV_CALL_EV_DTMF */
	enum rv_hangup_cause cause; /* RV_CALL_EV_HANGUP */
	/* RV_CALL_EV_HANGUP: the outcome of the call attempt. */
	enum rv_call_disposition disposition;
	/* RINGING (outbound): the provisional status; HANGUP: the final status of the INVITE
	 * (200 once answered, the failure code when rejected, 0 when no final response came). */
	uint16_t sip_status;
	bool remote; /* HANGUP: the far end ended the call (BYE, CANCEL or a failure response) */
};

/* Stable lower-case names for logs, JSON and the store ("remote_bye", "no_answer", ...). */
const char *rv_hangup_cause_name(enum rv_hangup_cause cause);
const char *rv_call_disposition_name(enum rv_call_disposition disp);

/*
 * The disposition of an outbound attempt that ended with final response `status` (>= 300):
 * 486/600 busy; 408/480/487 no answer; 404/484 invalid number; everything else failed.
 */
enum rv_call_disposition rv_sip_status_disposition(uint16_t status);

typedef void(rv_call_event_h)(struct rv_call *call, const struct rv_call_event *ev, void *arg);

/*
 * Start the UA on the loop thread. cfg is copied. evh receives every call's events. Returns 0
 * and sets *out (release with mem_deref, which ends every call), or a negative errno with the
 * reason logged (component "sip").
 */
int rv_sip_ua_alloc(const struct rv_sip_ua_cfg *cfg, rv_call_event_h *evh, void *arg,
                    struct rv_sip_ua **out);

struct rv_sip_dial {
	const char *uri;  /* "sip:user@host[:port][;transport=tcp]"; host: IP or DNS name */
	const char *from; /* From URI; NULL: sip:revovoice@<our address> */
	/* Send the INVITE to this proxy instead of the Request-URI's host (a trunk):
	 * "sip:host[:port][;transport=tcp]"; NULL: direct. */
	const char *outbound_proxy;
	const char *user;     /* digest credentials for 401/407, or NULL */
	const char *password; /* used with user */
	uint32_t timeout_ms;  /* no answer after this long: CANCEL; 0 means 30 s */
};

/*
 * Place an outbound call: an INVITE offering PCMU, PCMA and telephone-event from a new RTP
 * stream. The call's events follow on the UA's handler (RINGING, EARLY_MEDIA, ANSWERED, DTMF,
 * HANGUP), never from inside this function. `d` is copied. Returns 0 and sets *out to the
 * call (borrowed: the UA owns it until the HANGUP event; mem_ref it to keep it longer), or a
 * negative errno (-EINVAL bad URI, -EBUSY at max_calls, or the transport's error) with the
 * reason logged; then no event is ever emitted for it. When nothing at all comes back for the
 * INVITE (not even 100 Trying) before the no-answer timeout or libre's Timer B (32 s), or the
 * transport fails first, the call ends with RV_HANGUP_TIMEOUT, sip_status 0, disposition
 * failed: the trunk is down and the caller may fail over.
 */
int rv_sip_ua_dial(struct rv_sip_ua *ua, const struct rv_sip_dial *d, void *user,
                   struct rv_call **out);

/*
 * Blind transfer: send REFER with Refer-To `target` (SIP URI) on an answered call. NOTIFYs
 * about the new call's progress arrive as RV_CALL_EV_TRANSFER events; on a 2xx sipfrag we send
 * BYE and the call ends with RV_HANGUP_TRANSFERRED. A REFER refused (or a failing sipfrag)
 * leaves the call up. A REFER that gets no final NOTIFY reports 408. Returns 0 once sent,
 * -EINVAL (bad URI), -EPROTO (not answered), -EALREADY (a transfer is in progress).
 */
int rv_call_transfer_blind(struct rv_call *call, const char *target);

/* The far end holds us (its last offer was sendonly/inactive or had c=0.0.0.0). */
bool rv_call_on_hold(const struct rv_call *call);

/* Inbound: the INVITE's routing data (NULL for outbound calls). */
const struct rv_sip_inbound *rv_call_inbound(const struct rv_call *call);

/* REGISTER with a provider, refreshed before expiry, as long as the registration lives. */
struct rv_sip_reg;
struct rv_sip_reg_cfg {
	const char *registrar; /* "sip:host[:port][;transport=tcp]" */
	const char *aor;       /* address of record, "sip:user@domain" */
	const char *user, *password;
	uint32_t expires; /* seconds asked for */
};
/* Called on the loop on every outcome: status 200 with the granted expiry, or a failure
 * status (0: transport error / timeout); libre retries failures on its own schedule. */
typedef void(rv_sip_reg_h)(int status, uint32_t expires, void *arg);
/* Returns 0 and sets *out (mem_deref un-registers), or a negative errno (-EINVAL bad URI).
 * The Contact is sip:<aor user>@<SIP listen address> (libre 1.1.0's sipreg builds it from the
 * transport address, so public_addr does not apply to it). */
int rv_sip_ua_register(struct rv_sip_ua *ua, const struct rv_sip_reg_cfg *cfg, rv_sip_reg_h *h,
                       void *arg, struct rv_sip_reg **out);

/*
 * Use these DNS servers ("IP[:PORT][,IP[:PORT]...]", at most 8) instead of the system's
 * (resolv.conf) for host names in Request-URIs, outbound proxies and registrars. Returns 0,
 * -EINVAL (bad list), -ENOTSUP (no DNS client could be started).
 */
int rv_sip_ua_set_dns(struct rv_sip_ua *ua, const char *servers);

/* The UDP/TCP port actually bound (useful with port 0). */
uint16_t rv_sip_ua_port(const struct rv_sip_ua *ua);

/* Calls in progress. */
uint32_t rv_sip_ua_ncalls(const struct rv_sip_ua *ua);

/*
 * End a call: BYE after the answer; before it, 480 to an inbound caller or CANCEL for an
 * outbound INVITE. The HANGUP event follows from this function. Calling it on a call that is
 * already over does nothing.
 */
void rv_call_hangup(struct rv_call *call);

/* The call's audio interface; NULL before RV_CALL_EV_INCOMING or after the hang-up. */
struct rv_audio *rv_call_audio(struct rv_call *call);

/* SIP Call-ID (borrowed; valid while the call lives), negotiated codec name ("PCMU"/"PCMA"). */
const char *rv_call_id(const struct rv_call *call);
const char *rv_call_codec(const struct rv_call *call);

/* True for calls we placed with rv_sip_ua_dial. */
bool rv_call_outbound(const struct rv_call *call);

/* Digits received so far as one string (borrowed). */
const char *rv_call_digits(const struct rv_call *call);

/* RTP counters of the call's media stream (zeros before the media exists). */
struct rv_media_stats;
void rv_call_media_stats(const struct rv_call *call, struct rv_media_stats *out);

/* Application data slot, for the handler's own per-call state. */
void rv_call_set_user(struct rv_call *call, void *user);
void *rv_call_user(const struct rv_call *call);

#endif
