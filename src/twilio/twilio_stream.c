/*
 * The Twilio Media Streams WebSocket on the media loop: libre's HTTP server and websock on
 * their own listener (twilio.stream_listen), one struct tw_stream per socket. Each stream runs
 * the per-call audio interface on its own absolute 20 ms clock like an RTP stream: caller μ-law
 * from "media" messages goes through a small jitter FIFO, is decoded, upsampled to 16 kHz and
 * handed to rv_audio_step; the agent frame that comes back is downsampled, μ-law encoded and
 * sent as one "media" message per tick. A playback item that finishes is followed by a "mark"
 * named after it (Twilio echoes it when the caller has heard the item: the playout delay);
 * rv_audio_flush sends "clear". Loop thread only. See docs/adr/0011-twilio.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <re.h>
#include <stdio.h>
#include <string.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "media/media_audio_int.h"
#include "media/media_g711.h"
#include "media/media_pace.h"
#include "media/media_resample.h"
#include "obs/metrics.h"
#include "tel/tel.h"
#include "twilio/twilio_int.h"
#include "twilio/twilio_msg.h"

#define TEL_RATE         8000
#define TEL_FRAME        (TEL_RATE / 1000 * RV_MEDIA_PTIME_MS) /* 160 μ-law bytes */
#define RX_FIFO_MAX      (TEL_RATE / 2)                        /* 500 ms of caller audio */
#define JITTER_FRAMES    2  /* after running dry, wait for 40 ms of audio before playing out */
#define MAX_LAG_FRAMES   10 /* more than 200 ms queued (a burst after a stall): drop the excess */
#define MAX_BURST        10 /* catch up at most 200 ms after a stalled loop, then skip */
#define MAX_MSG          (64 * 1024)
#define START_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS  30000 /* Twilio sends 50 messages a second; silence this long is death */
#define MAX_BAD_MSGS     100   /* garbage beyond this ends the stream */
#define LOGGED_ERRORS    5     /* per stream; the metric counts them all */
#define MARKS_MAX        32
#define TXQ_MAX          (512 * 1024) /* the peer stopped reading: end rather than buffer */
#define OUT_MSG_MAX      1024

#define M_MARK_DELAY "rv_twilio_mark_delay_seconds"
#define M_STREAMS    "rv_twilio_streams_total"

struct tw_server {
	struct rv_twilio *tw;
	struct http_sock *hs;
	struct websock *ws;
	struct list streams;
	size_t max_streams;
};

enum stream_state { ST_WAIT_START, ST_RUNNING, ST_DONE };

struct tw_mark {
	uint32_t item;
	uint64_t sent_ms;
};

struct tw_stream {
	struct le le;
	struct tw_server *srv;
	struct websock_conn *wc;
	struct tcp_conn *tc; /* our reference: the connection owns the guard */
	struct tcp_helper *guard;
	/* The frame-length guard's view of the byte stream (see guard_recv). */
	uint8_t ghdr[14];
	size_t ghave;
	uint64_t gskip;
	bool oversized;
	struct mbuf *frag; /* a fragmented message being reassembled */
	bool frag_text;

	enum stream_state state;
	char peer[64];
	char stream_sid[RV_TWMSG_SID_MAX], call_sid[RV_TWMSG_SID_MAX];
	int64_t call_id;
	struct rv_tel_call *call;
	struct rv_audio audio;
	bool audio_on;
	struct rv_resampler *up, *down;
	struct tmr tmr, start_tmr;
	struct rv_pace pace;

	uint8_t rx[RX_FIFO_MAX]; /* caller μ-law waiting for its tick */
	size_t rx_n;
	bool buffering;
	uint32_t rx_ts; /* newest media timestamp, in 8 kHz units */
	uint64_t last_msg_ms;
	bool flushed_in_tick;
	struct tw_mark marks[MARKS_MAX];
	size_t nmarks;

	uint64_t frames, frames_rx, media_in, media_out, marks_out, marks_back, clears;
	uint64_t bad, rx_dropped;
	bool send_failed;
};

static void end_stream(struct tw_stream *s, bool remote, const char *cause,
                       enum websock_scode code);

/* ---- small helpers --------------------------------------------------------------------- */

