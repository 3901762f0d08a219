/* Absolute 20 ms clock: see media_pace.h. */
#include "media/media_pace.h"

void rv_pace_init(struct rv_pace *p, uint64_t now_ms, uint32_t ptime_ms, uint32_t max_burst)
{
	p->start_ms = now_ms;
	p->next = 0;
	p->ptime_ms = ptime_ms ? ptime_ms : 20;
	p->max_burst = max_burst ? max_burst : 1;
	p->skipped = 0;
}

uint64_t rv_pace_deadline(const struct rv_pace *p, uint64_t n)
{
	return p->start_ms + n * p->ptime_ms;
}

uint32_t rv_pace_take(struct rv_pace *p, uint64_t now_ms)
{
	if (now_ms < rv_pace_deadline(p, p->next))
		return 0;
	/* Frames 0..last are due; last is the newest whose deadline <= now. */
	uint64_t last = (now_ms - p->start_ms) / p->ptime_ms;
	uint64_t due = last + 1 - p->next;
	if (due > p->max_burst) {
		p->skipped += due - p->max_burst;
		p->next += due - p->max_burst;
		due = p->max_burst;
	}
	p->next += due;
	return (uint32_t)due;
}

uint64_t rv_pace_delay(const struct rv_pace *p, uint64_t now_ms)
{
	uint64_t d = rv_pace_deadline(p, p->next);
	return d > now_ms ? d - now_ms : 0;
}
