/* A call's RTP stream and its audio interface: see media_stream.h and media_audio.h. */
#include <errno.h>
#include <re.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_audio_int.h"
#include "media/media_dtmf.h"
#include "media/media_g711.h"
#include "media/media_pace.h"
#include "media/media_rec.h"
#include "media/media_resample.h"
#include "media/media_stream.h"
#include "obs/metrics.h"

#define TEL_RATE       8000
#define TEL_FRAME      (TEL_RATE / 1000 * RV_MEDIA_PTIME_MS) /* 160 samples */
#define RX_MAX_PAYLOAD 1280 /* 160 ms of G.711: anything larger is not a sane packet */
#define RX_FIFO        (RX_MAX_PAYLOAD * 2)
#define JBUF_MIN       1
#define JBUF_MAX       16
#define MAX_BURST      10 /* catch up at most 200 ms after a stall, then skip */
/*
 * An in-band digit waits this many ticks before it is reported: phones that send both RFC 4733
 * and audible tones may start the event a little after the tone, and the event wins.
 */
#define INBAND_HOLD_TICKS 5
#define DROP_LOG_MS       10000 /* at most one drop summary per stream per 10 s */
#define UDP_HELPER_LAYER  -100  /* our checks run before any other helper */

/* Why a received packet was dropped: the label of rv_media_rtp_dropped_total. */
enum drop_reason {
	DROP_SOURCE,         /* RTP from an address other than the latched peer */
	DROP_NOT_STARTED,    /* RTP before rv_media_stream_start() */
	DROP_TRUNCATED,      /* shorter than its header (CSRCs, extension) says */
	DROP_VERSION,        /* not RTP version 2 */
	DROP_PADDING,        /* padding count of zero or beyond the payload */
	DROP_EMPTY,          /* no payload */
	DROP_OVERSIZED,      /* payload above RX_MAX_PAYLOAD */
	DROP_PAYLOAD,        /* payload type not negotiated */
	DROP_TELEV_SHORT,    /* telephone-event payload under 4 bytes */
	DROP_DTMF_EVENT,     /* telephone-event that is not a DTMF digit */
	DROP_LATE,           /* too late for the jitter buffer */
	DROP_DUPLICATE,      /* a sequence number already buffered */
	DROP_RTCP_SOURCE,    /* RTCP from an address other than the peer's */
	DROP_RTCP_MALFORMED, /* RTCP that does not decode */
	DROP_STUN,           /* a STUN message (NAT pinholes, ICE checks): not ours to answer */
	DROP_N
};

static const char *const drop_label[DROP_N] = {
    [DROP_SOURCE] = "source",
    [DROP_NOT_STARTED] = "not_started",
    [DROP_TRUNCATED] = "truncated",
    [DROP_VERSION] = "version",
    [DROP_PADDING] = "padding",
    [DROP_EMPTY] = "empty",
    [DROP_OVERSIZED] = "oversized",
    [DROP_PAYLOAD] = "payload",
    [DROP_TELEV_SHORT] = "telev_short",
    [DROP_DTMF_EVENT] = "dtmf_event",
    [DROP_LATE] = "late",
    [DROP_DUPLICATE] = "duplicate",
    [DROP_RTCP_SOURCE] = "rtcp_source",
    [DROP_RTCP_MALFORMED] = "rtcp_malformed",
    [DROP_STUN] = "stun",
};

/* One received G.711 payload, kept in the jitter buffer until its tick. */
struct rx_packet {
	uint8_t pt;
	size_t len;
	uint8_t data[];
};

struct rv_media_stream {
	struct rtp_sock *rtp;
	struct udp_helper *rtp_helper, *rtcp_helper;
	struct jbuf *jb;
	struct rv_resampler *up, *down; /* 8k -> 16k (caller), 16k -> 8k (agent) */
	struct le tick_le;              /* in its tick slot's list while started */
	struct tick_slot *slot;
	struct rv_pace pace;
	struct sa raddr;
	bool latched, started, rtcp_mux, rtcp_latched;
	char cname[32];
	int send_pt, telev_pt;
	enum rv_g711_law send_law;
	uint32_t tx_ts;
	bool tx_first;
	uint32_t last_rx_ts;
	bool mute_tx; /* the far end holds us: no RTP out */
	bool have_rx_ssrc;
	uint32_t rx_ssrc;
	uint16_t rx_last_seq;
	/* RFC 3550 A.8 jitter estimate in 8 kHz units, scaled by 16 (integer arithmetic). */
	bool jit_have;
	uint32_t jit_ssrc;
	int64_t jit_transit;
	uint64_t jit_q4;
	rv_media_dtmf_h *dtmf_h;
	void *dtmf_arg;
	struct rv_dtmf_rx dtmf_rx;
	struct rv_dtmf_tx *dtmf_tx;    /* created by the first rv_audio_send_dtmf() */
	struct rv_dtmf_detect *detect; /* in-band detector */
	bool telev_seen;               /* RFC 4733 digits arrived: in-band is ignored */
	char inband_digit;             /* detected, waiting INBAND_HOLD_TICKS */
	unsigned inband_hold;
	uint32_t drops[DROP_N]; /* drops since the last summary line */
	uint64_t drop_log_ms;
	bool drop_logged;
	int16_t rx_fifo[RX_FIFO]; /* decoded 8 kHz caller samples waiting for a tick */
	size_t rx_fifo_n;
	struct rv_audio audio;
	struct rv_media_stats st;
};

