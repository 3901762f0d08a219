/*
 * `revovoice answer`: the play-and-record flow on the SIP UA. The media loop runs on its own
 * thread (as in the daemon); this thread only parses options, loads the prompt, waits for the
 * calls to finish or for a signal, and shuts the loop down.
 */
#include <errno.h>
#include <pthread.h>
#include <re.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "media/media_audio.h"
#include "media/media_loop.h"
#include "media/media_rec.h"
#include "media/media_stream.h"
#include "sip/sip_cli.h"
#include "sip/sip_ua.h"

#define LINGER_MS 200 /* let the prompt's last packets reach the caller before the BYE */

struct cli {
	struct rv_sip_ua_cfg cfg;
	const char *record_dir;
	bool keep_open;
	int64_t calls, max_seconds;
	struct rv_pcm *prompt; /* handed to the loop once it starts */
	struct rv_sip_ua *ua;  /* loop-thread only */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t done; /* calls finished; guarded by mu */
	int failed;
};

/* Per-call state of the flow, owned by the call's user slot. */
struct cli_call {
	struct cli *cli;
	struct rv_call *call;
	struct tmr hangup_tmr, max_tmr;
	char rec_path[1024];
};

static const char usage[] =
    "usage: revovoice answer --sip HOST:PORT --play FILE.wav [--record-dir DIR] [--calls N]\n"
    "                        [--ring-ms MS] [--rtp-ports LO-HI] [--keep-open]\n"
    "                        [--max-seconds S]\n"
    "Answers inbound calls, plays FILE.wav, records both sides (caller left, agent right)\n"
    "to DIR/<call-id>.wav and hangs up when the prompt has played (with --keep-open: waits\n"
    "for the caller to hang up). Exits after N calls (default 1; 0 = until SIGTERM).\n";

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void cli_call_destructor(void *arg)
{
	struct cli_call *cc = arg;
	tmr_cancel(&cc->hangup_tmr);
	tmr_cancel(&cc->max_tmr);
	mem_deref(cc->call);
}

static void hangup_tmr_h(void *arg)
{
	struct cli_call *cc = arg;
	rv_call_hangup(cc->call);
}

static void prompt_done_h(uint32_t id, enum rv_play_end how, size_t played, size_t total, void *arg)
{
	struct cli_call *cc = arg;
	out("prompt-done call_id=%s id=%u how=%s played_ms=%zu total_ms=%zu\n",
	    rv_call_id(cc->call), id, how == RV_PLAY_DONE ? "done" : "flushed", played / 16,
	    total / 16);
	if (how == RV_PLAY_DONE && !cc->cli->keep_open)
		tmr_start(&cc->hangup_tmr, LINGER_MS, hangup_tmr_h, cc);
}

static void safe_name(const char *in, char *buf, size_t len)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && j + 1 < len; i++) {
		char c = in[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
		buf[j++] = ok ? c : '_';
	}
	buf[j] = '\0';
}

static void on_answered(struct cli_call *cc)
{
	struct cli *cli = cc->cli;
	struct rv_audio *a = rv_call_audio(cc->call);
	if (cli->record_dir) {
		char name[256];
		safe_name(rv_call_id(cc->call), name, sizeof(name));
		snprintf(cc->rec_path, sizeof(cc->rec_path), "%s/%s.wav", cli->record_dir, name);
		int err = rv_audio_record(a, cc->rec_path);
		if (err) {
			rv_error("sip", "cannot record to %s: %s", cc->rec_path, strerror(-err));
			cc->rec_path[0] = '\0';
		}
	}
	int err = rv_audio_play(a, cli->prompt, prompt_done_h, cc, NULL);
	if (err) {
		rv_error("sip", "cannot queue the prompt: %s", strerror(-err));
		rv_call_hangup(cc->call);
		return;
	}
	if (cli->max_seconds > 0)
		tmr_start(&cc->max_tmr, (uint64_t)cli->max_seconds * 1000, hangup_tmr_h, cc);
}

static void call_event_h(struct rv_call *call, const struct rv_call_event *ev, void *arg)
{
	struct cli *cli = arg;
	struct cli_call *cc = rv_call_user(call);
	static const char *const causes[] = {"remote_bye", "local", "cancelled", "error"};

	switch (ev->type) {
	case RV_CALL_EV_INCOMING:
		cc = mem_zalloc(sizeof(*cc), cli_call_destructor);
		if (!cc) {
			rv_call_hangup(call);
			return;
		}
		cc->cli = cli;
		cc->call = mem_ref(call);
		tmr_init(&cc->hangup_tmr);
		tmr_init(&cc->max_tmr);
		rv_call_set_user(call, cc);
		out("incoming call_id=%s codec=%s\n", rv_call_id(call), rv_call_codec(call));
		break;
	case RV_CALL_EV_RINGING:
		out("ringing call_id=%s\n", rv_call_id(call));
		break;
	case RV_CALL_EV_ANSWERED:
		out("answered call_id=%s codec=%s\n", rv_call_id(call), rv_call_codec(call));
		if (cc)
			on_answered(cc);
		break;
	case RV_CALL_EV_DTMF:
		out("dtmf call_id=%s digit=%c\n", rv_call_id(call), ev->digit);
		break;
	case RV_CALL_EV_HANGUP: {
		struct rv_media_stats st;
		rv_call_media_stats(call, &st);
		out("hangup call_id=%s cause=%s digits=%s recording=%s rx_packets=%llu "
		    "tx_packets=%llu frames=%llu frames_received=%llu rx_bad_source=%llu "
		    "rx_malformed=%llu\n",
		    rv_call_id(call), causes[ev->cause], rv_call_digits(call),
		    cc && cc->rec_path[0] ? cc->rec_path : "-", (unsigned long long)st.rx_packets,
		    (unsigned long long)st.tx_packets, (unsigned long long)st.frames,
		    (unsigned long long)st.frames_received, (unsigned long long)st.rx_bad_source,
		    (unsigned long long)st.rx_malformed);
		rv_call_set_user(call, NULL);
		mem_deref(cc);
		pthread_mutex_lock(&cli->mu);
		cli->done++;
		pthread_cond_broadcast(&cli->cv);
		pthread_mutex_unlock(&cli->mu);
		break;
	}
	}
}