static void register_metrics(void)
{
	static const double delay_buckets[] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5};
	rv_metrics_register(M_MARK_DELAY, RV_METRIC_HISTOGRAM,
	                    "Time from sending a mark after a playback item to Twilio echoing it "
	                    "(the far end's playout delay), seconds.",
	                    NULL, delay_buckets, RV_ARRAY_LEN(delay_buckets));
	rv_metrics_register(M_STREAMS, RV_METRIC_COUNTER,
	                    "Twilio Media Streams sockets by how they ended.", "result", NULL, 0);
}

static const char *peer_str(const struct sa *sa, char *buf, size_t len)
{
	if (re_snprintf(buf, len, "%J", sa) < 0)
		rv_strlcpy(buf, "?", len);
	return buf;
}

/* Bad input on a stream: counted always, logged for the first few of each stream. */
static void report(struct tw_stream *s, const char *reason, const char *detail, bool always)
{
	tw_count_stream_error(reason);
	s->bad++;
	if (s->bad <= LOGGED_ERRORS || always) {
		char id[24];
		snprintf(id, sizeof(id), "%" PRId64, s->call_id);
		rv_logkv(RV_LOG_WARN, TW_COMP, "bad input on a Media Stream", "reason", reason,
		         "detail", detail ? detail : "", "peer", s->peer, "stream_sid",
		         s->stream_sid, "call", id, NULL);
	}
}

/* A message we ignore; garbage beyond MAX_BAD_MSGS ends the stream. */
static void bad_input(struct tw_stream *s, const char *reason, const char *detail)
{
	report(s, reason, detail, false);
	if (s->bad > MAX_BAD_MSGS && s->state != ST_DONE) {
		tw_count_stream_error("too_many_errors");
		end_stream(s, false, "stream_error", WEBSOCK_POLICY_VIOLATION);
	}
}

/* Input that ends the stream: always logged, then closed with `code`. */
static void fatal_input(struct tw_stream *s, const char *reason, const char *detail,
                        enum websock_scode code)
{
	report(s, reason, detail, true);
	end_stream(s, false, "stream_error", code);
}

static void send_text(struct tw_stream *s, const char *text, size_t len)
{
	if (s->state == ST_DONE || !s->wc)
		return;
	struct tcp_conn *tc = websock_tcp(s->wc);
	if (tc && tcp_conn_txqsz(tc) > TXQ_MAX) {
		tw_count_stream_error("send_backlog");
		rv_logkv(RV_LOG_WARN, TW_COMP, "the far end stopped reading the Media Stream",
		         "peer", s->peer, "stream_sid", s->stream_sid, NULL);
		end_stream(s, false, "stream_error", WEBSOCK_POLICY_VIOLATION);
		return;
	}
	int err = websock_send(s->wc, WEBSOCK_TEXT, "%b", text, len);
	if (err && !s->send_failed) {
		s->send_failed = true;
		tw_count_stream_error("send_failed");
		rv_logkv(RV_LOG_WARN, TW_COMP, "cannot send on a Media Stream", "peer", s->peer,
		         "error", strerror(err), NULL);
	}
}

/* ---- the end of a stream ----------------------------------------------------------------- */

static void stream_destructor(void *arg)
{
	struct tw_stream *s = arg;
	tmr_cancel(&s->tmr);
	tmr_cancel(&s->start_tmr);
	list_unlink(&s->le);
	/* The guard first: a closing socket lingers in libre and must not call into us. The
	 * connection owns the helper too (it flushes its helpers when destroyed), which is why we
	 * hold the connection until the helper is gone. */
	mem_deref(s->guard);
	mem_deref(s->tc);
	mem_deref(s->wc);
	mem_deref(s->frag);
	if (s->audio_on)
		rv_audio_fini(&s->audio);
	mem_deref(s->up);
	mem_deref(s->down);
}

/*
 * End the stream once: tell the service the call is over (while the audio interface still
 * lives), send a close frame with `code` (0: the socket is already gone) and drop the server's
 * reference. Handlers that may run this keep their own reference around it.
 */
