#include "api/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/*
 * Sharding keeps concurrent requests from different clients off each other's mutex; 16 is
 * plenty for the control plane's handful of worker threads.
 */
#define NSHARDS 16
/* Keys longer than this are cut: they come from ids and addresses, never from user text. */
#define MAX_KEY 128

struct bucket {
	struct bucket *hnext;         /* hash chain */
	struct bucket *lprev, *lnext; /* LRU list, most recent at head */
	uint64_t hash;
	uint64_t last_ns;
	double tokens;
	char key[];
};

struct shard {
	pthread_mutex_t mu;
	struct bucket **table;
	size_t nslots; /* power of two */
	size_t count, cap;
	struct bucket *head, *tail;
};

struct rv_ratelimit {
	double rps;
	double burst;
	struct shard shards[NSHARDS];
};

static uint64_t hash_key(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	/* FNV's high bits barely move for short keys that differ at the end; mix them in. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static void lru_unlink(struct shard *sh, struct bucket *b)
{
	if (b->lprev)
		b->lprev->lnext = b->lnext;
	else
		sh->head = b->lnext;
	if (b->lnext)
		b->lnext->lprev = b->lprev;
	else
		sh->tail = b->lprev;
	b->lprev = b->lnext = NULL;
}

static void lru_push_head(struct shard *sh, struct bucket *b)
{
	b->lprev = NULL;
	b->lnext = sh->head;
	if (sh->head)
		sh->head->lprev = b;
	sh->head = b;
	if (!sh->tail)
		sh->tail = b;
}

static void remove_bucket(struct shard *sh, struct bucket *b)
{
	struct bucket **pp = &sh->table[b->hash & (sh->nslots - 1)];
	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
	lru_unlink(sh, b);
	sh->count--;
	free(b);
}

/* Tokens in b at now_ns, refilled since its last use and capped at the burst. */
static double refill(const struct rv_ratelimit *rl, const struct bucket *b, uint64_t now_ns)
{
	double elapsed = now_ns > b->last_ns ? (double)(now_ns - b->last_ns) / 1e9 : 0.0;
	double t = b->tokens + elapsed * rl->rps;
	return t > rl->burst ? rl->burst : t;
}

int rv_ratelimit_new_capped(double rps, int burst, size_t max_keys, struct rv_ratelimit **out)
{
	if (!(rps > 0) || max_keys < 1)
		return -EINVAL;
	struct rv_ratelimit *rl = rv_xcalloc(1, sizeof(*rl));
	rl->rps = rps;
	rl->burst = burst >= 1 ? (double)burst : (rps >= 1 ? ceil(rps) : 1.0);
	size_t per = (max_keys + NSHARDS - 1) / NSHARDS;
	size_t slots = 16;
	while (slots < per && slots < ((size_t)1 << 20))
		slots <<= 1;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *sh = &rl->shards[i];
		pthread_mutex_init(&sh->mu, NULL);
		sh->nslots = slots;
		sh->table = rv_xcalloc(slots, sizeof(*sh->table));
		sh->cap = per;
	}
	*out = rl;
	return 0;
}

int rv_ratelimit_new(double rps, int burst, struct rv_ratelimit **out)
{
	return rv_ratelimit_new_capped(rps, burst, RV_RATELIMIT_MAX_KEYS, out);
}

int rv_ratelimit_take(struct rv_ratelimit *rl, const char *key, uint64_t now_ns, int *retry_after_s)
{
	size_t n = strnlen(key ? key : "", MAX_KEY);
	if (!key)
		key = "";
	uint64_t h = hash_key(key, n);
	struct shard *sh = &rl->shards[(h >> 56) % NSHARDS];
	int err = 0;

	pthread_mutex_lock(&sh->mu);

	/*
	 * A bucket that has refilled completely is indistinguishable from a new one, so dropping
	 * it loses nothing; checking the LRU tail on every call keeps idle keys from piling up.
	 */
	for (int i = 0; i < 2 && sh->tail; i++) {
		struct bucket *t = sh->tail;
		if (refill(rl, t, now_ns) < rl->burst)
			break;
		remove_bucket(sh, t);
	}

	struct bucket *b = sh->table[h & (sh->nslots - 1)];
	while (b && !(b->hash == h && strncmp(b->key, key, n) == 0 && b->key[n] == '\0'))
		b = b->hnext;

	if (!b) {
		if (sh->count >= sh->cap)
			remove_bucket(sh, sh->tail);
		b = rv_xmalloc(sizeof(*b) + n + 1);
		memcpy(b->key, key, n);
		b->key[n] = '\0';
		b->hash = h;
		b->tokens = rl->burst;
		b->last_ns = now_ns;
		b->lprev = b->lnext = NULL;
		size_t slot = h & (sh->nslots - 1);
		b->hnext = sh->table[slot];
		sh->table[slot] = b;
		sh->count++;
	} else {
		lru_unlink(sh, b);
	}
	lru_push_head(sh, b);

	b->tokens = refill(rl, b, now_ns);
	if (now_ns > b->last_ns)
		b->last_ns = now_ns;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
	} else {
		err = -EAGAIN;
		if (retry_after_s) {
			double wait = ceil((1.0 - b->tokens) / rl->rps);
			*retry_after_s = wait < 1 ? 1 : (wait > 86400 ? 86400 : (int)wait);
		}
	}

	pthread_mutex_unlock(&sh->mu);
	return err;
}

size_t rv_ratelimit_size(struct rv_ratelimit *rl)
{
	size_t total = 0;
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&rl->shards[i].mu);
		total += rl->shards[i].count;
		pthread_mutex_unlock(&rl->shards[i].mu);
	}
	return total;
}

void rv_ratelimit_free(struct rv_ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *sh = &rl->shards[i];
		struct bucket *b = sh->head;
		while (b) {
			struct bucket *next = b->lnext;
			free(b);
			b = next;
		}
		free(sh->table);
		pthread_mutex_destroy(&sh->mu);
	}
	free(rl);
}
