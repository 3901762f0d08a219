/* The SIP user agent and its calls: see sip_ua.h. */
#include <errno.h>
#include <re.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_g711.h"
#include "media/media_stream.h"
#include "obs/metrics.h"
#include "sip/sip_sdp.h"
#include "sip/sip_ua.h"

#define ALLOW_HDR      "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, REFER, NOTIFY\r\n"
#define TELEV_PT_LOCAL "101"
#define NO_ANSWER_MS   30000
#define RETRY_AFTER    "10" /* 503 at capacity: seconds a proxy should leave this node alone */
#define MAX_PENDING    8
#define CONTACT_USER   "revovoice"
/* A transfer target may ring a long time before the final NOTIFY; past this we give up. */
#define XFER_TIMEOUT_MS 120000

struct rv_sip_ua {
	struct sip *sip;
	struct dnsc *dnsc;
	struct sipsess_sock *sock;
	struct sipevent_sock *evsock;
	struct sip_lsnr *lsnr;
	struct list calls;
	struct rv_sip_ua_cfg cfg;
	char *listen, *public_addr;
	struct sa lsn; /* the listen address */
	struct sa pub; /* public_addr (port 0: our SIP port) */
	bool have_pub;
	uint16_t port;
	rv_call_event_h *evh;
	void *arg;
	rv_sip_route_h *routeh;
	void *route_arg;
};

enum call_state { CALL_RINGING, CALL_ANSWERED, CALL_CLOSED };

/* Digest credentials for an outbound call or a registration, owned by libre's auth objects. */
struct creds {
	char *user, *pass;
};

struct rv_call {
	struct le le;
	struct rv_sip_ua *ua;
	struct sipsess *sess;
	struct sdp_session *sdp;
	struct sdp_media *sdpm; /* our audio line (owned by sdp) */
	struct rv_media_stream *ms;
	struct tmr ring_tmr; /* inbound: 180 -> 200; outbound: the no-answer timeout */
	struct tmr ev_tmr;   /* delivers events raised inside libre's handlers */
	enum call_state state;
	bool outbound, media_started;
	bool late_offer;   /* inbound INVITE without SDP: our offer goes in the 200 */
	bool answer_sent;  /* inbound: the 200 is out (a late offer waits for the ACK) */
	bool got_response; /* outbound: anything at all came back for the INVITE */
	bool held;
	char *callid;
	char *contact;   /* our Contact URI for this call */
	char *local_uri; /* who we are in this call (Referred-By) */
	const char *codec;
	int pt, telev_pt;
	struct sa raddr;
	struct creds *creds; /* outbound with digest auth: reused for REFER */
	/* Inbound routing data; the strings are owned here. */
	struct rv_sip_inbound in;
	char *in_str[6];
	/* Blind transfer. */
	struct sipsub *xfer;
	struct tmr xfer_tmr;
	bool xfer_final;  /* a final sipfrag (or refusal) has been reported */
	bool xfer_hangup; /* the transfer succeeded: leave the call from ev_tmr */
	struct rv_call_event pending[MAX_PENDING];
	unsigned npending;
	char digits[64];
	size_t ndigits;
	void *user;
};

static void count(const char *metric, const char *help, const char *label, const char *value)
{
	rv_metrics_register(metric, RV_METRIC_COUNTER, help, label, NULL, 0);
	rv_metrics_inc(metric, 1, value, NULL);
}

static void count_rejected(const char *reason)
{
	count("rv_sip_rejected_total", "Inbound SIP requests refused, by reason", "reason", reason);
}

static void count_outbound_failed(const char *reason)
{
	count("rv_sip_outbound_failed_total", "Outbound calls not answered", "reason", reason);
}

const char *rv_hangup_cause_name(enum rv_hangup_cause cause)
{
	static const char *const names[] = {"remote_bye", "local",     "cancelled",   "error",
	                                    "rejected",   "no_answer", "transferred", "timeout"};
	return (unsigned)cause < RV_ARRAY_LEN(names) ? names[cause] : "unknown";
}

const char *rv_call_disposition_name(enum rv_call_disposition disp)
{
	static const char *const names[] = {"answered",       "busy",   "no_answer",
	                                    "invalid_number", "failed", "cancelled"};
	return (unsigned)disp < RV_ARRAY_LEN(names) ? names[disp] : "unknown";
}

enum rv_call_disposition rv_sip_status_disposition(uint16_t status)
{
	switch (status) {
	case 486:
	case 600:
		return RV_DISP_BUSY;
	case 408:
	case 480:
	case 487:
		return RV_DISP_NO_ANSWER;
	case 404:
	case 484:
		return RV_DISP_INVALID_NUMBER;
	default:
		return RV_DISP_FAILED;
	}
}

static const char *status_phrase(uint16_t status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 410:
		return "Gone";
	case 480:
		return "Temporarily Unavailable";
	case 484:
		return "Address Incomplete";
	case 486:
		return "Busy Here";
	case 488:
		return "Not Acceptable Here";
	case 500:
		return "Server Internal Error";
	case 503:
		return "Service Unavailable";
	case 600:
		return "Busy Everywhere";
	case 603:
		return "Decline";
	case 604:
		return "Does Not Exist Anywhere";
	default:
		return "Refused";
	}
}

/* A URI we put into request lines and headers verbatim: no whitespace, quotes or brackets. */
static bool uri_safe(const char *s)
{
	if (!s || !*s || strlen(s) > 512)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"')
			return false;
	}
	return true;
}

static void emit(struct rv_call *call, const struct rv_call_event *ev)
{
	if (call->ua && call->ua->evh)
		call->ua->evh(call, ev, call->ua->arg);
}

static void call_destructor(void *arg)
{
	struct rv_call *call = arg;
	tmr_cancel(&call->ring_tmr);
	tmr_cancel(&call->ev_tmr);
	tmr_cancel(&call->xfer_tmr);
	list_unlink(&call->le);
	mem_deref(call->xfer);
	/* A live established session says BYE as it goes; a closed one is just freed. */
	mem_deref(call->sess);
	mem_deref(call->ms);
	mem_deref(call->sdp);
	mem_deref(call->callid);
	mem_deref(call->contact);
	mem_deref(call->local_uri);
	mem_deref(call->creds);
	for (size_t i = 0; i < RV_ARRAY_LEN(call->in_str); i++)
		mem_deref(call->in_str[i]);
}

static enum rv_call_disposition disposition(const struct rv_call *call, enum rv_hangup_cause cause,
                                            uint16_t status)
{
	if (call->state == CALL_ANSWERED)
		return RV_DISP_ANSWERED;
	switch (cause) {
	case RV_HANGUP_REJECTED:
		return rv_sip_status_disposition(status);
	case RV_HANGUP_NO_ANSWER:
		return RV_DISP_NO_ANSWER;
	case RV_HANGUP_LOCAL:
	case RV_HANGUP_CANCELLED:
		return RV_DISP_CANCELLED;
	default:
		return RV_DISP_FAILED;
	}
}

/*
 * The call is over: stop media, tell the application, drop the UA's reference. status is the
 * final SIP status of a failed outbound INVITE (0 otherwise); remote says the far end ended it.
 */