static void end_stream(struct tw_stream *s, bool remote, const char *cause, enum websock_scode code)
{
	if (s->state == ST_DONE)
		return;
	bool was_running = s->state == ST_RUNNING;
	s->state = ST_DONE;
	tmr_cancel(&s->tmr);
	tmr_cancel(&s->start_tmr);
	if (s->call) {
		struct rv_tel_call *call = s->call;
		s->call = NULL;
		/* Queued items complete (as flushed) while their owner still exists. */
		rv_playq_flush(s->audio.playq);
		rv_tel_call_ended(call, remote, cause);
	}
	if (code && s->wc)
		(void)websock_close(s->wc, code, NULL);
	register_metrics();
	rv_metrics_inc(M_STREAMS, 1, cause, NULL);
	char id[24], fr[24], fx[24], mi[24], mo[24];
	snprintf(id, sizeof(id), "%" PRId64, s->call_id);
	snprintf(fr, sizeof(fr), "%" PRIu64, s->frames);
	snprintf(fx, sizeof(fx), "%" PRIu64, s->frames_rx);
	snprintf(mi, sizeof(mi), "%" PRIu64, s->media_in);
	snprintf(mo, sizeof(mo), "%" PRIu64, s->media_out);
	rv_logkv(RV_LOG_INFO, TW_COMP, "Media Stream ended", "cause", cause, "by",
	         remote ? "remote" : "local", "call", id, "call_sid", s->call_sid, "stream_sid",
	         s->stream_sid, "frames", fr, "frames_received", fx, "media_in", mi, "media_out",
	         mo, "was_running", was_running ? "1" : "0", NULL);
	mem_deref(s); /* the server list's reference */
}

/* ---- hooks for the service and the audio interface -------------------------------------- */

static void ch_hangup(void *arg)
{
	struct tw_stream *s = arg;
	mem_ref(s);
	end_stream(s, false, "local", WEBSOCK_NORMAL_CLOSURE);
	mem_deref(s);
}

static int ch_send_dtmf(void *arg, const char *digits)
{
	(void)arg;
	(void)digits;
	return -ENOTSUP; /* Media Streams carry no way to send digits to the caller */
}

static const struct rv_tel_channel_ops channel_ops = {
    .hangup = ch_hangup,
    .send_dtmf = ch_send_dtmf,
};

static void audio_flushed(void *arg)
{
	struct tw_stream *s = arg;
	char buf[256];
	size_t len;
	s->flushed_in_tick = true;
	if (s->state != ST_RUNNING || !s->stream_sid[0])
		return;
	if (rv_twmsg_format_clear(s->stream_sid, buf, sizeof(buf), &len) == 0) {
		s->clears++;
		send_text(s, buf, len);
	}
}

static const struct rv_audio_ops audio_ops = {
    .flushed = audio_flushed, .send_dtmf = NULL, /* rv_audio_send_dtmf answers -ENOTSUP */
};

/* ---- the 20 ms clock --------------------------------------------------------------------- */

static void send_mark(struct tw_stream *s, uint32_t item)
{
	char name[32], buf[256];
	size_t len;
	snprintf(name, sizeof(name), "item-%" PRIu32, item);
	if (rv_twmsg_format_mark(s->stream_sid, name, buf, sizeof(buf), &len) != 0)
		return;
	if (s->nmarks == MARKS_MAX) { /* never echoed: forget the oldest */
		memmove(s->marks, s->marks + 1, (MARKS_MAX - 1) * sizeof(s->marks[0]));
		s->nmarks--;
	}
	s->marks[s->nmarks++] = (struct tw_mark){item, tw_now_ms()};
	s->marks_out++;
	send_text(s, buf, len);
}

/* Take one 20 ms frame of caller audio from the FIFO; false when none (silence). */
static bool take_caller(struct tw_stream *s, int16_t *pcm8k)
{
	if (s->rx_n > MAX_LAG_FRAMES * TEL_FRAME) {
		size_t drop = s->rx_n - JITTER_FRAMES * TEL_FRAME;
		memmove(s->rx, s->rx + drop, s->rx_n - drop);
		s->rx_n -= drop;
		s->rx_dropped += drop;
		tw_count_stream_error("rx_late");
	}
	if (s->buffering && s->rx_n >= JITTER_FRAMES * TEL_FRAME)
		s->buffering = false;
	if (s->buffering || s->rx_n == 0) {
		s->buffering = true;
		memset(pcm8k, 0, TEL_FRAME * sizeof(int16_t));
		return false;
	}
	size_t take = s->rx_n < TEL_FRAME ? s->rx_n : TEL_FRAME;
	rv_g711_decode(RV_G711_ULAW, s->rx, pcm8k, take);
	memset(pcm8k + take, 0, (TEL_FRAME - take) * sizeof(int16_t));
	memmove(s->rx, s->rx + take, s->rx_n - take);
	s->rx_n -= take;
	return true;
}

