/* The speech worker pool: per-worker order, pinning balance, stop drains, bad arguments. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../test.h"
#include "speech/workers.h"

struct seq {
	pthread_mutex_t mu;
	int got[2000];
	int n;
	atomic_int total;
};

struct item {
	struct seq *s;
	int v;
};

static void record(void *arg)
{
	struct item *it = arg;
	pthread_mutex_lock(&it->s->mu);
	it->s->got[it->s->n++] = it->v;
	pthread_mutex_unlock(&it->s->mu);
	atomic_fetch_add(&it->s->total, 1);
}

RV_TEST(speech_workers_keep_order_per_worker_and_drain_on_stop)
{
	struct rv_workers *w = NULL;
	ASSERT_OK(rv_workers_start(3, &w));
	static struct seq s = {.mu = PTHREAD_MUTEX_INITIALIZER};
	static struct item items[1000];
	unsigned idx = rv_workers_pin(w);
	for (int i = 0; i < 1000; i++) {
		items[i] = (struct item){&s, i};
		ASSERT_OK(rv_workers_post(w, idx, record, &items[i]));
	}
	rv_workers_stop(w); /* must run all 1000 before returning */
	ASSERT_EQ_INT(atomic_load(&s.total), 1000);
	for (int i = 0; i < 1000; i++)
		ASSERT_MSG(s.got[i] == i, "job %d ran at position %d", s.got[i], i);
}

RV_TEST(speech_workers_pin_balances_and_rejects_bad_index)
{
	struct rv_workers *w = NULL;
	ASSERT_EQ_INT(rv_workers_start(0, &w), -EINVAL);
	ASSERT_OK(rv_workers_start(2, &w));
	unsigned a = rv_workers_pin(w), b = rv_workers_pin(w);
	ASSERT(a != b);
	rv_workers_unpin(w, a);
	ASSERT_EQ_INT(rv_workers_pin(w), a);
	static struct seq s = {.mu = PTHREAD_MUTEX_INITIALIZER};
	static struct item it = {&s, 1};
	ASSERT_EQ_INT(rv_workers_post(w, 7, record, &it), -EINVAL);
	ASSERT_EQ_INT(rv_workers_backlog(w, 7), 0);
	rv_workers_stop(w);
	ASSERT_EQ_INT(atomic_load(&s.total), 0);
}
