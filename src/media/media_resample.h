/*
 * Sample-rate conversion between the telephone rate (8 kHz) and the pipeline rate (16 kHz),
 * with the speexdsp resampler. One resampler per direction per call: it keeps filter state
 * between frames so frame edges are seamless.
 */
#ifndef RV_MEDIA_RESAMPLE_H
#define RV_MEDIA_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct rv_resampler;

/*
 * New resampler from in_rate to out_rate (Hz) at speex quality 0..10 (3 is VoIP quality).
 * Returns 0 and sets *out (release with mem_deref), -EINVAL on bad rates, -ENOMEM.
 */
int rv_resampler_alloc(uint32_t in_rate, uint32_t out_rate, int quality, struct rv_resampler **out);

/*
 * Convert in_n samples into out (room for out_cap samples). For an integer ratio such as 8k <->
 * 16k the output is exactly in_n * out_rate / in_rate samples per call. Returns 0 and sets
 * *out_n, or -EINVAL when out_cap is too small (nothing is consumed).
 */
int rv_resampler_run(struct rv_resampler *r, const int16_t *in, size_t in_n, int16_t *out,
                     size_t out_cap, size_t *out_n);

#endif