/* "ip:port" of an address for log lines (libre's %J is not a printf conversion). */
static const char *sa_str(const struct sa *sa, char *buf, size_t len)
{
	if (re_snprintf(buf, len, "%J", sa) < 0)
		rv_strlcpy(buf, "?", len);
	return buf;
}

/* Log what was dropped since the last summary, if anything. */
static void drop_summary(struct rv_media_stream *ms)
{
	char line[512], a[64];
	size_t off = 0;
	uint32_t total = 0, stun = ms->drops[DROP_STUN];
	for (int i = 0; i < DROP_N; i++) {
		if (!ms->drops[i])
			continue;
		total += ms->drops[i];
		int w = snprintf(line + off, sizeof(line) - off, "%s%s=%u", off ? " " : "",
		                 drop_label[i], ms->drops[i]);
		if (w > 0 && (size_t)w < sizeof(line) - off)
			off += (size_t)w;
		ms->drops[i] = 0;
	}
	if (!total)
		return;
	/* STUN alone is a peer's normal NAT keep-alive, not a fault: debug, not a warning. */
	if (total == stun)
		rv_debug("media", "RTP stream on port %u (peer %s): dropped %u STUN packets",
		         sa_port(rtp_local(ms->rtp)), sa_str(&ms->raddr, a, sizeof(a)), total);
	else
		rv_warn("media", "RTP stream on port %u (peer %s): dropped %u packets: %s",
		        sa_port(rtp_local(ms->rtp)), sa_str(&ms->raddr, a, sizeof(a)), total, line);
}

/*
 * Count a dropped packet: the stream's stats, the metric by reason, and a log line that is
 * rate limited per stream: the first drop is logged at once, later ones are summed into one
 * line per DROP_LOG_MS (and a last one when the stream stops), so a flood costs no log I/O.
 */
static void drop(struct rv_media_stream *ms, enum drop_reason why)
{
	rv_metrics_register("rv_media_rtp_dropped_total", RV_METRIC_COUNTER,
	                    "RTP and RTCP packets dropped on receive, by reason", "reason", NULL,
	                    0);
	rv_metrics_inc("rv_media_rtp_dropped_total", 1, drop_label[why], NULL);
	switch (why) {
	case DROP_SOURCE:
	case DROP_RTCP_SOURCE:
		ms->st.rx_bad_source++;
		break;
	case DROP_LATE:
	case DROP_DUPLICATE:
		ms->st.rx_late++;
		break;
	case DROP_NOT_STARTED:
	case DROP_STUN:
		break;
	default:
		ms->st.rx_malformed++;
		break;
	}
	ms->drops[why]++;
	uint64_t now = tmr_jiffies();
	if (!ms->drop_logged || now - ms->drop_log_ms >= DROP_LOG_MS) {
		ms->drop_logged = true;
		ms->drop_log_ms = now;
		drop_summary(ms);
	}
}

static void stream_destructor(void *arg)
{
	struct rv_media_stream *ms = arg;
	rv_media_stream_stop(ms);
	rv_audio_fini(&ms->audio);
	mem_deref(ms->rtp_helper);
	mem_deref(ms->rtcp_helper);
	mem_deref(ms->rtp);
	mem_deref(ms->jb);
	mem_deref(ms->up);
	mem_deref(ms->down);
	mem_deref(ms->dtmf_tx);
	mem_deref(ms->detect);
}

static void report_digit(struct rv_media_stream *ms, char digit)
{
	if (ms->dtmf_h)
		ms->dtmf_h(digit, ms->dtmf_arg);
}

static void on_telev(struct rv_media_stream *ms, const struct rtp_header *hdr, struct mbuf *mb)
{
	struct rv_telev ev;
	if (rv_telev_decode(mbuf_buf(mb), mbuf_get_left(mb), &ev) != 0) {
		drop(ms, DROP_TELEV_SHORT);
		return;
	}
	if (!rv_dtmf_digit(ev.event)) {
		drop(ms, DROP_DTMF_EVENT);
		return;
	}
	/* This peer signals digits out of band: its audible tones, if any, are the same presses. */
	ms->telev_seen = true;
	ms->inband_digit = 0;
	char digit = rv_dtmf_rx_event(&ms->dtmf_rx, hdr->ts, &ev);
	if (!digit)
		return;
	ms->st.dtmf_events++;
	report_digit(ms, digit);
}