static void end_call(struct rv_call *call, enum rv_hangup_cause cause, uint16_t status, bool remote)
{
	if (call->state == CALL_CLOSED)
		return;
	struct rv_call_event ev = {.type = RV_CALL_EV_HANGUP,
	                           .cause = cause,
	                           .disposition = disposition(call, cause, status),
	                           .sip_status = call->state == CALL_ANSWERED ? 200 : status,
	                           .remote = remote};
	call->state = CALL_CLOSED;
	tmr_cancel(&call->ring_tmr);
	tmr_cancel(&call->ev_tmr);
	call->npending = 0;
	if (call->ms)
		rv_media_stream_stop(call->ms);
	/* A transfer subscription dies with the call (libre unsubscribes if still active). */
	tmr_cancel(&call->xfer_tmr);
	call->xfer = mem_deref(call->xfer);
	char st[8];
	snprintf(st, sizeof(st), "%u", ev.sip_status);
	rv_logkv(RV_LOG_INFO, "sip", "call ended", "call_id", call->callid ? call->callid : "",
	         "cause", rv_hangup_cause_name(cause), "disposition",
	         rv_call_disposition_name(ev.disposition), "sip_status", st, "by",
	         remote ? "remote" : "local", NULL);
	mem_ref(call);
	emit(call, &ev);
	list_unlink(&call->le);
	mem_deref(call); /* the UA's reference */
	mem_deref(call); /* ours */
}

/*
 * Events raised inside libre's handlers (re-INVITE, UPDATE, NOTIFY) reach the application from
 * a zero timer, so a handler that hangs the call up never frees a session libre still uses.
 */
static void ev_tmr_h(void *arg)
{
	struct rv_call *call = arg;
	mem_ref(call);
	for (unsigned i = 0; i < call->npending && call->state != CALL_CLOSED; i++)
		emit(call, &call->pending[i]);
	call->npending = 0;
	if (call->xfer_hangup && call->state != CALL_CLOSED) {
		rv_logkv(RV_LOG_INFO, "sip", "transfer succeeded: leaving the call", "call_id",
		         call->callid, NULL);
		call->sess = mem_deref(call->sess); /* sends BYE */
		end_call(call, RV_HANGUP_TRANSFERRED, 0, false);
	}
	mem_deref(call);
}

static void post(struct rv_call *call, const struct rv_call_event *ev)
{
	if (call->state == CALL_CLOSED)
		return;
	if (call->npending < MAX_PENDING)
		call->pending[call->npending++] = *ev;
	else
		rv_warn("sip", "call %s: event queue full, event %d dropped", call->callid,
		        ev->type);
	tmr_start(&call->ev_tmr, 0, ev_tmr_h, call);
}

static bool is_no_response_error(int err)
{
	switch (err) {
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNABORTED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENOTCONN:
	case EPIPE:
		return true;
	default:
		return false;
	}
}

static void close_h(int err, const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	enum rv_hangup_cause cause;
	uint16_t status = 0;
	bool remote = true;
	if (err == ECONNRESET) {
		cause = call->state == CALL_ANSWERED ? RV_HANGUP_REMOTE_BYE : RV_HANGUP_CANCELLED;
	} else if (!err && msg && msg->scode >= 300) {
		/* A final failure response to our INVITE (libre passes it with err 0). */
		cause = RV_HANGUP_REJECTED;
		status = msg->scode;
		char st[8];
		snprintf(st, sizeof(st), "%u", status);
		rv_logkv(RV_LOG_INFO, "sip", "call rejected", "call_id", call->callid, "status", st,
		         NULL);
		count_outbound_failed(rv_call_disposition_name(rv_sip_status_disposition(status)));
	} else if (call->outbound && call->state != CALL_ANSWERED && !call->got_response &&
	           is_no_response_error(err)) {
		/* Nothing ever came back (Timer B, or the transport failed): the trunk is down. */
		cause = RV_HANGUP_TIMEOUT;
		remote = false;
		rv_logkv(RV_LOG_WARN, "sip", "no response to the INVITE", "call_id", call->callid,
		         "error", strerror(err), NULL);
		count_outbound_failed("timeout");
	} else {
		cause = RV_HANGUP_ERROR;
		remote = false;
		rv_logkv(RV_LOG_WARN, "sip", "call failed", "call_id", call->callid, "error",
		         strerror(err ? err : EPROTO), NULL);
		if (call->outbound && call->state != CALL_ANSWERED)
			count_outbound_failed("error");
	}
	/* The session is finished; releasing it now must not send anything. */
	call->sess = mem_deref(call->sess);
	end_call(call, cause, status, remote);
}

static void dtmf_h(char digit, void *arg)
{
	struct rv_call *call = arg;
	if (call->ndigits + 1 < sizeof(call->digits)) {
		call->digits[call->ndigits++] = digit;
		call->digits[call->ndigits] = '\0';
	}
	char d[2] = {digit, '\0'};
	rv_logkv(RV_LOG_INFO, "sip", "dtmf", "call_id", call->callid, "digit", d, NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_DTMF, .digit = digit};
	emit(call, &ev);
}

/* ---- SDP ------------------------------------------------------------------------------- */

/* Run the offer/answer decision on a message body; log and count what cannot be used. */
static int choose(const struct rv_call *call, const struct mbuf *mb, bool offer,
                  struct rv_sdp_choice *ch)
{
	int err = rv_sip_sdp_choose((const char *)mbuf_buf(mb), mbuf_get_left(mb), ch);
	if (err) {
		rv_logkv(RV_LOG_WARN, "sip",
		         offer ? "no usable media in the offer" : "no usable media in the answer",
		         "call_id", call && call->callid ? call->callid : "", "reason",
		         rv_sip_sdp_reason(err), NULL);
		count_rejected(rv_sip_sdp_reason(err));
	}
	return err;
}

static void media_set_sending(struct rv_call *call, bool send)
{
	if (call->ms)
		rv_media_stream_set_sending(call->ms, send);
}

/*
 * A new SDP from the far end on an established media stream (re-INVITE, UPDATE, or the ACK
 * answering our re-offer): keep our codec, follow an address change, track hold. Returns 0
 * or a positive errno (libre's convention: the request gets 488).
 */
static int update_media(struct rv_call *call, struct mbuf *mb, bool offer)
{
	struct rv_sdp_choice ch;
	int err = choose(call, mb, offer, &ch);
	if (err)
		return -err;
	bool u = call->codec && !strcmp(call->codec, "PCMU");
	if (!(u ? ch.pcmu : ch.pcma)) {
		rv_logkv(RV_LOG_WARN, "sip", "new SDP drops our codec", "call_id", call->callid,
		         "codec", call->codec ? call->codec : "", NULL);
		count_rejected("codec");
		return ENOTSUP;
	}
	size_t pos = mb->pos;
	err = sdp_decode(call->sdp, mb, offer);
	mb->pos = pos;
	if (err)
		return err;
	/* c=0.0.0.0 (RFC 2543 hold): the far end takes nothing, so we answer recvonly. */
	sdp_media_set_ldir(call->sdpm, ch.addr[0] ? SDP_SENDRECV : SDP_RECVONLY);
	if (ch.addr[0]) {
		struct sa ra;
		if (!sa_set_str(&ra, ch.addr, ch.port) && !sa_cmp(&ra, &call->raddr, SA_ALL)) {
			char port[8];
			snprintf(port, sizeof(port), "%u", ch.port);
			rv_logkv(RV_LOG_INFO, "sip", "far end moved its media", "call_id",
			         call->callid, "addr", ch.addr, "port", port, NULL);
			call->raddr = ra;
			if (call->media_started)
				(void)rv_media_stream_set_remote(call->ms, &ra);
			else if (call->media_started)
				rv_warn("sip", "call %s: media keeps its latched peer",
				        call->callid);
		}
	}
	if (ch.hold != call->held) {
		call->held = ch.hold;
		rv_logkv(RV_LOG_INFO, "sip", ch.hold ? "call held by the far end" : "call resumed",
		         "call_id", call->callid, NULL);
		media_set_sending(call, !ch.hold);
		struct rv_call_event ev = {.type = ch.hold ? RV_CALL_EV_HOLD : RV_CALL_EV_UNHOLD};
		post(call, &ev);
	}
	return 0;
}

