/* The playback queue: see media_playq.h. */
#include <errno.h>
#include <re.h>
#include <string.h>

#include "media/media_pcm.h"
#include "media/media_playq.h"

struct play_item {
	struct le le;
	struct rv_pcm *pcm;
	size_t pos;
	uint32_t id;
	rv_play_done_h *done_h;
	void *arg;
};

struct rv_playq {
	struct list items;
	size_t pending;
	uint32_t next_id;
};

static void item_destructor(void *arg)
{
	struct play_item *it = arg;
	list_unlink(&it->le);
	mem_deref(it->pcm);
}

/* Unlink the head item, then tell its owner; the callback may push or flush freely because
 * the item is no longer in the list. */
static void finish_head(struct rv_playq *q, enum rv_play_end how)
{
	struct play_item *it = list_ledata(list_head(&q->items));
	list_unlink(&it->le);
	q->pending -= it->pcm->n - it->pos;
	if (it->done_h)
		it->done_h(it->id, how, it->pos, it->pcm->n, it->arg);
	mem_deref(it);
}

static void playq_destructor(void *arg)
{
	struct rv_playq *q = arg;
	while (!list_isempty(&q->items))
		finish_head(q, RV_PLAY_FLUSHED);
}

int rv_playq_alloc(struct rv_playq **out)
{
	struct rv_playq *q = mem_zalloc(sizeof(*q), playq_destructor);
	if (!q)
		return -ENOMEM;
	list_init(&q->items);
	q->next_id = 1;
	*out = q;
	return 0;
}

int rv_playq_push(struct rv_playq *q, struct rv_pcm *pcm, rv_play_done_h *done_h, void *arg,
                  uint32_t *idp)
{
	if (!q || !pcm || !pcm->n)
		return -EINVAL;
	if (pcm->n > RV_PLAYQ_MAX_SAMPLES || q->pending > RV_PLAYQ_MAX_SAMPLES - pcm->n)
		return -E2BIG;
	struct play_item *it = mem_zalloc(sizeof(*it), item_destructor);
	if (!it)
		return -ENOMEM;
	it->pcm = mem_ref(pcm);
	it->id = q->next_id++;
	if (q->next_id == 0)
		q->next_id = 1;
	it->done_h = done_h;
	it->arg = arg;
	list_append(&q->items, &it->le, it);
	q->pending += pcm->n;
	if (idp)
		*idp = it->id;
	return 0;
}

bool rv_playq_read(struct rv_playq *q, int16_t *frame, size_t n)
{
	size_t filled = 0;
	while (filled < n && !list_isempty(&q->items)) {
		struct play_item *it = list_ledata(list_head(&q->items));
		size_t take = it->pcm->n - it->pos;
		if (take > n - filled)
			take = n - filled;
		memcpy(frame + filled, it->pcm->s + it->pos, take * sizeof(int16_t));
		it->pos += take;
		q->pending -= take;
		filled += take;
		if (it->pos == it->pcm->n)
			finish_head(q, RV_PLAY_DONE);
	}
	if (filled < n)
		memset(frame + filled, 0, (n - filled) * sizeof(int16_t));
	return filled > 0;
}

void rv_playq_flush(struct rv_playq *q)
{
	/* Detach the current items first: a callback that pushes a new item (the next prompt
	 * after a barge-in) must not see it flushed too. */
	struct list old = q->items;
	list_init(&q->items);
	if (old.head) {
		/* Re-point the detached nodes at the local list head. */
		for (struct le *le = old.head; le; le = le->next)
			le->list = &old;
	}
	while (!list_isempty(&old)) {
		struct play_item *it = list_ledata(list_head(&old));
		list_unlink(&it->le);
		q->pending -= it->pcm->n - it->pos;
		if (it->done_h)
			it->done_h(it->id, RV_PLAY_FLUSHED, it->pos, it->pcm->n, it->arg);
		mem_deref(it);
	}
}

size_t rv_playq_pending(const struct rv_playq *q)
{
	return q ? q->pending : 0;
}

bool rv_playq_idle(const struct rv_playq *q)
{
	return !q || list_isempty(&q->items);
}

uint32_t rv_playq_head_id(const struct rv_playq *q)
{
	if (!q || list_isempty(&q->items))
		return 0;
	const struct play_item *it = list_ledata(list_head(&q->items));
	return it->id;
}