/* Arrival time in RTP clock units (8 kHz), from the monotonic clock. */
static int64_t arrival_ts(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * TEL_RATE + (int64_t)t.tv_nsec / (1000000000 / TEL_RATE);
}

/* Interarrival jitter (RFC 3550 section 6.4.1): J += (|D| - J) / 16, restarted on a new SSRC. */
static void update_jitter(struct rv_media_stream *ms, const struct rtp_header *hdr)
{
	int64_t transit = arrival_ts() - (int64_t)hdr->ts;
	if (!ms->jit_have || hdr->ssrc != ms->jit_ssrc) {
		ms->jit_have = true;
		ms->jit_ssrc = hdr->ssrc;
		ms->jit_transit = transit;
		ms->jit_q4 = 0;
		return;
	}
	int64_t d = transit - ms->jit_transit;
	ms->jit_transit = transit;
	if (d < 0)
		d = -d;
	/* Wrapped or restarted timestamps give absurd differences: skip them, not the estimate. */
	if (d > TEL_RATE * 10)
		return;
	int64_t j = (int64_t)ms->jit_q4 + (d * 16 - (int64_t)ms->jit_q4) / 16;
	ms->jit_q4 = j < 0 ? 0 : (uint64_t)j;
}

/* RTCP goes to the RTP port with rtcp-mux, else to the port above the RTP one. */
static void rtcp_peer_from(const struct rv_media_stream *ms, const struct sa *rtp, struct sa *out)
{
	*out = *rtp;
	if (!ms->rtcp_mux)
		sa_set_port(out, (uint16_t)(sa_port(rtp) + 1));
}

/*
 * Checks that need no decoding beyond the fixed header and that must run before libre's own
 * RTCP accounting sees the packet (so strangers never become members of our RTCP session).
 * Returns true when the packet was dropped.
 */
static bool rtp_prefilter(struct rv_media_stream *ms, const struct sa *src, struct mbuf *mb)
{
	size_t pos = mb->pos;
	struct rtp_header hdr;
	int err = rtp_hdr_decode(&hdr, mb);
	mb->pos = pos;
	if (err) {
		drop(ms, DROP_TRUNCATED);
		return true;
	}
	if (hdr.ver != RTP_VERSION) {
		drop(ms, DROP_VERSION);
		return true;
	}
	if (!ms->started) {
		drop(ms, DROP_NOT_STARTED);
		return true;
	}
	if (ms->latched && !sa_cmp(src, &ms->raddr, SA_ALL)) {
		drop(ms, DROP_SOURCE);
		return true;
	}
	return false;
}

/*
 * RTCP is accepted from the peer's address only (any port: NATs remap it), and must decode.
 * Returns true when the packet was dropped.
 */
static bool rtcp_prefilter(struct rv_media_stream *ms, const struct sa *src, struct mbuf *mb)
{
	if (!ms->started || !sa_cmp(src, &ms->raddr, SA_ADDR)) {
		drop(ms, DROP_RTCP_SOURCE);
		return true;
	}
	size_t pos = mb->pos;
	struct rtcp_msg *msg = NULL;
	int err = rtcp_decode(&msg, mb);
	mem_deref(msg);
	mb->pos = pos;
	if (err) {
		drop(ms, DROP_RTCP_MALFORMED);
		return true;
	}
	return false;
}

/*
 * Is this datagram a STUN message (RFC 8489 section 5: two zero bits, a length that matches,
 * the magic cookie)? Peers send them to RTP and RTCP ports to open NAT pinholes (linphone does,
 * offered or not) or as ICE checks; we offer no ICE, so they are counted and dropped, not taken
 * for broken RTP or RTCP (RFC 7983 tells them apart by the first byte).
 */
static bool is_stun(const struct mbuf *mb)
{
	size_t n = mbuf_get_left(mb);
	const uint8_t *p = mbuf_buf(mb);
	if (n < 20 || (p[0] & 0xc0) != 0)
		return false;
	size_t body = (size_t)p[2] << 8 | p[3];
	return body + 20 == n && (body & 3) == 0 && p[4] == 0x21 && p[5] == 0x12 && p[6] == 0xa4 &&
	       p[7] == 0x42;
}

/* Counts and drops a STUN message; true when mb was one. */
static bool drop_stun(struct rv_media_stream *ms, const struct mbuf *mb)
{
	if (!is_stun(mb))
		return false;
	drop(ms, DROP_STUN);
	return true;
}

/* Does this datagram on the RTP port look like RTCP (RFC 5761 section 4)? */
static bool is_rtcp(const struct mbuf *mb)
{
	if (mbuf_get_left(mb) < 2)
		return false;
	uint8_t pt = mbuf_buf(mb)[1] & 0x7f;
	return pt >= 64 && pt <= 95;
}

static bool rtp_helper_h(struct sa *src, struct mbuf *mb, void *arg)
{
	struct rv_media_stream *ms = arg;
	if (drop_stun(ms, mb))
		return true;
	if (ms->rtcp_mux && is_rtcp(mb))
		return rtcp_prefilter(ms, src, mb);
	return rtp_prefilter(ms, src, mb);
}

