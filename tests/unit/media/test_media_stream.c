/*
 * RTP streams on loopback, on a private media loop: RFC 4733 digits both ways, in-band digits
 * when no telephone-event was negotiated, one report per press when a peer sends both, RTCP
 * reports and the peer's figures, bridging two calls, and the input path under bad packets.
 */
#include <math.h>
#include <pthread.h>
#include <re.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_audio.h"
#include "media/media_dtmf.h"
#include "media/media_g711.h"
#include "media/media_loop.h"
#include "media/media_pcm.h"
#include "media/media_stream.h"
#include "obs/metrics.h"
#include "../test.h"

#define LEGS     4
#define PORT_MIN 42000
#define PORT_MAX 42999

struct leg {
	struct rv_media_stream *ms;
	char digits[64];
	size_t ndigits;
	uint64_t loud; /* caller frames with an RMS above 1000 */
};

struct fix {
	struct rv_media_loop *loop;
	struct leg leg[LEGS];
	struct rv_media_stats st[LEGS];
	int telev_pt;
	int err;
	/* scratch for commands */
	int a, b;
	const char *digits;
	uint32_t dur;
	struct tmr inject_tmr;
	struct inject *inj;
};

struct sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	rv_media_fn *fn;
	void *arg;
};

static void sync_h(void *arg)
{
	struct sync *s = arg;
	s->fn(s->arg);
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Run fn(arg) on the loop and wait for it. */
static int on_loop(struct fix *f, rv_media_fn *fn)
{
	struct sync s = {.fn = fn, .arg = f};
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	int err = rv_media_loop_exec(f->loop, sync_h, &s);
	if (!err) {
		pthread_mutex_lock(&s.mu);
		while (!s.done)
			pthread_cond_wait(&s.cv, &s.mu);
		pthread_mutex_unlock(&s.mu);
	}
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
	return err;
}

static void dtmf_h(char digit, void *arg)
{
	struct leg *l = arg;
	if (l->ndigits + 1 < sizeof(l->digits))
		l->digits[l->ndigits++] = digit;
}

static void frame_h(const struct rv_audio_frame *fr, void *arg)
{
	struct leg *l = arg;
	double e = 0;
	for (size_t i = 0; i < fr->n; i++)
		e += (double)fr->samples[i] * fr->samples[i];
	if (sqrt(e / (double)fr->n) > 1000)
		l->loud++;
}

static void alloc_all(void *arg)
{
	struct fix *f = arg;
	struct sa ip;
	sa_set_str(&ip, "127.0.0.1", 0);
	for (int i = 0; i < LEGS && !f->err; i++) {
		f->err = rv_media_stream_alloc(&ip, PORT_MIN, PORT_MAX, &f->leg[i].ms);
		if (!f->err)
			rv_audio_set_frame_handler(rv_media_stream_audio(f->leg[i].ms), frame_h,
			                           &f->leg[i]);
	}
}

/* Start leg a sending to leg b's port. */
static void start_one(void *arg)
{
	struct fix *f = arg;
	struct sa raddr;
	sa_set_str(&raddr, "127.0.0.1", rv_media_stream_port(f->leg[f->b].ms));
	f->err = rv_media_stream_start(f->leg[f->a].ms, &raddr, RV_G711_PT_PCMU, f->telev_pt,
	                               dtmf_h, &f->leg[f->a]);
}

static void free_all(void *arg)
{
	struct fix *f = arg;
	tmr_cancel(&f->inject_tmr);
	for (int i = 0; i < LEGS; i++)
		f->leg[i].ms = mem_deref(f->leg[i].ms);
}

static void read_stats(void *arg)
{
	struct fix *f = arg;
	for (int i = 0; i < LEGS; i++)
		if (f->leg[i].ms)
			rv_media_stream_stats(f->leg[i].ms, &f->st[i]);
}

static void send_digits(void *arg)
{
	struct fix *f = arg;
	f->err = rv_audio_send_dtmf(rv_media_stream_audio(f->leg[f->a].ms), f->digits, f->dur);
}

static struct fix *fix_new(int telev_pt)
{
	struct fix *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->telev_pt = telev_pt;
	if (rv_media_loop_start(NULL, NULL, &f->loop) != 0) {
		free(f);
		return NULL;
	}
	tmr_init(&f->inject_tmr);
	if (on_loop(f, alloc_all) != 0 || f->err) {
		on_loop(f, free_all);
		rv_media_loop_stop(f->loop, NULL, NULL);
		free(f);
		return NULL;
	}
	return f;
}

static void fix_free(struct fix *f)
{
	if (!f)
		return;
	on_loop(f, free_all);
	rv_media_loop_stop(f->loop, NULL, NULL);
	free(f);
}

static int start_pair(struct fix *f, int a, int b)
{
	f->a = a;
	f->b = b;
	if (on_loop(f, start_one) || f->err)
		return -1;
	f->a = b;
	f->b = a;
	if (on_loop(f, start_one) || f->err)
		return -1;
	return 0;
}

static void sleep_ms(unsigned ms)
{
	usleep(ms * 1000);
}

RV_TEST(media_stream_rfc4733_digits_once)
{
	struct fix *f = fix_new(101);
	ASSERT(f);
	ASSERT_OK(start_pair(f, 0, 1));
	f->a = 0;
	f->digits = "1#9D";
	f->dur = 0;
	ASSERT_OK(on_loop(f, send_digits));
	ASSERT_OK(f->err);
	f->a = 1;
	f->digits = "x";
	ASSERT_OK(on_loop(f, send_digits));
	ASSERT_EQ_INT(f->err, -EINVAL);
	f->digits = "*";
	f->dur = 60;
	ASSERT_OK(on_loop(f, send_digits));
	/* Four digits of 100 ms with 100 ms gaps: under a second; generous for a loaded box. */
	for (int i = 0; i < 60 && f->leg[1].ndigits < 4; i++)
		sleep_ms(100);
	sleep_ms(500); /* any duplicate would arrive by now */
	ASSERT_OK(on_loop(f, read_stats));
	ASSERT_EQ_STR(f->leg[1].digits, "1#9D");
	ASSERT_EQ_STR(f->leg[0].digits, "*");
	ASSERT_EQ_INT(f->st[1].dtmf_events, 4);
	ASSERT_EQ_INT(f->st[1].dtmf_inband, 0);
	ASSERT_EQ_INT(f->st[0].dtmf_sent, 4);
	ASSERT_EQ_INT(f->st[1].dtmf_sent, 1);
	ASSERT_EQ_INT(f->st[1].rx_malformed, 0);
	fix_free(f);
}

RV_TEST(media_stream_inband_without_telephone_event)
{
	struct fix *f = fix_new(-1);
	ASSERT(f);
	ASSERT_OK(start_pair(f, 0, 1));
	f->a = 0;
	f->digits = "47*0";
	f->dur = 80;
	ASSERT_OK(on_loop(f, send_digits));
	ASSERT_OK(f->err);
	for (int i = 0; i < 60 && f->leg[1].ndigits < 4; i++)
		sleep_ms(100);
	sleep_ms(500);
	ASSERT_OK(on_loop(f, read_stats));
	ASSERT_EQ_STR(f->leg[1].digits, "47*0");
	ASSERT_EQ_INT(f->st[1].dtmf_inband, 4);
	ASSERT_EQ_INT(f->st[1].dtmf_events, 0);
	ASSERT_EQ_INT(f->st[0].dtmf_sent, 4);
	ASSERT_EQ_INT(f->leg[0].ndigits, 0);
	fix_free(f);
}

/*
 * A phone that sends both: injected packets, one tick every 20 ms, from a fake peer. Press '5'
 * as tone and RFC 4733 events (starting 40 ms after the tone, as some gateways do), then '6' as
 * a tone only: this peer signals out of band, so only '5' is reported, once.
 */
#define INJ_TICKS 60
struct inject {
	uint8_t pkt[INJ_TICKS][2][12 + 160];
	size_t len[INJ_TICKS][2];
	int tick;
	struct sa src;
	struct rv_media_stream *ms;
};

static void put_hdr(uint8_t *p, int pt, bool m, uint16_t seq, uint32_t ts)
{
	p[0] = 0x80;
	p[1] = (uint8_t)((m ? 0x80 : 0) | pt);
	p[2] = (uint8_t)(seq >> 8);
	p[3] = (uint8_t)seq;
	p[4] = (uint8_t)(ts >> 24);
	p[5] = (uint8_t)(ts >> 16);
	p[6] = (uint8_t)(ts >> 8);
	p[7] = (uint8_t)ts;
	p[8] = 0x12;
	p[9] = 0x34;
	p[10] = 0x56;
	p[11] = 0x78;
}

static void inject_h(void *arg)
{
	struct fix *f = arg;
	struct inject *in = f->inj;
	for (int k = 0; k < 2; k++)
		if (in->len[in->tick][k])
			rv_media_stream_input(in->ms, &in->src, in->pkt[in->tick][k],
			                      in->len[in->tick][k]);
	if (++in->tick < INJ_TICKS)
		tmr_start(&f->inject_tmr, 20, inject_h, f);
}

static void inject_start(void *arg)
{
	struct fix *f = arg;
	f->inj->ms = f->leg[1].ms;
	tmr_start(&f->inject_tmr, 20, inject_h, f);
}

static void start_leg1_fake_peer(void *arg)
{
	struct fix *f = arg;
	struct sa raddr;
	sa_set_str(&raddr, "127.0.0.1", 9); /* discard: nobody answers */
	f->err = rv_media_stream_start(f->leg[1].ms, &raddr, RV_G711_PT_PCMU, f->telev_pt, dtmf_h,
	                               &f->leg[1]);
}

static void tone_and_event(int telev_pt, const char *want, int events, int inband)
{
	static struct inject in;
	memset(&in, 0, sizeof(in));
	struct fix *f = fix_new(telev_pt);
	ASSERT(f);
	f->inj = &in;
	sa_set_str(&in.src, "127.0.0.1", 9);
	struct rv_dtmf_tx *tones = NULL;
	ASSERT_OK(rv_dtmf_tx_alloc(&tones));
	uint16_t seq = 100;
	uint32_t ts = 5000;
	for (int t = 0; t < INJ_TICKS; t++, ts += 160) {
		int16_t pcm[160] = {0};
		if (t == 5)
			ASSERT_OK(rv_dtmf_tx_queue(tones, "5", 120));
		if (t == 30)
			ASSERT_OK(rv_dtmf_tx_queue(tones, "6", 120));
		(void)rv_dtmf_tx_tones(tones, pcm, 160);
		put_hdr(in.pkt[t][0], 0, t == 0, seq++, ts);
		rv_g711_encode(RV_G711_ULAW, pcm, in.pkt[t][0] + 12, 160);
		in.len[t][0] = 12 + 160;
		if (t >= 7 && t <= 12) {
			/* The tone began at tick 5; the event says so, 40 ms late. */
			uint32_t dur = (uint32_t)(t - 4) * 160;
			struct rv_telev ev = {.event = 5,
			                      .end = dur >= 960,
			                      .volume = 10,
			                      .duration = (uint16_t)(dur < 960 ? dur : 960)};
			put_hdr(in.pkt[t][1], 101, t == 7, seq++, 5000 + 5 * 160);
			rv_telev_encode(&ev, in.pkt[t][1] + 12);
			in.len[t][1] = 12 + 4;
		}
	}
	mem_deref(tones);
	ASSERT_OK(on_loop(f, start_leg1_fake_peer));
	ASSERT_OK(f->err);
	ASSERT_OK(on_loop(f, inject_start));
	sleep_ms(INJ_TICKS * 20 + 1500);
	ASSERT_OK(on_loop(f, read_stats));
	ASSERT_EQ_STR(f->leg[1].digits, want);
	ASSERT_EQ_INT(f->st[1].dtmf_events, events);
	ASSERT_EQ_INT(f->st[1].dtmf_inband, inband);
	ASSERT(f->st[1].frames_received > 20);
	fix_free(f);
}

RV_TEST(media_stream_dtmf_tone_and_event_reported_once)
{
	tone_and_event(101, "5", 1, 0);
	/* Control: without telephone-event the events are dropped and both tones are heard. */
	if (!rv_test_failed)
		tone_and_event(-1, "56", 0, 2);
}

RV_TEST(media_stream_rtcp_reports_and_peer_figures)
{
	struct fix *f = fix_new(101);
	ASSERT(f);
	/* Leg 1 starts a second later, so its first report carries the LSR of leg 0's first SR. */
	f->a = 0;
	f->b = 1;
	ASSERT_OK(on_loop(f, start_one));
	sleep_ms(1000);
	f->a = 1;
	f->b = 0;
	ASSERT_OK(on_loop(f, start_one));
	for (int i = 0; i < 150; i++) {
		ASSERT_OK(on_loop(f, read_stats));
		if (f->st[0].rtt_ms >= 0 && f->st[1].peer_reports > 0)
			break;
		sleep_ms(100);
	}
	ASSERT_MSG(f->st[0].peer_reports > 0, "no report from leg 1");
	ASSERT_MSG(f->st[1].peer_reports > 0, "no report from leg 0");
	ASSERT(f->st[0].rtcp_rx > 0);
	ASSERT_MSG(f->st[0].rtt_ms >= 0 && f->st[0].rtt_ms < 200, "rtt %.3f", f->st[0].rtt_ms);
	ASSERT_EQ_INT(f->st[0].peer_lost, 0);
	ASSERT(f->st[0].peer_fraction_lost == 0);
	ASSERT_MSG(f->st[0].peer_jitter_ms < 100, "jitter %.2f", f->st[0].peer_jitter_ms);
	ASSERT_EQ_INT(f->st[0].rx_bad_source, 0);
	fix_free(f);
}

/* Legs: 0 <-> 1 is call A (0 the far end), 2 <-> 3 is call B (3 the far end). */
static void bridge_1_2(void *arg)
{
	struct fix *f = arg;
	f->err = rv_audio_bridge(rv_media_stream_audio(f->leg[1].ms),
	                         rv_media_stream_audio(f->leg[2].ms));
}

static void play_tone_on_0(void *arg)
{
	struct fix *f = arg;
	struct rv_pcm *pcm = NULL;
	f->err = rv_pcm_alloc(RV_MEDIA_RATE * 4, RV_MEDIA_RATE, &pcm);
	if (f->err)
		return;
	for (size_t i = 0; i < pcm->n; i++)
		pcm->s[i] = (int16_t)(8000 * sin(2 * M_PI * 1000.0 * (double)i / RV_MEDIA_RATE));
	f->err = rv_audio_play(rv_media_stream_audio(f->leg[0].ms), pcm, NULL, NULL, NULL);
	mem_deref(pcm);
}

static void free_leg1(void *arg)
{
	struct fix *f = arg;
	f->leg[1].ms = mem_deref(f->leg[1].ms);
}

RV_TEST(media_stream_bridge_two_calls)
{
	struct fix *f = fix_new(101);
	ASSERT(f);
	ASSERT_OK(start_pair(f, 0, 1));
	ASSERT_OK(start_pair(f, 2, 3));
	ASSERT_OK(on_loop(f, play_tone_on_0));
	ASSERT_OK(f->err);
	sleep_ms(500);
	/* Not bridged yet: call A's caller audio stays in call A. */
	ASSERT(f->leg[1].loud > 5);
	ASSERT_EQ_INT(f->leg[3].loud, 0);
	ASSERT_OK(on_loop(f, bridge_1_2));
	ASSERT_OK(f->err);
	ASSERT_OK(on_loop(f, bridge_1_2));
	ASSERT_EQ_INT(f->err, -EALREADY);
	sleep_ms(1000);
	uint64_t heard = f->leg[3].loud;
	ASSERT_MSG(heard > 25, "far end of call B heard %llu loud frames",
	           (unsigned long long)heard);
	ASSERT_OK(on_loop(f, read_stats));
	/* The FIFO kept the delay bounded: few drops or gaps on an unloaded loop. */
	ASSERT(f->st[2].bridge_dropped + f->st[2].bridge_underruns < 10);
	/* Leg 1 goes away while bridged: leg 2 falls back to its own (empty) queue. */
	ASSERT_OK(on_loop(f, free_leg1));
	sleep_ms(300);
	uint64_t after = f->leg[3].loud;
	sleep_ms(500);
	ASSERT_EQ_INT(f->leg[3].loud, after);
	fix_free(f);
}

/* How much a STUN message moved rx_malformed in garbage() (it must not). */
static uint64_t stun_counted_malformed = 99;

/* Bad input through the fuzzing entry point: each drop counted under its reason. */
static void garbage(void *arg)
{
	struct fix *f = arg;
	struct rv_media_stream *ms = f->leg[1].ms;
	struct sa peer, other, other_ip;
	sa_set_str(&peer, "127.0.0.1", 9);
	sa_set_str(&other, "127.0.0.1", 10);
	sa_set_str(&other_ip, "127.0.0.2", 9);
	uint8_t p[2048];
	memset(p, 0xff, sizeof(p));

	put_hdr(p, 0, true, 1, 160);
	rv_media_stream_input(ms, &peer, p, 5); /* truncated */
	p[0] = 0x40;
	rv_media_stream_input(ms, &peer, p, 172); /* version 1 */
	p[0] = 0x8f;
	rv_media_stream_input(ms, &peer, p, 20); /* 15 CSRCs announced, 2 present */
	p[0] = 0x90;
	p[12] = 0;
	p[13] = 1;
	p[14] = 0xff;
	p[15] = 0xff;
	rv_media_stream_input(ms, &peer, p, 40); /* extension longer than the packet */
	put_hdr(p, 0, false, 2, 320);
	memset(p + 12, 0xff, 160);
	rv_media_stream_input(ms, &peer, p, 172);  /* good: latches */
	rv_media_stream_input(ms, &other, p, 172); /* another port */
	put_hdr(p, 96, false, 3, 480);
	rv_media_stream_input(ms, &peer, p, 172); /* not negotiated */
	put_hdr(p, 0, false, 4, 640);
	rv_media_stream_input(ms, &peer, p, 12 + 1500); /* oversized */
	rv_media_stream_input(ms, &peer, p, 12);        /* empty */
	p[0] = 0xa0;
	p[12 + 159] = 0;
	rv_media_stream_input(ms, &peer, p, 172); /* padding count 0 */
	p[12 + 159] = 200;
	rv_media_stream_input(ms, &peer, p, 172); /* padding beyond the payload */
	put_hdr(p, 101, true, 5, 800);
	p[12] = 3;
	p[13] = 10;
	p[14] = 0;
	p[15] = 160;
	rv_media_stream_input(ms, &peer, p, 15); /* telephone-event too short */
	p[12] = 16;
	rv_media_stream_input(ms, &peer, p, 16); /* flash: not a digit */
	p[12] = 3;
	for (int i = 0; i < 5; i++)
		rv_media_stream_input(ms, &peer, p, 16); /* digit 3, once */
	/* RTCP: an RR of bad length, and a good RR from elsewhere. */
	uint8_t rr[8] = {0x80, 201, 0, 9, 1, 2, 3, 4};
	rv_media_stream_input(ms, &peer, rr, 8);
	rr[3] = 1;
	rv_media_stream_input(ms, &other_ip, rr, 8);
	rv_media_stream_input(ms, &peer, rr, 8); /* accepted */
	/* A STUN binding request (a NAT pinhole): counted as STUN, not as broken RTP. */
	struct rv_media_stats before;
	rv_media_stream_stats(ms, &before);
	uint8_t stun[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1,  2,
	                    3,    4,    5,    6,    7,    8,    9,    10,   11, 12};
	rv_media_stream_input(ms, &peer, stun, sizeof(stun));
	struct rv_media_stats after;
	rv_media_stream_stats(ms, &after);
	stun_counted_malformed = after.rx_malformed - before.rx_malformed;
	/* A flood of junk: counted, never a crash, and few log lines. */
	uint32_t x = 12345;
	for (int i = 0; i < 2000; i++) {
		size_t len = (size_t)(x % 300);
		for (size_t k = 0; k < len; k++) {
			x = x * 1103515245u + 12345u;
			p[k] = (uint8_t)(x >> 16);
		}
		rv_media_stream_input(ms, i % 2 ? &peer : &other, p, len);
	}
	rv_media_stream_stats(ms, &f->st[1]);
}

RV_TEST(media_stream_bad_input_counted)
{
	struct fix *f = fix_new(101);
	ASSERT(f);
	ASSERT_OK(on_loop(f, start_leg1_fake_peer));
	char path[] = "/tmp/rv-media-log-XXXXXX";
	int fd = mkstemp(path);
	ASSERT(fd >= 0);
	rv_log_set_fd(fd);
	rv_log_set_level(RV_LOG_WARN);
	int err = on_loop(f, garbage);
	rv_log_set_level(RV_LOG_ERROR + 1);
	rv_log_set_fd(2);
	ASSERT_OK(err);
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	buf[n > 0 ? n : 0] = '\0';
	int lines = 0;
	for (char *s = buf; (s = strstr(s, "dropped")); s++)
		lines++;
	/* The first drop is logged at once, the rest summed into later lines (10 s apart). */
	ASSERT_MSG(lines == 1, "%d drop log lines:\n%s", lines, buf);
	ASSERT_EQ_STR(f->leg[1].digits, "3");
	ASSERT_EQ_INT(f->st[1].dtmf_events, 1);
	ASSERT(f->st[1].rx_bad_source >= 2);
	ASSERT(f->st[1].rx_malformed >= 11);
	ASSERT(f->st[1].rtcp_rx >= 1);
	ASSERT_EQ_INT(stun_counted_malformed, 0);

	char *text = NULL;
	size_t len = 0;
	ASSERT_OK(rv_metrics_render(&text, &len));
	static const char *const reasons[] = {
	    "truncated", "version",     "source",     "payload",        "oversized",   "empty",
	    "padding",   "telev_short", "dtmf_event", "rtcp_malformed", "rtcp_source", "stun"};
	for (size_t i = 0; i < RV_ARRAY_LEN(reasons); i++) {
		char want[96];
		snprintf(want, sizeof(want), "rv_media_rtp_dropped_total{reason=\"%s\"}",
		         reasons[i]);
		ASSERT_MSG(strstr(text, want) != NULL, "no %s", want);
	}
	free(text);
	fix_free(f);
}
