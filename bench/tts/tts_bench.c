/*
 * TTS benchmark: for each embedded engine and voice, the time from request to the first
 * streamed audio chunk, the time to the whole utterance, and the real-time factor (synthesis
 * CPU seconds per second of audio) for the benchmark sentence, median of 5 runs after one
 * warm-up run; then what the prompt cache costs on a memory hit and on a disk hit.
 * With ELEVENLABS_API_KEY set, ElevenLabs is measured too (real network).
 *
 * Output: one line per case, key=value pairs, read by bench/tts/run.sh.
 *   tts_bench [RUNS]
 */
#include <re.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/tts.h"

static const char sentence_en[] =
    "Hello, this is Revo Voice calling to confirm your appointment for tomorrow morning.";
/* Twelve words: "Hello, I am calling to confirm your appointment tomorrow." */
static const char sentence_hi[] = "नमस्ते, मैं कल आपकी अपॉइंटमेंट की पुष्टि के लिए फ़ोन कर रहा";

struct run {
	uint64_t t0, first;
	size_t n;
};

static int chunk_h(const int16_t *s, size_t n, void *arg)
{
	struct run *r = arg;
	if (!r->first)
		r->first = rv_time_mono_ns();
	r->n += n;
	return 0;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bench(const char *engine, const char *voice, const char *text,
                 const struct rv_tts_opts *opts, int runs)
{
	struct rv_tts *tts = NULL;
	char why[384];
	double first[32], whole[32], rtf[32], audio = 0;
	if (rv_tts_open(engine, opts, &tts, why, sizeof(why)) != 0) {
		fprintf(stderr, "%s: %s\n", engine, why);
		return -1;
	}
	for (int i = -1; i < runs; i++) {
		struct run r = {0};
		struct rv_tts_req req = {.text = text, .voice = voice};
		double c0 = cpu_s();
		r.t0 = rv_time_mono_ns();
		int err = rv_tts_synth(tts, &req, chunk_h, &r, why, sizeof(why));
		uint64_t t1 = rv_time_mono_ns();
		double c1 = cpu_s();
		if (err) {
			fprintf(stderr, "%s/%s: %s\n", engine, voice, why);
			rv_tts_close(tts);
			return -1;
		}
		if (i < 0)
			continue; /* warm-up: page in the voice data */
		audio = (double)r.n / RV_MEDIA_RATE;
		first[i] = (double)(r.first - r.t0) / 1e6;
		whole[i] = (double)(t1 - r.t0) / 1e6;
		/* The cloud engine's CPU is on the server: its factor is wall time. */
		rtf[i] = (strcmp(engine, "elevenlabs") == 0 ? whole[i] / 1e3 : c1 - c0) / audio;
	}
	printf("engine=%s voice=%s words=%d audio_s=%.2f first_ms=%.1f whole_ms=%.1f rtf=%.4f "
	       "runs=%d\n",
	       engine, voice, 12, audio, median(first, runs), median(whole, runs),
	       median(rtf, runs), runs);
	rv_tts_close(tts);
	return 0;
}

static int bench_cache(int runs)
{
	char dir[] = "/tmp/rv-tts-bench.XXXXXX", why[256], path[128];
	struct rv_tts *tts = NULL;
	struct rv_tts_cache *c = NULL;
	struct rv_pcm *p = NULL;
	enum rv_tts_cache_src src;
	double mem[32], disk[32];
	int ok = 1;
	if (!mkdtemp(dir) || rv_tts_open("flite", NULL, &tts, why, sizeof(why)) != 0)
		return -1;
	struct rv_tts_req req = {.text = sentence_en, .voice = "rms"};
	/* Fill the disk cache once; then each round is a fresh process's view of it. */
	if (rv_tts_cache_open(dir, 16u << 20, &c) != 0 ||
	    rv_tts_cache_get(c, tts, &req, &p, &src, why, sizeof(why)) != 0)
		return -1;
	mem_deref(p);
	rv_tts_cache_close(c);
	for (int i = 0; i < runs && ok; i++) {
		double *slot[2] = {&disk[i], &mem[i]};
		enum rv_tts_cache_src want[2] = {RV_TTS_CACHE_DISK, RV_TTS_CACHE_MEMORY};
		if (rv_tts_cache_open(dir, 16u << 20, &c) != 0)
			return -1;
		for (int pass = 0; pass < 2 && ok; pass++) {
			uint64_t t0 = rv_time_mono_ns();
			ok = rv_tts_cache_get(c, tts, &req, &p, &src, why, sizeof(why)) == 0 &&
			     src == want[pass];
			*slot[pass] = (double)(rv_time_mono_ns() - t0) / 1e6;
			mem_deref(p);
		}
		rv_tts_cache_close(c);
	}
	if (ok)
		printf("cache=memory ms=%.3f\ncache=disk ms=%.3f\n", median(mem, runs),
		       median(disk, runs));
	char key[65];
	rv_tts_cache_key(tts, &req, key);
	rv_tts_close(tts);
	snprintf(path, sizeof(path), "%s/%s.wav", dir, key);
	unlink(path);
	rmdir(dir);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	int64_t runs = 5;
	int bad = 0;
	if (argc > 1 && rv_parse_int64(argv[1], 1, 32, &runs) != 0) {
		fprintf(stderr, "usage: tts_bench [RUNS 1..32]\n");
		return 2;
	}
	rv_log_set_level(RV_LOG_ERROR);
	bad |= bench("flite", "rms", sentence_en, NULL, (int)runs);
	bad |= bench("flite", "slt", sentence_en, NULL, (int)runs);
	bad |= bench("flite", "kal", sentence_en, NULL, (int)runs);
	bad |= bench("espeak", "en-us", sentence_en, NULL, (int)runs);
	bad |= bench("espeak", "hi", sentence_hi, NULL, (int)runs);
	if (getenv("ELEVENLABS_API_KEY")) {
		struct rv_tts_opts o = {.api_key = getenv("ELEVENLABS_API_KEY"),
		                        .base_url = getenv("ELEVENLABS_BASE_URL"),
		                        .model_id = getenv("ELEVENLABS_MODEL_ID")};
		bad |= bench("elevenlabs", "21m00Tcm4TlvDq8ikWAM", sentence_en, &o, (int)runs);
	}
	bad |= bench_cache((int)runs);
	return bad ? 1 : 0;
}