static bool rtcp_helper_h(struct sa *src, struct mbuf *mb, void *arg)
{
	return drop_stun(arg, mb) || rtcp_prefilter(arg, src, mb);
}

/* The receive path after the prefilter; the header is decoded and mb holds the payload. */
static void rx_rtp(struct rv_media_stream *ms, const struct sa *src, const struct rtp_header *hdr,
                   struct mbuf *mb)
{
	if (!ms->latched) {
		/* Symmetric RTP: answer where the peer really sends from (NAT). */
		if (!sa_cmp(src, &ms->raddr, SA_ALL)) {
			char a[64], b[64];
			rv_info("media", "RTP peer %s latched (SDP said %s)",
			        sa_str(src, a, sizeof(a)), sa_str(&ms->raddr, b, sizeof(b)));
			if (!ms->rtcp_latched) {
				struct sa rtcp;
				rtcp_peer_from(ms, src, &rtcp);
				rtcp_start(ms->rtp, ms->cname, &rtcp);
			}
		}
		ms->raddr = *src;
		ms->latched = true;
	}
	if (hdr->pad) {
		/* RFC 3550 5.1: the last octet counts the padding, itself included. */
		size_t left = mbuf_get_left(mb);
		uint8_t padn = left ? mb->buf[mb->end - 1] : 0;
		if (padn == 0 || padn > left) {
			drop(ms, DROP_PADDING);
			return;
		}
		mb->end -= padn;
	}
	size_t len = mbuf_get_left(mb);
	ms->st.rx_packets++;
	ms->st.rx_bytes += len;

	if (ms->telev_pt >= 0 && hdr->pt == ms->telev_pt) {
		on_telev(ms, hdr, mb);
		return;
	}
	enum rv_g711_law law;
	if (rv_g711_law_from_pt(hdr->pt, &law) != 0) {
		drop(ms, DROP_PAYLOAD);
		return;
	}
	if (len == 0 || len > RX_MAX_PAYLOAD) {
		drop(ms, len ? DROP_OVERSIZED : DROP_EMPTY);
		return;
	}
	if (ms->have_rx_ssrc && hdr->ssrc != ms->rx_ssrc) {
		/* A new source (the far end re-originated the stream): its numbering starts afresh.
		 */
		rv_info("media", "RTP SSRC changed from 0x%08x to 0x%08x: jitter buffer reset",
		        ms->rx_ssrc, hdr->ssrc);
		jbuf_flush(ms->jb);
	} else if (ms->have_rx_ssrc) {
		/* The same source restarting its numbering (a replayed capture, a gateway
		 * re-INVITE): a jump back by more than the buffer could ever hold would otherwise
		 * be taken as late packets for the rest of the call. */
		int16_t d = (int16_t)(hdr->seq - ms->rx_last_seq);
		if (d < -(int16_t)(JBUF_MAX * 4)) {
			rv_info("media", "RTP sequence restarted (%u -> %u): jitter buffer reset",
			        ms->rx_last_seq, hdr->seq);
			jbuf_flush(ms->jb);
		}
	}
	ms->have_rx_ssrc = true;
	ms->rx_ssrc = hdr->ssrc;
	ms->rx_last_seq = hdr->seq;
	update_jitter(ms, hdr);
	struct rx_packet *p = mem_alloc(sizeof(*p) + len, NULL);
	if (!p)
		return;
	p->pt = hdr->pt;
	p->len = len;
	memcpy(p->data, mbuf_buf(mb), len);
	int err = jbuf_put(ms->jb, hdr, p);
	mem_deref(p);
	if (err == ETIMEDOUT)
		drop(ms, DROP_LATE);
	else if (err == EALREADY)
		drop(ms, DROP_DUPLICATE);
}

static void on_rtp(const struct sa *src, const struct rtp_header *hdr, struct mbuf *mb, void *arg)
{
	struct rv_media_stream *ms = arg;
	/* The helper has already dropped what is not for us; this holds if it ever is skipped. */
	if (!ms->started || (ms->latched && !sa_cmp(src, &ms->raddr, SA_ALL)))
		return;
	rx_rtp(ms, src, hdr, mb);
}

/* Reception report blocks about our own stream, in an SR or RR from the peer. */
static void on_report(struct rv_media_stream *ms, uint32_t sender, const struct rtcp_rr *rrv,
                      unsigned n)
{
	uint32_t ours = rtp_sess_ssrc(ms->rtp);
	for (unsigned i = 0; rrv && i < n; i++) {
		const struct rtcp_rr *rr = &rrv[i];
		if (rr->ssrc != ours)
			continue;
		ms->st.peer_reports++;
		ms->st.peer_fraction_lost = rr->fraction / 256.0;
		ms->st.peer_lost = rr->lost;
		ms->st.peer_jitter_ms = rr->jitter / (TEL_RATE / 1000.0);
		/* libre computed the round trip from this block's LSR/DLSR before calling us. */
		struct rtcp_stats rs;
		if (rr->lsr && rtcp_stats(ms->rtp, sender, &rs) == 0)
			ms->st.rtt_ms = rs.rtt / 1000.0;
	}
}

