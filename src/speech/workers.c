/* The speech worker pool: see workers.h. */
#include "speech/workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"

/* About 20 s of frames for one busy call, or many calls' worth of ordinary jobs. */
#define MAX_BACKLOG 4096

struct job {
	struct job *next;
	rv_worker_fn *fn;
	void *arg;
	uint64_t queued_ns;
};

struct worker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	size_t backlog;
	unsigned calls;
	bool stop;
	bool started;
};

struct rv_workers {
	unsigned n;
	pthread_mutex_t pin_mu;
	struct worker w[];
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	for (;;) {
		pthread_mutex_lock(&wk->mu);
		while (!wk->head && !wk->stop)
			pthread_cond_wait(&wk->cv, &wk->mu);
		struct job *j = wk->head;
		if (!j) {
			pthread_mutex_unlock(&wk->mu);
			break; /* stopping and drained */
		}
		wk->head = j->next;
		if (!wk->head)
			wk->tail = NULL;
		wk->backlog--;
		pthread_mutex_unlock(&wk->mu);

		rv_metrics_observe("rv_speech_job_wait_seconds",
		                   (double)(rv_time_mono_ns() - j->queued_ns) / 1e9, NULL);
		j->fn(j->arg);
		free(j);
	}
	return NULL;
}

int rv_workers_start(unsigned n, struct rv_workers **out)
{
	if (n == 0 || n > 64)
		return -EINVAL;
	struct rv_workers *w = calloc(1, sizeof(*w) + n * sizeof(struct worker));
	if (!w)
		return -ENOMEM;
	w->n = n;
	pthread_mutex_init(&w->pin_mu, NULL);
	rv_metrics_register("rv_speech_job_wait_seconds", RV_METRIC_HISTOGRAM,
	                    "Time speech jobs wait in a worker's queue", NULL, NULL, 0);
	for (unsigned i = 0; i < n; i++) {
		struct worker *wk = &w->w[i];
		pthread_mutex_init(&wk->mu, NULL);
		pthread_cond_init(&wk->cv, NULL);
		int e = pthread_create(&wk->thread, NULL, worker_main, wk);
		if (e) {
			rv_error("speech", "cannot start speech worker %u: %s", i, strerror(e));
			rv_workers_stop(w);
			return -e;
		}
		wk->started = true;
	}
	*out = w;
	return 0;
}

void rv_workers_stop(struct rv_workers *w)
{
	if (!w)
		return;
	for (unsigned i = 0; i < w->n; i++) {
		struct worker *wk = &w->w[i];
		pthread_mutex_lock(&wk->mu);
		wk->stop = true;
		pthread_cond_signal(&wk->cv);
		pthread_mutex_unlock(&wk->mu);
	}
	for (unsigned i = 0; i < w->n; i++) {
		struct worker *wk = &w->w[i];
		if (wk->started)
			pthread_join(wk->thread, NULL);
		pthread_mutex_destroy(&wk->mu);
		pthread_cond_destroy(&wk->cv);
	}
	pthread_mutex_destroy(&w->pin_mu);
	free(w);
}

unsigned rv_workers_pin(struct rv_workers *w)
{
	pthread_mutex_lock(&w->pin_mu);
	unsigned best = 0;
	for (unsigned i = 1; i < w->n; i++)
		if (w->w[i].calls < w->w[best].calls)
			best = i;
	w->w[best].calls++;
	pthread_mutex_unlock(&w->pin_mu);
	return best;
}

void rv_workers_unpin(struct rv_workers *w, unsigned idx)
{
	if (idx >= w->n)
		return;
	pthread_mutex_lock(&w->pin_mu);
	if (w->w[idx].calls > 0)
		w->w[idx].calls--;
	pthread_mutex_unlock(&w->pin_mu);
}

int rv_workers_post(struct rv_workers *w, unsigned idx, rv_worker_fn *fn, void *arg)
{
	if (idx >= w->n || !fn)
		return -EINVAL;
	struct worker *wk = &w->w[idx];
	struct job *j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct job){.fn = fn, .arg = arg, .queued_ns = rv_time_mono_ns()};
	int ret = 0;
	pthread_mutex_lock(&wk->mu);
	if (wk->stop) {
		ret = -ESHUTDOWN;
	} else if (wk->backlog >= MAX_BACKLOG) {
		ret = -ENOBUFS;
	} else {
		if (wk->tail)
			wk->tail->next = j;
		else
			wk->head = j;
		wk->tail = j;
		wk->backlog++;
		pthread_cond_signal(&wk->cv);
	}
	pthread_mutex_unlock(&wk->mu);
	if (ret) {
		free(j);
		if (ret == -ENOBUFS)
			rv_warn("speech", "speech worker %u is %d jobs behind: job refused", idx,
			        MAX_BACKLOG);
	}
	return ret;
}

size_t rv_workers_backlog(struct rv_workers *w, unsigned idx)
{
	if (idx >= w->n)
		return 0;
	pthread_mutex_lock(&w->w[idx].mu);
	size_t n = w->w[idx].backlog;
	pthread_mutex_unlock(&w->w[idx].mu);
	return n;
}
