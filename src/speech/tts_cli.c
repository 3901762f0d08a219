/*
 * `revovoice say`: the TTS engines from the terminal (see tts_cli.h). Writes the WAV while the
 * audio streams, so a long text's file starts filling at the first chunk, and reports the
 * time to first audio the same way the pipeline would see it.
 */
#include <errno.h>
#include <re.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/tts.h"
#include "speech/tts_cli.h"

#define CLI_CACHE_BYTES (64u << 20)

static const char usage[] =
    "usage: revovoice say TEXT [--voice V] [--engine flite|espeak|elevenlabs] [--rate R]\n"
    "                     [--pitch P] -o OUT.wav [--base-url URL] [--model M]\n"
    "                     [--cache-dir DIR]\n"
    "Synthesizes TEXT (\"-\" reads stdin) into a 16 kHz mono WAV.\n"
    "  --voice     flite: rms (default), slt, kal; espeak: a language or voice such as hi,\n"
    "              en-us, en+f3; elevenlabs: a voice id. Without --engine, a voice flite\n"
    "              lacks selects espeak.\n"
    "  --rate      speaking-rate factor (1.0 normal) or words per minute (\"200wpm\")\n"
    "  --pitch     pitch factor (1.0 normal)\n"
    "  --cache-dir use (and fill) a prompt cache directory\n"
    "ElevenLabs reads its key from ELEVENLABS_API_KEY; ELEVENLABS_BASE_URL and\n"
    "ELEVENLABS_MODEL_ID stand in for --base-url and --model.\n";

struct say_out {
	SNDFILE *sf;
	size_t n;
	uint64_t t0, first_ns;
	int write_failed;
};

static int write_h(const int16_t *s, size_t n, void *arg)
{
	struct say_out *o = arg;
	if (!o->first_ns)
		o->first_ns = rv_time_mono_ns();
	if (sf_writef_short(o->sf, s, (sf_count_t)n) != (sf_count_t)n) {
		o->write_failed = 1;
		return 1;
	}
	o->n += n;
	return 0;
}