static void rx_rtcp_msg(struct rv_media_stream *ms, const struct sa *src,
                        const struct rtcp_msg *msg)
{
	ms->st.rtcp_rx++;
	if (!ms->rtcp_latched && !ms->rtcp_mux) {
		/* Send our reports where the peer's come from, which a NAT may have changed. */
		ms->rtcp_latched = true;
		rtcp_start(ms->rtp, ms->cname, src);
	}
	switch (msg->hdr.pt) {
	case RTCP_SR:
		on_report(ms, msg->r.sr.ssrc, msg->r.sr.rrv, msg->hdr.count);
		break;
	case RTCP_RR:
		on_report(ms, msg->r.rr.ssrc, msg->r.rr.rrv, msg->hdr.count);
		break;
	case RTCP_BYE:
		rv_debug("media", "RTCP BYE from the peer of port %u", sa_port(rtp_local(ms->rtp)));
		break;
	default:
		break;
	}
}

static void on_rtcp(const struct sa *src, struct rtcp_msg *msg, void *arg)
{
	struct rv_media_stream *ms = arg;
	if (ms->started)
		rx_rtcp_msg(ms, src, msg);
}

void rv_media_stream_input(struct rv_media_stream *ms, const struct sa *src, const uint8_t *pkt,
                           size_t len)
{
	/* A read-only view: nothing on the receive path writes into the packet. */
	struct mbuf mb = {.buf = (uint8_t *)(uintptr_t)pkt, .size = len, .pos = 0, .end = len};
	if (!pkt || !src)
		return;
	if (drop_stun(ms, &mb))
		return;
	if (is_rtcp(&mb)) {
		if (rtcp_prefilter(ms, src, &mb))
			return;
		struct rtcp_msg *msg = NULL;
		while (mbuf_get_left(&mb) && rtcp_decode(&msg, &mb) == 0) {
			rx_rtcp_msg(ms, src, msg);
			msg = mem_deref(msg);
		}
		return;
	}
	if (rtp_prefilter(ms, src, &mb))
		return;
	struct rtp_header hdr;
	memset(&hdr, 0, sizeof(hdr));
	if (rtp_hdr_decode(&hdr, &mb) != 0)
		return; /* the prefilter decoded it already: cannot happen */
	rx_rtp(ms, src, &hdr, &mb);
}

/* Pull packets from the jitter buffer until a tick's worth of 8 kHz samples is waiting. */
static bool fill_rx(struct rv_media_stream *ms)
{
	bool got = false;
	while (ms->rx_fifo_n < TEL_FRAME) {
		struct rtp_header hdr;
		void *mem = NULL;
		if (jbuf_get(ms->jb, &hdr, &mem) != 0)
			break;
		struct rx_packet *p = mem;
		enum rv_g711_law law;
		size_t room = RX_FIFO - ms->rx_fifo_n;
		size_t n = p->len < room ? p->len : room;
		if (rv_g711_law_from_pt(p->pt, &law) == 0) {
			rv_g711_decode(law, p->data, ms->rx_fifo + ms->rx_fifo_n, n);
			ms->rx_fifo_n += n;
			ms->last_rx_ts = hdr.ts;
			got = true;
		}
		mem_deref(mem);
	}
	return got || ms->rx_fifo_n > 0;
}

static void send_packet(struct rv_media_stream *ms, struct mbuf *mb, bool marker, int pt,
                        uint32_t ts)
{
	int err = rtp_send(ms->rtp, &ms->raddr, false, marker, (uint8_t)pt, ts, mb);
	if (err) {
		if (ms->st.tx_packets == 0 || err != ECONNREFUSED) {
			char a[64];
			rv_debug("media", "rtp_send to %s failed: %s",
			         sa_str(&ms->raddr, a, sizeof(a)), strerror(err));
		}
	} else {
		ms->st.tx_packets++;
		ms->tx_first = false;
	}
}

/* One RFC 4733 packet in place of this tick's audio, if a digit is being sent. */
static bool send_event(struct rv_media_stream *ms)
{
	struct rv_telev ev;
	bool marker;
	uint32_t ts;
	if (!ms->dtmf_tx || !rv_dtmf_tx_event(ms->dtmf_tx, ms->tx_ts, &ev, &marker, &ts))
		return false;
	struct mbuf *mb = mbuf_alloc(RTP_HEADER_SIZE + 4);
	if (!mb)
		return true;
	mb->pos = RTP_HEADER_SIZE;
	mb->end = RTP_HEADER_SIZE + 4;
	rv_telev_encode(&ev, mb->buf + RTP_HEADER_SIZE);
	send_packet(ms, mb, marker || ms->tx_first, ms->telev_pt, ts);
	mem_deref(mb);
	return true;
}