/* Our audio line on laddr:port offering what we can do, into a new session. */
static int local_sdp(const struct sa *laddr, uint16_t port, bool pcmu, bool pcma, bool te,
                     struct sdp_session **out, struct sdp_media **mout)
{
	struct sdp_session *sdp = NULL;
	struct sdp_media *m = NULL;
	int err = sdp_session_alloc(&sdp, laddr);
	if (!err)
		err = sdp_media_add(&m, sdp, sdp_media_audio, port, sdp_proto_rtpavp);
	if (!err && pcmu)
		err = sdp_format_add(NULL, m, false, "0", "PCMU", 8000, 1, NULL, NULL, NULL, false,
		                     NULL);
	if (!err && pcma)
		err = sdp_format_add(NULL, m, false, "8", "PCMA", 8000, 1, NULL, NULL, NULL, false,
		                     NULL);
	if (!err && te)
		err = sdp_format_add(NULL, m, false, TELEV_PT_LOCAL, telev_rtpfmt, 8000, 1, NULL,
		                     NULL, NULL, false, "0-15");
	if (!err)
		err = sdp_media_set_lattr(m, true, sdp_attr_ptime, "20");
	if (err) {
		mem_deref(sdp);
		return err;
	}
	*out = sdp;
	*mout = m;
	return 0;
}

/*
 * Answer an offer with the codec rv_sip_sdp_choose picked (and telephone-event when offered):
 * the answer session carries only those, libre aligns their payload types to the offer.
 */
static int negotiate(struct rv_call *call, const struct sa *adv, struct mbuf *offer,
                     const struct rv_sdp_choice *ch)
{
	bool u = !strcmp(ch->codec, "PCMU");
	int err = local_sdp(adv, rv_media_stream_port(call->ms), u, !u, ch->telev_pt >= 0,
	                    &call->sdp, &call->sdpm);
	if (err)
		return err;
	size_t pos = offer->pos;
	err = sdp_decode(call->sdp, offer, true);
	offer->pos = pos;
	if (err)
		return err;
	err = sa_set_str(&call->raddr, ch->addr, ch->port);
	if (err)
		return err;
	call->codec = ch->codec;
	call->pt = u ? RV_G711_PT_PCMU : RV_G711_PT_PCMA;
	call->telev_pt = ch->telev_pt;
	call->held = ch->hold;
	return 0;
}

/*
 * Take the far end's answer to our offer (outbound: a 183 or the 200; inbound late offer: the
 * ACK) and start the media towards it. Media that already runs keeps running.
 */
static int apply_answer(struct rv_call *call, struct mbuf *mb)
{
	struct rv_sdp_choice ch;
	if (call->media_started)
		return 0;
	if (!mbuf_get_left(mb))
		return EBADMSG; /* no answer to our offer */
	int err = choose(call, mb, false, &ch);
	if (err)
		return -err;
	if (!ch.addr[0])
		return EDESTADDRREQ;
	size_t pos = mb->pos;
	err = sdp_decode(call->sdp, mb, false);
	mb->pos = pos;
	if (err)
		return err;
	err = sa_set_str(&call->raddr, ch.addr, ch.port);
	if (err)
		return err;
	call->codec = ch.codec;
	call->pt = ch.pt;
	call->telev_pt = ch.telev_pt;
	call->held = ch.hold;
	err =
	    -rv_media_stream_start(call->ms, &call->raddr, call->pt, call->telev_pt, dtmf_h, call);
	if (err)
		return err;
	call->media_started = true;
	if (call->held)
		media_set_sending(call, false);
	return 0;
}

/* ---- Addresses ------------------------------------------------------------------------- */

/*
 * The address we advertise (SDP c=, Contact) towards a peer: public_addr when configured;
 * else the local address the request came in on, or the listen address, or for a wildcard
 * listener loopback towards loopback peers and the default interface's address otherwise. The port
 * is our SIP port (or public_addr's).
 */
static int adv_addr(const struct rv_sip_ua *ua, const struct sa *local, const struct sa *peer,
                    struct sa *out)
{
	if (ua->have_pub) {
		*out = ua->pub;
		if (!sa_port(out))
			sa_set_port(out, ua->port);
		return 0;
	}
	*out = local && sa_isset(local, SA_ADDR) ? *local : ua->lsn;
	if (sa_is_any(out)) {
		int af = sa_af(out);
		int err;
		if (peer && sa_is_loopback(peer))
			err = sa_set_str(out, af == AF_INET6 ? "::1" : "127.0.0.1", 0);
		else
			err = net_default_source_addr_get(af, out);
		if (err)
			return err;
	}
	sa_set_port(out, ua->port);
	return 0;
}

static int make_contact(const struct sa *adv, enum sip_transp tp, char **out)
{
	return re_sdprintf(out, "sip:" CONTACT_USER "@%J%s", adv,
	                   tp == SIP_TRANSP_TCP ? ";transport=tcp" : "");
}

/* ---- Inbound calls ---------------------------------------------------------------------- */

static void ring_tmr_h(void *arg)
{
	struct rv_call *call = arg;
	struct mbuf *desc = NULL;
	/* Late offer: the 200 carries our offer and the media starts with the ACK's answer. */
	int err = sdp_encode(&desc, call->sdp, call->late_offer);
	if (!err)
		err = sipsess_answer(call->sess, 200, "OK", desc, ALLOW_HDR);
	mem_deref(desc);
	if (!err)
		call->answer_sent = true;
	if (!err && !call->late_offer) {
		err = -rv_media_stream_start(call->ms, &call->raddr, call->pt, call->telev_pt,
		                             dtmf_h, call);
		if (!err && call->held)
			media_set_sending(call, false);
	}
	if (err) {
		rv_logkv(RV_LOG_ERROR, "sip", "cannot answer", "call_id", call->callid, "error",
		         strerror(err), NULL);
		end_call(call, RV_HANGUP_ERROR, 0, false);
		return;
	}
	if (call->late_offer) {
		rv_logkv(RV_LOG_DEBUG, "sip", "late offer: 200 carries our offer", "call_id",
		         call->callid, NULL);
		return;
	}
	call->media_started = true;
	call->state = CALL_ANSWERED;
	rv_logkv(RV_LOG_INFO, "sip", "call answered", "call_id", call->callid, "codec", call->codec,
	         NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_ANSWERED};
	emit(call, &ev);
}

/* re-INVITE from the far end (either direction of call), or its INVITE/200 without SDP. */
static int offer_h(struct mbuf **descp, const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	if (!call->sdp || !call->media_started)
		return EPROTO;
	if (!mbuf_get_left(msg->mb)) {
		/* A re-INVITE without SDP: we offer what we use, the answer comes in the ACK. */
		sdp_media_set_ldir(call->sdpm, SDP_SENDRECV);
		return sdp_encode(descp, call->sdp, true);
	}
	int err = update_media(call, msg->mb, true);
	if (err)
		return err;
	return sdp_encode(descp, call->sdp, false);
}