static int loop_init(void *arg)
{
	struct cli *cli = arg;
	int err = rv_sip_ua_alloc(&cli->cfg, call_event_h, cli, &cli->ua);
	if (!err)
		out("listening sip=%s port=%u\n", cli->cfg.listen, rv_sip_ua_port(cli->ua));
	return err;
}

static void loop_fini(void *arg)
{
	struct cli *cli = arg;
	cli->ua = mem_deref(cli->ua);
	cli->prompt = mem_deref(cli->prompt);
}

static int parse_range(const char *s, uint16_t *lo, uint16_t *hi)
{
	char a[16], b[16];
	const char *dash = strchr(s, '-');
	int64_t x, y;
	if (!dash || (size_t)(dash - s) >= sizeof(a) || strlen(dash + 1) >= sizeof(b))
		return -EINVAL;
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	rv_strlcpy(b, dash + 1, sizeof(b));
	if (rv_parse_int64(a, 1024, 65534, &x) || rv_parse_int64(b, 1025, 65535, &y) || y <= x)
		return -EINVAL;
	*lo = (uint16_t)x;
	*hi = (uint16_t)y;
	return 0;
}

int rv_sip_cli_answer(int argc, char **argv)
{
	struct cli cli = {.calls = 1};
	struct rv_media_loop *loop = NULL;
	const char *play = NULL;
	int64_t v;
	sigset_t set;
	int ret = 1;

	cli.cfg.listen =
	    getenv("REVOVOICE_SIP_LISTEN") ? getenv("REVOVOICE_SIP_LISTEN") : "127.0.0.1:5060";
	cli.cfg.ring_ms = 500;
	cli.cfg.rtp_port_min = 20000;
	cli.cfg.rtp_port_max = 29999;
	cli.cfg.max_calls = 100;
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = strcmp(o, "--keep-open") != 0 && strcmp(o, "-h") != 0 &&
		            strcmp(o, "--help") != 0;
		if (takes && !val) {
			fprintf(stderr, "revovoice answer: %s needs a value\n%s", o, usage);
			return 2;
		}
		if (!strcmp(o, "--sip")) {
			cli.cfg.listen = val;
		} else if (!strcmp(o, "--play")) {
			play = val;
		} else if (!strcmp(o, "--record-dir")) {
			cli.record_dir = val;
		} else if (!strcmp(o, "--calls") && !rv_parse_int64(val, 0, 1000000, &v)) {
			cli.calls = v;
		} else if (!strcmp(o, "--ring-ms") && !rv_parse_int64(val, 0, 120000, &v)) {
			cli.cfg.ring_ms = (uint32_t)v;
		} else if (!strcmp(o, "--max-seconds") && !rv_parse_int64(val, 0, 86400, &v)) {
			cli.max_seconds = v;
		} else if (!strcmp(o, "--rtp-ports") &&
		           !parse_range(val, &cli.cfg.rtp_port_min, &cli.cfg.rtp_port_max)) {
		} else if (!strcmp(o, "--keep-open")) {
			cli.keep_open = true;
		} else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "revovoice answer: bad option or value: %s %s\n%s", o,
			        takes ? val : "", usage);
			return 2;
		}
		if (takes)
			i++;
	}
	if (!play) {
		fprintf(stderr, "revovoice answer: --play FILE.wav is required\n%s", usage);
		return 2;
	}
	if (rv_pcm_load_file(play, RV_MEDIA_RATE, &cli.prompt) != 0) {
		fprintf(stderr, "revovoice answer: cannot read %s as audio\n", play);
		return 1;
	}

	/* Signals are taken here with sigtimedwait; the loop thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&cli.mu, NULL);
	pthread_cond_init(&cli.cv, NULL);

	int err = rv_media_loop_start(loop_init, &cli, &loop);
	if (err) {
		fprintf(stderr, "revovoice answer: cannot listen on %s: %s\n", cli.cfg.listen,
		        strerror(-err));
		mem_deref(cli.prompt);
		goto out;
	}
	for (;;) {
		pthread_mutex_lock(&cli.mu);
		int finished = cli.calls > 0 && cli.done >= cli.calls;
		pthread_mutex_unlock(&cli.mu);
		if (finished)
			break;
		struct timespec ts = {0, 100 * 1000000L};
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM) {
			out("signal %d: stopping\n", sig);
			break;
		}
	}
	rv_media_loop_stop(loop, loop_fini, &cli);
	if (rv_rec_wait_idle(10000) != 0)
		fprintf(stderr, "revovoice answer: recordings still being written at exit\n");
	ret = 0;
out:
	pthread_mutex_destroy(&cli.mu);
	pthread_cond_destroy(&cli.cv);
	return ret;
}
