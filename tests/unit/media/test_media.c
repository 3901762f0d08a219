/* Media plane units: G.711, the absolute 20 ms clock, the playback queue, the resampler. */
#include <re.h>
#include <stdlib.h>

#include "media/media_g711.h"
#include "media/media_pace.h"
#include "media/media_pcm.h"
#include "media/media_playq.h"
#include "media/media_resample.h"
#include "../test.h"

RV_TEST(media_g711_known_values)
{
	/* Values from ITU-T G.711 (and identical to CPython's audioop for all 65536 inputs). */
	ASSERT_EQ_INT(rv_g711_ulaw_encode(0), 0xff);
	ASSERT_EQ_INT(rv_g711_ulaw_encode(32767), 0x80);
	ASSERT_EQ_INT(rv_g711_ulaw_encode(-32768), 0x00);
	ASSERT_EQ_INT(rv_g711_ulaw_encode(1000), 0xce);
	ASSERT_EQ_INT(rv_g711_ulaw_decode(0xff), 0);
	ASSERT_EQ_INT(rv_g711_ulaw_decode(0x80), 32124);
	ASSERT_EQ_INT(rv_g711_ulaw_decode(0x00), -32124);
	ASSERT_EQ_INT(rv_g711_alaw_encode(0), 0xd5);
	ASSERT_EQ_INT(rv_g711_alaw_encode(32767), 0xaa);
	ASSERT_EQ_INT(rv_g711_alaw_encode(-32768), 0x2a);
	ASSERT_EQ_INT(rv_g711_alaw_decode(0xd5), 8);
	ASSERT_EQ_INT(rv_g711_alaw_decode(0x55), -8);
	ASSERT_EQ_INT(rv_g711_alaw_decode(0xaa), 32256);
	ASSERT_EQ_INT(rv_g711_alaw_decode(0x2a), -32256);
	enum rv_g711_law law;
	ASSERT_OK(rv_g711_law_from_pt(8, &law));
	ASSERT_EQ_INT(law, RV_G711_ALAW);
	ASSERT_EQ_INT(rv_g711_law_from_pt(18, &law), -ENOTSUP);
}

RV_TEST(media_g711_round_trips)
{
	/* Every code decodes to a value that encodes back to the same code (except μ-law's
	 * negative zero 0x7f, which is the same value as 0xff), and re-encoding a decoded
	 * linear value is stable; quantisation error stays within the segment's step. */
	for (int c = 0; c < 256; c++) {
		if (c != 0x7f)
			ASSERT_EQ_INT(rv_g711_ulaw_encode(rv_g711_ulaw_decode((uint8_t)c)), c);
		ASSERT_EQ_INT(rv_g711_alaw_encode(rv_g711_alaw_decode((uint8_t)c)), c);
	}
	for (int v = -32768; v < 32768; v += 7) {
		int u = rv_g711_ulaw_decode(rv_g711_ulaw_encode((int16_t)v));
		int a = rv_g711_alaw_decode(rv_g711_alaw_encode((int16_t)v));
		int mag = abs(v);
		int tol = mag < 256 ? 16 : mag / 16 + 8;
		ASSERT_MSG(abs(u - v) <= tol + 128 * (mag > 32000), "ulaw %d -> %d", v, u);
		ASSERT_MSG(abs(a - v) <= tol + 128 * (mag > 32000), "alaw %d -> %d", v, a);
	}
	int16_t in[160], out[160];
	uint8_t enc[160];
	for (int i = 0; i < 160; i++)
		in[i] = (int16_t)(i * 200 - 16000);
	rv_g711_encode(RV_G711_ALAW, in, enc, 160);
	rv_g711_decode(RV_G711_ALAW, enc, out, 160);
	for (int i = 0; i < 160; i++)
		ASSERT_EQ_INT(out[i], rv_g711_alaw_decode(rv_g711_alaw_encode(in[i])));
}

RV_TEST(media_pace_absolute_clock_no_drift)
{
	struct rv_pace p;
	rv_pace_init(&p, 1000, 20, 10);
	ASSERT_EQ_INT(rv_pace_take(&p, 1000), 1); /* frame 0 at start */
	ASSERT_EQ_INT(rv_pace_take(&p, 1005), 0); /* woke early */
	ASSERT_EQ_INT(rv_pace_delay(&p, 1005), 15);
	/* A timer that always fires 3 ms late does not push later deadlines back. */
	uint64_t now = 1000;
	for (int i = 1; i <= 90000; i++) { /* 30 minutes of frames */
		now = 1000 + (uint64_t)i * 20 + 3;
		ASSERT_EQ_INT(rv_pace_take(&p, now), 1);
	}
	ASSERT_EQ_INT(p.next, 90001);
	ASSERT_EQ_INT(rv_pace_deadline(&p, p.next), 1000 + 90001ull * 20);
	ASSERT_EQ_INT(rv_pace_delay(&p, now), 17);
}

