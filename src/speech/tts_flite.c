/*
 * flite backend: English voices rms, slt (clustergen, 16 kHz) and kal (diphone, 8 kHz,
 * resampled to 16 kHz). Audio streams out through flite's audio-stream callback (`asc` in
 * cst_audio_streaming_info) while the waveform generator runs.
 *
 * Global state: flite_init and the voice registrations write process-wide tables (the voice
 * list, the CMU lexicon), so they run exactly once under pthread_once. After that flite is
 * documented thread-safe, and reading its source confirms it for our use: voices, lexicon and
 * models are const, the regex matcher keeps its state per call, and reference counts are only
 * touched on per-utterance values. What is per request (the streaming callback, rate, pitch)
 * goes into the utterance's own features, never the shared voice's (flite's manual shows the
 * voice, which would race): utt_init links the voice features behind the utterance's, so
 * lookups find ours first. Several threads may therefore synthesize at once, with the same or
 * different voices; the unit test tts_flite_concurrent checks it. The one shared thing left is
 * rand() (noise excitation), which glibc locks.
 *
 * Long text is split into sentences, each its own utterance, so the first audio comes after
 * the first sentence's front end, not the whole text's.
 */
#include <errno.h>
/* flite's headers declare functions as f() (no prototype); they are not ours to fix. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <flite.h>
#pragma GCC diagnostic pop
#include <pthread.h>
#include <re.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/media_pcm.h"
#include "media/media_resample.h"
#include "speech/tts.h"

/* flite's voice libraries export these without a header. */
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);

/* A sentence shorter than this is merged with the next ("Dr. Smith" stays whole). */
#define MIN_SENTENCE 40
/* flite hands over at least this many samples per callback (20 ms at 16 kHz). */
#define STREAM_MIN_SAMPLES 320
#define RESAMPLE_QUALITY   5

