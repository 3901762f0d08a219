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
	struct rv_media_stream *ms;
	struct tmr ring_tmr;
	enum call_state state;
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

/* The call is over: stop media, tell the application, drop the UA's reference. */
static void end_call(struct rv_call *call, enum rv_hangup_cause cause)
{
	if (call->state == CALL_CLOSED)
		return;
	call->state = CALL_CLOSED;
	tmr_cancel(&call->ring_tmr);
	if (call->ms)
		rv_media_stream_stop(call->ms);
	static const char *const names[] = {"remote_bye", "local", "cancelled", "error"};
	rv_logkv(RV_LOG_INFO, "sip", "call ended", "call_id", call->callid ? call->callid : "",
	         "cause", names[cause], NULL);
	mem_ref(call);
	struct rv_call_event ev = {.type = RV_CALL_EV_HANGUP, .cause = cause};
	emit(call, &ev);
	list_unlink(&call->le);
	mem_deref(call); /* the UA's reference */
	mem_deref(call); /* ours */
}

static void close_h(int err, const struct sip_msg *msg, void *arg)
{
	struct rv_call *call = arg;
	enum rv_hangup_cause cause;
	(void)msg;
	if (err == ECONNRESET)
		cause = call->state == CALL_ANSWERED ? RV_HANGUP_REMOTE_BYE : RV_HANGUP_CANCELLED;
	else
		cause = RV_HANGUP_ERROR;
	if (cause == RV_HANGUP_ERROR)
		rv_logkv(RV_LOG_WARN, "sip", "call failed", "call_id", call->callid, "error",
		         strerror(err), NULL);
	/* The session is finished; releasing it now must not send anything. */
	call->sess = mem_deref(call->sess);
	end_call(call, cause);
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
		end_call(call, RV_HANGUP_ERROR);
		return;
	}
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
		end_call(call, RV_HANGUP_ERROR);
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
	if (call->state == CALL_RINGING && call->sess)
		(void)sipsess_reject(call->sess, 480, "Temporarily Unavailable", NULL);
	/* After the answer, releasing the session sends the BYE (libre keeps the transaction
	 * alive until it completes). */
	call->sess = mem_deref(call->sess);
	end_call(call, RV_HANGUP_LOCAL);
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
