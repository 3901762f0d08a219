/* PCM buffers and the WAV prompt loader: see media_pcm.h. */
#include <errno.h>
#include <re.h>
#include <sndfile.h>
#include <stdlib.h>

#include "core/log.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"

int rv_pcm_alloc(size_t n, uint32_t rate, struct rv_pcm **out)
{
	if (!n || n > RV_MEDIA_PCM_MAX_SAMPLES * 12 || !rate)
		return -EINVAL;
	struct rv_pcm *p = mem_zalloc(sizeof(*p) + n * sizeof(int16_t), NULL);
	if (!p)
		return -ENOMEM;
	p->rate = rate;
	p->n = n;
	*out = p;
	return 0;
}

int rv_pcm_load_file(const char *path, uint32_t rate, struct rv_pcm **out)
{
	SF_INFO info = {0};
	struct rv_pcm *src = NULL, *dst = NULL;
	struct rv_resampler *rs = NULL;
	short *frames = NULL;
	int ret = 0;

	SNDFILE *sf = sf_open(path, SFM_READ, &info);
	if (!sf) {
		rv_warn("media", "cannot read audio file %s: %s", path, sf_strerror(NULL));
		return errno == ENOENT ? -ENOENT : -EIO;
	}
	if (info.frames <= 0 || info.channels <= 0 || info.samplerate <= 0 ||
	    info.samplerate > 192000) {
		rv_warn("media", "audio file %s is empty or has no usable format", path);
		ret = -EINVAL;
		goto out;
	}
	/* The cap is in output samples; compare in the file's own rate. */
	if ((uint64_t)info.frames * rate / (uint64_t)info.samplerate > RV_MEDIA_PCM_MAX_SAMPLES) {
		rv_warn("media", "audio file %s is longer than 30 minutes", path);
		ret = -EFBIG;
		goto out;
	}
	size_t n = (size_t)info.frames, ch = (size_t)info.channels;
	frames = malloc(n * ch * sizeof(short));
	if (!frames) {
		ret = -ENOMEM;
		goto out;
	}
	sf_count_t got = sf_readf_short(sf, frames, (sf_count_t)n);
	if (got <= 0) {
		rv_warn("media", "audio file %s: no samples could be read", path);
		ret = -EIO;
		goto out;
	}
	n = (size_t)got;
	ret = rv_pcm_alloc(n, (uint32_t)info.samplerate, &src);
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++) {
		long sum = 0;
		for (size_t c = 0; c < ch; c++)
			sum += frames[i * ch + c];
		src->s[i] = (int16_t)(sum / (long)ch);
	}
	if (src->rate == rate) {
		dst = src;
		src = NULL;
		goto out;
	}
	size_t cap = (size_t)((uint64_t)n * rate / src->rate) + 64;
	ret = rv_pcm_alloc(cap, rate, &dst);
	if (!ret)
		ret = rv_resampler_alloc(src->rate, rate, 5, &rs);
	if (!ret)
		ret = rv_resampler_run(rs, src->s, n, dst->s, cap, &dst->n);
	if (!ret && dst->n == 0)
		ret = -EINVAL;
out:
	if (ret)
		dst = mem_deref(dst);
	else
		*out = dst;
	mem_deref(rs);
	mem_deref(src);
	free(frames);
	sf_close(sf);
	return ret;
}