RV_TEST(media_pace_catch_up_and_skip)
{
	struct rv_pace p;
	rv_pace_init(&p, 0, 20, 10);
	ASSERT_EQ_INT(rv_pace_take(&p, 0), 1);
	ASSERT_EQ_INT(rv_pace_take(&p, 65), 3); /* frames 1, 2, 3 (due at 20, 40, 60) */
	ASSERT_EQ_INT(rv_pace_delay(&p, 65), 15);
	/* A 1 s stall: 50 frames due, 10 produced, 40 skipped, phase kept. */
	ASSERT_EQ_INT(rv_pace_take(&p, 1065), 10);
	ASSERT_EQ_INT(p.skipped, 40);
	ASSERT_EQ_INT(p.next, 54);
	ASSERT_EQ_INT(rv_pace_delay(&p, 1065), 15);
}

static int done_calls;
static enum rv_play_end last_how[8];
static size_t last_played[8];
static uint32_t last_id[8];

static void done_h(uint32_t id, enum rv_play_end how, size_t played, size_t total, void *arg)
{
	(void)total;
	(void)arg;
	if (done_calls < 8) {
		last_id[done_calls] = id;
		last_how[done_calls] = how;
		last_played[done_calls] = played;
	}
	done_calls++;
}

static struct rv_pcm *tone(size_t n, int16_t v)
{
	struct rv_pcm *p = NULL;
	if (rv_pcm_alloc(n, 16000, &p) != 0)
		abort();
	for (size_t i = 0; i < n; i++)
		p->s[i] = v;
	return p;
}

RV_TEST(media_playq_order_done_and_silence)
{
	struct rv_playq *q = NULL;
	int16_t f[320];
	uint32_t id1 = 0, id2 = 0;
	done_calls = 0;
	ASSERT_OK(rv_playq_alloc(&q));
	struct rv_pcm *a = tone(500, 100), *b = tone(200, 200);
	ASSERT_OK(rv_playq_push(q, a, done_h, NULL, &id1));
	ASSERT_OK(rv_playq_push(q, b, done_h, NULL, &id2));
	ASSERT_EQ_INT(rv_playq_pending(q), 700);
	ASSERT(rv_playq_read(q, f, 320));
	ASSERT_EQ_INT(f[0], 100);
	ASSERT_EQ_INT(done_calls, 0);
	ASSERT(rv_playq_read(q, f, 320)); /* a ends (180) and b follows in the same frame */
	ASSERT_EQ_INT(f[179], 100);
	ASSERT_EQ_INT(f[180], 200);
	ASSERT_EQ_INT(f[319], 200);
	ASSERT_EQ_INT(done_calls, 1);
	ASSERT_EQ_INT(last_id[0], id1);
	ASSERT_EQ_INT(last_how[0], RV_PLAY_DONE);
	ASSERT(rv_playq_read(q, f, 320)); /* last 60 of b, then comfort silence */
	ASSERT_EQ_INT(f[59], 200);
	ASSERT_EQ_INT(f[60], 0);
	ASSERT_EQ_INT(f[319], 0);
	ASSERT_EQ_INT(done_calls, 2);
	ASSERT_EQ_INT(last_played[1], 200);
	ASSERT(!rv_playq_read(q, f, 320));
	ASSERT(rv_playq_idle(q));
	ASSERT_EQ_INT(rv_playq_push(q, NULL, NULL, NULL, NULL), -EINVAL);
	mem_deref(a);
	mem_deref(b);
	mem_deref(q);
}

