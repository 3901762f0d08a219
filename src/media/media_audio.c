/* The transport-independent core of the per-call audio interface: see media_audio_int.h. */
#include <errno.h>
#include <re.h>
#include <string.h>

#include "media/media_audio_int.h"
#include "media/media_rec.h"

int rv_audio_init(struct rv_audio *a, const struct rv_audio_ops *ops, void *ops_arg)
{
	*a = (struct rv_audio){.ops = ops, .ops_arg = ops_arg};
	return rv_playq_alloc(&a->playq);
}

/*
 * One direction of a bridge: whole 20 ms frames of the other leg's caller audio, oldest first.
 * The two legs tick on their own 20 ms clocks with unrelated phases, so a frame may wait up to
 * one tick; a stalled or bursting leg is absorbed by dropping the oldest frames (delay stays
 * within RV_AUDIO_BRIDGE_MAX_MS) or by a silent frame when none is waiting.
 */
#define BRIDGE_FRAMES (RV_AUDIO_BRIDGE_MAX_MS / RV_MEDIA_PTIME_MS)

struct rv_audio_fifo {
	int16_t s[BRIDGE_FRAMES][RV_MEDIA_FRAME];
	unsigned head, n;
};

static void fifo_push(struct rv_audio *to, const int16_t *frame)
{
	struct rv_audio_fifo *f = to->bridge_in;
	if (f->n == BRIDGE_FRAMES) {
		f->head = (f->head + 1) % BRIDGE_FRAMES;
		f->n--;
		to->bridge_dropped++;
	}
	memcpy(f->s[(f->head + f->n) % BRIDGE_FRAMES], frame, sizeof(f->s[0]));
	f->n++;
}

static void fifo_pop(struct rv_audio *a, int16_t *frame)
{
	struct rv_audio_fifo *f = a->bridge_in;
	if (f->n == 0) {
		memset(frame, 0, sizeof(f->s[0]));
		a->bridge_underruns++;
		return;
	}
	memcpy(frame, f->s[f->head], sizeof(f->s[0]));
	f->head = (f->head + 1) % BRIDGE_FRAMES;
	f->n--;
}

void rv_audio_fini(struct rv_audio *a)
{
	rv_audio_unbridge(a);
	rv_audio_record_stop(a);
	a->playq = mem_deref(a->playq);
	a->frame_h = NULL;
}

void rv_audio_step(struct rv_audio *a, const struct rv_audio_frame *caller, int16_t *agent)
{
	if (a->frame_h)
		a->frame_h(caller, a->frame_arg);
	/* Checked after the handler: it may have bridged, unbridged or ended the other leg. */
	if (a->bridge) {
		fifo_push(a->bridge, caller->samples);
		fifo_pop(a, agent);
	} else {
		uint32_t head = rv_playq_head_id(a->playq);
		rv_playq_read(a->playq, agent, RV_MEDIA_FRAME);
		/* An item started this tick: it was at the head and had not been before. */
		if (head && head != a->last_head && a->start_h)
			a->start_h(head, a->start_arg);
		a->last_head = head;
	}
	memcpy(a->last_agent, agent, sizeof(a->last_agent));
	if (a->rec)
		rv_rec_write(a->rec, caller->samples, agent, RV_MEDIA_FRAME);
}

void rv_audio_set_start_handler(struct rv_audio *a, rv_audio_start_h *h, void *arg)
{
	a->start_h = h;
	a->start_arg = arg;
}

const int16_t *rv_audio_last_played(const struct rv_audio *a)
{
	return a->last_agent;
}

void rv_audio_set_frame_handler(struct rv_audio *a, rv_audio_frame_h *h, void *arg)
{
	a->frame_h = h;
	a->frame_arg = arg;
}

int rv_audio_play(struct rv_audio *a, struct rv_pcm *pcm, rv_play_done_h *done_h, void *arg,
                  uint32_t *idp)
{
	if (pcm && pcm->rate != RV_MEDIA_RATE)
		return -EINVAL;
	return rv_playq_push(a->playq, pcm, done_h, arg, idp);
}

void rv_audio_flush(struct rv_audio *a)
{
	rv_playq_flush(a->playq);
	if (a->ops && a->ops->flushed)
		a->ops->flushed(a->ops_arg);
}

bool rv_audio_playing(const struct rv_audio *a)
{
	return !rv_playq_idle(a->playq);
}

int rv_audio_send_dtmf(struct rv_audio *a, const char *digits, uint32_t duration_ms)
{
	if (!a->ops || !a->ops->send_dtmf)
		return -ENOTSUP;
	return a->ops->send_dtmf(a->ops_arg, digits, duration_ms ? duration_ms : 100);
}

int rv_audio_bridge(struct rv_audio *a, struct rv_audio *b)
{
	if (!a || !b || a == b)
		return -EINVAL;
	if (a->bridge || b->bridge)
		return -EALREADY;
	struct rv_audio_fifo *fa = mem_zalloc(sizeof(*fa), NULL);
	struct rv_audio_fifo *fb = mem_zalloc(sizeof(*fb), NULL);
	if (!fa || !fb) {
		mem_deref(fa);
		mem_deref(fb);
		return -ENOMEM;
	}
	a->bridge_in = fa;
	b->bridge_in = fb;
	a->bridge = b;
	b->bridge = a;
	return 0;
}

void rv_audio_unbridge(struct rv_audio *a)
{
	struct rv_audio *b = a ? a->bridge : NULL;
	if (!b)
		return;
	a->bridge_in = mem_deref(a->bridge_in);
	b->bridge_in = mem_deref(b->bridge_in);
	a->bridge = NULL;
	b->bridge = NULL;
}

int rv_audio_record(struct rv_audio *a, const char *path)
{
	if (a->rec)
		return -EALREADY;
	return rv_rec_open(path, RV_MEDIA_RATE, &a->rec);
}

void rv_audio_record_stop(struct rv_audio *a)
{
	if (a->rec)
		rv_rec_close(a->rec);
	a->rec = NULL;
}