static int answer_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	if (call->media_started)
		return update_media(call, msg->mb, false);
	int err = apply_answer(call, msg->mb);
	if (err) {
		rv_logkv(RV_LOG_WARN, "sip", "no usable media in the ACK's answer", "call_id",
		         call->callid, "error", strerror(err), NULL);
		count_rejected("answer");
	}
	return err;
}

static void estab_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	(void)msg;
	rv_logkv(RV_LOG_DEBUG, "sip", "ACK received", "call_id", call->callid, NULL);
	if (!call->late_offer || call->state != CALL_RINGING || !call->media_started)
		return;
	call->state = CALL_ANSWERED;
	rv_logkv(RV_LOG_INFO, "sip", "call answered", "call_id", call->callid, "codec", call->codec,
	         "offer", "late", NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_ANSWERED};
	emit(call, &ev);
}

static void refuse(struct rv_sip_ua *ua, const struct sip_msg *msg, uint16_t status,
                   const char *reason, const char *hdrs)
{
	char st[8];
	snprintf(st, sizeof(st), "%u", status);
	rv_logkv(RV_LOG_INFO, "sip", "inbound call refused", "status", st, "reason", reason, NULL);
	(void)sip_treplyf(NULL, NULL, ua->sip, msg, false, status, status_phrase(status),
	                  "%sContent-Length: 0\r\n\r\n", hdrs ? hdrs : "");
}

static int inbound_data(struct rv_call *call, const struct sip_msg *msg)
{
	const struct pl *src[6] = {&msg->callid,  &msg->from.auri,   &msg->from.uri.user,
	                           &msg->to.auri, &msg->to.uri.user, &msg->uri.user};
	int err = 0;
	for (size_t i = 0; i < RV_ARRAY_LEN(src) && !err; i++)
		err = pl_isset(src[i]) ? pl_strdup(&call->in_str[i], src[i])
		                       : str_dup(&call->in_str[i], "");
	if (err)
		return err;
	call->in.call_id = call->in_str[0];
	call->in.from_uri = call->in_str[1];
	call->in.from_user = call->in_str[2];
	call->in.to_uri = call->in_str[3];
	call->in.to_user = call->in_str[4];
	call->in.ruri_user = call->in_str[5];
	return 0;
}

static void conn_h(const struct sip_msg *msg, void *arg)
{
	struct rv_sip_ua *ua = arg;
	struct rv_call *call = NULL;
	struct rv_sdp_choice ch;
	struct sa bind, adv;
	int err;

	(void)sip_reply(ua->sip, msg, 100, "Trying");
	if (list_count(&ua->calls) >= ua->cfg.max_calls) {
		count_rejected("capacity");
		refuse(ua, msg, 503, "capacity", "Retry-After: " RETRY_AFTER "\r\n");
		return;
	}
	bool late = !mbuf_get_left(msg->mb);
	if (!late) {
		err = choose(NULL, msg->mb, true, &ch);
		if (!err && !ch.addr[0]) {
			rv_warn("sip", "INVITE offer without a usable connection address");
			count_rejected("no_address");
			err = -EDESTADDRREQ;
		}
		if (err) {
			refuse(ua, msg, 488,
			       err == -EDESTADDRREQ ? "no_address" : rv_sip_sdp_reason(err), NULL);
			return;
		}
	}
	call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call) {
		refuse(ua, msg, 500, "no_memory", NULL);
		return;
	}
	tmr_init(&call->ring_tmr);
	tmr_init(&call->ev_tmr);
	tmr_init(&call->xfer_tmr);
	call->ua = ua;
	call->telev_pt = -1;
	call->late_offer = late;
	err = pl_strdup(&call->callid, &msg->callid);
	if (!err)
		err = inbound_data(call, msg);
	if (!err)
		err = pl_strdup(&call->local_uri, &msg->to.auri);
	if (err)
		goto fail500;

	if (ua->routeh) {
		int st = ua->routeh(call, &call->in, ua->route_arg);
		if (st) {
			if (st < 400 || st > 699) {
				rv_error("sip", "route handler returned %d: refusing with 500", st);
				st = 500;
			}
			count_rejected("route");
			refuse(ua, msg, (uint16_t)st, "route", NULL);
			mem_deref(call);
			return;
		}
	}

	err = adv_addr(ua, &msg->dst, &msg->src, &adv);
	if (!err)
		err = make_contact(&adv, msg->tp, &call->contact);
	if (err)
		goto fail500;
	sa_cpy(&bind, &msg->dst);
	sa_set_port(&bind, 0);
	err = -rv_media_stream_alloc(&bind, ua->cfg.rtp_port_min, ua->cfg.rtp_port_max, &call->ms);
	if (err)
		goto fail500;
	if (late)
		err = local_sdp(&adv, rv_media_stream_port(call->ms), true, true, true, &call->sdp,
		                &call->sdpm);
	else
		err = negotiate(call, &adv, msg->mb, &ch);
	if (err)
		goto fail500;

	list_append(&ua->calls, &call->le, call);
	call->state = CALL_RINGING;
	rv_logkv(RV_LOG_INFO, "sip", "incoming call", "call_id", call->callid, "from",
	         call->in.from_uri, "to", call->in.to_uri, "offer", late ? "late" : "invite", NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_INCOMING};
	emit(call, &ev);
	if (call->state == CALL_CLOSED) {
		/* The application hung up on the INCOMING event: decline. */
		(void)sip_treply(NULL, ua->sip, msg, 603, "Decline");
		return;
	}

	err = sipsess_accept(&call->sess, ua->sock, msg, 180, "Ringing", call->contact,
	                     "application/sdp", NULL, NULL, NULL, false, offer_h, answer_h, estab_h,
	                     NULL, NULL, close_h, call, ALLOW_HDR);
	if (err) {
		rv_logkv(RV_LOG_ERROR, "sip", "cannot accept the call", "call_id", call->callid,
		         "error", strerror(err), NULL);
		(void)sip_treply(NULL, ua->sip, msg, 500, "Server Internal Error");
		end_call(call, RV_HANGUP_ERROR, 0, false);
		return;
	}
	ev.type = RV_CALL_EV_RINGING;
	emit(call, &ev);
	if (call->state == CALL_RINGING)
		tmr_start(&call->ring_tmr, ua->cfg.ring_ms, ring_tmr_h, call);
	return;

fail500:
	rv_error("sip", "cannot set up an inbound call: %s", strerror(err));
	refuse(ua, msg, 500, "internal", NULL);
	mem_deref(call);
}

/* ---- Outbound calls ---------------------------------------------------------------------- */

static void out_progr_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	call->got_response = true;
	if (call->state != CALL_RINGING || msg->scode == 100)
		return;
	struct rv_call_event ev = {.type = RV_CALL_EV_RINGING, .sip_status = msg->scode};
	emit(call, &ev);
	if (call->state != CALL_RINGING || call->media_started || !mbuf_get_left(msg->mb) ||
	    !msg_ctype_cmp(&msg->ctyp, "application", "sdp"))
		return;
	int err = apply_answer(call, msg->mb);
	if (err) {
		/* Unusable early media is not fatal: the 200 may still bring a good answer. */
		rv_logkv(RV_LOG_WARN, "sip", "early media SDP not usable", "call_id", call->callid,
		         "error", strerror(err), NULL);
		return;
	}
	rv_logkv(RV_LOG_INFO, "sip", "early media", "call_id", call->callid, "codec", call->codec,
	         NULL);
	ev.type = RV_CALL_EV_EARLY_MEDIA;
	emit(call, &ev);
}

