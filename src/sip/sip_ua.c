/* The SIP user agent and its calls: see sip_ua.h. */
#include <errno.h>
#include <re.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_g711.h"
#include "media/media_stream.h"
#include "obs/metrics.h"
#include "sip/sip_ua.h"

#define ALLOW_HDR      "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n"
#define TELEV_PT_LOCAL "101"
#define NO_ANSWER_MS   30000

struct rv_sip_ua {
	struct sip *sip;
	struct sipsess_sock *sock;
	struct sip_lsnr *lsnr;
	struct list calls;
	struct rv_sip_ua_cfg cfg;
	char *listen;
	uint16_t port;
	rv_call_event_h *evh;
	void *arg;
};

enum call_state { CALL_RINGING, CALL_ANSWERED, CALL_CLOSED };

struct rv_call {
	struct le le;
	struct rv_sip_ua *ua;
	struct sipsess *sess;
	struct sdp_session *sdp;
	struct sdp_media *sdpm; /* outbound: our offered audio line (owned by sdp) */
	struct rv_media_stream *ms;
	struct tmr ring_tmr; /* inbound: 180 -> 200; outbound: the no-answer timeout */
	enum call_state state;
	bool outbound, media_started;
	char *callid;
	const char *codec;
	int pt, telev_pt;
	struct sa raddr;
	char digits[64];
	size_t ndigits;
	void *user;
};

static void count(const char *metric, const char *help, const char *label)
{
	rv_metrics_register(metric, RV_METRIC_COUNTER, help, "reason", NULL, 0);
	rv_metrics_inc(metric, 1, label, NULL);
}

/* Digest credentials for an outbound call, owned by libre's auth object. */
struct creds {
	char *user, *pass;
};

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

static void emit(struct rv_call *call, const struct rv_call_event *ev)
{
	if (call->ua && call->ua->evh)
		call->ua->evh(call, ev, call->ua->arg);
}

static void call_destructor(void *arg)
{
	struct rv_call *call = arg;
	tmr_cancel(&call->ring_tmr);
	list_unlink(&call->le);
	/* A live established session says BYE as it goes; a closed one is just freed. */
	mem_deref(call->sess);
	mem_deref(call->ms);
	mem_deref(call->sdp);
	mem_deref(call->callid);
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
	if (call->ms)
		rv_media_stream_stop(call->ms);
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
		count("rv_sip_outbound_failed_total", "Outbound calls not answered",
		      rv_call_disposition_name(rv_sip_status_disposition(status)));
	} else {
		cause = RV_HANGUP_ERROR;
		remote = false;
		rv_logkv(RV_LOG_WARN, "sip", "call failed", "call_id", call->callid, "error",
		         strerror(err ? err : EPROTO), NULL);
		if (call->outbound && call->state != CALL_ANSWERED)
			count("rv_sip_outbound_failed_total", "Outbound calls not answered",
			      "error");
	}
	/* The session is finished; releasing it now must not send anything. */
	call->sess = mem_deref(call->sess);
	end_call(call, cause, status, remote);
}

static void estab_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	(void)msg;
	rv_logkv(RV_LOG_DEBUG, "sip", "ACK received", "call_id", call->callid, NULL);
}

static int offer_h(struct mbuf **descp, const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	/* re-INVITE: keep the negotiated media, answer from the same session. Hold/unhold and
	 * address changes are not acted on yet. */
	int err = sdp_decode(call->sdp, msg->mb, true);
	if (err)
		return err;
	return sdp_encode(descp, call->sdp, false);
}

