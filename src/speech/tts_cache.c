/*
 * The prompt cache (see tts.h): synthesized audio by BLAKE2b key, in a memory LRU capped in
 * bytes and, optionally, as WAV files in a directory that outlives the process.
 *
 * Sharing: libre's reference counts are not atomic, so entries are plain sample arrays owned
 * by the cache and every hit hands out a fresh struct rv_pcm copy (memcpy of a few hundred KB
 * at most: microseconds), which the caller may pass to another thread whole.
 *
 * Concurrency: one mutex guards the table and the LRU list; file I/O and synthesis run
 * outside it. The first request for a missing key registers an "in flight" record; requests
 * for the same key that arrive meanwhile wait on the condition variable for its outcome
 * instead of synthesizing the same prompt again (the greeting of a campaign that starts many
 * calls at once).
 */
#include <errno.h>
#include <pthread.h>
#include <re.h>
#include <sndfile.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "obs/metrics.h"
#include "speech/tts.h"

#define M_HITS   "rv_tts_cache_hits_total"
#define M_MISSES "rv_tts_cache_misses_total"
#define NSLOTS   1024 /* hash slots; chains stay short for tens of thousands of prompts */
#define KEY_HEX  65

struct entry {
	char key[KEY_HEX];
	uint64_t hash;
	int16_t *s;
	size_t n;
	struct entry *hnext;       /* hash chain */
	struct entry *prev, *next; /* LRU list, most recent first */
};

struct inflight {
	char key[KEY_HEX];
	int done, err;
	char why[256];
	unsigned refs; /* the synthesizing request plus its waiters */
	struct inflight *next;
};

struct rv_tts_cache {
	char *dir; /* NULL: memory only */
	size_t cap, bytes, count;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct entry *slots[NSLOTS];
	struct entry *head, *tail;
	struct inflight *flights;
};

static void metrics_register(void)
{
	rv_metrics_register(M_HITS, RV_METRIC_COUNTER,
	                    "Prompt cache hits by tier (memory or disk): audio with no synthesis.",
	                    "tier", NULL, 0);
	rv_metrics_register(M_MISSES, RV_METRIC_COUNTER,
	                    "Prompt cache misses: the prompt had to be synthesized.", NULL, NULL,
	                    0);
}

static int mkdir_p(const char *dir)
{
	char path[1024];
	if (rv_strlcpy(path, dir, sizeof(path)) >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0750) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int rv_tts_cache_open(const char *dir, size_t mem_cap, struct rv_tts_cache **out)
{
	if (!mem_cap)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	if (dir) {
		int err = mkdir_p(dir);
		if (err) {
			rv_warn("tts", "cannot create the prompt cache directory %s: %s", dir,
			        strerror(-err));
			return err;
		}
	}
	metrics_register();
	struct rv_tts_cache *c = rv_xcalloc(1, sizeof(*c));
	c->dir = dir ? rv_xstrdup(dir) : NULL;
	c->cap = mem_cap;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	*out = c;
	return 0;
}

void rv_tts_cache_close(struct rv_tts_cache *c)
{
	if (!c)
		return;
	struct entry *e = c->head;
	while (e) {
		struct entry *next = e->next;
		free(e->s);
		free(e);
		e = next;
	}
	/* No request may be in flight when the cache closes (the owner stops its workers first). */
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->dir);
	free(c);
}

void rv_tts_cache_stats(struct rv_tts_cache *c, size_t *bytes, size_t *entries)
{
	pthread_mutex_lock(&c->mu);
	if (bytes)
		*bytes = c->bytes;
	if (entries)
		*entries = c->count;
	pthread_mutex_unlock(&c->mu);
}

/* Feed one length-prefixed field, so "ab"+"c" and "a"+"bc" hash differently. */
static void feed(crypto_generichash_state *st, const char *s)
{
	uint64_t len = strlen(s);
	unsigned char lb[8];
	for (int i = 0; i < 8; i++)
		lb[i] = (unsigned char)(len >> (8 * i));
	crypto_generichash_update(st, lb, sizeof(lb));
	crypto_generichash_update(st, (const unsigned char *)s, len);
}