static void one_frame(struct tw_stream *s, uint64_t index)
{
	int16_t in8k[TEL_FRAME], caller[RV_MEDIA_FRAME + 8], agent[RV_MEDIA_FRAME];
	int16_t out8k[TEL_FRAME + 8];
	uint8_t ulaw[TEL_FRAME];
	char buf[OUT_MSG_MAX];
	size_t n16 = 0, n8 = 0, len;

	bool received = take_caller(s, in8k);
	if (rv_resampler_run(s->up, in8k, TEL_FRAME, caller, RV_ARRAY_LEN(caller), &n16) ||
	    n16 != RV_MEDIA_FRAME) {
		memset(caller, 0, sizeof(caller));
		n16 = RV_MEDIA_FRAME;
	}
	s->frames++;
	s->frames_rx += received;
	struct rv_audio_frame f = {.samples = caller,
	                           .n = RV_MEDIA_FRAME,
	                           .ts_ms = index * RV_MEDIA_PTIME_MS,
	                           .rtp_ts = s->rx_ts,
	                           .received = received};
	uint32_t before = rv_playq_head_id(s->audio.playq);
	s->flushed_in_tick = false;
	rv_audio_step(&s->audio, &f, agent);
	if (s->state != ST_RUNNING)
		return;
	uint32_t after = rv_playq_head_id(s->audio.playq);

	if (rv_resampler_run(s->down, agent, RV_MEDIA_FRAME, out8k, RV_ARRAY_LEN(out8k), &n8))
		n8 = 0;
	if (n8 > TEL_FRAME)
		n8 = TEL_FRAME;
	rv_g711_encode(RV_G711_ULAW, out8k, ulaw, n8);
	memset(ulaw + n8, RV_G711_ULAW_SILENCE, TEL_FRAME - n8);
	if (rv_twmsg_format_media(s->stream_sid, ulaw, TEL_FRAME, buf, sizeof(buf), &len) == 0) {
		s->media_out++;
		send_text(s, buf, len);
	}
	/* Items that finished in this frame (ids rise in push order), unless a flush ended them:
	 * the mark follows their last audio, so Twilio echoes it when the caller heard it all. */
	if (!s->flushed_in_tick && before && before != after) {
		uint32_t last = after && after > before ? after - 1 : before;
		for (uint32_t id = before; id <= last && id - before < 16 && s->state == ST_RUNNING;
		     id++)
			send_mark(s, id);
	}
}

static void tick_h(void *arg)
{
	struct tw_stream *s = arg;
	uint64_t now = tmr_jiffies();
	uint64_t skipped = s->pace.skipped;
	uint32_t due = rv_pace_take(&s->pace, now);
	if (s->pace.skipped != skipped)
		rv_warn(TW_COMP, "media loop stalled: %" PRIu64 " Media Stream frames skipped",
		        s->pace.skipped - skipped);
	uint64_t first = s->pace.next - due;
	mem_ref(s); /* a frame handler may hang the call up */
	for (uint32_t i = 0; i < due && s->state == ST_RUNNING; i++)
		one_frame(s, first + i);
	if (s->state == ST_RUNNING && tw_now_ms() - s->last_msg_ms > IDLE_TIMEOUT_MS) {
		tw_count_stream_error("idle_timeout");
		rv_logkv(RV_LOG_WARN, TW_COMP, "nothing from Twilio on a Media Stream for 30 s",
		         "peer", s->peer, "stream_sid", s->stream_sid, NULL);
		end_stream(s, true, "stream_timeout", WEBSOCK_GOING_AWAY);
	}
	if (s->state == ST_RUNNING)
		tmr_start(&s->tmr, rv_pace_delay(&s->pace, tmr_jiffies()), tick_h, s);
	mem_deref(s);
}

static void start_timeout_h(void *arg)
{
	struct tw_stream *s = arg;
	if (s->state != ST_WAIT_START)
		return;
	mem_ref(s);
	report(s, "no_start", "no start message within 10 s", true);
	end_stream(s, false, "no_start", WEBSOCK_POLICY_VIOLATION);
	mem_deref(s);
}

/* ---- messages from Twilio ---------------------------------------------------------------- */

