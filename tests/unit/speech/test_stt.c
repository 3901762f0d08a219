/*
 * STT tests with real audio: utterances spoken by espeak-ng and flite, sent through an 8 kHz
 * mu-law round trip with sox (TESTING.md "Speech"), decoded by the embedded engine. The cloud
 * providers are tested against tests/fakes/fake_openai_stt.py and fake_deepgram.py, which speak
 * OpenAI's HTTP and Deepgram's WebSocket protocols.
 */
#include "../test.h"

#include "core/util.h"
#include "media/media_pcm.h"
#include "speech/stt.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <re.h>

static struct rv_stt_engine *sphinx;
static char audio_dir[64];

static void cleanup(void)
{
	char cmd[128];

	rv_stt_engine_free(sphinx);
	sphinx = NULL;
	if (audio_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", audio_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", audio_dir);
	}
}

/* One engine for every test in this file (loading takes a second or two); freed at exit. */
static struct rv_stt_engine *engine(void)
{
	if (!sphinx) {
		struct rv_stt_config cfg = {.provider = "sphinx"};

		if (rv_stt_engine_new(&cfg, &sphinx) != 0)
			return NULL;
		atexit(cleanup);
	}
	return sphinx;
}

/*
 * Speak `text` with `voice` ("espeak", or a flite voice: slt, rms, kal), send it through a
 * telephone round trip and load it at 16 kHz. Returns NULL when a tool failed.
 */
static struct rv_pcm *speak(const char *voice, const char *text)
{
	char cmd[1024], raw[96], ulaw[96], out[96];
	struct rv_pcm *pcm = NULL;
	static unsigned seq;

	if (!audio_dir[0]) {
		rv_strlcpy(audio_dir, "/tmp/rv-stt-test-XXXXXX", sizeof(audio_dir));
		if (!mkdtemp(audio_dir))
			return NULL;
	}
	seq++;
	snprintf(raw, sizeof(raw), "%s/raw%u.wav", audio_dir, seq);
	snprintf(ulaw, sizeof(ulaw), "%s/ulaw%u.wav", audio_dir, seq);
	snprintf(out, sizeof(out), "%s/utt%u.wav", audio_dir, seq);
	if (strcmp(voice, "espeak") == 0)
		snprintf(cmd, sizeof(cmd), "espeak-ng -v en-us -w %s '%s'", raw, text);
	else
		snprintf(cmd, sizeof(cmd), "flite -voice %s -t '%s' -o %s", voice, text, raw);
	if (system(cmd) != 0)
		return NULL;
	snprintf(cmd, sizeof(cmd),
	         "sox %s -r 8000 -c 1 -e mu-law %s && sox %s -e signed-integer -b 16 %s", raw, ulaw,
	         ulaw, out);
	if (system(cmd) != 0)
		return NULL;
	if (rv_pcm_load_file(out, RV_MEDIA_RATE, &pcm) != 0)
		return NULL;
	return pcm;
}

struct partials {
	unsigned n;
	uint32_t last_ms;
	uint32_t min_gap_ms;
	bool ended; /* set once the final result is in: partials after it are a bug */
	bool late;
};

static void on_partial(const struct rv_stt_result *res, void *arg)
{
	struct partials *p = arg;

	if (p->ended)
		p->late = true;
	if (p->n && res->audio_ms - p->last_ms < p->min_gap_ms)
		p->min_gap_ms = res->audio_ms - p->last_ms;
	p->last_ms = res->audio_ms;
	p->n++;
}

/* Feed a whole buffer in 20 ms frames, as the pipeline does, and return the final result. */
static int decode(struct rv_stt_session *sess, const struct rv_pcm *pcm, struct rv_stt_result **out)
{
	int err = rv_stt_start_utt(sess);

	for (size_t off = 0; !err && pcm && off < pcm->n; off += RV_MEDIA_FRAME)
		err = rv_stt_feed(sess, pcm->s + off,
		                  pcm->n - off < RV_MEDIA_FRAME ? pcm->n - off : RV_MEDIA_FRAME);
	if (err)
		return err;
	return rv_stt_end_utt(sess, out);
}

static const char *const confirm_bias[] = {
    "yes",
    "no",
    "yeah",
    "sure",
    "that's right",
    "not interested",
    "i'm not interested",
    "who is this",
    "wrong number",
    "call me later",
};
static const char *const callback_bias[] = {
    "call me tomorrow", "call me back later", "next week", "tomorrow morning", "monday",
    "tuesday",          "wednesday",          "thursday",  "friday",           "at three",
    "in the afternoon",
};

