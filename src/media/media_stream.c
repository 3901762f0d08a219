/* A call's RTP stream and its audio interface: see media_stream.h and media_audio.h. */
#include <errno.h>
#include <re.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_audio_int.h"
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

/* One received G.711 payload, kept in the jitter buffer until its tick. */
struct rx_packet {
	uint8_t pt;
	size_t len;
	uint8_t data[];
};

struct rv_media_stream {
	struct rtp_sock *rtp;
	struct jbuf *jb;
	struct telev *telev;
	struct rv_resampler *up, *down; /* 8k -> 16k (caller), 16k -> 8k (agent) */
	struct tmr tmr;
	struct rv_pace pace;
	struct sa raddr;
	bool latched, started;
	int send_pt, telev_pt, dtmf_open;
	enum rv_g711_law send_law;
	uint32_t tx_ts;
	bool tx_first;
	uint32_t last_rx_ts;
	/* RFC 3550 A.8 jitter estimate in 8 kHz units, scaled by 16 (integer arithmetic). */
	bool jit_have;
	uint32_t jit_ssrc;
	int64_t jit_transit;
	uint64_t jit_q4;
	rv_media_dtmf_h *dtmf_h;
	void *dtmf_arg;
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

static void count(const char *what)
{
	rv_metrics_register("rv_media_rtp_dropped_total", RV_METRIC_COUNTER,
	                    "RTP packets dropped on receive, by reason", "reason", NULL, 0);
	rv_metrics_inc("rv_media_rtp_dropped_total", 1, what, NULL);
}

static void stream_destructor(void *arg)
{
	struct rv_media_stream *ms = arg;
	rv_media_stream_stop(ms);
	rv_audio_fini(&ms->audio);
	mem_deref(ms->rtp);
	mem_deref(ms->jb);
	mem_deref(ms->telev);
	mem_deref(ms->up);
	mem_deref(ms->down);
}

static void on_telev(struct rv_media_stream *ms, struct mbuf *mb)
{
	int event = -1;
	bool end = false;
	if (telev_recv(ms->telev, mb, &event, &end) != 0)
		return; /* a repeat of an event already seen, or too short */
	int digit = telev_code2digit(event);
	if (digit < 0) {
		ms->st.rx_malformed++;
		count("dtmf_event");
		return;
	}
	/* One report per press: at its first packet, or at its end if the start was lost. */
	if (!end) {
		ms->dtmf_open = event;
	} else if (ms->dtmf_open == event) {
		ms->dtmf_open = -1;
		return;
	}
	ms->st.dtmf_events++;
	if (ms->dtmf_h)
		ms->dtmf_h((char)digit, ms->dtmf_arg);
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

static void on_rtp(const struct sa *src, const struct rtp_header *hdr, struct mbuf *mb, void *arg)
{
	struct rv_media_stream *ms = arg;
	size_t len = mbuf_get_left(mb);

	if (!ms->started)
		return;
	if (!ms->latched) {
		/* Symmetric RTP: answer where the peer really sends from (NAT). */
		if (!sa_cmp(src, &ms->raddr, SA_ALL)) {
			char a[64], b[64];
			rv_info("media", "RTP peer %s latched (SDP said %s)",
			        sa_str(src, a, sizeof(a)), sa_str(&ms->raddr, b, sizeof(b)));
		}
		ms->raddr = *src;
		ms->latched = true;
	} else if (!sa_cmp(src, &ms->raddr, SA_ALL)) {
		ms->st.rx_bad_source++;
		count("source");
		return;
	}
	ms->st.rx_packets++;
	ms->st.rx_bytes += len;

	if (ms->telev_pt >= 0 && hdr->pt == ms->telev_pt) {
		on_telev(ms, mb);
		return;
	}
	enum rv_g711_law law;
	if (rv_g711_law_from_pt(hdr->pt, &law) != 0 || len == 0 || len > RX_MAX_PAYLOAD) {
		ms->st.rx_malformed++;
		count(len > RX_MAX_PAYLOAD ? "oversized" : "payload");
		return;
	}
	update_jitter(ms, hdr);
	struct rx_packet *p = mem_alloc(sizeof(*p) + len, NULL);
	if (!p)
		return;
	p->pt = hdr->pt;
	p->len = len;
	memcpy(p->data, mbuf_buf(mb), len);
	(void)jbuf_put(ms->jb, hdr, p); /* duplicates and late packets are refused: fine */
	mem_deref(p);
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

static void send_frame(struct rv_media_stream *ms, const int16_t *pcm16k)
{
	int16_t pcm8k[TEL_FRAME + 8];
	size_t n8 = 0;
	if (rv_resampler_run(ms->down, pcm16k, RV_MEDIA_FRAME, pcm8k, RV_ARRAY_LEN(pcm8k), &n8))
		return;
	struct mbuf *mb = mbuf_alloc(RTP_HEADER_SIZE + TEL_FRAME);
	if (!mb)
		return;
	mb->pos = RTP_HEADER_SIZE; /* rtp_send writes the header in front of the payload */
	mb->end = RTP_HEADER_SIZE + TEL_FRAME;
	rv_g711_encode(ms->send_law, pcm8k, mb->buf + RTP_HEADER_SIZE,
	               n8 < TEL_FRAME ? n8 : TEL_FRAME);
	if (n8 < TEL_FRAME)
		memset(mb->buf + RTP_HEADER_SIZE + n8,
		       ms->send_law == RV_G711_ULAW ? RV_G711_ULAW_SILENCE : RV_G711_ALAW_SILENCE,
		       TEL_FRAME - n8);
	int err =
	    rtp_send(ms->rtp, &ms->raddr, false, ms->tx_first, (uint8_t)ms->send_pt, ms->tx_ts, mb);
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
	ms->tx_ts += TEL_FRAME;
	mem_deref(mb);
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

	struct rv_audio_frame f = {.samples = caller,
	                           .n = RV_MEDIA_FRAME,
	                           .ts_ms = index * RV_MEDIA_PTIME_MS,
	                           .rtp_ts = ms->last_rx_ts,
	                           .received = received};
	rv_audio_step(&ms->audio, &f, agent);
	send_frame(ms, agent);
}

static void tick_h(void *arg)
{
	struct rv_media_stream *ms = arg;
	uint64_t skipped = ms->pace.skipped;
	uint32_t due = rv_pace_take(&ms->pace, tmr_jiffies());
	if (ms->pace.skipped != skipped) {
		ms->st.frames_skipped += ms->pace.skipped - skipped;
		ms->tx_ts += (uint32_t)((ms->pace.skipped - skipped) * TEL_FRAME);
		rv_warn("media", "media loop stalled: %llu frames skipped",
		        (unsigned long long)(ms->pace.skipped - skipped));
	}
	uint64_t first = ms->pace.next - due;
	/* mem_ref: a handler may hang the call up, which can release the stream. */
	mem_ref(ms);
	for (uint32_t i = 0; i < due && ms->started; i++)
		one_frame(ms, first + i);
	if (ms->started)
		tmr_start(&ms->tmr, rv_pace_delay(&ms->pace, tmr_jiffies()), tick_h, ms);
	mem_deref(ms);
}

int rv_media_stream_alloc(const struct sa *ip, uint16_t port_min, uint16_t port_max,
                          struct rv_media_stream **out)
{
	int err;
	struct rv_media_stream *ms = mem_zalloc(sizeof(*ms), stream_destructor);
	if (!ms)
		return -ENOMEM;
	tmr_init(&ms->tmr);
	ms->telev_pt = -1;
	ms->dtmf_open = -1;
	err = rv_audio_init(&ms->audio, NULL, NULL);
	if (!err)
		err = rv_resampler_alloc(TEL_RATE, RV_MEDIA_RATE, 3, &ms->up);
	if (!err)
		err = rv_resampler_alloc(RV_MEDIA_RATE, TEL_RATE, 3, &ms->down);
	if (!err)
		err = -jbuf_alloc(&ms->jb, JBUF_MIN, JBUF_MAX);
	if (!err)
		err = -telev_alloc(&ms->telev, TELEV_PTIME);
	if (!err)
		err = -rtp_listen(&ms->rtp, IPPROTO_UDP, ip, port_min, port_max, true, on_rtp, NULL,
		                  ms);
	if (err) {
		char a[64];
		rv_error("media", "cannot open an RTP socket on %s ports %u-%u: %s",
		         sa_str(ip, a, sizeof(a)), port_min, port_max, strerror(-err));
		mem_deref(ms);
		return err;
	}
	*out = ms;
	return 0;
}

uint16_t rv_media_stream_port(const struct rv_media_stream *ms)
{
	return sa_port(rtp_local(ms->rtp));
}

int rv_media_stream_start(struct rv_media_stream *ms, const struct sa *raddr, int send_pt,
                          int telev_pt, rv_media_dtmf_h *dtmf_h, void *arg)
{
	if (ms->started)
		return -EALREADY;
	if (rv_g711_law_from_pt(send_pt, &ms->send_law) != 0)
		return -EINVAL;
	ms->raddr = *raddr;
	ms->send_pt = send_pt;
	ms->telev_pt = telev_pt;
	ms->dtmf_h = dtmf_h;
	ms->dtmf_arg = arg;
	ms->tx_ts = rand_u32();
	ms->tx_first = true;
	ms->started = true;
	rv_pace_init(&ms->pace, tmr_jiffies(), RV_MEDIA_PTIME_MS, MAX_BURST);
	tmr_start(&ms->tmr, 0, tick_h, ms);
	return 0;
}

void rv_media_stream_stop(struct rv_media_stream *ms)
{
	ms->started = false;
	tmr_cancel(&ms->tmr);
	rv_audio_record_stop(&ms->audio);
}

struct rv_audio *rv_media_stream_audio(struct rv_media_stream *ms)
{
	return &ms->audio;
}

void rv_media_stream_stats(const struct rv_media_stream *ms, struct rv_media_stats *out)
{
	*out = ms->st;
	struct jbuf_stat js;
	if (jbuf_stats(ms->jb, &js) == 0)
		out->rx_lost = js.n_lost;
	/* jit_q4 is 16 x the jitter in 1/8000 s: ms = q4 / 16 / 8. */
	out->jitter_ms = (double)ms->jit_q4 / 128.0;
}