static int out_answer_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	call->got_response = true;
	if (call->state == CALL_ANSWERED)
		return update_media(call, msg->mb, false); /* answer to a re-offer */
	int err = apply_answer(call, msg->mb);
	if (err)
		rv_logkv(RV_LOG_WARN, "sip", "no usable media in the answer", "call_id",
		         call->callid, "error", strerror(err), NULL);
	return err;
}

static void out_estab_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	(void)msg;
	if (call->state != CALL_RINGING)
		return;
	tmr_cancel(&call->ring_tmr);
	call->state = CALL_ANSWERED;
	rv_logkv(RV_LOG_INFO, "sip", "call answered", "call_id", call->callid, "codec", call->codec,
	         NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_ANSWERED, .sip_status = 200};
	emit(call, &ev);
}

static void noanswer_tmr_h(void *arg)
{
	struct rv_call *call = arg;
	if (call->state != CALL_RINGING)
		return;
	/* Not even a 100 Trying: the trunk is unreachable, which the caller fails over on. */
	bool silent = !call->got_response;
	rv_logkv(RV_LOG_INFO, "sip", silent ? "no response: giving up" : "no answer: cancelling",
	         "call_id", call->callid, NULL);
	count_outbound_failed(silent ? "timeout" : "no_answer");
	/* Releasing a session whose INVITE is pending sends CANCEL (after a provisional
	 * response); libre keeps it until the 487 (or a crossing 200, which it ACKs and ends
	 * with BYE). */
	call->sess = mem_deref(call->sess);
	end_call(call, silent ? RV_HANGUP_TIMEOUT : RV_HANGUP_NO_ANSWER, 0, false);
}

static void creds_destructor(void *arg)
{
	struct creds *c = arg;
	mem_deref(c->user);
	if (c->pass)
		memset(c->pass, 0, strlen(c->pass));
	mem_deref(c->pass);
}

static int creds_alloc(const char *user, const char *pass, struct creds **out)
{
	struct creds *c = mem_zalloc(sizeof(*c), creds_destructor);
	if (!c)
		return ENOMEM;
	int err = str_dup(&c->user, user);
	if (!err)
		err = str_dup(&c->pass, pass ? pass : "");
	if (err) {
		mem_deref(c);
		return err;
	}
	*out = c;
	return 0;
}

static int auth_h(char **username, char **password, const char *realm, void *arg)
{
	struct creds *c = arg;
	rv_logkv(RV_LOG_INFO, "sip", "digest challenge", "realm", realm ? realm : "", "user",
	         c->user, NULL);
	int err = str_dup(username, c->user);
	if (!err)
		err = str_dup(password, c->pass);
	return err;
}

/*
 * A SIP URI we can send to: "sip:[user@]host[:port][;transport=udp|tcp]" with an IP or a
 * host name. Sets *tp from the transport parameter and *ip when the host is an IP literal.
 */
static int parse_target(const char *s, enum sip_transp *tp, struct sa *ip, bool *is_ip)
{
	struct uri u;
	struct pl pl, tpv;
	if (!uri_safe(s))
		return EINVAL;
	pl_set_str(&pl, s);
	if (uri_decode(&u, &pl) || pl_strcasecmp(&u.scheme, "sip") || !pl_isset(&u.host))
		return EINVAL;
	*tp = SIP_TRANSP_UDP;
	if (!msg_param_decode(&u.params, "transport", &tpv)) {
		if (!pl_strcasecmp(&tpv, "tcp"))
			*tp = SIP_TRANSP_TCP;
		else if (pl_strcasecmp(&tpv, "udp"))
			return EPROTONOSUPPORT;
	}
	*is_ip = !sa_set(ip, &u.host, u.port ? u.port : SIP_PORT);
	return 0;
}

int rv_sip_ua_dial(struct rv_sip_ua *ua, const struct rv_sip_dial *d, void *user,
                   struct rv_call **out)
{
	struct rv_call *call = NULL;
	struct mbuf *desc = NULL;
	char *from = NULL;
	struct sa dst, pdst, adv, bind;
	enum sip_transp tp = SIP_TRANSP_UDP, ptp;
	bool dst_ip = false, proxy_ip = false;
	const char *routev[1];
	int err;

	if (!ua || !d || !d->uri)
		return -EINVAL;
	err = parse_target(d->uri, &tp, &dst, &dst_ip);
	if (!err && d->outbound_proxy) {
		err = parse_target(d->outbound_proxy, &ptp, &pdst, &proxy_ip);
		tp = ptp; /* the first hop's transport is the proxy's */
	}
	if (err) {
		rv_error("sip", "cannot dial \"%s\"%s%s: %s", d->uri,
		         d->outbound_proxy ? " via " : "",
		         d->outbound_proxy ? d->outbound_proxy : "",
		         err == EPROTONOSUPPORT ? "transport not supported"
		                                : "not sip:user@host[:port]");
		return -EINVAL;
	}
	if (d->from && !uri_safe(d->from)) {
		rv_error("sip", "cannot dial \"%s\": bad From URI", d->uri);
		return -EINVAL;
	}
	if (list_count(&ua->calls) >= ua->cfg.max_calls) {
		rv_warn("sip", "cannot dial \"%s\": %u calls in progress", d->uri,
		        ua->cfg.max_calls);
		return -EBUSY;
	}
	/* The first hop decides which of our addresses it reaches (loopback or not); for a host
	 * name we cannot know before DNS, so the listen address or the default one. */
	const struct sa *hop =
	    d->outbound_proxy ? (proxy_ip ? &pdst : NULL) : (dst_ip ? &dst : NULL);
	if (adv_addr(ua, NULL, hop, &adv)) {
		rv_error("sip", "cannot dial \"%s\": no local address towards it", d->uri);
		return -EADDRNOTAVAIL;
	}
	bind = ua->lsn;
	sa_set_port(&bind, 0);