static bool has_words(const char *text, const char *words)
{
	return strstr(text, words) != NULL;
}

RV_TEST(stt_sphinx_recognises_key_words_with_bias)
{
	static const struct {
		const char *voice, *text, *expect;
		bool callback;
	} cases[] = {
	    {"rms", "yes", "yes", false},
	    {"kal", "yes", "yes", false},
	    {"rms", "no i am not interested", "not interested", false},
	    {"kal", "no i am not interested", "not interested", false},
	    {"rms", "please call me tomorrow", "tomorrow", true},
	    {"kal", "please call me tomorrow", "tomorrow", true},
	};
	struct rv_stt_engine *eng = engine();

	ASSERT(eng);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rv_stt_session *sess = NULL;
		struct rv_stt_result *res = NULL;
		struct rv_pcm *pcm = speak(cases[i].voice, cases[i].text);

		ASSERT_MSG(pcm, "could not synthesise \"%s\"", cases[i].text);
		/* A new session each time: the first utterance of a call must be recognised too. */
		ASSERT_OK(rv_stt_session_new(eng, 0, NULL, NULL, &sess));
		if (cases[i].callback)
			ASSERT_OK(
			    rv_stt_set_bias(sess, callback_bias, RV_ARRAY_LEN(callback_bias)));
		else
			ASSERT_OK(rv_stt_set_bias(sess, confirm_bias, RV_ARRAY_LEN(confirm_bias)));
		ASSERT_OK(decode(sess, pcm, &res));
		ASSERT_MSG(has_words(res->text, cases[i].expect), "%s said \"%s\", heard \"%s\"",
		           cases[i].voice, cases[i].text, res->text);
		ASSERT(res->is_final);
		ASSERT(res->conf >= 0 && res->conf <= 1);
		rv_stt_result_free(res);
		rv_stt_session_free(sess);
		mem_deref(pcm);
	}
}

RV_TEST(stt_sphinx_partials_arrive_before_final)
{
	struct partials p = {.min_gap_ms = UINT32_MAX};
	struct rv_stt_session *sess = NULL;
	struct rv_stt_result *res = NULL;
	struct rv_pcm *pcm = speak("rms", "you can call me back next week on tuesday afternoon");
	struct rv_stt_engine *eng = engine();

	ASSERT(eng && pcm);
	ASSERT_OK(rv_stt_session_new(eng, 250, on_partial, &p, &sess));
	ASSERT_OK(rv_stt_set_bias(sess, callback_bias, RV_ARRAY_LEN(callback_bias)));
	ASSERT_OK(decode(sess, pcm, &res));
	p.ended = true;
	ASSERT_MSG(p.n >= 2, "%u partials", p.n);
	ASSERT_MSG(p.min_gap_ms >= 250, "partials %u ms apart", p.min_gap_ms);
	ASSERT(p.last_ms < res->audio_ms);
	ASSERT_MSG(has_words(res->text, "next week"), "heard \"%s\"", res->text);
	ASSERT(!p.late);
	rv_stt_result_free(res);
	rv_stt_session_free(sess);
	mem_deref(pcm);
}

RV_TEST(stt_sphinx_partial_now_covers_all_audio_fed)
{
	struct partials p = {.min_gap_ms = UINT32_MAX};
	struct rv_stt_session *sess = NULL;
	struct rv_stt_result *res = NULL;
	struct rv_pcm *pcm = speak("rms", "call me tomorrow morning");
	struct rv_stt_engine *eng = engine();
	size_t half;

	ASSERT(eng && pcm);
	/* Partials every 10 s of audio: only rv_stt_partial_now() makes any here. */
	ASSERT_OK(rv_stt_session_new(eng, 10000, on_partial, &p, &sess));
	ASSERT_EQ_INT(rv_stt_partial_now(sess), -EINVAL); /* no utterance open */
	ASSERT_OK(rv_stt_start_utt(sess));
	ASSERT_EQ_INT(rv_stt_partial_now(sess), -EAGAIN); /* nothing fed yet */
	half = (pcm->n / 2 / RV_MEDIA_FRAME) * RV_MEDIA_FRAME;
	for (size_t off = 0; off < pcm->n; off += RV_MEDIA_FRAME) {
		ASSERT_OK(
		    rv_stt_feed(sess, pcm->s + off,
		                pcm->n - off < RV_MEDIA_FRAME ? pcm->n - off : RV_MEDIA_FRAME));
		if (off + RV_MEDIA_FRAME == half) {
			ASSERT_OK(rv_stt_partial_now(sess));
			ASSERT_EQ_INT(p.n, 1);
			ASSERT_EQ_INT(p.last_ms, half * 1000 / RV_MEDIA_RATE);
			/* Asked again with no new audio: nothing to do. */
			ASSERT_EQ_INT(rv_stt_partial_now(sess), -EAGAIN);
		}
	}
	ASSERT_OK(rv_stt_partial_now(sess));
	ASSERT_EQ_INT(p.n, 2);
	ASSERT_EQ_INT(p.last_ms, pcm->n * 1000 / RV_MEDIA_RATE);
	ASSERT_OK(rv_stt_end_utt(sess, &res));
	rv_stt_result_free(res);
	rv_stt_session_free(sess);
	mem_deref(pcm);
}