static int answer_h(const struct sip_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return 0;
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

static void ring_tmr_h(void *arg)
{
	struct rv_call *call = arg;
	struct mbuf *desc = NULL;
	int err = sdp_encode(&desc, call->sdp, false);
	if (!err)
		err = sipsess_answer(call->sess, 200, "OK", desc, ALLOW_HDR);
	mem_deref(desc);
	if (!err)
		err = -rv_media_stream_start(call->ms, &call->raddr, call->pt, call->telev_pt,
		                             dtmf_h, call);
	if (err) {
		rv_logkv(RV_LOG_ERROR, "sip", "cannot answer", "call_id", call->callid, "error",
		         strerror(err), NULL);
		end_call(call, RV_HANGUP_ERROR, 0, false);
		return;
	}
	call->media_started = true;
	call->state = CALL_ANSWERED;
	rv_logkv(RV_LOG_INFO, "sip", "call answered", "call_id", call->callid, "codec", call->codec,
	         NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_ANSWERED};
	emit(call, &ev);
}

/*
 * Build an SDP session for the call on laddr:port offering the allowed codecs and decode the
 * remote offer into it. libre aligns the local formats to the offer (its payload types and
 * its order) and marks the common ones `sup`.
 */
static int sdp_for_offer(const struct sa *laddr, uint16_t port, bool pcmu, bool pcma, bool te,
                         struct mbuf *offer, struct sdp_session **out, struct sdp_media **mout)
{
	struct sdp_session *sdp = NULL;
	struct sdp_media *m = NULL;
	size_t pos = offer->pos;
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
	if (!err)
		err = sdp_decode(sdp, offer, true);
	offer->pos = pos;
	if (err) {
		mem_deref(sdp);
		return err;
	}
	*out = sdp;
	*mout = m;
	return 0;
}

/* Pick the first common G.711 codec in the offerer's order and build the answer session. */
static int negotiate(struct rv_call *call, const struct sa *laddr, struct mbuf *offer)
{
	struct sdp_session *probe = NULL;
	struct sdp_media *m = NULL;
	uint16_t port = rv_media_stream_port(call->ms);
	int err = sdp_for_offer(laddr, port, true, true, true, offer, &probe, &m);
	if (err)
		return err;
	const char *codec = NULL;
	bool te = false;
	for (struct le *le = list_head(sdp_media_format_lst(m, true)); le; le = le->next) {
		const struct sdp_format *f = le->data;
		if (!f->sup)
			continue;
		if (!codec && (!str_casecmp(f->name, "PCMU") || !str_casecmp(f->name, "PCMA")))
			codec = !str_casecmp(f->name, "PCMU") ? "PCMU" : "PCMA";
		if (!str_casecmp(f->name, telev_rtpfmt))
			te = true;
	}
	mem_deref(probe);
	if (!codec)
		return ENOTSUP;

	bool u = !strcmp(codec, "PCMU");
	err = sdp_for_offer(laddr, port, u, !u, te, offer, &call->sdp, &m);
	if (err)
		return err;
	const struct sa *ra = sdp_media_raddr(m);
	if (!ra || !sa_isset(ra, SA_ALL))
		return EPROTO;
	call->raddr = *ra;
	call->codec = codec;
	call->pt = u ? RV_G711_PT_PCMU : RV_G711_PT_PCMA;
	call->telev_pt = -1;
	if (te) {
		const struct sdp_format *f = sdp_media_rformat(m, telev_rtpfmt);
		if (f)
			call->telev_pt = f->pt;
	}
	return 0;
}

static void conn_h(const struct sip_msg *msg, void *arg)
{
	struct rv_sip_ua *ua = arg;
	struct rv_call *call = NULL;
	struct sa laddr;
	int err;

	(void)sip_reply(ua->sip, msg, 100, "Trying");
	if (list_count(&ua->calls) >= ua->cfg.max_calls) {
		count("rv_sip_calls_rejected_total", "Inbound calls refused", "capacity");
		(void)sip_treply(NULL, ua->sip, msg, 486, "Busy Here");
		return;
	}
	if (!mbuf_get_left(msg->mb)) {
		/* Late offer (offer in the 200, answer in the ACK) is not supported yet. */
		rv_warn("sip", "INVITE without SDP offer refused");
		count("rv_sip_calls_rejected_total", "Inbound calls refused", "no_offer");
		(void)sip_treply(NULL, ua->sip, msg, 488, "Not Acceptable Here");
		return;
	}
	call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call) {
		(void)sip_treply(NULL, ua->sip, msg, 500, "Server Internal Error");
		return;
	}
	tmr_init(&call->ring_tmr);
	call->ua = ua;
	call->telev_pt = -1;
	err = pl_strdup(&call->callid, &msg->callid);
	if (err)
		goto fail500;

	sa_cpy(&laddr, &msg->dst);
	sa_set_port(&laddr, 0);
	err = rv_media_stream_alloc(&laddr, ua->cfg.rtp_port_min, ua->cfg.rtp_port_max, &call->ms);
	if (err) {
		err = -err;
		goto fail500;
	}
	err = negotiate(call, &laddr, msg->mb);
	if (err) {
		rv_logkv(RV_LOG_WARN, "sip", "no usable media in the offer", "call_id",
		         call->callid, "error", strerror(err), NULL);
		count("rv_sip_calls_rejected_total", "Inbound calls refused", "codec");
		(void)sip_treply(NULL, ua->sip, msg, 488, "Not Acceptable Here");
		mem_deref(call);
		return;
	}

	list_append(&ua->calls, &call->le, call);
	call->state = CALL_RINGING;
	rv_logkv(RV_LOG_INFO, "sip", "incoming call", "call_id", call->callid, NULL);
	struct rv_call_event ev = {.type = RV_CALL_EV_INCOMING};
	emit(call, &ev);
	if (call->state == CALL_CLOSED) {
		/* The application hung up on the INCOMING event: decline. */
		(void)sip_treply(NULL, ua->sip, msg, 603, "Decline");
		return;
	}

	err = sipsess_accept(&call->sess, ua->sock, msg, 180, "Ringing", "revovoice",
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
	(void)sip_treply(NULL, ua->sip, msg, 500, "Server Internal Error");
	mem_deref(call);
}

/* ---- Outbound calls ---------------------------------------------------------------------- */

/*
 * Take the far end's SDP answer (from a 183 or the 200): pick the first G.711 codec in its
 * order, note telephone-event, and start the media towards its address. Media that already
 * runs from early media keeps running.
 */
static int apply_answer(struct rv_call *call, const struct sip_msg *msg)
{
	if (call->media_started)
		return 0;
	if (!mbuf_get_left(msg->mb))
		return EBADMSG; /* a 200 without an answer to our offer */
	size_t pos = msg->mb->pos;
	int err = sdp_decode(call->sdp, msg->mb, false);
	msg->mb->pos = pos;
	if (err)
		return err;
	struct sdp_media *m = call->sdpm;
	const char *codec = NULL;
	int pt = -1;
	for (struct le *le = list_head(sdp_media_format_lst(m, false)); le; le = le->next) {
		const struct sdp_format *f = le->data;
		if (!str_casecmp(f->name, "PCMU") || !str_casecmp(f->name, "PCMA")) {
			codec = !str_casecmp(f->name, "PCMU") ? "PCMU" : "PCMA";
			pt = f->pt;
			break;
		}
	}
	const struct sa *ra = sdp_media_raddr(m);
	if (!codec || !ra || !sa_isset(ra, SA_ALL) || !sdp_media_rport(m))
		return ENOTSUP;
	call->codec = codec;
	call->pt = pt;
	call->raddr = *ra;
	call->telev_pt = -1;
	const struct sdp_format *te = sdp_media_rformat(m, telev_rtpfmt);
	if (te)
		call->telev_pt = te->pt;
	err =
	    -rv_media_stream_start(call->ms, &call->raddr, call->pt, call->telev_pt, dtmf_h, call);
	if (err)
		return err;
	call->media_started = true;
	return 0;
}

static void out_progr_h(const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	if (call->state != CALL_RINGING || msg->scode == 100)
		return;
	struct rv_call_event ev = {.type = RV_CALL_EV_RINGING, .sip_status = msg->scode};
	emit(call, &ev);
	if (call->state != CALL_RINGING || call->media_started || !mbuf_get_left(msg->mb) ||
	    !msg_ctype_cmp(&msg->ctyp, "application", "sdp"))
		return;
	int err = apply_answer(call, msg);
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
	int err = apply_answer(call, msg);
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
	rv_logkv(RV_LOG_INFO, "sip", "no answer: cancelling", "call_id", call->callid, NULL);
	count("rv_sip_outbound_failed_total", "Outbound calls not answered", "no_answer");
	/* Releasing a session whose INVITE is pending sends CANCEL; libre keeps it until the 487
	 * (or a crossing 200, which it ACKs and ends with BYE). */
	call->sess = mem_deref(call->sess);
	end_call(call, RV_HANGUP_NO_ANSWER, 0, false);
}

static void creds_destructor(void *arg)
{
	struct creds *c = arg;
	mem_deref(c->user);
	if (c->pass)
		memset(c->pass, 0, strlen(c->pass));
	mem_deref(c->pass);
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

/* Our address towards dst: the SIP socket's, or when it is a wildcard, a routable one. */
static int local_addr(struct rv_sip_ua *ua, enum sip_transp tp, const struct sa *dst,
                      struct sa *out)
{
	int err = sip_transp_laddr(ua->sip, out, tp, NULL);
	if (err)
		return err;
	if (!sa_is_any(out))
		return 0;
	if (sa_is_loopback(dst))
		return sa_set_str(out, sa_af(dst) == AF_INET6 ? "::1" : "127.0.0.1", 0);
	return net_default_source_addr_get(sa_af(dst), out);
}

static int offer_sdp(struct rv_call *call, const struct sa *laddr, struct mbuf **descp)
{
	struct sdp_media *m = NULL;
	int err = sdp_session_alloc(&call->sdp, laddr);
	if (!err)
		err = sdp_media_add(&m, call->sdp, sdp_media_audio, rv_media_stream_port(call->ms),
		                    sdp_proto_rtpavp);
	if (!err)
		err = sdp_format_add(NULL, m, false, "0", "PCMU", 8000, 1, NULL, NULL, NULL, false,
		                     NULL);
	if (!err)
		err = sdp_format_add(NULL, m, false, "8", "PCMA", 8000, 1, NULL, NULL, NULL, false,
		                     NULL);
	if (!err)
		err = sdp_format_add(NULL, m, false, TELEV_PT_LOCAL, telev_rtpfmt, 8000, 1, NULL,
		                     NULL, NULL, false, "0-15");
	if (!err)
		err = sdp_media_set_lattr(m, true, sdp_attr_ptime, "20");
	if (!err)
		err = sdp_encode(descp, call->sdp, true);
	if (!err)
		call->sdpm = m;
	return err;
}

int rv_sip_ua_dial(struct rv_sip_ua *ua, const struct rv_sip_dial *d, void *user,
                   struct rv_call **out)
{
	struct rv_call *call = NULL;
	struct creds *creds = NULL;
	struct mbuf *desc = NULL;
	char *from = NULL;
	struct uri u;
	struct pl pl, tpv;
	struct sa dst, laddr;
	enum sip_transp tp = SIP_TRANSP_UDP;
	int err;

	if (!ua || !d || !d->uri)
		return -EINVAL;
	pl_set_str(&pl, d->uri);
	if (uri_decode(&u, &pl) || pl_strcasecmp(&u.scheme, "sip") || !pl_isset(&u.host) ||
	    sa_set(&dst, &u.host, u.port ? u.port : SIP_PORT)) {
		rv_error("sip", "cannot dial \"%s\": not sip:user@IP[:port]", d->uri);
		return -EINVAL;
	}
	if (!msg_param_decode(&u.params, "transport", &tpv)) {
		if (!pl_strcasecmp(&tpv, "tcp")) {
			tp = SIP_TRANSP_TCP;
		} else if (pl_strcasecmp(&tpv, "udp")) {
			rv_error("sip", "cannot dial \"%s\": transport %.*s not supported", d->uri,
			         (int)tpv.l, tpv.p);
			return -EINVAL;
		}
	}
	if (list_count(&ua->calls) >= ua->cfg.max_calls) {
		rv_warn("sip", "cannot dial \"%s\": %u calls in progress", d->uri,
		        ua->cfg.max_calls);
		return -EBUSY;
	}
	if (local_addr(ua, tp, &dst, &laddr)) {
		rv_error("sip", "cannot dial \"%s\": no local address towards it", d->uri);
		return -EADDRNOTAVAIL;
	}
	sa_set_port(&laddr, 0);

	call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call)
		return -ENOMEM;
	tmr_init(&call->ring_tmr);
	call->ua = ua;
	call->outbound = true;
	call->telev_pt = -1;
	call->user = user;
	err = -rv_media_stream_alloc(&laddr, ua->cfg.rtp_port_min, ua->cfg.rtp_port_max, &call->ms);
	if (!err)
		err = offer_sdp(call, &laddr, &desc);
	if (!err)
		err = d->from ? str_dup(&from, d->from)
		              : re_sdprintf(&from, "sip:revovoice@%j", &laddr);
	if (!err && d->user) {
		creds = mem_zalloc(sizeof(*creds), creds_destructor);
		err = creds ? str_dup(&creds->user, d->user) : ENOMEM;
		if (!err)
			err = str_dup(&creds->pass, d->password ? d->password : "");
	}
	if (err)
		goto out;

	list_append(&ua->calls, &call->le, call);
	call->state = CALL_RINGING;
	err = sipsess_connect(&call->sess, ua->sock, d->uri, NULL, from, "revovoice", NULL, 0,
	                      "application/sdp", desc, creds ? auth_h : NULL, creds, true, offer_h,
	                      out_answer_h, out_progr_h, out_estab_h, NULL, NULL, close_h, call,
	                      ALLOW_HDR);
	if (err) {
		list_unlink(&call->le);
		goto out;
	}
	err = str_dup(&call->callid, sip_dialog_callid(sipsess_dialog(call->sess)));
	if (err) {
		list_unlink(&call->le);
		goto out;
	}
	tmr_start(&call->ring_tmr, d->timeout_ms ? d->timeout_ms : NO_ANSWER_MS, noanswer_tmr_h,
	          call);
	rv_logkv(RV_LOG_INFO, "sip", "dialing", "call_id", call->callid, "to", d->uri, "from", from,
	         "transport", tp == SIP_TRANSP_TCP ? "tcp" : "udp", NULL);
out:
	mem_deref(desc);
	mem_deref(from);
	mem_deref(creds); /* libre's auth object holds its own reference */
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

static bool options_h(const struct sip_msg *msg, void *arg)
{
	struct rv_sip_ua *ua = arg;
	if (pl_strcmp(&msg->met, "OPTIONS"))
		return false;
	(void)sip_treplyf(NULL, NULL, ua->sip, msg, false, 200, "OK",
	                  ALLOW_HDR "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n");
	return true;
}

static void ua_destructor(void *arg)
{
	struct rv_sip_ua *ua = arg;
	while (!list_isempty(&ua->calls))
		rv_call_hangup(list_ledata(list_head(&ua->calls)));
	mem_deref(ua->lsnr);
	mem_deref(ua->sock);
	if (ua->sip)
		sip_close(ua->sip, true);
	mem_deref(ua->sip);
	mem_deref(ua->listen);
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
	/* With port 0 the kernel picks a free UDP port, which may be taken on TCP: try again. */
	bool any_port = sa_port(&laddr) == 0;
	for (int attempt = 0; attempt < 20; attempt++) {
		if (ua->sip) {
			sip_close(ua->sip, true);
			ua->sip = mem_deref(ua->sip);
		}
		sa_set_port(&laddr, 0);
		if (!any_port)
			(void)sa_decode(&laddr, ua->listen, strlen(ua->listen));
		err = sip_alloc(&ua->sip, NULL, 32, 32, 32, "RevoVoice", NULL, NULL);
		if (!err)
			err = sip_transp_add(ua->sip, SIP_TRANSP_UDP, &laddr);
		if (!err) {
			struct sa bound;
			err = sip_transp_laddr(ua->sip, &bound, SIP_TRANSP_UDP, NULL);
			if (!err) {
				ua->port = sa_port(&bound);
				sa_set_port(&laddr, ua->port);
			}
		}
		if (!err)
			err = sip_transp_add(ua->sip, SIP_TRANSP_TCP, &laddr);
		if (err != EADDRINUSE || !any_port)
			break;
	}
	if (!err)
		err = sipsess_listen(&ua->sock, ua->sip, 32, conn_h, ua);
	if (!err)
		err = sip_listen(&ua->lsnr, ua->sip, true, options_h, ua);
	if (err)
		rv_error("sip", "cannot listen for SIP on %s: %s", ua->listen, strerror(err));
out:
	if (err) {
		mem_deref(ua);
		return -err;
	}
	rv_info("sip", "SIP listening on %s (udp, tcp) port %u", ua->listen, ua->port);
	*out = ua;
	return 0;
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
	if (call->state == CALL_RINGING && call->sess && !call->outbound)
		(void)sipsess_reject(call->sess, 480, "Temporarily Unavailable", NULL);
	/* After the answer, releasing the session sends the BYE; before the answer of an
	 * outbound call it sends CANCEL (libre keeps the transaction alive until it completes). */
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