static void on_start(struct tw_stream *s, const struct rv_twmsg *m)
{
	struct rv_twilio *tw = s->srv->tw;
	const struct rv_config *cfg = tw->app->cfg;
	struct tw_pending p;
	char why[96];

	if (s->state != ST_WAIT_START) {
		bad_input(s, "duplicate_start", NULL);
		return;
	}
	rv_strlcpy(s->call_sid, m->call_sid, sizeof(s->call_sid));
	if (!m->stream_sid[0]) {
		fatal_input(s, "bad_start", "no streamSid", WEBSOCK_POLICY_VIOLATION);
		return;
	}
	rv_strlcpy(s->stream_sid, m->stream_sid, sizeof(s->stream_sid));
	if (strcmp(m->account_sid, cfg->twilio_sid) != 0) {
		fatal_input(s, "account_mismatch", m->account_sid, WEBSOCK_POLICY_VIOLATION);
		return;
	}
	if (strcmp(m->encoding, "audio/x-mulaw") != 0 || m->sample_rate != TEL_RATE ||
	    m->channels != 1) {
		snprintf(why, sizeof(why), "%s %" PRId64 " Hz x%" PRId64, m->encoding,
		         m->sample_rate, m->channels);
		fatal_input(s, "unsupported_format", why, WEBSOCK_UNSUPPORTED_DATA);
		return;
	}
	int64_t call_id = 0;
	const char *cid = rv_twmsg_param(m, "call_id");
	if (cid && rv_parse_int64(cid, 1, INT64_MAX, &call_id) != 0) {
		fatal_input(s, "bad_start", "call_id parameter is not a row id",
		            WEBSOCK_POLICY_VIOLATION);
		return;
	}
	s->call_id = call_id;
	/* Only a call our signed voice webhook announced may open a stream. */
	if (tw_pending_take(tw, m->call_sid, call_id, &p) != 0) {
		fatal_input(s, "unknown_call", m->call_sid, WEBSOCK_POLICY_VIOLATION);
		return;
	}

	int err = rv_audio_init(&s->audio, &audio_ops, s);
	if (!err) {
		s->audio_on = true;
		err = rv_resampler_alloc(TEL_RATE, RV_MEDIA_RATE, 3, &s->up);
	}
	if (!err)
		err = rv_resampler_alloc(RV_MEDIA_RATE, TEL_RATE, 3, &s->down);
	if (err) {
		rv_error(TW_COMP, "cannot set up the audio of a Media Stream: %s", strerror(-err));
		tw_count_stream_error("internal");
		end_stream(s, false, "stream_error", WEBSOCK_INTERNAL_ERROR);
		return;
	}
	struct rv_tel_attach a = {
	    .channel = RV_TEL_TWILIO,
	    .external_id = m->call_sid,
	    .from = p.from,
	    .to = p.to,
	    .outbound = p.outbound,
	    .call_id = call_id,
	    .campaign_id = 0, /* the service routes inbound calls itself */
	    .audio = &s->audio,
	    .ops = &channel_ops,
	    .ops_arg = s,
	};
	s->state = ST_RUNNING;
	s->buffering = true;
	s->last_msg_ms = tw_now_ms();
	tmr_cancel(&s->start_tmr);
	rv_pace_init(&s->pace, tmr_jiffies(), RV_MEDIA_PTIME_MS, MAX_BURST);
	struct rv_tel_call *call = NULL;
	err = rv_tel_call_attach(tw->tel, &a, &call);
	if (err) {
		snprintf(why, sizeof(why), "the telephony service refused the call: %s",
		         strerror(-err));
		fatal_input(s, "attach_failed", why, WEBSOCK_INTERNAL_ERROR);
		return;
	}
	if (s->state != ST_RUNNING) /* the runner ended it already */
		return;
	s->call = call;
	s->call_id = rv_tel_call_id(call) ? rv_tel_call_id(call) : call_id;
	rv_logkv(RV_LOG_INFO, TW_COMP, "Media Stream started", "call_sid", s->call_sid,
	         "stream_sid", s->stream_sid, "peer", s->peer, "direction",
	         p.outbound ? "outbound" : "inbound", "from", p.from, "to", p.to, NULL);
	tmr_start(&s->tmr, 0, tick_h, s);
}

