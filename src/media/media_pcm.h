/*
 * Immutable buffers of 16-bit mono PCM, reference counted with libre's mem_zalloc/mem_deref,
 * and the loader that turns a WAV prompt into one at the pipeline rate.
 *
 * Thread rule: libre's reference counts are not atomic. A buffer is built on one thread and
 * handed over whole (its single reference moves with it); after the hand-over only the media
 * loop takes or drops references.
 */
#ifndef RV_MEDIA_PCM_H
#define RV_MEDIA_PCM_H

#include <stddef.h>
#include <stdint.h>

/* The speech pipeline's format: 16 kHz mono, 20 ms frames. */
#define RV_MEDIA_RATE     16000
#define RV_MEDIA_PTIME_MS 20
#define RV_MEDIA_FRAME    (RV_MEDIA_RATE / 1000 * RV_MEDIA_PTIME_MS) /* 320 samples */

/* Longest prompt the loader accepts (30 minutes at 16 kHz); longer files are an error. */
#define RV_MEDIA_PCM_MAX_SAMPLES ((size_t)RV_MEDIA_RATE * 60 * 30)

struct rv_pcm {
	uint32_t rate; /* samples per second */
	size_t n;      /* number of samples */
	int16_t s[];
};

/*
 * Allocate a zeroed buffer of n samples at `rate`. Returns 0 and sets *out (one reference,
 * owned by the caller; release with mem_deref), or -ENOMEM / -EINVAL (n == 0 or above the cap).
 */
int rv_pcm_alloc(size_t n, uint32_t rate, struct rv_pcm **out);

/*
 * Read a WAV (or any file libsndfile reads) into a mono buffer at `rate`: channels are mixed
 * down and the audio is resampled with speexdsp. Blocking file I/O: call it off the media
 * loop. Returns 0 and sets *out (caller owns the reference); -ENOENT/-EIO when the file can't be
 * read, -EINVAL when it is empty or not audio, -EFBIG above RV_MEDIA_PCM_MAX_SAMPLES. The
 * reason is logged (component "media").
 */
int rv_pcm_load_file(const char *path, uint32_t rate, struct rv_pcm **out);

#endif