	call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call)
		return -ENOMEM;
	tmr_init(&call->ring_tmr);
	tmr_init(&call->ev_tmr);
	tmr_init(&call->xfer_tmr);
	call->ua = ua;
	call->outbound = true;
	call->telev_pt = -1;
	call->user = user;
	err = -rv_media_stream_alloc(&bind, ua->cfg.rtp_port_min, ua->cfg.rtp_port_max, &call->ms);
	if (!err)
		err = local_sdp(&adv, rv_media_stream_port(call->ms), true, true, true, &call->sdp,
		                &call->sdpm);
	if (!err)
		err = sdp_encode(&desc, call->sdp, true);
	if (!err)
		err = make_contact(&adv, tp, &call->contact);
	if (!err)
		err = d->from ? str_dup(&from, d->from)
		              : re_sdprintf(&from, "sip:" CONTACT_USER "@%j", &adv);
	if (!err)
		err = str_dup(&call->local_uri, from);
	if (!err && d->user)
		err = creds_alloc(d->user, d->password, &call->creds);
	if (err)
		goto out;

	list_append(&ua->calls, &call->le, call);
	call->state = CALL_RINGING;
	routev[0] = d->outbound_proxy;
	err = sipsess_connect(&call->sess, ua->sock, d->uri, NULL, from, call->contact, routev,
	                      d->outbound_proxy ? 1 : 0, "application/sdp", desc,
	                      call->creds ? auth_h : NULL, call->creds, true, offer_h, out_answer_h,
	                      out_progr_h, out_estab_h, NULL, NULL, close_h, call, ALLOW_HDR);
	if (!err)
		err = str_dup(&call->callid, sip_dialog_callid(sipsess_dialog(call->sess)));
	if (err) {
		list_unlink(&call->le);
		goto out;
	}
	tmr_start(&call->ring_tmr, d->timeout_ms ? d->timeout_ms : NO_ANSWER_MS, noanswer_tmr_h,
	          call);
	rv_logkv(RV_LOG_INFO, "sip", "dialing", "call_id", call->callid, "to", d->uri, "from", from,
	         "proxy", d->outbound_proxy ? d->outbound_proxy : "-", "transport",
	         tp == SIP_TRANSP_TCP ? "tcp" : "udp", NULL);
out:
	mem_deref(desc);
	mem_deref(from);
	if (err) {
		rv_error("sip", "cannot dial \"%s\": %s", d->uri, strerror(err));
		/* The call never reached the application: no HANGUP event. */
		call->state = CALL_CLOSED;
		mem_deref(call);
		return -err;
	}
	*out = call;
	return 0;
}

/* ---- Blind transfer ---------------------------------------------------------------------- */

/* The status line of a message/sipfrag body ("SIP/2.0 200 OK"), or 0. */
static uint16_t sipfrag_status(const struct sip_msg *msg)
{
	static const char prefix[] = "SIP/2.0 ";
	const char *p = (const char *)mbuf_buf(msg->mb);
	size_t n = mbuf_get_left(msg->mb);
	if (!msg_ctype_cmp(&msg->ctyp, "message", "sipfrag"))
		return 0;
	while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++, n--;
	if (n < sizeof(prefix) - 1 + 3 || memcmp(p, prefix, sizeof(prefix) - 1))
		return 0;
	p += sizeof(prefix) - 1;
	uint16_t v = 0;
	for (int i = 0; i < 3; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = (uint16_t)(v * 10 + (p[i] - '0'));
	}
	if (n > sizeof(prefix) - 1 + 3 && p[3] >= '0' && p[3] <= '9')
		return 0; /* more than three digits */
	return v >= 100 && v <= 699 ? v : 0;
}

static void xfer_notify_h(struct sip *sip, const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	(void)sip_treply(NULL, sip, msg, 200, "OK");
	uint16_t st = sipfrag_status(msg);
	if (!st) {
		rv_logkv(RV_LOG_WARN, "sip", "transfer NOTIFY without a sipfrag status", "call_id",
		         call->callid, NULL);
		count_rejected("sipfrag");
		return;
	}
	char s[8];
	snprintf(s, sizeof(s), "%u", st);
	rv_logkv(RV_LOG_INFO, "sip", "transfer progress", "call_id", call->callid, "status", s,
	         NULL);
	if (call->xfer_final)
		return;
	struct rv_call_event ev = {.type = RV_CALL_EV_TRANSFER, .sip_status = st};
	post(call, &ev);
	if (st < 200)
		return;
	call->xfer_final = true;
	tmr_cancel(&call->xfer_tmr);
	/* On success ev_tmr sends BYE after delivering the event. */
	call->xfer_hangup = st < 300;
	count("rv_sip_transfers_total", "Blind transfers, by outcome", "result",
	      st < 300 ? "ok" : "failed");
}

static void xfer_close_h(int err, const struct sip_msg *msg, const struct sipevent_substate *ss,
                         void *arg)
{
	struct rv_call *call = arg;
	(void)ss;
	uint16_t st = 0;
	if (msg && !msg->req && msg->scode >= 300)
		st = msg->scode; /* REFER refused */
	else if (!call->xfer_final)
		/* Ended without a final sipfrag (no NOTIFY in time, transport error): report it as
		 * a timeout so the application can act. */
		st = 408;
	if (st && !call->xfer_final) {
		char s[8];
		snprintf(s, sizeof(s), "%u", st);
		rv_logkv(RV_LOG_INFO, "sip", "transfer failed: the call stays up", "call_id",
		         call->callid, "status", s, "error", err ? strerror(err) : "-", NULL);
		count("rv_sip_transfers_total", "Blind transfers, by outcome", "result",
		      msg && !msg->req ? "refused" : "timeout");
		call->xfer_final = true;
		struct rv_call_event ev = {.type = RV_CALL_EV_TRANSFER, .sip_status = st};
		post(call, &ev);
	}
	/* libre is done with the subscription; this is its last call into us. */
	tmr_cancel(&call->xfer_tmr);
	call->xfer = mem_deref(call->xfer);
}

static void xfer_tmr_h(void *arg)
{
	struct rv_call *call = arg;
	if (call->xfer_final || call->state == CALL_CLOSED)
		return;
	rv_logkv(RV_LOG_WARN, "sip", "transfer: no final NOTIFY in time, the call stays up",
	         "call_id", call->callid, NULL);
	count("rv_sip_transfers_total", "Blind transfers, by outcome", "result", "timeout");
	call->xfer_final = true;
	struct rv_call_event ev = {.type = RV_CALL_EV_TRANSFER, .sip_status = 408};
	post(call, &ev);
	call->xfer = mem_deref(call->xfer); /* libre ends the subscription */
}

int rv_call_transfer_blind(struct rv_call *call, const char *target)
{
	struct pl pl;
	struct uri u;
	if (!call || !target)
		return -EINVAL;
	pl_set_str(&pl, target);
	if (!uri_safe(target) || uri_decode(&u, &pl) ||
	    (pl_strcasecmp(&u.scheme, "sip") && pl_strcasecmp(&u.scheme, "sips")) ||
	    !pl_isset(&u.host)) {
		rv_error("sip", "cannot transfer to \"%s\": not a SIP URI", target);
		return -EINVAL;
	}
	if (call->state != CALL_ANSWERED || !call->sess)
		return -EPROTO;
	if (call->xfer)
		return -EALREADY;
	call->xfer_final = false;
	int err = sipevent_drefer(
	    &call->xfer, call->ua->evsock, sipsess_dialog(call->sess), call->contact,
	    call->creds ? auth_h : NULL, call->creds, true, xfer_notify_h, xfer_close_h, call,
	    "Refer-To: <%s>\r\nReferred-By: <%s>\r\n", target, call->local_uri);
	if (err) {
		rv_error("sip", "cannot send REFER on call %s: %s", call->callid, strerror(err));
		return -err;
	}
	tmr_start(&call->xfer_tmr, XFER_TIMEOUT_MS, xfer_tmr_h, call);
	rv_logkv(RV_LOG_INFO, "sip", "blind transfer", "call_id", call->callid, "to", target, NULL);
	return 0;
}

/* ---- Requests outside sipsess: OPTIONS, UPDATE ------------------------------------------ */

static struct rv_call *find_call(struct rv_sip_ua *ua, const struct sip_msg *msg)
{
	for (struct le *le = list_head(&ua->calls); le; le = le->next) {
		struct rv_call *call = le->data;
		if (call->sess && sip_dialog_cmp(sipsess_dialog(call->sess), msg))
			return call;
	}
	return NULL;
}