RV_TEST(stt_sphinx_word_timings_ordered_inside_audio)
{
	struct rv_stt_session *sess = NULL;
	struct rv_stt_result *res = NULL;
	struct rv_pcm *pcm = speak("rms", "call me tomorrow morning");
	struct rv_stt_engine *eng = engine();
	uint32_t audio_ms;

	ASSERT(eng && pcm);
	audio_ms = (uint32_t)(pcm->n * 1000 / pcm->rate);
	ASSERT_OK(rv_stt_session_new(eng, 0, NULL, NULL, &sess));
	ASSERT_OK(rv_stt_set_bias(sess, callback_bias, RV_ARRAY_LEN(callback_bias)));
	ASSERT_OK(decode(sess, pcm, &res));
	ASSERT_MSG(res->nwords >= 3, "%zu words in \"%s\"", res->nwords, res->text);
	for (size_t i = 0; i < res->nwords; i++) {
		const struct rv_stt_word *w = &res->words[i];

		ASSERT(w->word && w->word[0] && !strchr(w->word, '('));
		ASSERT_MSG(w->start_ms < w->end_ms && w->end_ms <= audio_ms, "%s %u-%u of %u ms",
		           w->word, w->start_ms, w->end_ms, audio_ms);
		ASSERT(w->conf >= 0 && w->conf <= 1);
		if (i)
			ASSERT_MSG(w->start_ms >= res->words[i - 1].end_ms, "%s overlaps", w->word);
	}
	ASSERT(strstr(res->text, res->words[res->nwords - 1].word));
	/* A second utterance on the same session: timings restart at its own beginning. */
	rv_stt_result_free(res);
	res = NULL;
	ASSERT_OK(decode(sess, pcm, &res));
	ASSERT(res->nwords >= 3 && res->words[res->nwords - 1].end_ms <= audio_ms);
	rv_stt_result_free(res);
	rv_stt_session_free(sess);
	mem_deref(pcm);
}

RV_TEST(stt_sphinx_silence_gives_empty_result)
{
	struct rv_stt_session *sess = NULL;
	struct rv_stt_result *res = NULL;
	struct rv_pcm *quiet = NULL, *hiss = NULL;
	struct rv_stt_engine *eng = engine();
	uint32_t seed = 12345;

	ASSERT(eng);
	ASSERT_OK(rv_pcm_alloc(RV_MEDIA_RATE, RV_MEDIA_RATE, &quiet));
	ASSERT_OK(rv_pcm_alloc(RV_MEDIA_RATE, RV_MEDIA_RATE, &hiss));
	for (size_t i = 0; i < hiss->n; i++) {
		seed = seed * 1103515245 + 12345;
		hiss->s[i] =
		    (int16_t)((int)((seed >> 16) % 61) - 30); /* line hiss, about -60 dBFS */
	}
	ASSERT_OK(rv_stt_session_new(eng, 0, NULL, NULL, &sess));
	ASSERT_OK(rv_stt_set_bias(sess, confirm_bias, RV_ARRAY_LEN(confirm_bias)));
	ASSERT_OK(decode(sess, quiet, &res));
	ASSERT_EQ_STR(res->text, "");
	ASSERT_EQ_INT(res->nwords, 0);
	rv_stt_result_free(res);
	ASSERT_OK(decode(sess, hiss, &res));
	ASSERT_EQ_STR(res->text, "");
	rv_stt_result_free(res);
	/* An utterance with no audio at all. */
	ASSERT_OK(decode(sess, NULL, &res));
	ASSERT_EQ_STR(res->text, "");
	rv_stt_result_free(res);
	rv_stt_session_free(sess);
	mem_deref(quiet);
	mem_deref(hiss);
}

