/*
 * The whisper of a bridged transfer: the text said to the human agent before the legs are
 * connected, synthesized with the embedded TTS on the control-plane thread that asked for the
 * transfer (synthesis blocks; the media loop only plays the finished buffer).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/media_pcm.h"
#include "speech/tts.h"
#include "tel/tel_int.h"

#define WHISPER_MAX_SAMPLES ((size_t)RV_MEDIA_RATE * 60) /* a minute is plenty */

struct acc {
	int16_t *s;
	size_t n, cap;
};

static int chunk_h(const int16_t *s, size_t n, void *arg)
{
	struct acc *a = arg;
	if (a->n + n > WHISPER_MAX_SAMPLES)
		return 1;
	if (a->n + n > a->cap) {
		size_t cap = a->cap ? a->cap : RV_MEDIA_RATE;
		while (cap < a->n + n)
			cap *= 2;
		int16_t *p = realloc(a->s, cap * sizeof(*p));
		if (!p)
			return 1;
		a->s = p;
		a->cap = cap;
	}
	memcpy(a->s + a->n, s, n * sizeof(*s));
	a->n += n;
	return 0;
}

int tel_whisper_synth(const char *text, struct rv_pcm **out)
{
	struct rv_tts *tts = NULL;
	struct acc a = {0};
	char why[256] = "";
	int err = rv_tts_open("flite", NULL, &tts, why, sizeof(why));
	if (!err) {
		struct rv_tts_req req = {.text = text};
		err = rv_tts_synth(tts, &req, chunk_h, &a, why, sizeof(why));
		rv_tts_close(tts);
	}
	if (!err && a.n == 0)
		err = -EINVAL;
	struct rv_pcm *pcm = NULL;
	if (!err)
		err = rv_pcm_alloc(a.n, RV_MEDIA_RATE, &pcm);
	if (!err) {
		memcpy(pcm->s, a.s, a.n * sizeof(*a.s));
		*out = pcm;
	} else {
		rv_warn(TEL_COMP, "whisper not synthesized, the agent hears none: %s",
		        why[0] ? why : strerror(-err));
	}
	free(a.s);
	return err;
}
