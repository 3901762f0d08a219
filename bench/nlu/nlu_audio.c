/*
 * The libre half of the NLU benchmark: audio loading through the project's loader (libre's
 * memory and speexdsp resampling, as the media path does). Kept apart from nlu_eval.c because
 * re.h and jansson.h cannot share one file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <re.h>

#include "media/media_pcm.h"

int rv_bench_nlu_audio_init(void);
void rv_bench_nlu_audio_close(void);
int rv_bench_nlu_audio_load(const char *path, int16_t **out, size_t *n);

int rv_bench_nlu_audio_init(void)
{
	return libre_init();
}

void rv_bench_nlu_audio_close(void)
{
	libre_close();
}

/* Read a WAV at the pipeline rate into a malloc'd buffer (caller frees). 0 or -errno. */
int rv_bench_nlu_audio_load(const char *path, int16_t **out, size_t *n)
{
	struct rv_pcm *pcm = NULL;
	int err = rv_pcm_load_file(path, RV_MEDIA_RATE, &pcm);
	if (err)
		return err;
	int16_t *s = malloc(pcm->n * sizeof(int16_t));
	if (!s) {
		mem_deref(pcm);
		return -ENOMEM;
	}
	memcpy(s, pcm->s, pcm->n * sizeof(int16_t));
	*out = s;
	*n = pcm->n;
	mem_deref(pcm);
	return 0;
}