static void send_frame(struct rv_media_stream *ms, const int16_t *pcm16k)
{
	int16_t pcm8k[TEL_FRAME + 8];
	size_t n8 = 0;
	/* Resample every tick, sent or not, so the filter state stays continuous. */
	if (rv_resampler_run(ms->down, pcm16k, RV_MEDIA_FRAME, pcm8k, RV_ARRAY_LEN(pcm8k), &n8))
		n8 = 0;
	if (n8 < TEL_FRAME)
		memset(pcm8k + n8, 0, (TEL_FRAME - n8) * sizeof(int16_t));
	/*
	 * RFC 4733 section 2.5.1.2 practice: while an event is sent, its packets take the place
	 * of the audio packets. Sending both would let a receiver that also detects tones in the
	 * audio (or plays them) hear our prompt over the digit, and the event alone is what the
	 * far end acts on. The audio clock keeps running, so audio resumes with the right
	 * timestamp.
	 */
	if (ms->telev_pt >= 0) {
		if (send_event(ms))
			return;
	} else if (ms->dtmf_tx) {
		(void)rv_dtmf_tx_tones(ms->dtmf_tx, pcm8k, TEL_FRAME);
	}
	if (ms->mute_tx)
		return; /* on hold: the clock runs on, nothing goes out */
	struct mbuf *mb = mbuf_alloc(RTP_HEADER_SIZE + TEL_FRAME);
	if (!mb)
		return;
	mb->pos = RTP_HEADER_SIZE; /* rtp_send writes the header in front of the payload */
	mb->end = RTP_HEADER_SIZE + TEL_FRAME;
	rv_g711_encode(ms->send_law, pcm8k, mb->buf + RTP_HEADER_SIZE, TEL_FRAME);
	send_packet(ms, mb, ms->tx_first, ms->send_pt, ms->tx_ts);
	mem_deref(mb);
}

/* In-band digits in the caller's audio, unless the peer signals out of band. */
static void detect_inband(struct rv_media_stream *ms, const int16_t *in8k, bool received)
{
	if (ms->telev_seen)
		return;
	if (received && ms->detect) {
		char c = rv_dtmf_detect_run(ms->detect, in8k, TEL_FRAME);
		if (c) {
			if (ms->inband_digit) {
				/* A second press inside the hold: the first one has waited enough.
				 */
				ms->st.dtmf_inband++;
				report_digit(ms, ms->inband_digit);
			}
			ms->inband_digit = c;
			ms->inband_hold = INBAND_HOLD_TICKS;
		}
	}
	if (ms->inband_digit && --ms->inband_hold == 0) {
		char c = ms->inband_digit;
		ms->inband_digit = 0;
		ms->st.dtmf_inband++;
		report_digit(ms, c);
	}
}

static void one_frame(struct rv_media_stream *ms, uint64_t index)
{
	int16_t in8k[TEL_FRAME];
	int16_t caller[RV_MEDIA_FRAME + 8], agent[RV_MEDIA_FRAME];
	size_t n16 = 0;

	bool received = fill_rx(ms);
	size_t take = ms->rx_fifo_n < TEL_FRAME ? ms->rx_fifo_n : TEL_FRAME;
	memcpy(in8k, ms->rx_fifo, take * sizeof(int16_t));
	memset(in8k + take, 0, (TEL_FRAME - take) * sizeof(int16_t));
	memmove(ms->rx_fifo, ms->rx_fifo + take, (ms->rx_fifo_n - take) * sizeof(int16_t));
	ms->rx_fifo_n -= take;
	if (rv_resampler_run(ms->up, in8k, TEL_FRAME, caller, RV_ARRAY_LEN(caller), &n16) ||
	    n16 != RV_MEDIA_FRAME) {
		memset(caller, 0, sizeof(caller));
		n16 = RV_MEDIA_FRAME;
	}
	ms->st.frames++;
	if (received)
		ms->st.frames_received++;

	detect_inband(ms, in8k, received);
	if (!ms->started)
		return; /* the digit's handler ended the call */

	struct rv_audio_frame f = {.samples = caller,
	                           .n = RV_MEDIA_FRAME,
	                           .ts_ms = index * RV_MEDIA_PTIME_MS,
	                           .rtp_ts = ms->last_rx_ts,
	                           .received = received};
	rv_audio_step(&ms->audio, &f, agent);
	send_frame(ms, agent);
	ms->tx_ts += TEL_FRAME;
}

void rv_media_stream_tick(struct rv_media_stream *ms)
{
	if (!ms->started)
		return;
	mem_ref(ms);
	one_frame(ms, ms->st.frames);
	mem_deref(ms);
}

