/* speexdsp resampler wrapper: see media_resample.h. */
#include <errno.h>
#include <re.h>
#include <speex/speex_resampler.h>

#include "media/media_resample.h"

struct rv_resampler {
	SpeexResamplerState *st;
	uint32_t in_rate, out_rate;
};

static void resampler_destructor(void *arg)
{
	struct rv_resampler *r = arg;
	if (r->st)
		speex_resampler_destroy(r->st);
}

int rv_resampler_alloc(uint32_t in_rate, uint32_t out_rate, int quality, struct rv_resampler **out)
{
	int err = 0;
	if (!in_rate || !out_rate || in_rate > 192000 || out_rate > 192000 || quality < 0 ||
	    quality > 10)
		return -EINVAL;
	struct rv_resampler *r = mem_zalloc(sizeof(*r), resampler_destructor);
	if (!r)
		return -ENOMEM;
	r->in_rate = in_rate;
	r->out_rate = out_rate;
	r->st = speex_resampler_init(1, in_rate, out_rate, quality, &err);
	if (!r->st || err != RESAMPLER_ERR_SUCCESS) {
		mem_deref(r);
		return err == RESAMPLER_ERR_ALLOC_FAILED ? -ENOMEM : -EINVAL;
	}
	*out = r;
	return 0;
}

int rv_resampler_run(struct rv_resampler *r, const int16_t *in, size_t in_n, int16_t *out,
                     size_t out_cap, size_t *out_n)
{
	if (!r || (!in && in_n) || !out)
		return -EINVAL;
	/* Ask for the exact expected count (rounded up) so every frame comes out whole. */
	uint64_t want = ((uint64_t)in_n * r->out_rate + r->in_rate - 1) / r->in_rate;
	if (want > out_cap || in_n > UINT32_MAX)
		return -EINVAL;
	spx_uint32_t ilen = (spx_uint32_t)in_n, olen = (spx_uint32_t)out_cap;
	speex_resampler_process_int(r->st, 0, in, &ilen, out, &olen);
	*out_n = olen;
	return 0;
}
