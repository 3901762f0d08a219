/* Token-bucket math on a fake clock, key independence and the bound on memory. */
#include <errno.h>
#include <stdio.h>

#include "../test.h"
#include "api/ratelimit.h"

#define SEC 1000000000ull
#define MS  1000000ull

RV_TEST(ratelimit_burst_then_limited)
{
	struct rv_ratelimit *rl = NULL;
	int retry = -1;
	ASSERT_OK(rv_ratelimit_new(5, 5, &rl));
	uint64_t t = 1000 * SEC;
	for (int i = 0; i < 5; i++)
		ASSERT_EQ_INT(rv_ratelimit_take(rl, "u:1", t, &retry), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "u:1", t, &retry), -EAGAIN);
	ASSERT_EQ_INT(retry, 1);
	/* 5 tokens/s: 199 ms is not yet one token, 200 ms is exactly one. */
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "u:1", t + 199 * MS, &retry), -EAGAIN);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "u:1", t + 200 * MS, &retry), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "u:1", t + 200 * MS, &retry), -EAGAIN);
	rv_ratelimit_free(rl);
}

RV_TEST(ratelimit_retry_after_rounds_up)
{
	struct rv_ratelimit *rl = NULL;
	int retry = -1;
	/* One request every 4 s, no burst. */
	ASSERT_OK(rv_ratelimit_new(0.25, 1, &rl));
	uint64_t t = 50 * SEC;
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "a:10.0.0.1", t, &retry), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "a:10.0.0.1", t, &retry), -EAGAIN);
	ASSERT_EQ_INT(retry, 4);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "a:10.0.0.1", t + 2500 * MS, &retry), -EAGAIN);
	ASSERT_EQ_INT(retry, 2); /* 1.5 s left rounds up */
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "a:10.0.0.1", t + 4 * SEC, &retry), 0);
	rv_ratelimit_free(rl);
}

RV_TEST(ratelimit_refill_caps_at_burst)
{
	struct rv_ratelimit *rl = NULL;
	ASSERT_OK(rv_ratelimit_new(10, 3, &rl));
	uint64_t t = SEC;
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k", t, NULL), 0);
	/* A long idle period refills only up to the burst. */
	t += 3600 * SEC;
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(rv_ratelimit_take(rl, "k", t, NULL), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k", t, NULL), -EAGAIN);
	/* A clock that steps back is treated as no time passing, never as a refill. */
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k", t - 10 * SEC, NULL), -EAGAIN);
	rv_ratelimit_free(rl);
}

RV_TEST(ratelimit_keys_are_independent)
{
	struct rv_ratelimit *rl = NULL;
	ASSERT_OK(rv_ratelimit_new(1, 2, &rl));
	uint64_t t = SEC;
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k:1", t, NULL), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k:1", t, NULL), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k:1", t, NULL), -EAGAIN);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k:2", t, NULL), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "k:10", t, NULL), 0);
	ASSERT_EQ_INT(rv_ratelimit_size(rl), 3);
	rv_ratelimit_free(rl);
}

RV_TEST(ratelimit_burst_defaults_to_rps)
{
	struct rv_ratelimit *rl = NULL;
	ASSERT_OK(rv_ratelimit_new(3, 0, &rl));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(rv_ratelimit_take(rl, "x", SEC, NULL), 0);
	ASSERT_EQ_INT(rv_ratelimit_take(rl, "x", SEC, NULL), -EAGAIN);
	rv_ratelimit_free(rl);
}

RV_TEST(ratelimit_rejects_bad_rate)
{
	struct rv_ratelimit *rl = NULL;
	ASSERT_EQ_INT(rv_ratelimit_new(0, 5, &rl), -EINVAL);
	ASSERT_EQ_INT(rv_ratelimit_new(-1, 5, &rl), -EINVAL);
	ASSERT(rl == NULL);
	rv_ratelimit_free(NULL);
}

RV_TEST(ratelimit_memory_is_bounded)
{
	struct rv_ratelimit *rl = NULL;
	char key[32];
	/* 32 keys rounds to 2 per shard x 16 shards. */
	ASSERT_OK(rv_ratelimit_new_capped(1, 1, 32, &rl));
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "a:10.0.%d.%d", i / 256, i % 256);
		/* Every key is new and drained, so nothing is stale: eviction must do the work. */
		ASSERT_EQ_INT(rv_ratelimit_take(rl, key, SEC, NULL), 0);
		ASSERT_MSG(rv_ratelimit_size(rl) <= 32, "size %zu", rv_ratelimit_size(rl));
	}
	ASSERT(rv_ratelimit_size(rl) >= 16);
	rv_ratelimit_free(rl);
}

RV_TEST(ratelimit_stale_keys_are_dropped)
{
	struct rv_ratelimit *rl = NULL;
	char key[32];
	ASSERT_OK(rv_ratelimit_new(10, 10, &rl));
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "u:%d", i);
		ASSERT_EQ_INT(rv_ratelimit_take(rl, key, SEC, NULL), 0);
	}
	ASSERT_EQ_INT(rv_ratelimit_size(rl), 1000);
	/*
	 * After a full refill they are as good as new, so later traffic (each take checks the
	 * least recently used end of its shard) sweeps them out instead of letting them pile up.
	 */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		ASSERT_EQ_INT(rv_ratelimit_take(rl, key, 20 * SEC, NULL), 0);
	}
	ASSERT_EQ_INT(rv_ratelimit_size(rl), 1000);
	rv_ratelimit_free(rl);
}