RV_TEST(media_playq_flush_within_one_frame)
{
	struct rv_playq *q = NULL;
	int16_t f[320];
	done_calls = 0;
	ASSERT_OK(rv_playq_alloc(&q));
	struct rv_pcm *a = tone(16000, 300), *b = tone(16000, 400);
	ASSERT_OK(rv_playq_push(q, a, done_h, NULL, NULL));
	ASSERT_OK(rv_playq_push(q, b, done_h, NULL, NULL));
	ASSERT(rv_playq_read(q, f, 320));
	ASSERT(rv_playq_read(q, f, 320));
	rv_playq_flush(q);
	/* Both items report, in order, with how much was heard. */
	ASSERT_EQ_INT(done_calls, 2);
	ASSERT_EQ_INT(last_how[0], RV_PLAY_FLUSHED);
	ASSERT_EQ_INT(last_played[0], 640);
	ASSERT_EQ_INT(last_how[1], RV_PLAY_FLUSHED);
	ASSERT_EQ_INT(last_played[1], 0);
	/* The very next frame is silence. */
	ASSERT(!rv_playq_read(q, f, 320));
	for (int i = 0; i < 320; i++)
		ASSERT_EQ_INT(f[i], 0);
	ASSERT_EQ_INT(rv_playq_pending(q), 0);
	/* Items still queued when the queue goes away report as flushed. */
	ASSERT_OK(rv_playq_push(q, a, done_h, NULL, NULL));
	mem_deref(q);
	ASSERT_EQ_INT(done_calls, 3);
	ASSERT_EQ_INT(last_how[2], RV_PLAY_FLUSHED);
	mem_deref(a);
	mem_deref(b);
}

static struct rv_playq *reentrant_q;
static struct rv_pcm *reentrant_next;

static void push_next_h(uint32_t id, enum rv_play_end how, size_t played, size_t total, void *arg)
{
	done_h(id, how, played, total, arg);
	if (reentrant_next)
		(void)rv_playq_push(reentrant_q, reentrant_next, done_h, NULL, NULL);
	reentrant_next = NULL;
}

RV_TEST(media_playq_flush_keeps_item_pushed_by_callback)
{
	int16_t f[320];
	done_calls = 0;
	ASSERT_OK(rv_playq_alloc(&reentrant_q));
	struct rv_pcm *a = tone(1000, 1), *b = tone(320, 2);
	reentrant_next = b;
	ASSERT_OK(rv_playq_push(reentrant_q, a, push_next_h, NULL, NULL));
	rv_playq_flush(reentrant_q); /* barge-in; the callback queues the reply */
	ASSERT_EQ_INT(done_calls, 1);
	ASSERT(rv_playq_read(reentrant_q, f, 320));
	ASSERT_EQ_INT(f[0], 2);
	ASSERT_EQ_INT(done_calls, 2);
	mem_deref(reentrant_q);
	mem_deref(a);
	mem_deref(b);
}

RV_TEST(media_playq_cap)
{
	struct rv_playq *q = NULL;
	ASSERT_OK(rv_playq_alloc(&q));
	struct rv_pcm *big = tone(RV_PLAYQ_MAX_SAMPLES, 1), *one = tone(1, 1);
	ASSERT_OK(rv_playq_push(q, big, NULL, NULL, NULL));
	ASSERT_EQ_INT(rv_playq_push(q, one, done_h, NULL, NULL), -E2BIG);
	mem_deref(q);
	mem_deref(big);
	mem_deref(one);
}

RV_TEST(media_resample_8k_16k_frames)
{
	struct rv_resampler *up = NULL, *down = NULL;
	int16_t in[160], mid[330], back[170];
	size_t n = 0;
	ASSERT_OK(rv_resampler_alloc(8000, 16000, 3, &up));
	ASSERT_OK(rv_resampler_alloc(16000, 8000, 3, &down));
	double e_in = 0, e_back = 0;
	for (int frame = 0; frame < 50; frame++) {
		for (int i = 0; i < 160; i++) {
			double t = (frame * 160 + i) / 8000.0;
			in[i] = (int16_t)(8000 * __builtin_sin(2 * 3.141592653589793 * 500 * t));
		}
		ASSERT_OK(rv_resampler_run(up, in, 160, mid, 330, &n));
		ASSERT_EQ_INT(n, 320);
		ASSERT_OK(rv_resampler_run(down, mid, 320, back, 170, &n));
		ASSERT_EQ_INT(n, 160);
		if (frame >= 10) {
			for (int i = 0; i < 160; i++) {
				e_in += (double)in[i] * in[i];
				e_back += (double)back[i] * back[i];
			}
		}
	}
	/* A 500 Hz tone survives the round trip with its energy (within 10 %). */
	ASSERT_MSG(e_back > e_in * 0.9 && e_back < e_in * 1.1, "energy %f vs %f", e_back, e_in);
	ASSERT_EQ_INT(rv_resampler_run(up, in, 160, mid, 100, &n), -EINVAL);
	ASSERT_EQ_INT(rv_resampler_alloc(0, 16000, 3, &up), -EINVAL);
	mem_deref(up);
	mem_deref(down);
}
