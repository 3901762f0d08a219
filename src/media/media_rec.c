/* Stereo WAV recording on a writer thread: see media_rec.h. */
#include <errno.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_rec.h"
#include "obs/metrics.h"

#define BLOCK_FRAMES 16000 /* sample pairs per block: one second at 16 kHz */
#define MAX_BLOCKS   600   /* ten minutes waiting for the disk */

struct block {
	struct block *next;
	size_t n; /* sample pairs used */
	int16_t s[BLOCK_FRAMES * 2];
};

struct rv_rec {
	char *path;
	uint32_t rate;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct block *head, *tail; /* full blocks waiting for the writer */
	size_t queued;
	struct block *cur; /* block being filled by the loop; loop-thread only */
	int closing;
	uint64_t dropped;
};

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cv = PTHREAD_COND_INITIALIZER;
static int live;

static void count_error(void)
{
	rv_metrics_register("rv_media_recording_errors_total", RV_METRIC_COUNTER,
	                    "Recordings that could not be written", NULL, NULL, 0);
	rv_metrics_inc("rv_media_recording_errors_total", 1, NULL);
}

static void *writer_main(void *arg)
{
	struct rv_rec *rec = arg;
	SF_INFO info = {.samplerate = (int)rec->rate,
	                .channels = 2,
	                .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *sf = sf_open(rec->path, SFM_WRITE, &info);
	if (!sf) {
		rv_error("media", "cannot create recording %s: %s", rec->path, sf_strerror(NULL));
		count_error();
	}
	int failed = !sf;
	for (;;) {
		pthread_mutex_lock(&rec->mu);
		while (!rec->head && !rec->closing)
			pthread_cond_wait(&rec->cv, &rec->mu);
		struct block *b = rec->head;
		if (b) {
			rec->head = b->next;
			if (!rec->head)
				rec->tail = NULL;
			rec->queued--;
		}
		int done = !b && rec->closing;
		pthread_mutex_unlock(&rec->mu);
		if (done)
			break;
		if (sf && !failed &&
		    sf_writef_short(sf, b->s, (sf_count_t)b->n) != (sf_count_t)b->n) {
			rv_error("media", "writing recording %s failed: %s", rec->path,
			         sf_strerror(sf));
			count_error();
			failed = 1;
		}
		free(b);
	}
	if (sf && sf_close(sf) != 0) {
		rv_error("media", "closing recording %s failed", rec->path);
		count_error();
	}
	if (rec->dropped)
		rv_warn("media", "recording %s: %llu sample pairs dropped (disk too slow)",
		        rec->path, (unsigned long long)rec->dropped);
	free(rec->path);
	pthread_mutex_destroy(&rec->mu);
	pthread_cond_destroy(&rec->cv);
	free(rec);
	pthread_mutex_lock(&live_mu);
	live--;
	pthread_cond_broadcast(&live_cv);
	pthread_mutex_unlock(&live_mu);
	return NULL;
}

int rv_rec_open(const char *path, uint32_t rate, struct rv_rec **out)
{
	struct rv_rec *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	rec->path = strdup(path);
	if (!rec->path) {
		free(rec);
		return -ENOMEM;
	}
	rec->rate = rate;
	pthread_mutex_init(&rec->mu, NULL);
	pthread_cond_init(&rec->cv, NULL);
	pthread_mutex_lock(&live_mu);
	live++;
	pthread_mutex_unlock(&live_mu);
	int e = pthread_create(&rec->thread, NULL, writer_main, rec);
	if (e) {
		pthread_mutex_lock(&live_mu);
		live--;
		pthread_mutex_unlock(&live_mu);
		pthread_mutex_destroy(&rec->mu);
		pthread_cond_destroy(&rec->cv);
		free(rec->path);
		free(rec);
		return -EAGAIN;
	}
	pthread_detach(rec->thread);
	*out = rec;
	return 0;
}

static void hand_over(struct rv_rec *rec, int closing)
{
	struct block *b = rec->cur;
	rec->cur = NULL;
	pthread_mutex_lock(&rec->mu);
	if (b && b->n && rec->queued < MAX_BLOCKS) {
		if (rec->tail)
			rec->tail->next = b;
		else
			rec->head = b;
		rec->tail = b;
		rec->queued++;
		b = NULL;
	} else if (b) {
		rec->dropped += b->n;
	}
	if (closing)
		rec->closing = 1;
	pthread_cond_signal(&rec->cv);
	pthread_mutex_unlock(&rec->mu);
	free(b);
}

void rv_rec_write(struct rv_rec *rec, const int16_t *left, const int16_t *right, size_t n)
{
	while (n) {
		if (!rec->cur) {
			rec->cur = malloc(sizeof(*rec->cur));
			if (!rec->cur) {
				rec->dropped += n;
				return;
			}
			rec->cur->next = NULL;
			rec->cur->n = 0;
		}
		struct block *b = rec->cur;
		size_t take = BLOCK_FRAMES - b->n;
		if (take > n)
			take = n;
		int16_t *d = b->s + b->n * 2;
		for (size_t i = 0; i < take; i++) {
			d[2 * i] = left ? left[i] : 0;
			d[2 * i + 1] = right ? right[i] : 0;
		}
		b->n += take;
		n -= take;
		if (left)
			left += take;
		if (right)
			right += take;
		if (b->n == BLOCK_FRAMES)
			hand_over(rec, 0);
	}
}

void rv_rec_close(struct rv_rec *rec)
{
	if (rec)
		hand_over(rec, 1);
}

int rv_rec_wait_idle(uint32_t timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int ret = 0;
	pthread_mutex_lock(&live_mu);
	while (live > 0 && ret == 0)
		ret = pthread_cond_timedwait(&live_cv, &live_mu, &until);
	int left = live;
	pthread_mutex_unlock(&live_mu);
	return left ? -ETIMEDOUT : 0;
}