static void on_media(struct tw_stream *s, const struct rv_twmsg *m, const uint8_t *audio)
{
	if (s->state != ST_RUNNING) {
		bad_input(s, "media_before_start", NULL);
		return;
	}
	if (m->stream_sid[0] && strcmp(m->stream_sid, s->stream_sid) != 0) {
		bad_input(s, "wrong_stream", m->stream_sid);
		return;
	}
	if (m->outbound_track)
		return; /* our own audio, echoed when the stream asked for both tracks */
	s->media_in++;
	size_t n = m->audio_len;
	if (n > RX_FIFO_MAX) {
		audio += n - RX_FIFO_MAX;
		n = RX_FIFO_MAX;
	}
	if (s->rx_n + n > RX_FIFO_MAX) { /* keep the newest: the oldest is the least useful */
		size_t drop = s->rx_n + n - RX_FIFO_MAX;
		memmove(s->rx, s->rx + drop, s->rx_n - drop);
		s->rx_n -= drop;
		s->rx_dropped += drop;
		tw_count_stream_error("rx_overflow");
	}
	memcpy(s->rx + s->rx_n, audio, n);
	s->rx_n += n;
	if (m->timestamp_ms >= 0)
		s->rx_ts = (uint32_t)((uint64_t)m->timestamp_ms * (TEL_RATE / 1000) + n);
}

static void on_mark(struct tw_stream *s, const struct rv_twmsg *m)
{
	uint32_t item = 0;
	if (sscanf(m->mark, "item-%" SCNu32, &item) != 1)
		return; /* not one of ours */
	for (size_t i = 0; i < s->nmarks; i++) {
		if (s->marks[i].item != item)
			continue;
		uint64_t delay = tw_now_ms() - s->marks[i].sent_ms;
		memmove(s->marks + i, s->marks + i + 1, (s->nmarks - i - 1) * sizeof(s->marks[0]));
		s->nmarks--;
		s->marks_back++;
		register_metrics();
		rv_metrics_observe(M_MARK_DELAY, (double)delay / 1000.0, NULL);
		char d[24], id[24];
		snprintf(d, sizeof(d), "%" PRIu64, delay);
		snprintf(id, sizeof(id), "%" PRId64, s->call_id);
		rv_logkv(RV_LOG_DEBUG, TW_COMP, "playback heard", "call", id, "mark", m->mark,
		         "playout_delay_ms", d, NULL);
		return;
	}
}

static void on_text(struct tw_stream *s, const char *text, size_t len)
{
	static uint8_t audio[RV_TWMSG_MAX_AUDIO]; /* loop thread only */
	static struct rv_twmsg m;
	const char *why = NULL;

	if (rv_twmsg_parse(text, len, &m, audio, sizeof(audio), &why) != 0) {
		bad_input(s, why, NULL);
		return;
	}
	s->last_msg_ms = tw_now_ms();
	switch (m.type) {
	case RV_TWMSG_CONNECTED:
		break;
	case RV_TWMSG_START:
		on_start(s, &m);
		break;
	case RV_TWMSG_MEDIA:
		on_media(s, &m, audio);
		break;
	case RV_TWMSG_DTMF:
		if (s->state != ST_RUNNING || !s->call) {
			bad_input(s, "dtmf_before_start", NULL);
			break;
		}
		rv_tel_call_dtmf(s->call, m.digit);
		break;
	case RV_TWMSG_MARK:
		on_mark(s, &m);
		break;
	case RV_TWMSG_STOP:
		end_stream(s, true, "remote_bye", WEBSOCK_NORMAL_CLOSURE);
		break;
	}
}