static struct flite_voice {
	const char *name;
	cst_voice *(*reg)(const char *voxdir);
	cst_voice *v;
} voices[] = {
    {"rms", register_cmu_us_rms, NULL},
    {"slt", register_cmu_us_slt, NULL},
    {"kal", register_cmu_us_kal, NULL},
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void flite_global_init(void)
{
	flite_init();
	for (size_t i = 0; i < sizeof(voices) / sizeof(voices[0]); i++)
		voices[i].v = voices[i].reg(NULL);
}

static struct flite_voice *voice_find(const char *name)
{
	for (size_t i = 0; i < sizeof(voices) / sizeof(voices[0]); i++)
		if (strcmp(voices[i].name, name) == 0)
			return voices[i].v ? &voices[i] : NULL;
	return NULL;
}

static int fl_open(const struct rv_tts_opts *opts, void **state, char *why, size_t whylen)
{
	pthread_once(&init_once, flite_global_init);
	if (!voice_find("rms") || !voice_find("slt")) {
		snprintf(why, whylen, "flite voices could not be registered");
		return -EIO;
	}
	*state = NULL; /* all state is the process-wide voice table */
	return 0;
}

static void fl_close(void *state)
{
}

static int fl_voice_check(void *state, const char *voice, char *why, size_t whylen)
{
	pthread_once(&init_once, flite_global_init);
	if (voice_find(voice))
		return 0;
	snprintf(why, whylen, "flite has no voice \"%s\" (voices: rms, slt, kal)", voice);
	return -ENOENT;
}

/* One request's streaming state, reached from flite's callback through asi->userdata. */
struct fl_ctx {
	struct rv_tts_out o; /* o.rs is created on the first chunk when the voice is not 16 kHz */
	int rs_rate;
};

static int asc_cb(const cst_wave *w, int start, int size, int last, cst_audio_streaming_info *asi)
{
	struct fl_ctx *c = asi->userdata;
	if (c->o.stop)
		return CST_AUDIO_STREAM_STOP;
	if (w->sample_rate != RV_MEDIA_RATE && !c->o.rs) {
		if (rv_resampler_alloc((uint32_t)w->sample_rate, RV_MEDIA_RATE, RESAMPLE_QUALITY,
		                       &c->o.rs) != 0) {
			c->o.err = -EIO;
			c->o.stop = 1;
			return CST_AUDIO_STREAM_STOP;
		}
		c->rs_rate = w->sample_rate;
	}
	if (size > 0 && start >= 0 && start + size <= w->num_samples)
		rv_tts_out_deliver(&c->o, &w->samples[start], (size_t)size);
	return c->o.stop ? CST_AUDIO_STREAM_STOP : CST_AUDIO_STREAM_CONT;
}

/* Speak one sentence. Returns 0, or -ECANCELED/-EIO/-ENOMEM. */
static int speak(cst_voice *v, const char *sentence, const struct rv_tts_req *req, struct fl_ctx *c)
{
	cst_utterance *u = new_utterance();
	cst_audio_streaming_info *asi = new_audio_streaming_info();
	if (!u || !asi) {
		delete_utterance(u);
		delete_audio_streaming_info(asi);
		return -ENOMEM;
	}
	utt_set_input_text(u, sentence);
	asi->min_buffsize = STREAM_MIN_SAMPLES;
	asi->asc = asc_cb;
	asi->userdata = c;
	/* The utterance owns asi from here on and frees it with itself. */
	feat_set(u->features, "streaming_info", audio_streaming_info_val(asi));
	feat_set_float(u->features, "duration_stretch", (float)(1.0 / req->rate));
	feat_set_float(u->features, "f0_shift", (float)req->pitch);
	u = flite_do_synth(u, v, utt_synth); /* deletes u itself when synthesis fails */
	if (!u)
		return c->o.stop ? -ECANCELED : -EIO;
	delete_utterance(u);
	if (c->o.err)
		return c->o.err;
	return c->o.stop ? -ECANCELED : 0;
}

/* Flush the resampler's filter tail so the last syllable is not cut. */
static void drain(struct fl_ctx *c)
{
	static const int16_t zeros[128];
	if (c->o.rs && !c->o.stop)
		rv_tts_out_deliver(&c->o, zeros, sizeof(zeros) / sizeof(zeros[0]));
}

static int fl_synth(void *state, const struct rv_tts_req *req, rv_tts_chunk_h *chunk_h, void *arg,
                    char *why, size_t whylen)
{
	struct flite_voice *fv = voice_find(req->voice);
	struct fl_ctx c = {.o = {.chunk_h = chunk_h, .arg = arg}};
	char *text = NULL;
	int err = 0;

	if (!fv) {
		snprintf(why, whylen, "flite has no voice \"%s\" (voices: rms, slt, kal)",
		         req->voice);
		return -ENOENT;
	}
	text = strdup(req->text);
	if (!text)
		return -ENOMEM;
	char *p = text;
	while (*p && !err) {
		/* Find the end of a sentence at least MIN_SENTENCE bytes long. */
		char *end = p, *cut = NULL;
		while (*end && !cut) {
			int stop = (*end == '.' || *end == '!' || *end == '?' || *end == ';' ||
			            *end == '\n');
			if (stop &&
			    (end[1] == '\0' || end[1] == ' ' || end[1] == '\n' || end[1] == '\t' ||
			     end[1] == '\r') &&
			    end - p + 1 >= MIN_SENTENCE)
				cut = end + 1;
			end++;
		}
		char *next = cut ? cut : end;
		char saved = *next;
		*next = '\0';
		/* Skip pieces with nothing speakable (whitespace only). */
		if (strspn(p, " \t\r\n") < strlen(p))
			err = speak(fv->v, p, req, &c);
		*next = saved;
		p = next;
	}
	if (!err)
		drain(&c);
	if (!err && c.o.stop)
		err = c.o.err ? c.o.err : -ECANCELED;
	if (err == -EIO)
		snprintf(why, whylen, "flite failed to synthesize the text with voice %s",
		         fv->name);
	else if (err == -ENOMEM)
		snprintf(why, whylen, "out of memory in flite");
	mem_deref(c.o.rs);
	free(text);
	return err;
}

const struct rv_tts_backend rv_tts_backend_flite = {
    .name = "flite",
    .default_voice = "rms",
    .open = fl_open,
    .close = fl_close,
    .voice_check = fl_voice_check,
    .synth = fl_synth,
};
