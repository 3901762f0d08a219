/*
 * The media loop: one thread running libre's event loop (re_main) for SIP, RTP and the 20 ms
 * timers of every call. Nothing on it blocks. Other threads never touch libre objects; they
 * send commands, which run on the loop thread in the order they were sent, through a libre
 * mqueue (a pipe the loop polls). Events go the other way through handlers that run on the
 * loop and hand their data to the receiver's own queue.
 */
#ifndef RV_MEDIA_LOOP_H
#define RV_MEDIA_LOOP_H

struct rv_media_loop;

typedef void(rv_media_fn)(void *arg);

/*
 * Start the loop thread; `init` (may be NULL) runs first on it, before any command, with
 * `arg`; if it returns non-zero the loop stops and that value is returned. Returns 0 and sets
 * *out, or a negative errno. Only one loop may run per process (libre keeps global state).
 */
int rv_media_loop_start(int (*init)(void *arg), void *arg, struct rv_media_loop **out);

/*
 * Run fn(arg) on the loop thread. Thread-safe. Returns 0 or a negative errno (the loop has
 * stopped, out of memory), in which case fn is never called and arg still belongs to the caller.
 */
int rv_media_loop_exec(struct rv_media_loop *loop, rv_media_fn *fn, void *arg);

/*
 * Stop the loop: `fini` (may be NULL) runs on the loop thread after the commands already
 * queued, to release the libre objects the caller created there; then re_main returns, the
 * thread is joined and `loop` is freed. Not from the loop thread itself.
 */
void rv_media_loop_stop(struct rv_media_loop *loop, rv_media_fn *fini, void *arg);

/* Is the calling thread the media loop? */
int rv_media_loop_is_current(const struct rv_media_loop *loop);

#endif