static void ws_recv_h(const struct websock_hdr *hdr, struct mbuf *mb, void *arg)
{
	struct tw_stream *s = arg;
	if (s->state == ST_DONE)
		return;
	mem_ref(s);
	const char *data = (const char *)mbuf_buf(mb);
	size_t len = mbuf_get_left(mb);

	if (hdr->opcode != WEBSOCK_CONT && s->frag) {
		fatal_input(s, "protocol", "a new message inside a fragmented one",
		            WEBSOCK_PROTOCOL_ERROR);
		goto out;
	}
	if (hdr->opcode == WEBSOCK_CONT) {
		if (!s->frag) {
			fatal_input(s, "protocol", "a continuation without a first fragment",
			            WEBSOCK_PROTOCOL_ERROR);
			goto out;
		}
		if (s->frag->end + len > MAX_MSG) {
			fatal_input(s, "oversized", "a fragmented message above 64 KiB",
			            WEBSOCK_MESSAGE_TOO_BIG);
			goto out;
		}
		if (mbuf_write_mem(s->frag, (const uint8_t *)data, len) != 0) {
			tw_count_stream_error("internal");
			end_stream(s, false, "stream_error", WEBSOCK_INTERNAL_ERROR);
			goto out;
		}
		if (!hdr->fin)
			goto out;
		struct mbuf *whole = s->frag;
		s->frag = NULL;
		if (s->frag_text)
			on_text(s, (const char *)whole->buf, whole->end);
		else
			bad_input(s, "binary_frame", NULL);
		mem_deref(whole);
		goto out;
	}
	if (len > MAX_MSG) {
		fatal_input(s, "oversized", "a frame above 64 KiB", WEBSOCK_MESSAGE_TOO_BIG);
		goto out;
	}
	if (!hdr->fin) {
		s->frag = mbuf_alloc(len ? len : 64);
		if (!s->frag || mbuf_write_mem(s->frag, (const uint8_t *)data, len) != 0) {
			s->frag = mem_deref(s->frag);
			tw_count_stream_error("internal");
			end_stream(s, false, "stream_error", WEBSOCK_INTERNAL_ERROR);
			goto out;
		}
		s->frag_text = hdr->opcode == WEBSOCK_TEXT;
		goto out;
	}
	if (hdr->opcode == WEBSOCK_TEXT)
		on_text(s, data, len);
	else
		bad_input(s, "binary_frame", NULL); /* Twilio only sends text */
out:
	mem_deref(s);
}

static void ws_close_h(int err, void *arg)
{
	struct tw_stream *s = arg;
	if (s->state == ST_DONE)
		return;
	mem_ref(s);
	if (s->oversized)
		end_stream(s, true, "stream_error", 0);
	else if (err) {
		tw_count_stream_error("socket_error");
		end_stream(s, true, "stream_lost", 0);
	} else {
		/* A close without stop: Twilio always sends stop first, so count it. */
		tw_count_stream_error("closed_without_stop");
		end_stream(s, true, "stream_lost", 0);
	}
	mem_deref(s);
}

/*
 * libre 1.1.0's websock buffers a frame up to 128 KiB before it looks at it, and its length
 * check for masked frames overflows on lengths near 2^64 (fixed upstream in re #1584). This
 * TCP helper sees the bytes first and follows the frame headers, so a frame that announces
 * more than 64 KiB ends the socket before libre buffers or unmasks anything.
 */
static bool guard_recv(int *err, struct mbuf *mb, bool *estab, void *arg)
{
	struct tw_stream *s = arg;
	const uint8_t *p = mbuf_buf(mb);
	size_t n = mbuf_get_left(mb), i = 0;
	(void)estab;
	while (i < n) {
		if (s->gskip) {
			size_t take = n - i < s->gskip ? n - i : (size_t)s->gskip;
			s->gskip -= take;
			i += take;
			continue;
		}
		s->ghdr[s->ghave++] = p[i++];
		if (s->ghave < 2)
			continue;
		uint8_t l7 = s->ghdr[1] & 0x7f;
		size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (s->ghdr[1] & 0x80 ? 4 : 0);
		if (s->ghave < need)
			continue;
		uint64_t len = l7;
		if (l7 == 126)
			len = (uint64_t)s->ghdr[2] << 8 | s->ghdr[3];
		else if (l7 == 127)
			for (int k = 0; k < 8; k++)
				len = len << 8 | s->ghdr[2 + k];
		s->ghave = 0;
		if (len > MAX_MSG) {
			if (!s->oversized) {
				s->oversized = true;
				report(s, "oversized", "a frame header announcing more than 64 KiB",
				       true);
				(void)websock_close(s->wc, WEBSOCK_MESSAGE_TOO_BIG, NULL);
			}
			*err = EOVERFLOW;
			return true;
		}
		s->gskip = len;
	}
	return false;
}

/* ---- the listener ------------------------------------------------------------------------ */

static bool path_ok(const struct pl *path)
{
	static const char want[] = "/twilio/stream";
	const size_t wl = sizeof(want) - 1;
	/* A reverse proxy may keep a prefix of twilio.public_url in front. */
	return path->l >= wl && memcmp(path->p + path->l - wl, want, wl) == 0;
}