/*
 * The frame clock. Every stream has its own absolute 20 ms pace (media_pace.h), but streams
 * share timers: one per millisecond phase of the frame period, ticking every stream whose
 * clock has that phase. libre keeps timers in one sorted list, so a timer per stream made
 * every re-arm walk past all the others: the loop's cost grew with the square of the calls
 * (about 40% of its time at 500 calls). 20 timers keep the list short.
 */
struct tick_slot {
	struct tmr tmr;
	struct list streams;
	uint64_t due; /* the slot's next firing, on tmr_jiffies()'s clock */
	bool armed;
};

static struct tick_slot tick_slots[RV_MEDIA_PTIME_MS];

static void stream_tick(struct rv_media_stream *ms, uint64_t now)
{
	uint64_t skipped = ms->pace.skipped;
	uint32_t due = rv_pace_take(&ms->pace, now);
	if (ms->pace.skipped != skipped) {
		ms->st.frames_skipped += ms->pace.skipped - skipped;
		ms->tx_ts += (uint32_t)((ms->pace.skipped - skipped) * TEL_FRAME);
		rv_warn("media", "media loop stalled: %llu frames skipped",
		        (unsigned long long)(ms->pace.skipped - skipped));
	}
	uint64_t first = ms->pace.next - due;
	for (uint32_t i = 0; i < due && ms->started; i++)
		one_frame(ms, first + i);
}

static void slot_h(void *arg)
{
	struct tick_slot *sl = arg;
	struct rv_media_stream *stack[256], **v = stack;
	uint32_t n = list_count(&sl->streams), k = 0;
	if (n > RV_ARRAY_LEN(stack)) {
		v = malloc(n * sizeof(*v));
		if (!v) {
			v = stack;
			n = RV_ARRAY_LEN(stack);
		}
	}
	/* References first: a handler may hang up (and release) any stream of the slot. */
	for (struct le *le = list_head(&sl->streams); le && k < n; le = le->next)
		v[k++] = mem_ref(le->data);
	uint64_t now = tmr_jiffies();
	for (uint32_t i = 0; i < k; i++) {
		if (v[i]->started)
			stream_tick(v[i], now);
		mem_deref(v[i]);
	}
	if (v != stack)
		free(v);
	if (list_isempty(&sl->streams)) {
		sl->armed = false;
		return;
	}
	/* Keep the slot's phase: after a stall, skip whole periods (the streams' paces count
	 * and catch up the frames). */
	now = tmr_jiffies();
	sl->due += RV_MEDIA_PTIME_MS;
	if (sl->due <= now)
		sl->due += ((now - sl->due) / RV_MEDIA_PTIME_MS + 1) * RV_MEDIA_PTIME_MS;
	tmr_start(&sl->tmr, sl->due - now, slot_h, sl);
}

static void tick_join(struct rv_media_stream *ms, uint64_t now)
{
	struct tick_slot *sl = &tick_slots[now % RV_MEDIA_PTIME_MS];
	ms->slot = sl;
	list_append(&sl->streams, &ms->tick_le, ms);
	if (!sl->armed) {
		sl->armed = true;
		sl->due = now;
		tmr_start(&sl->tmr, 0, slot_h, sl);
	}
}

static void tick_leave(struct rv_media_stream *ms)
{
	struct tick_slot *sl = ms->slot;
	if (!sl)
		return;
	list_unlink(&ms->tick_le);
	ms->slot = NULL;
	if (list_isempty(&sl->streams)) {
		tmr_cancel(&sl->tmr);
		sl->armed = false;
	}
}

static int send_dtmf_op(void *arg, const char *digits, uint32_t duration_ms)
{
	struct rv_media_stream *ms = arg;
	if (!ms->dtmf_tx) {
		int err = rv_dtmf_tx_alloc(&ms->dtmf_tx);
		if (err)
			return err;
	}
	return rv_dtmf_tx_queue(ms->dtmf_tx, digits, duration_ms);
}

static const struct rv_audio_ops stream_ops = {.send_dtmf = send_dtmf_op};