/* Read all of stdin (capped at RV_TTS_MAX_TEXT) into a malloc'd string. */
static char *read_stdin(void)
{
	size_t cap = RV_TTS_MAX_TEXT + 2, n = 0;
	char *buf = rv_xmalloc(cap);
	ssize_t r;
	while (n < cap - 1 && (r = read(0, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return buf;
}

/* A JSON string value for the summary line: escapes what could break the line. */
static void print_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *const src_names[] = {"memory", "disk", "synth"};

int rv_tts_cli_say(int argc, char **argv)
{
	const char *text = NULL, *voice = NULL, *engine = NULL, *out_path = NULL;
	const char *base_url = getenv("ELEVENLABS_BASE_URL"),
	           *model = getenv("ELEVENLABS_MODEL_ID");
	const char *cache_dir = NULL;
	double rate = 1.0, pitch = 1.0;
	char *text_buf = NULL, why[512] = "", tmp_path[1200] = "";
	struct rv_tts *tts = NULL;
	struct rv_tts_cache *cache = NULL;
	struct rv_pcm *pcm = NULL;
	struct say_out o = {0};
	enum rv_tts_cache_src src = RV_TTS_CACHE_SYNTH;
	int ret = 1, err = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(a, "--voice") == 0)
			slot = &voice;
		else if (strcmp(a, "--engine") == 0)
			slot = &engine;
		else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
			slot = &out_path;
		else if (strcmp(a, "--base-url") == 0)
			slot = &base_url;
		else if (strcmp(a, "--model") == 0)
			slot = &model;
		else if (strcmp(a, "--cache-dir") == 0)
			slot = &cache_dir;
		if (slot || strcmp(a, "--rate") == 0 || strcmp(a, "--pitch") == 0) {
			if (!val) {
				fprintf(stderr, "revovoice say: %s needs a value\n", a);
				return 2;
			}
			i++;
			if (slot) {
				*slot = val;
			} else if (rv_tts_parse_factor(val, a[2] == 'r',
			                               a[2] == 'r' ? &rate : &pitch)) {
				fprintf(stderr,
				        "revovoice say: %s must be a factor between %.2f and "
				        "%.1f%s, not "
				        "\"%s\"\n",
				        a, RV_TTS_FACTOR_MIN, RV_TTS_FACTOR_MAX,
				        a[2] == 'r' ? " or words per minute (\"200wpm\")" : "",
				        val);
				return 2;
			}
			continue;
		}
		if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "revovoice say: unknown option %s\n%s", a, usage);
			return 2;
		}
		if (text) {
			fprintf(stderr, "revovoice say: one TEXT only (quote it)\n");
			return 2;
		}
		text = a;
	}
	if (!text || !out_path) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(text, "-") == 0)
		text = text_buf = read_stdin();

	struct rv_tts_opts opts = {
	    .api_key = getenv("ELEVENLABS_API_KEY"), .base_url = base_url, .model_id = model};
	int auto_engine = !engine;
	if (!engine) {
		/* A voice flite does not have is most likely an espeak-ng language ("hi"). */
		engine = "flite";
		err = rv_tts_open(engine, &opts, &tts, why, sizeof(why));
		if (!err && voice && rv_tts_voice_check(tts, voice, NULL, 0) != 0) {
			rv_tts_close(tts);
			tts = NULL;
			engine = "espeak";
		}
	}
	if (!tts)
		err = rv_tts_open(engine, &opts, &tts, why, sizeof(why));
	if (err) {
		fprintf(stderr, "revovoice say: %s\n", why);
		ret = err == -ENOENT || err == -EINVAL ? 2 : 1;
		goto out;
	}
	struct rv_tts_req req = {.text = text, .voice = voice, .rate = rate, .pitch = pitch};
	/* Check the voice before creating the file, so a typo leaves nothing behind. */
	err = rv_tts_voice_check(tts, voice, why, sizeof(why));
	if (err && auto_engine) {
		fprintf(
		    stderr,
		    "revovoice say: unknown voice \"%s\": flite has rms, slt and kal, and "
		    "espeak-ng has no voice or language by that name (`espeak-ng --voices` lists "
		    "them; use --engine elevenlabs for an ElevenLabs voice id)\n",
		    voice);
		goto out;
	}
	if (err) {
		fprintf(stderr, "revovoice say: %s\n", why);
		goto out;
	}
	if (cache_dir) {
		err = rv_tts_cache_open(cache_dir, CLI_CACHE_BYTES, &cache);
		if (err) {
			fprintf(stderr, "revovoice say: cannot use cache directory %s: %s\n",
			        cache_dir, strerror(-err));
			goto out;
		}
	}

	/* Write to a temporary name and rename at the end: no partial file on failure. */
	snprintf(tmp_path, sizeof(tmp_path), "%s.tmp-%ld", out_path, (long)getpid());
	SF_INFO info = {
	    .samplerate = RV_MEDIA_RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	o.sf = sf_open(tmp_path, SFM_WRITE, &info);
	if (!o.sf) {
		fprintf(stderr, "revovoice say: cannot create %s: %s\n", out_path,
		        sf_strerror(NULL));
		tmp_path[0] = '\0';
		goto out;
	}
	o.t0 = rv_time_mono_ns();
	if (cache) {
		err = rv_tts_cache_get(cache, tts, &req, &pcm, &src, why, sizeof(why));
		if (!err)
			write_h(pcm->s, pcm->n, &o);
	} else {
		err = rv_tts_synth(tts, &req, write_h, &o, why, sizeof(why));
	}
	uint64_t t1 = rv_time_mono_ns();
	if (o.write_failed) {
		fprintf(stderr, "revovoice say: cannot write %s: %s\n", out_path,
		        sf_strerror(o.sf));
		goto out;
	}
	if (err) {
		fprintf(stderr, "revovoice say: %s: %s\n", rv_tts_engine(tts), why);
		goto out;
	}
	if (sf_close(o.sf) != 0) {
		o.sf = NULL;
		fprintf(stderr, "revovoice say: cannot finish %s\n", out_path);
		goto out;
	}
	o.sf = NULL;
	if (rename(tmp_path, out_path) != 0) {
		fprintf(stderr, "revovoice say: cannot write %s: %s\n", out_path, strerror(errno));
		goto out;
	}
	tmp_path[0] = '\0';
	printf("{\"engine\":");
	print_json_str(rv_tts_engine(tts));
	printf(",\"voice\":");
	print_json_str(voice && *voice ? voice : rv_tts_default_voice(tts));
	printf(",\"path\":");
	print_json_str(out_path);
	printf(",\"samples\":%zu,\"seconds\":%.3f,\"first_audio_ms\":%.1f,\"synth_ms\":%.1f,"
	       "\"source\":\"%s\"}\n",
	       o.n, (double)o.n / RV_MEDIA_RATE,
	       o.first_ns ? (double)(o.first_ns - o.t0) / 1e6 : 0.0, (double)(t1 - o.t0) / 1e6,
	       src_names[src]);
	ret = 0;
out:
	if (o.sf)
		sf_close(o.sf);
	if (tmp_path[0])
		unlink(tmp_path);
	mem_deref(pcm);
	rv_tts_cache_close(cache);
	rv_tts_close(tts);
	free(text_buf);
	return ret;
}