static void on_http_req(struct http_conn *conn, const struct http_msg *msg, void *arg)
{
	struct tw_server *srv = arg;
	char peer[64];
	peer_str(http_conn_peer(conn), peer, sizeof(peer));
	if (!path_ok(&msg->path)) {
		tw_count_stream_error("bad_path");
		(void)http_ereply(conn, 404, "Not Found");
		return;
	}
	if (pl_strcmp(&msg->met, "GET") != 0) {
		tw_count_stream_error("bad_upgrade");
		(void)http_ereply(conn, 405, "Method Not Allowed");
		return;
	}
	if (list_count(&srv->streams) >= srv->max_streams) {
		tw_count_stream_error("capacity");
		rv_logkv(RV_LOG_WARN, TW_COMP, "Media Stream refused: at capacity", "peer", peer,
		         NULL);
		(void)http_ereply(conn, 503, "Service Unavailable");
		return;
	}
	struct tw_stream *s = mem_zalloc(sizeof(*s), stream_destructor);
	if (!s) {
		(void)http_ereply(conn, 503, "Service Unavailable");
		return;
	}
	s->srv = srv;
	rv_strlcpy(s->peer, peer, sizeof(s->peer));
	tmr_init(&s->tmr);
	tmr_init(&s->start_tmr);
	int err = websock_accept(&s->wc, srv->ws, conn, msg, 0, ws_recv_h, ws_close_h, s);
	if (err) {
		tw_count_stream_error("bad_upgrade");
		rv_logkv(RV_LOG_WARN, TW_COMP, "not a WebSocket upgrade on /twilio/stream", "peer",
		         peer, "error", strerror(err), NULL);
		mem_deref(s);
		(void)http_ereply(conn, 400, "Bad Request");
		return;
	}
	s->tc = mem_ref(websock_tcp(s->wc));
	err = tcp_register_helper(&s->guard, s->tc, 0, NULL, NULL, guard_recv, s);
	if (err) {
		tw_count_stream_error("internal");
		(void)websock_close(s->wc, WEBSOCK_INTERNAL_ERROR, NULL);
		mem_deref(s);
		return;
	}
	list_append(&srv->streams, &s->le, s);
	tmr_start(&s->start_tmr, START_TIMEOUT_MS, start_timeout_h, s);
	rv_logkv(RV_LOG_DEBUG, TW_COMP, "Media Stream socket open", "peer", peer, NULL);
}

static void server_destructor(void *arg)
{
	struct tw_server *srv = arg;
	mem_deref(srv->hs);
	mem_deref(srv->ws);
}

int tw_server_start(struct rv_twilio *tw, const char *listen, struct tw_server **out, int *port)
{
	struct sa laddr;
	int err;
	if (sa_decode(&laddr, listen, strlen(listen)) != 0) {
		rv_error(TW_COMP, "twilio.stream_listen \"%s\" is not IP:PORT", listen);
		return -EINVAL;
	}
	register_metrics();
	struct tw_server *srv = mem_zalloc(sizeof(*srv), server_destructor);
	if (!srv)
		return -ENOMEM;
	srv->tw = tw;
	list_init(&srv->streams);
	int max = tw->app->cfg->sip_max_calls;
	srv->max_streams = max > 0 ? (size_t)max : 1000;
	err = websock_alloc(&srv->ws, NULL, NULL);
	if (!err)
		err = http_listen(&srv->hs, &laddr, on_http_req, srv);
	if (err) {
		mem_deref(srv);
		return -err;
	}
	struct sa bound;
	if (tcp_sock_local_get(http_sock_tcp(srv->hs), &bound) == 0)
		*port = sa_port(&bound);
	*out = srv;
	return 0;
}

void tw_server_stop(struct tw_server *srv)
{
	if (!srv)
		return;
	/* Stop taking sockets, then end the streams (their calls end with cause "shutdown"). */
	srv->hs = mem_deref(srv->hs);
	while (!list_isempty(&srv->streams)) {
		struct tw_stream *s = list_ledata(list_head(&srv->streams));
		mem_ref(s);
		list_unlink(&s->le);
		end_stream(s, false, "shutdown", WEBSOCK_GOING_AWAY);
		mem_deref(s);
	}
	mem_deref(srv);
}