/* UPDATE (RFC 3311) carrying a new offer, e.g. hold: libre 1.1.0's sipsess has no UPDATE. */
static void update_h(struct rv_sip_ua *ua, const struct sip_msg *msg)
{
	struct rv_call *call = find_call(ua, msg);
	struct mbuf *desc = NULL;
	if (!call) {
		(void)sip_treply(NULL, ua->sip, msg, 481, "Call/Transaction Does Not Exist");
		return;
	}
	if (!sip_dialog_rseq_valid(sipsess_dialog(call->sess), msg)) {
		(void)sip_treply(NULL, ua->sip, msg, 500, "Server Internal Error");
		return;
	}
	if (mbuf_get_left(msg->mb)) {
		int err = call->media_started ? update_media(call, msg->mb, true) : EPROTO;
		if (!err)
			err = sdp_encode(&desc, call->sdp, false);
		if (err) {
			(void)sip_treplyf(NULL, NULL, ua->sip, msg, false, 488,
			                  "Not Acceptable Here", "Content-Length: 0\r\n\r\n");
			return;
		}
	}
	(void)sip_treplyf(NULL, NULL, ua->sip, msg, false, 200, "OK",
	                  "Contact: <%s>\r\n" ALLOW_HDR "%sContent-Length: %zu\r\n\r\n%b",
	                  call->contact, desc ? "Content-Type: application/sdp\r\n" : "",
	                  desc ? mbuf_get_left(desc) : (size_t)0, desc ? mbuf_buf(desc) : NULL,
	                  desc ? mbuf_get_left(desc) : (size_t)0);
	mem_deref(desc);
}

static bool request_h(const struct sip_msg *msg, void *arg)
{
	struct rv_sip_ua *ua = arg;
	if (!pl_strcmp(&msg->met, "OPTIONS")) {
		(void)sip_treplyf(NULL, NULL, ua->sip, msg, false, 200, "OK",
		                  ALLOW_HDR "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n");
		return true;
	}
	if (!pl_strcmp(&msg->met, "UPDATE") && pl_isset(&msg->to.tag)) {
		update_h(ua, msg);
		return true;
	}
	return false;
}

/* ---- Registration ------------------------------------------------------------------------ */

struct rv_sip_reg {
	struct sipreg *reg;
	rv_sip_reg_h *h;
	void *arg;
	char *aor;
};

static void reg_destructor(void *arg)
{
	struct rv_sip_reg *r = arg;
	/* libre sends the un-REGISTER (Expires: 0) and keeps its object until it completes. */
	mem_deref(r->reg);
	mem_deref(r->aor);
}

static void reg_resp_h(int err, const struct sip_msg *msg, void *arg)
{
	struct rv_sip_reg *r = arg;
	int status = !err && msg ? msg->scode : 0;
	uint32_t expires = status >= 200 && status < 300 ? sipreg_proxy_expires(r->reg) : 0;
	const char *result = status >= 200 && status < 300 ? "ok" : status ? "rejected" : "error";
	char st[8], ex[12];
	snprintf(st, sizeof(st), "%d", status);
	snprintf(ex, sizeof(ex), "%u", expires);
	rv_logkv(status >= 200 && status < 300 ? RV_LOG_INFO : RV_LOG_WARN, "sip", "registration",
	         "aor", r->aor, "result", result, "status", st, "expires", ex, "error",
	         err ? strerror(err) : "-", NULL);
	count("rv_sip_register_total", "REGISTER outcomes", "result", result);
	if (r->h)
		r->h(status, expires, r->arg);
}

int rv_sip_ua_register(struct rv_sip_ua *ua, const struct rv_sip_reg_cfg *cfg, rv_sip_reg_h *h,
                       void *arg, struct rv_sip_reg **out)
{
	struct rv_sip_reg *r = NULL;
	struct creds *creds = NULL;
	char *cuser = NULL;
	struct uri u;
	struct pl pl;
	enum sip_transp tp;
	struct sa ip;
	bool is_ip;
	int err;

	if (!ua || !cfg || !out || !cfg->registrar || !cfg->aor)
		return -EINVAL;
	pl_set_str(&pl, cfg->aor);
	if (parse_target(cfg->registrar, &tp, &ip, &is_ip) || !uri_safe(cfg->aor) ||
	    uri_decode(&u, &pl) || pl_strcasecmp(&u.scheme, "sip")) {
		rv_error("sip", "cannot register \"%s\" at \"%s\": bad URI", cfg->aor,
		         cfg->registrar);
		return -EINVAL;
	}
	r = mem_zalloc(sizeof(*r), reg_destructor);
	if (!r)
		return -ENOMEM;
	r->h = h;
	r->arg = arg;
	err = str_dup(&r->aor, cfg->aor);
	if (!err)
		err =
		    pl_isset(&u.user) ? pl_strdup(&cuser, &u.user) : str_dup(&cuser, CONTACT_USER);
	if (!err && cfg->user)
		err = creds_alloc(cfg->user, cfg->password, &creds);
	if (!err)
		err =
		    sipreg_register(&r->reg, ua->sip, cfg->registrar, cfg->aor, NULL, cfg->aor,
		                    cfg->expires ? cfg->expires : 3600, cuser, NULL, 0, 0,
		                    creds ? auth_h : NULL, creds, true, reg_resp_h, r, NULL, NULL);
	mem_deref(cuser);
	mem_deref(creds); /* libre's auth object holds its own reference */
	if (err) {
		rv_error("sip", "cannot register \"%s\": %s", cfg->aor, strerror(err));
		mem_deref(r);
		return -err;
	}
	rv_logkv(RV_LOG_INFO, "sip", "registering", "aor", cfg->aor, "registrar", cfg->registrar,
	         NULL);
	*out = r;
	return 0;
}

/* ---- The UA ------------------------------------------------------------------------------ */

static void ua_destructor(void *arg)
{
	struct rv_sip_ua *ua = arg;
	while (!list_isempty(&ua->calls))
		rv_call_hangup(list_ledata(list_head(&ua->calls)));
	mem_deref(ua->lsnr);
	mem_deref(ua->evsock);
	mem_deref(ua->sock);
	if (ua->sip)
		sip_close(ua->sip, true);
	mem_deref(ua->sip);
	mem_deref(ua->dnsc);
	mem_deref(ua->listen);
	mem_deref(ua->public_addr);
}

/* A DNS client on the system's resolvers; without one only IP literals can be dialled. */
static void dns_init(struct rv_sip_ua *ua)
{
	char domain[128] = "";
	struct sa nsv[8];
	uint32_t nsc = RV_ARRAY_LEN(nsv);
	int err = dns_srv_get(domain, sizeof(domain), nsv, &nsc);
	if (err) {
		rv_warn("sip", "no DNS servers found (%s): only IP addresses can be dialled",
		        strerror(err));
		nsc = 0;
	}
	err = dnsc_alloc(&ua->dnsc, NULL, nsv, nsc);
	if (err)
		rv_warn("sip", "cannot start a DNS client: %s", strerror(err));
}