void rv_tts_cache_key(const struct rv_tts *tts, const struct rv_tts_req *req, char *hex)
{
	unsigned char h[32];
	char num[64];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	feed(&st, "rv-tts-cache-v1");
	feed(&st, rv_tts_engine(tts));
	feed(&st, rv_tts_variant(tts));
	feed(&st, req->voice && *req->voice ? req->voice : rv_tts_default_voice(tts));
	/* Factors are rounded to 1/1000 so 1.1 and 1.1000000001 share an entry; 0 means 1. */
	snprintf(num, sizeof(num), "%.3f/%.3f", req->rate ? req->rate : 1.0,
	         req->pitch ? req->pitch : 1.0);
	feed(&st, num);
	feed(&st, req->text ? req->text : "");
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, KEY_HEX, h, sizeof(h));
}

static uint64_t key_hash(const char *hex)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char ch = hex[i];
		v = (v << 4) | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
	}
	return v;
}

/* Caller holds mu. */
static struct entry *lookup(struct rv_tts_cache *c, const char *key, uint64_t hash)
{
	for (struct entry *e = c->slots[hash % NSLOTS]; e; e = e->hnext)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void lru_unlink(struct rv_tts_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct rv_tts_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void evict(struct rv_tts_cache *c, struct entry *e)
{
	struct entry **pp = &c->slots[e->hash % NSLOTS];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->bytes -= e->n * sizeof(int16_t);
	c->count--;
	free(e->s);
	free(e);
}

/*
 * Keep samples (ownership moves to the cache, which frees them if they do not fit). Caller
 * holds mu.
 */
static void insert(struct rv_tts_cache *c, const char *key, uint64_t hash, int16_t *s, size_t n)
{
	size_t size = n * sizeof(int16_t);
	if (size > c->cap || lookup(c, key, hash)) {
		free(s);
		return;
	}
	while (c->bytes + size > c->cap && c->tail)
		evict(c, c->tail);
	struct entry *e = rv_xcalloc(1, sizeof(*e));
	memcpy(e->key, key, KEY_HEX);
	e->hash = hash;
	e->s = s;
	e->n = n;
	e->hnext = c->slots[hash % NSLOTS];
	c->slots[hash % NSLOTS] = e;
	lru_push_front(c, e);
	c->bytes += size;
	c->count++;
}

static int copy_out(const int16_t *s, size_t n, struct rv_pcm **out)
{
	struct rv_pcm *p = NULL;
	int err = rv_pcm_alloc(n, RV_MEDIA_RATE, &p);
	if (err)
		return err;
	memcpy(p->s, s, n * sizeof(*s));
	*out = p;
	return 0;
}

static void file_path(const struct rv_tts_cache *c, const char *key, char *path, size_t len)
{
	snprintf(path, len, "%s/%s.wav", c->dir, key);
}

/*
 * Read dir/<key>.wav. Returns 0 with *s (malloc'd) and *n, -ENOENT when absent, or -EINVAL for
 * a file that is not what the cache writes (it is removed, so it gets rewritten).
 */
static int disk_read(struct rv_tts_cache *c, const char *key, int16_t **s, size_t *n)
{
	char path[1200];
	SF_INFO info = {0};
	file_path(c, key, path, sizeof(path));
	if (access(path, F_OK) != 0)
		return -ENOENT;
	SNDFILE *sf = sf_open(path, SFM_READ, &info);
	int16_t *buf = NULL;
	int err = 0;
	if (!sf) {
		err = -EINVAL;
		goto out;
	}
	if (info.samplerate != RV_MEDIA_RATE || info.channels != 1 || info.frames <= 0 ||
	    (uint64_t)info.frames > RV_MEDIA_PCM_MAX_SAMPLES) {
		err = -EINVAL;
		goto out;
	}
	buf = malloc((size_t)info.frames * sizeof(*buf));
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	if (sf_readf_short(sf, buf, info.frames) != info.frames) {
		err = -EINVAL;
		goto out;
	}
	*s = buf;
	*n = (size_t)info.frames;
	buf = NULL;
out:
	if (sf)
		sf_close(sf);
	free(buf);
	if (err == -EINVAL) {
		rv_warn("tts", "prompt cache file %s is unreadable or not 16 kHz mono; removing it",
		        path);
		unlink(path);
	}
	return err;
}

/* Write dir/<key>.wav through a temporary file and rename, so readers never see half a file. */
static void disk_write(struct rv_tts_cache *c, const char *key, const int16_t *s, size_t n)
{
	char path[1200], tmp[1300];
	SF_INFO info = {
	    .samplerate = RV_MEDIA_RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	file_path(c, key, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.%lu.tmp", c->dir, key, (long)getpid(),
	         (unsigned long)pthread_self());
	SNDFILE *sf = sf_open(tmp, SFM_WRITE, &info);
	if (!sf) {
		rv_warn("tts", "cannot write prompt cache file %s: %s", tmp, sf_strerror(NULL));
		return;
	}
	sf_count_t w = sf_writef_short(sf, s, (sf_count_t)n);
	int cerr = sf_close(sf);
	if (w != (sf_count_t)n || cerr != 0 || rename(tmp, path) != 0) {
		rv_warn("tts", "cannot write prompt cache file %s (disk full?)", path);
		unlink(tmp);
	}
}

struct grow {
	int16_t *s;
	size_t n, cap;
	int oom;
};

static int grow_h(const int16_t *s, size_t n, void *arg)
{
	struct grow *g = arg;
	if (g->n + n > RV_MEDIA_PCM_MAX_SAMPLES) {
		g->oom = 1;
		return 1;
	}
	if (g->n + n > g->cap) {
		size_t cap = g->cap ? g->cap * 2 : RV_MEDIA_RATE * 4;
		while (cap < g->n + n)
			cap *= 2;
		int16_t *p = realloc(g->s, cap * sizeof(*p));
		if (!p) {
			g->oom = 1;
			return 1;
		}
		g->s = p;
		g->cap = cap;
	}
	memcpy(g->s + g->n, s, n * sizeof(*s));
	g->n += n;
	return 0;
}

static void flight_release(struct rv_tts_cache *c, struct inflight *f)
{
	if (--f->refs)
		return;
	struct inflight **pp = &c->flights;
	while (*pp && *pp != f)
		pp = &(*pp)->next;
	if (*pp)
		*pp = f->next;
	free(f);
}

int rv_tts_cache_peek(struct rv_tts_cache *c, struct rv_tts *tts, const struct rv_tts_req *req,
                      struct rv_pcm **out)
{
	char key[KEY_HEX];
	if (!c || !tts || !req || !out)
		return -EINVAL;
	rv_tts_cache_key(tts, req, key);
	pthread_mutex_lock(&c->mu);
	struct entry *e = lookup(c, key, key_hash(key));
	int err = -ENOENT;
	if (e) {
		lru_unlink(c, e);
		lru_push_front(c, e);
		err = copy_out(e->s, e->n, out);
	}
	pthread_mutex_unlock(&c->mu);
	if (!err)
		rv_metrics_inc(M_HITS, 1, "memory", NULL);
	return err;
}

int rv_tts_cache_get(struct rv_tts_cache *c, struct rv_tts *tts, const struct rv_tts_req *req,
                     struct rv_pcm **out, enum rv_tts_cache_src *src, char *why, size_t whylen)
{
	char key[KEY_HEX];
	int16_t *s = NULL;
	size_t n = 0;
	int err = 0;

	if (!c || !tts || !req || !out)
		return -EINVAL;
	rv_tts_cache_key(tts, req, key);
	uint64_t hash = key_hash(key);

	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct entry *e = lookup(c, key, hash);
		if (e) {
			lru_unlink(c, e);
			lru_push_front(c, e);
			err = copy_out(e->s, e->n, out);
			pthread_mutex_unlock(&c->mu);
			if (!err) {
				rv_metrics_inc(M_HITS, 1, "memory", NULL);
				if (src)
					*src = RV_TTS_CACHE_MEMORY;
			}
			return err;
		}
		struct inflight *f = c->flights;
		while (f && strcmp(f->key, key) != 0)
			f = f->next;
		if (!f)
			break;
		/* Someone is producing this prompt: wait for it, then look again. */
		f->refs++;
		while (!f->done)
			pthread_cond_wait(&c->cv, &c->mu);
		if (f->err) {
			err = f->err;
			if (why && whylen)
				snprintf(why, whylen, "%s", f->why);
			flight_release(c, f);
			pthread_mutex_unlock(&c->mu);
			return err;
		}
		flight_release(c, f);
		/*
		 * Success: the entry is in memory now, unless it did not fit; then it is on disk
		 * (or, memory-only, nowhere) and this request fetches or makes it itself.
		 */
		if (!lookup(c, key, hash))
			break;
	}
	struct inflight *mine = rv_xcalloc(1, sizeof(*mine));
	memcpy(mine->key, key, KEY_HEX);
	mine->refs = 1;
	mine->next = c->flights;
	c->flights = mine;
	pthread_mutex_unlock(&c->mu);

	enum rv_tts_cache_src from = RV_TTS_CACHE_DISK;
	err = c->dir ? disk_read(c, key, &s, &n) : -ENOENT;
	if (err == -ENOENT || err == -EINVAL) {
		struct grow g = {0};
		from = RV_TTS_CACHE_SYNTH;
		rv_metrics_inc(M_MISSES, 1, NULL);
		err = rv_tts_synth(tts, req, grow_h, &g, mine->why, sizeof(mine->why));
		if (err == -ECANCELED && g.oom) {
			snprintf(mine->why, sizeof(mine->why),
			         "synthesized audio exceeds the 30-minute cap or memory ran out");
			err = -ENOMEM;
		}
		if (!err && !g.n) {
			snprintf(mine->why, sizeof(mine->why), "the engine produced no audio");
			err = -EIO;
		}
		if (err) {
			free(g.s);
		} else {
			s = g.s;
			n = g.n;
			if (c->dir)
				disk_write(c, key, s, n);
		}
	} else if (err) {
		snprintf(mine->why, sizeof(mine->why), "cannot read the prompt cache: %s",
		         strerror(-err));
	}
	if (!err)
		err = copy_out(s, n, out);
	if (!err && from == RV_TTS_CACHE_DISK)
		rv_metrics_inc(M_HITS, 1, "disk", NULL);

	pthread_mutex_lock(&c->mu);
	if (!err)
		insert(c, key, hash, s, n); /* takes s */
	else
		free(s);
	mine->done = 1;
	mine->err = err;
	if (err && why && whylen)
		snprintf(why, whylen, "%s", mine->why);
	flight_release(c, mine);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (!err && src)
		*src = from;
	return err;
}

size_t rv_tts_cache_warm(struct rv_tts_cache *c, struct rv_tts *tts, const char *const *texts,
                         size_t n, const char *voice, double rate, double pitch,
                         size_t *synthesized)
{
	size_t failed = 0, made = 0;
	for (size_t i = 0; i < n; i++) {
		struct rv_tts_req req = {
		    .text = texts[i], .voice = voice, .rate = rate, .pitch = pitch};
		struct rv_pcm *p = NULL;
		enum rv_tts_cache_src src;
		char why[256] = "";
		int err = rv_tts_cache_get(c, tts, &req, &p, &src, why, sizeof(why));
		if (err) {
			failed++;
			rv_warn("tts", "cannot pre-synthesize prompt %zu of %zu: %s", i + 1, n,
			        why);
			continue;
		}
		if (src == RV_TTS_CACHE_SYNTH)
			made++;
		mem_deref(p);
	}
	if (synthesized)
		*synthesized = made;
	rv_info("tts", "prompt cache warmed: %zu prompts, %zu synthesized, %zu failed", n, made,
	        failed);
	return failed;
}