RV_TEST(stt_api_rejects_misuse)
{
	struct rv_stt_config bad = {.provider = "nosuch"};
	struct rv_stt_engine *eng = engine(), *e2 = NULL;
	struct rv_stt_session *sess = NULL;
	struct rv_stt_result *res = NULL;
	const char *many[RV_STT_MAX_BIAS_PHRASES + 1];
	char longp[RV_STT_MAX_PHRASE_LEN + 8];
	const char *lp = longp;
	int16_t frame[RV_MEDIA_FRAME] = {0};

	ASSERT(eng);
	ASSERT_EQ_INT(rv_stt_engine_new(&bad, &e2), -EPROTONOSUPPORT);
	ASSERT(e2 == NULL);
	ASSERT_OK(rv_stt_session_new(eng, 0, NULL, NULL, &sess));
	for (size_t i = 0; i < RV_ARRAY_LEN(many); i++)
		many[i] = "yes";
	ASSERT_EQ_INT(rv_stt_set_bias(sess, many, RV_ARRAY_LEN(many)), -EINVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	ASSERT_EQ_INT(rv_stt_set_bias(sess, &lp, 1), -EINVAL);
	ASSERT_EQ_INT(rv_stt_feed(sess, frame, RV_MEDIA_FRAME), -EINVAL);
	ASSERT_EQ_INT(rv_stt_end_utt(sess, &res), -EINVAL);
	ASSERT_OK(rv_stt_start_utt(sess));
	ASSERT_EQ_INT(rv_stt_start_utt(sess), -EBUSY);
	ASSERT_OK(rv_stt_feed(sess, frame, RV_MEDIA_FRAME));
	/* Freeing a session with an open utterance gives its decoder back. */
	rv_stt_session_free(sess);
}

/* ---- OpenAI-shaped HTTP provider against the fake server ---- */

struct fake {
	pid_t pid;
	int port;
	int out; /* the fake's stdout, open until it stops so that it never writes to a closed pipe
	          */
	char log[64];
};

/* Start a fake server script (tests/fakes/NAME) with key "good-key" and a transcript. */
static int fake_start_script(struct fake *f, const char *script, const char *text)
{
	int fds[2];
	char buf[64] = {0};
	ssize_t n;

	rv_strlcpy(f->log, "/tmp/rv-stt-fake-XXXXXX", sizeof(f->log));
	n = mkstemp(f->log);
	if (n < 0)
		return -errno;
	close((int)n);
	if (pipe(fds) != 0)
		return -errno;
	f->pid = fork();
	if (f->pid == 0) {
		/* A test that fails before fake_stop must not leave the server holding the
		 * runner's output pipe open. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("python3", "python3", script, "--key", "good-key", "--text", text, "--log",
		       f->log, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f->out = fds[0];
	n = read(fds[0], buf, sizeof(buf) - 1);
	if (n <= 0 || sscanf(buf, "port %d", &f->port) != 1)
		return -EIO;
	return 0;
}

static int fake_start(struct fake *f, const char *text)
{
	return fake_start_script(f, "tests/fakes/fake_openai_stt.py", text);
}

static void fake_stop(struct fake *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
		close(f->out);
	}
	unlink(f->log);
}

static int openai_run(int port, const char *key, const struct rv_pcm *pcm,
                      struct rv_stt_result **out)
{
	char url[64];
	struct rv_stt_config cfg = {.provider = "openai",
	                            .base_url = url,
	                            .api_key = key,
	                            .model = "whisper-1",
	                            .timeout_ms = 5000};
	struct rv_stt_engine *eng = NULL;
	struct rv_stt_session *sess = NULL;
	int err;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	err = rv_stt_engine_new(&cfg, &eng);
	if (err)
		return err;
	err = rv_stt_session_new(eng, 0, NULL, NULL, &sess);
	if (!err)
		err = rv_stt_set_bias(sess, callback_bias, RV_ARRAY_LEN(callback_bias));
	if (!err)
		err = decode(sess, pcm, out);
	rv_stt_session_free(sess);
	rv_stt_engine_free(eng);
	return err;
}

RV_TEST(stt_openai_transcribes_against_fake)
{
	struct fake f = {0};
	struct rv_stt_result *res = NULL;
	struct rv_pcm *pcm = NULL;
	char logline[4096] = {0};
	FILE *lf;

	ASSERT_OK(rv_pcm_alloc(RV_MEDIA_RATE * 2, RV_MEDIA_RATE, &pcm)); /* 2 s */
	for (size_t i = 0; i < pcm->n; i++)
		pcm->s[i] = (int16_t)((i % 40) * 300 - 6000);
	ASSERT_OK(fake_start(&f, "Yes, call me tomorrow"));
	ASSERT_OK(openai_run(f.port, "good-key", pcm, &res));
	ASSERT_EQ_STR(res->text, "yes call me tomorrow");
	ASSERT_EQ_INT(res->nwords, 4);
	ASSERT_EQ_STR(res->words[0].word, "yes");  /* "Yes," normalised */
	ASSERT_EQ_INT(res->words[3].end_ms, 2000); /* the fake spreads words over the WAV */
	for (size_t i = 1; i < res->nwords; i++)
		ASSERT(res->words[i].start_ms >= res->words[i - 1].end_ms);
	ASSERT(res->conf > 0.8 && res->conf < 0.9); /* exp(avg_logprob -0.15) */
	rv_stt_result_free(res);
	/* What the server received: the form fields, the bias as prompt, 2 s of WAV. */
	lf = fopen(f.log, "r");
	ASSERT(lf);
	ASSERT(fgets(logline, sizeof(logline), lf));
	fclose(lf);
	ASSERT_MSG(strstr(logline, "\"response_format\": \"verbose_json\"") &&
	               strstr(logline, "\"model\": \"whisper-1\"") &&
	               strstr(logline, "call me tomorrow, call me back later") &&
	               strstr(logline, "\"file\": 64044"),
	           "%s", logline);
	fake_stop(&f);
	mem_deref(pcm);
}

RV_TEST(stt_openai_reports_server_faults)
{
	struct fake f = {0};
	struct rv_stt_result *res = NULL;
	struct rv_pcm *pcm = NULL;
	int dead_port;

	ASSERT_OK(rv_pcm_alloc(RV_MEDIA_RATE / 2, RV_MEDIA_RATE, &pcm));
	ASSERT_OK(fake_start(&f, "yes"));
	ASSERT_EQ_INT(openai_run(f.port, "wrong-key", pcm, &res), -EACCES);
	ASSERT_EQ_INT(openai_run(f.port, "malformed", pcm, &res), -EPROTO);
	ASSERT_EQ_INT(openai_run(f.port, "notext", pcm, &res), -EPROTO);
	ASSERT_EQ_INT(openai_run(f.port, "hangup", pcm, &res), -ECONNRESET);
	ASSERT(res == NULL);
	ASSERT_EQ_STR(rv_stt_strerror(-EACCES), "server rejected the API key");
	/* An utterance with no audio costs no request and gives an empty result. */
	ASSERT_OK(openai_run(f.port, "good-key", NULL, &res));
	ASSERT_EQ_STR(res->text, "");
	rv_stt_result_free(res);
	res = NULL;
	dead_port = f.port;
	fake_stop(&f);
	ASSERT_EQ_INT(openai_run(dead_port, "good-key", pcm, &res), -ECONNREFUSED);
	mem_deref(pcm);
}

/* ---- Deepgram-shaped WebSocket provider against the fake server ---- */

struct dg_partials {
	unsigned n;
	char last[256];
};

static void dg_on_partial(const struct rv_stt_result *res, void *arg)
{
	struct dg_partials *p = arg;

	p->n++;
	rv_strlcpy(p->last, res->text, sizeof(p->last));
}

static int dg_engine(int port, const char *key, const char *model, unsigned timeout_ms,
                     struct rv_stt_engine **out)
{
	char url[64];
	struct rv_stt_config cfg = {.provider = "deepgram",
	                            .base_url = url,
	                            .api_key = key,
	                            .model = model,
	                            .timeout_ms = timeout_ms};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	return rv_stt_engine_new(&cfg, out);
}

/* A 2 s buzz: the fake does not listen, it counts. */
static struct rv_pcm *buzz(double seconds)
{
	struct rv_pcm *pcm = NULL;

	if (rv_pcm_alloc((size_t)(RV_MEDIA_RATE * seconds), RV_MEDIA_RATE, &pcm) != 0)
		return NULL;
	for (size_t i = 0; i < pcm->n; i++)
		pcm->s[i] = (int16_t)((i % 40) * 300 - 6000);
	return pcm;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

RV_TEST(stt_deepgram_streams_and_gets_finals_against_fake)
{
	struct fake f = {0};
	struct rv_stt_engine *eng = NULL;
	struct rv_stt_session *sess = NULL;
	struct rv_stt_result *res = NULL;
	struct dg_partials parts = {0};
	struct rv_pcm *pcm = buzz(2.0);
	char *log;

	ASSERT(pcm);
	ASSERT_OK(fake_start_script(&f, "tests/fakes/fake_deepgram.py",
	                            "Yes, call me tomorrow|no thanks"));
	ASSERT_OK(dg_engine(f.port, "good-key", NULL, 5000, &eng));
	ASSERT_EQ_STR(rv_stt_engine_provider(eng), "deepgram");
	ASSERT_OK(rv_stt_session_new(eng, 100, dg_on_partial, &parts, &sess));
	ASSERT_OK(rv_stt_set_bias(sess, callback_bias, RV_ARRAY_LEN(callback_bias)));
	/* Fed at the pace of a call (100 ms every 100 ms), so interim results come back while
	 * the utterance goes on. */
	ASSERT_OK(rv_stt_start_utt(sess));
	for (size_t off = 0; off < pcm->n; off += RV_MEDIA_FRAME) {
		ASSERT_OK(rv_stt_feed(sess, pcm->s + off, RV_MEDIA_FRAME));
		if ((off / RV_MEDIA_FRAME) % 5 == 4)
			usleep(100000);
	}
	ASSERT_OK(rv_stt_end_utt(sess, &res));
	/* Two final segments joined; word times from the utterance's start. */
	ASSERT_EQ_STR(res->text, "yes call me tomorrow");
	ASSERT(res->is_final);
	ASSERT_EQ_INT(res->nwords, 4);
	ASSERT_EQ_STR(res->words[0].word, "yes");
	ASSERT_EQ_INT(res->words[0].start_ms, 0);
	ASSERT_EQ_INT(res->words[3].end_ms, 2000);
	ASSERT(res->conf > 0.9f);
	/* Interim results arrived as partials while the audio streamed. */
	ASSERT_MSG(parts.n >= 2, "%u partials", parts.n);
	ASSERT_MSG(strncmp(parts.last, "yes", 3) == 0, "last partial \"%s\"", parts.last);
	rv_stt_result_free(res);
	res = NULL;

	/* A second utterance on the same connection: times restart at its own start. */
	ASSERT_OK(decode(sess, pcm, &res));
	ASSERT_EQ_STR(res->text, "no thanks");
	ASSERT_EQ_INT(res->words[0].start_ms, 0);
	ASSERT_EQ_INT(res->words[1].end_ms, 2000);
	rv_stt_result_free(res);
	res = NULL;
	/* No audio: no round trip, an empty result. */
	ASSERT_OK(rv_stt_start_utt(sess));
	ASSERT_OK(rv_stt_end_utt(sess, &res));
	ASSERT_EQ_STR(res->text, "");
	rv_stt_result_free(res);
	res = NULL;
	/* A new dialog state's bias is part of the URL: a new connection carries it. */
	ASSERT_OK(rv_stt_set_bias(sess, confirm_bias, RV_ARRAY_LEN(confirm_bias)));
	ASSERT_OK(decode(sess, pcm, &res));
	ASSERT_EQ_STR(res->text, "yes call me tomorrow"); /* the fake's first text again */
	rv_stt_result_free(res);
	rv_stt_session_free(sess);
	rv_stt_engine_free(eng);

	/* What the server saw: one connection per bias list, the token, linear16 at 16 kHz, the
	 * bias as keywords, 2 s (64000 bytes) per utterance, the ping answered. */
	usleep(200000);
	log = slurp(f.log);
	ASSERT(log);
	ASSERT_MSG(strstr(log, "\"auth\": \"Token good-key\"") &&
	               strstr(log, "\"encoding\": [\"linear16\"]") &&
	               strstr(log, "\"sample_rate\": [\"16000\"]") &&
	               strstr(log, "\"model\": [\"nova-2\"]") && strstr(log, "\"tomorrow:2\"") &&
	               count_of(log, "\"call:2\"") == 2 /* once per connection */ &&
	               strstr(log, "\"audio_bytes\": 64000") &&
	               strstr(log, "\"pong\", \"ok\": true"),
	           "%s", log);
	ASSERT_EQ_INT(count_of(log, "\"event\": \"connect\""), 2);
	ASSERT_EQ_INT(count_of(log, "\"event\": \"utterance\""), 3);
	ASSERT_MSG(strstr(log, "\"yes:2\""), "the second connection's keywords: %s", log);
	free(log);
	fake_stop(&f);
	mem_deref(pcm);
}

/* Run one 1 s utterance on a fresh engine with `key`; the engine's timeout is 1.5 s. */
static int dg_run(int port, const char *key, struct rv_stt_result **out)
{
	struct rv_stt_engine *eng = NULL;
	struct rv_stt_session *sess = NULL;
	struct rv_pcm *pcm = buzz(1.0);
	int err = dg_engine(port, key, "nova-3", 1500, &eng);

	if (!err)
		err = rv_stt_session_new(eng, 0, NULL, NULL, &sess);
	if (!err)
		err = rv_stt_set_bias(sess, confirm_bias, RV_ARRAY_LEN(confirm_bias));
	if (!err)
		err = decode(sess, pcm, out);
	rv_stt_session_free(sess);
	rv_stt_engine_free(eng);
	mem_deref(pcm);
	return err;
}

RV_TEST(stt_deepgram_reports_server_faults)
{
	struct fake f = {0};
	struct rv_stt_result *res = NULL;
	struct rv_stt_engine *eng = NULL;
	struct rv_stt_session *sess = NULL;
	struct rv_pcm *pcm = buzz(1.0);
	int dead_port;
	char *log;

	ASSERT(pcm);
	ASSERT_OK(fake_start_script(&f, "tests/fakes/fake_deepgram.py", "yes"));
	ASSERT_EQ_INT(dg_run(f.port, "wrong-key", &res), -EACCES);
	ASSERT_EQ_INT(dg_run(f.port, "garbage", &res), -EPROTO);
	ASSERT_EQ_INT(dg_run(f.port, "hangup", &res), -ECONNRESET);
	ASSERT_EQ_INT(dg_run(f.port, "close1011", &res), -ECONNRESET);
	ASSERT_EQ_INT(dg_run(f.port, "stall", &res), -ETIMEDOUT);
	ASSERT_EQ_INT(dg_run(f.port, "oversize", &res), -EPROTO);
	ASSERT(res == NULL);
	/* nova-3 takes the bias as whole phrases (keyterm). */
	log = slurp(f.log);
	ASSERT(log);
	ASSERT_MSG(strstr(log, "\"keyterm\": [\"yes\", \"no\"") && strstr(log, "\"that's right\""),
	           "%s", log);
	free(log);

	/* After a failed utterance the same session reconnects for the next one. */
	ASSERT_OK(dg_engine(f.port, "good-key", NULL, 3000, &eng));
	ASSERT_OK(rv_stt_session_new(eng, 0, NULL, NULL, &sess));
	ASSERT_OK(rv_stt_start_utt(sess));
	ASSERT_OK(rv_stt_feed(sess, pcm->s, pcm->n));
	rv_stt_session_free(sess); /* abandoned mid-utterance */
	ASSERT_OK(rv_stt_session_new(eng, 0, NULL, NULL, &sess));
	ASSERT_OK(decode(sess, pcm, &res));
	ASSERT_EQ_STR(res->text, "yes");
	rv_stt_result_free(res);
	res = NULL;
	rv_stt_session_free(sess);
	rv_stt_engine_free(eng);

	/* The key is checked at start; a bad URL is refused without I/O. */
	struct rv_stt_config nokey = {.provider = "deepgram", .base_url = "http://127.0.0.1:9"};
	ASSERT_EQ_INT(rv_stt_engine_new(&nokey, &eng), -EINVAL);
	struct rv_stt_config badurl = {
	    .provider = "deepgram", .base_url = "ftp://x", .api_key = "k"};
	ASSERT_EQ_INT(rv_stt_engine_new(&badurl, &eng), -EINVAL);

	dead_port = f.port;
	fake_stop(&f);
	ASSERT_EQ_INT(dg_run(dead_port, "good-key", &res), -ECONNREFUSED);
	mem_deref(pcm);
}