int rv_sip_ua_set_dns(struct rv_sip_ua *ua, const char *servers)
{
	struct sa nsv[8];
	uint32_t n = 0;
	struct pl pl, item;
	if (!ua || !servers || !ua->dnsc)
		return ua && !ua->dnsc ? -ENOTSUP : -EINVAL;
	pl_set_str(&pl, servers);
	while (pl.l && !re_regex(pl.p, pl.l, "[^,]+", &item)) {
		if (n == RV_ARRAY_LEN(nsv))
			return -E2BIG;
		if (sa_decode(&nsv[n], item.p, item.l) && sa_set(&nsv[n], &item, 53)) {
			rv_error("sip", "DNS server \"%.*s\" is not IP[:PORT]", (int)item.l,
			         item.p);
			return -EINVAL;
		}
		n++;
		pl_advance(&pl, item.p + item.l - pl.p);
		if (pl.l && *pl.p == ',')
			pl_advance(&pl, 1);
	}
	if (!n)
		return -EINVAL;
	return -dnsc_srv_set(ua->dnsc, nsv, n);
}

int rv_sip_ua_alloc(const struct rv_sip_ua_cfg *cfg, rv_call_event_h *evh, void *arg,
                    struct rv_sip_ua **out)
{
	struct sa laddr;
	int err;
	struct rv_sip_ua *ua = mem_zalloc(sizeof(*ua), ua_destructor);
	if (!ua)
		return -ENOMEM;
	list_init(&ua->calls);
	ua->cfg = *cfg;
	ua->evh = evh;
	ua->arg = arg;
	if (!ua->cfg.max_calls)
		ua->cfg.max_calls = 100;
	if (!ua->cfg.rtp_port_min || ua->cfg.rtp_port_max < ua->cfg.rtp_port_min) {
		ua->cfg.rtp_port_min = 20000;
		ua->cfg.rtp_port_max = 29999;
	}
	err = str_dup(&ua->listen, cfg->listen ? cfg->listen : "0.0.0.0:5060");
	if (err)
		goto out;
	ua->cfg.listen = ua->listen;
	err = sa_decode(&laddr, ua->listen, strlen(ua->listen));
	if (err) {
		rv_error("sip", "sip.listen \"%s\" is not HOST:PORT", ua->listen);
		goto out;
	}
	ua->lsn = laddr;
	if (cfg->public_addr && *cfg->public_addr) {
		err = str_dup(&ua->public_addr, cfg->public_addr);
		if (err)
			goto out;
		if (sa_decode(&ua->pub, ua->public_addr, strlen(ua->public_addr)) &&
		    sa_set_str(&ua->pub, ua->public_addr, 0)) {
			rv_error("sip", "sip.public_addr \"%s\" is not IP or IP:PORT",
			         ua->public_addr);
			err = EINVAL;
			goto out;
		}
		ua->have_pub = true;
	}
	ua->cfg.public_addr = ua->public_addr;
	dns_init(ua);
	/*
	 * libre 1.1.0 cannot bind SIP to a wildcard address: for 0.0.0.0 (or ::) listen on the
	 * default interface's address, which outbound requests then leave from, and on loopback
	 * for peers on this host. Other interfaces need their own UA.
	 */
	struct sa addrs[2];
	size_t naddrs = 0;
	if (sa_is_any(&laddr)) {
		int af = sa_af(&laddr);
		if (!net_default_source_addr_get(af, &addrs[0]) && !sa_is_loopback(&addrs[0]))
			naddrs++;
		(void)sa_set_str(&addrs[naddrs++], af == AF_INET6 ? "::1" : "127.0.0.1", 0);
	} else {
		addrs[naddrs++] = laddr;
	}
	/* With port 0 the kernel picks a free UDP port, which may be taken elsewhere: retry. */
	bool any_port = sa_port(&laddr) == 0;
	for (int attempt = 0; attempt < 20; attempt++) {
		if (ua->sip) {
			sip_close(ua->sip, true);
			ua->sip = mem_deref(ua->sip);
		}
		err = sip_alloc(&ua->sip, ua->dnsc, 32, 32, 32, "RevoVoice", NULL, NULL);
		uint16_t port = any_port ? 0 : sa_port(&laddr);
		for (size_t i = 0; i < naddrs && !err; i++) {
			struct sa a = addrs[i];
			sa_set_port(&a, port);
			err = sip_transp_add(ua->sip, SIP_TRANSP_UDP, &a);
			if (!err && !port) {
				struct sa bound;
				err = sip_transp_laddr(ua->sip, &bound, SIP_TRANSP_UDP, NULL);
				port = sa_port(&bound);
				sa_set_port(&a, port);
			}
			if (!err)
				err = sip_transp_add(ua->sip, SIP_TRANSP_TCP, &a);
		}
		ua->port = port;
		if (err != EADDRINUSE || !any_port)
			break;
	}
	if (!err)
		err = sipsess_listen(&ua->sock, ua->sip, 32, conn_h, ua);
	if (!err)
		err = sipevent_listen(&ua->evsock, ua->sip, 32, 32, NULL, NULL);
	if (!err)
		err = sip_listen(&ua->lsnr, ua->sip, true, request_h, ua);
	if (err)
		rv_error("sip", "cannot listen for SIP on %s: %s", ua->listen, strerror(err));
out:
	if (err) {
		mem_deref(ua);
		return -err;
	}
	rv_info("sip", "SIP listening on %s (udp, tcp) port %u%s%s", ua->listen, ua->port,
	        ua->have_pub ? ", public address " : "", ua->have_pub ? ua->public_addr : "");
	*out = ua;
	return 0;
}

void rv_sip_ua_set_route_handler(struct rv_sip_ua *ua, rv_sip_route_h *h, void *arg)
{
	ua->routeh = h;
	ua->route_arg = arg;
}

uint16_t rv_sip_ua_port(const struct rv_sip_ua *ua)
{
	return ua->port;
}

uint32_t rv_sip_ua_ncalls(const struct rv_sip_ua *ua)
{
	return list_count(&ua->calls);
}

void rv_call_hangup(struct rv_call *call)
{
	if (!call || call->state == CALL_CLOSED)
		return;
	if (call->state == CALL_RINGING && call->sess && !call->outbound && !call->answer_sent)
		(void)sipsess_reject(call->sess, 480, "Temporarily Unavailable", NULL);
	/* After the answer, releasing the session sends the BYE; before it, for an outbound
	 * INVITE, CANCEL (libre keeps the transaction alive until it completes). */
	call->sess = mem_deref(call->sess);
	end_call(call, RV_HANGUP_LOCAL, 0, false);
}

struct rv_audio *rv_call_audio(struct rv_call *call)
{
	return call && call->ms && call->state != CALL_CLOSED ? rv_media_stream_audio(call->ms)
	                                                      : NULL;
}

const char *rv_call_id(const struct rv_call *call)
{
	return call->callid;
}

const char *rv_call_codec(const struct rv_call *call)
{
	return call->codec;
}

bool rv_call_outbound(const struct rv_call *call)
{
	return call->outbound;
}

bool rv_call_on_hold(const struct rv_call *call)
{
	return call->held;
}

const struct rv_sip_inbound *rv_call_inbound(const struct rv_call *call)
{
	return call->outbound ? NULL : &call->in;
}

const char *rv_call_digits(const struct rv_call *call)
{
	return call->digits;
}

void rv_call_set_user(struct rv_call *call, void *user)
{
	call->user = user;
}

void *rv_call_user(const struct rv_call *call)
{
	return call->user;
}

void rv_call_media_stats(const struct rv_call *call, struct rv_media_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (call->ms)
		rv_media_stream_stats(call->ms, out);
}