int rv_media_stream_alloc(const struct sa *ip, uint16_t port_min, uint16_t port_max,
                          struct rv_media_stream **out)
{
	int err;
	struct rv_media_stream *ms = mem_zalloc(sizeof(*ms), stream_destructor);
	if (!ms)
		return -ENOMEM;
	ms->telev_pt = -1;
	ms->st.rtt_ms = -1;
	/* RFC 7022: a random CNAME per stream, so reports link no two calls together. */
	(void)snprintf(ms->cname, sizeof(ms->cname), "rv%08x%08x%08x", rand_u32(), rand_u32(),
	               rand_u32());
	err = rv_audio_init(&ms->audio, &stream_ops, ms);
	if (!err)
		err = rv_resampler_alloc(TEL_RATE, RV_MEDIA_RATE, 3, &ms->up);
	if (!err)
		err = rv_resampler_alloc(RV_MEDIA_RATE, TEL_RATE, 3, &ms->down);
	if (!err)
		err = -jbuf_alloc(&ms->jb, JBUF_MIN, JBUF_MAX);
	if (!err)
		err = rv_dtmf_detect_alloc(&ms->detect);
	if (!err)
		err = -rtp_listen(&ms->rtp, IPPROTO_UDP, ip, port_min, port_max, true, on_rtp,
		                  on_rtcp, ms);
	if (!err)
		err = -udp_register_helper(&ms->rtp_helper, rtp_sock(ms->rtp), UDP_HELPER_LAYER,
		                           NULL, rtp_helper_h, ms);
	if (!err)
		err = -udp_register_helper(&ms->rtcp_helper, rtcp_sock(ms->rtp), UDP_HELPER_LAYER,
		                           NULL, rtcp_helper_h, ms);
	if (err) {
		char a[64];
		rv_error("media", "cannot open an RTP socket on %s ports %u-%u: %s",
		         sa_str(ip, a, sizeof(a)), port_min, port_max, strerror(-err));
		mem_deref(ms);
		return err;
	}
	rtcp_set_srate(ms->rtp, TEL_RATE, TEL_RATE);
	*out = ms;
	return 0;
}

uint16_t rv_media_stream_port(const struct rv_media_stream *ms)
{
	return sa_port(rtp_local(ms->rtp));
}

void rv_media_stream_set_rtcp_mux(struct rv_media_stream *ms, bool on)
{
	if (ms->started)
		return;
	ms->rtcp_mux = on;
	rtcp_enable_mux(ms->rtp, on);
}

int rv_media_stream_start(struct rv_media_stream *ms, const struct sa *raddr, int send_pt,
                          int telev_pt, rv_media_dtmf_h *dtmf_h, void *arg)
{
	if (ms->started)
		return -EALREADY;
	if (rv_g711_law_from_pt(send_pt, &ms->send_law) != 0)
		return -EINVAL;
	if (telev_pt > 127)
		return -EINVAL;
	ms->raddr = *raddr;
	ms->send_pt = send_pt;
	ms->telev_pt = telev_pt < 0 ? -1 : telev_pt;
	ms->dtmf_h = dtmf_h;
	ms->dtmf_arg = arg;
	ms->tx_ts = rand_u32();
	ms->tx_first = true;
	ms->started = true;
	struct sa rtcp;
	rtcp_peer_from(ms, raddr, &rtcp);
	rtcp_start(ms->rtp, ms->cname, &rtcp);
	uint64_t now = tmr_jiffies();
	rv_pace_init(&ms->pace, now, RV_MEDIA_PTIME_MS, MAX_BURST);
	tick_join(ms, now);
	return 0;
}

void rv_media_stream_stop(struct rv_media_stream *ms)
{
	if (ms->started) {
		/* Stop the reports; libre sends the RTCP BYE when the socket is released. */
		rtcp_start(ms->rtp, ms->cname, NULL);
		drop_summary(ms);
	}
	ms->started = false;
	tick_leave(ms);
	rv_audio_unbridge(&ms->audio);
	rv_audio_record_stop(&ms->audio);
}

int rv_media_stream_set_remote(struct rv_media_stream *ms, const struct sa *raddr)
{
	if (!sa_isset(raddr, SA_ALL))
		return -EINVAL;
	if (!sa_cmp(raddr, &ms->raddr, SA_ALL)) {
		char a[64];
		rv_info("media", "RTP peer moves to %s (re-INVITE)", sa_str(raddr, a, sizeof(a)));
	}
	ms->raddr = *raddr;
	/* Latch again: the first packet from the new place fixes where we send (symmetric RTP). */
	ms->latched = false;
	return 0;
}

void rv_media_stream_set_sending(struct rv_media_stream *ms, bool send)
{
	ms->mute_tx = !send;
}

struct rv_audio *rv_media_stream_audio(struct rv_media_stream *ms)
{
	return &ms->audio;
}

void rv_media_stream_stats(const struct rv_media_stream *ms, struct rv_media_stats *out)
{
	*out = ms->st;
	struct jbuf_stat js;
	struct rtcp_stats rs;
	if (jbuf_stats(ms->jb, &js) == 0) {
		out->rx_lost = js.n_lost;
	} else if (ms->jit_have && rtcp_stats(ms->rtp, ms->jit_ssrc, &rs) == 0 && rs.rx.lost > 0) {
		/* Debian's libre is built without jitter-buffer statistics; its RTCP receiver
		 * statistics count the sequence gaps of the peer's stream anyway. */
		out->rx_lost = (uint64_t)rs.rx.lost;
	}
	/* jit_q4 is 16 x the jitter in 1/8000 s: ms = q4 / 16 / 8. */
	out->jitter_ms = (double)ms->jit_q4 / 128.0;
	out->dtmf_sent = rv_dtmf_tx_started(ms->dtmf_tx);
	out->bridge_underruns = ms->audio.bridge_underruns;
	out->bridge_dropped = ms->audio.bridge_dropped;
}
