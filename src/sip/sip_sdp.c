/* The SDP offer/answer decision: see sip_sdp.h. */
#include <errno.h>
#include <re.h>
#include <string.h>

#include "sip/sip_sdp.h"

/*
 * libre pairs the far end's m-lines with ours by position and marks the formats both sides
 * know `sup`; a throw-away session offering what the UA can do (PCMU, PCMA, telephone-event
 * on RTP/AVP) therefore answers every question about an SDP without touching the call.
 */
static int probe_session(struct sdp_session **sessp, struct sdp_media **mp)
{
	struct sdp_session *sess = NULL;
	struct sdp_media *m = NULL;
	struct sa laddr;
	int err = sa_set_str(&laddr, "127.0.0.1", 9);
	if (!err)
		err = sdp_session_alloc(&sess, &laddr);
	if (!err)
		err = sdp_media_add(&m, sess, sdp_media_audio, 9, sdp_proto_rtpavp);
	if (!err)
		err = sdp_format_add(NULL, m, false, "0", "PCMU", 8000, 1, NULL, NULL, NULL, false,
		                     NULL);
	if (!err)
		err = sdp_format_add(NULL, m, false, "8", "PCMA", 8000, 1, NULL, NULL, NULL, false,
		                     NULL);
	if (!err)
		err = sdp_format_add(NULL, m, false, "101", telev_rtpfmt, 8000, 1, NULL, NULL, NULL,
		                     false, "0-15");
	if (err) {
		mem_deref(sess);
		return err;
	}
	*sessp = sess;
	*mp = m;
	return 0;
}

int rv_sip_sdp_choose(const char *sdp, size_t len, struct rv_sdp_choice *out)
{
	struct sdp_session *sess = NULL;
	struct sdp_media *m = NULL;
	struct mbuf *mb = NULL;
	struct rv_sdp_choice c = {.telev_pt = -1, .pt = -1};
	int err;

	if (!sdp || !len)
		return -EBADMSG;
	if (len > RV_SIP_SDP_MAX)
		return -EMSGSIZE;
	err = probe_session(&sess, &m);
	if (err) {
		err = -err;
		goto out;
	}
	mb = mbuf_alloc(len);
	if (!mb || mbuf_write_mem(mb, (const uint8_t *)sdp, len)) {
		err = -ENOMEM;
		goto out;
	}
	mb->pos = 0;
	err = sdp_decode(sess, mb, true);
	if (err) {
		/* ENOTSUP: the first m-line is not audio, so libre cannot pair ours with it. */
		err = err == ENOTSUP ? -ENOMEDIUM : err == ENOMEM ? -ENOMEM : -EBADMSG;
		goto out;
	}
	if (list_isempty(sdp_media_format_lst(m, false))) {
		err = -ENOMEDIUM;
		goto out;
	}
	if (!sdp_media_rport(m)) {
		err = -ENOTCONN;
		goto out;
	}
	/* The far end's order is its preference: the first G.711 law it lists wins. */
	for (struct le *le = list_head(sdp_media_format_lst(m, false)); le; le = le->next) {
		const struct sdp_format *f = le->data;
		if (!f->sup)
			continue;
		if (f->pt == 0 || f->pt == 8) {
			bool u = f->pt == 0;
			c.pcmu |= u;
			c.pcma |= !u;
			if (!c.codec) {
				c.codec = u ? "PCMU" : "PCMA";
				c.pt = f->pt;
			}
		} else if (c.telev_pt < 0 && f->pt > 0 && f->pt <= 127 && f->name &&
		           !str_casecmp(f->name, telev_rtpfmt)) {
			/* RTP carries 7 bits of payload type: anything else can never match. */
			c.telev_pt = f->pt;
		}
	}
	if (!c.codec) {
		err = -ENOTSUP;
		goto out;
	}
	const struct sa *ra = sdp_media_raddr(m);
	c.port = sdp_media_rport(m);
	if (ra && sa_isset(ra, SA_ADDR))
		(void)re_snprintf(c.addr, sizeof(c.addr), "%j", ra);
	/* libre stores the far end's direction from our side: its sendonly is our recvonly. */
	enum sdp_dir d = sdp_media_rdir(m);
	c.hold = !c.addr[0] || !(d & SDP_SENDONLY);
	c.recv = (d & SDP_RECVONLY) != 0;
	*out = c;
	err = 0;
out:
	mem_deref(mb);
	mem_deref(sess);
	return err;
}

const char *rv_sip_sdp_reason(int err)
{
	switch (err) {
	case -EBADMSG:
		return "malformed";
	case -ENOMEDIUM:
		return "no_audio";
	case -ENOTCONN:
		return "port0";
	case -ENOTSUP:
		return "codec";
	case -EMSGSIZE:
		return "too_big";
	default:
		return "error";
	}
}
