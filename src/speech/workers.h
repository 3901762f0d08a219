/*
 * The speech workers: a fixed pool of threads that run the heavy per-call work (VAD, STT
 * decoding, TTS synthesis, NLU) off the media loop. Each call is pinned to one worker, so its
 * jobs run one after another in the order they were posted; results go back to the loop with
 * rv_media_loop_exec().
 */
#ifndef RV_SPEECH_WORKERS_H
#define RV_SPEECH_WORKERS_H

#include <stddef.h>

struct rv_workers;

typedef void(rv_worker_fn)(void *arg);

/* Start n threads (1-64). Returns 0 and sets *out, or -EINVAL / -ENOMEM / -errno. */
int rv_workers_start(unsigned n, struct rv_workers **out);

/* Run what is queued, then join the threads and free the pool. */
void rv_workers_stop(struct rv_workers *w);

/* The worker a new call should be pinned to: the one with the fewest calls. Pair with
 * rv_workers_unpin when the call ends. */
unsigned rv_workers_pin(struct rv_workers *w);
void rv_workers_unpin(struct rv_workers *w, unsigned idx);

/*
 * Queue fn(arg) on worker idx, after everything already queued there. Thread-safe. Returns 0,
 * -EINVAL (bad idx), -ESHUTDOWN (stopping), -ENOBUFS (that worker's backlog is full: the job
 * is refused so a stuck engine cannot eat memory), -ENOMEM; on failure fn is never called and
 * arg still belongs to the caller.
 */
int rv_workers_post(struct rv_workers *w, unsigned idx, rv_worker_fn *fn, void *arg);

/* Jobs waiting on worker idx (for metrics and back-pressure). */
size_t rv_workers_backlog(struct rv_workers *w, unsigned idx);

#endif
