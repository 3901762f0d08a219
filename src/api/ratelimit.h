/*
 * Per-key token buckets for the HTTP server: each key (an API key id, a user id or a client
 * address) may make `rps` requests per second on average and up to `burst` at once. Memory is
 * bounded: the table holds at most a fixed number of keys and drops the least recently used one
 * when full (a dropped key only loses its history, which errs on the side of allowing).
 * Thread-safe; the table is split into shards, each with its own short mutex.
 */
#ifndef RV_RATELIMIT_H
#define RV_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct rv_ratelimit;

/* Default bound on the number of keys tracked at once. */
#define RV_RATELIMIT_MAX_KEYS 100000

/*
 * Create a limiter. rps must be > 0; burst < 1 means "as many as rps" (at least 1). The caller
 * owns *out and frees it with rv_ratelimit_free. Returns 0, or -EINVAL for rps <= 0 (nothing
 * is allocated).
 */
int rv_ratelimit_new(double rps, int burst, struct rv_ratelimit **out);

/*
 * Like rv_ratelimit_new with a different bound on the number of keys (>= 1; rounded up to a
 * multiple of the shard count, 16), for tests and small deployments.
 */
int rv_ratelimit_new_capped(double rps, int burst, size_t max_keys, struct rv_ratelimit **out);

/*
 * Take one token from key's bucket at time now_ns (a monotonic clock, e.g. rv_time_mono_ns).
 * Returns 0 when allowed, or -EAGAIN when limited; then *retry_after_s (if not NULL) receives
 * the whole seconds (>= 1) until a token is available. The key is copied.
 */
int rv_ratelimit_take(struct rv_ratelimit *rl, const char *key, uint64_t now_ns,
                      int *retry_after_s);

/* Number of keys currently tracked (tests, metrics). */
size_t rv_ratelimit_size(struct rv_ratelimit *rl);

/* Free the limiter and every bucket. NULL is a no-op. */
void rv_ratelimit_free(struct rv_ratelimit *rl);

#endif
