/* The transport-independent core of the per-call audio interface: see media_audio_int.h. */
#include <errno.h>
#include <re.h>

#include "media/media_audio_int.h"
#include "media/media_rec.h"

int rv_audio_init(struct rv_audio *a, const struct rv_audio_ops *ops, void *ops_arg)
{
	*a = (struct rv_audio){.ops = ops, .ops_arg = ops_arg};
	return rv_playq_alloc(&a->playq);
}

void rv_audio_fini(struct rv_audio *a)
{
	rv_audio_record_stop(a);
	a->playq = mem_deref(a->playq);
	a->frame_h = NULL;
}

void rv_audio_step(struct rv_audio *a, const struct rv_audio_frame *caller, int16_t *agent)
{
	if (a->frame_h)
		a->frame_h(caller, a->frame_arg);
	rv_playq_read(a->playq, agent, RV_MEDIA_FRAME);
	if (a->rec)
		rv_rec_write(a->rec, caller->samples, agent, RV_MEDIA_FRAME);
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
