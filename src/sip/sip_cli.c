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
#include "sip/sip_report.h"
#include "sip/sip_ua.h"

#define LINGER_MS 200 /* let the prompt's last packets reach the caller before the BYE */

struct cli {
	struct rv_sip_ua_cfg cfg;
	const char *record_dir;
	bool keep_open;
	bool quiet; /* only the listening, hangup and signal lines */
	int64_t calls, max_seconds;
	struct rv_pcm *prompt; /* handed to the loop once it starts */
	struct rv_sip_ua *ua;  /* loop-thread only */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t done; /* calls finished; guarded by mu */
	int failed;
};

/*
 * Per-call state of the flow. References: the call's user slot (dropped at HANGUP) and the
 * queued prompt (dropped in prompt_done_h). The prompt can report after HANGUP, when the call's
 * media is released, so `call` is cleared at HANGUP and the callbacks check it.
 */
struct cli_call {
	struct cli *cli;
	struct rv_call *call; /* NULL once the call has hung up */
	char call_id[256];
	struct tmr hangup_tmr, max_tmr;
	uint64_t t_answer; /* tmr_jiffies() at the answer, 0 before */
	char rec_path[1024];
};

static const char usage[] =
    "usage: revovoice answer --sip HOST:PORT --play FILE.wav [--record-dir DIR] [--calls N]\n"
    "                        [--ring-ms MS] [--rtp-ports LO-HI] [--keep-open]\n"
    "                        [--max-seconds S] [--max-calls N] [--quiet]\n"
    "Answers inbound calls, plays FILE.wav, records both sides (caller left, agent right)\n"
    "to DIR/<call-id>.wav and hangs up when the prompt has played (with --keep-open: waits\n"
    "for the caller to hang up). Exits after N calls (default 1; 0 = until SIGTERM).\n"
    "--max-calls: concurrent calls before 486 Busy Here (default 100). --quiet: print only\n"
    "the listening and hangup lines (for load tests).\n";

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
	if (cc->call)
		rv_call_hangup(cc->call);
}

static void prompt_done_h(uint32_t id, enum rv_play_end how, size_t played, size_t total, void *arg)
{
	struct cli_call *cc = arg;
	if (!cc->cli->quiet)
		out("prompt-done call_id=%s id=%u how=%s played_ms=%zu total_ms=%zu\n", cc->call_id,
		    id, how == RV_PLAY_DONE ? "done" : "flushed", played / 16, total / 16);
	if (how == RV_PLAY_DONE && !cc->cli->keep_open && cc->call)
		tmr_start(&cc->hangup_tmr, LINGER_MS, hangup_tmr_h, cc);
	mem_deref(cc); /* the prompt's reference */
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
	int err = rv_audio_play(a, cli->prompt, prompt_done_h, mem_ref(cc), NULL);
	if (err) {
		mem_deref(cc);
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

	switch (ev->type) {
	case RV_CALL_EV_INCOMING:
		cc = mem_zalloc(sizeof(*cc), cli_call_destructor);
		if (!cc) {
			rv_call_hangup(call);
			return;
		}
		cc->cli = cli;
		cc->call = mem_ref(call);
		rv_strlcpy(cc->call_id, rv_call_id(call) ? rv_call_id(call) : "",
		           sizeof(cc->call_id));
		tmr_init(&cc->hangup_tmr);
		tmr_init(&cc->max_tmr);
		rv_call_set_user(call, cc);
		if (!cli->quiet)
			out("incoming call_id=%s codec=%s\n", rv_call_id(call),
			    rv_call_codec(call));
		break;
	case RV_CALL_EV_RINGING:
		if (!cli->quiet)
			out("ringing call_id=%s\n", rv_call_id(call));
		break;
	case RV_CALL_EV_EARLY_MEDIA: /* outbound only */
		break;
	case RV_CALL_EV_ANSWERED:
		if (!cli->quiet)
			out("answered call_id=%s codec=%s\n", rv_call_id(call),
			    rv_call_codec(call));
		if (cc) {
			cc->t_answer = tmr_jiffies();
			on_answered(cc);
		}
		break;
	case RV_CALL_EV_DTMF:
		out("dtmf call_id=%s digit=%c\n", rv_call_id(call), ev->digit);
		break;
	case RV_CALL_EV_HOLD:
	case RV_CALL_EV_UNHOLD:
		out("%s call_id=%s\n", ev->type == RV_CALL_EV_HOLD ? "hold" : "unhold",
		    rv_call_id(call));
		break;
	case RV_CALL_EV_TRANSFER:
		out("transfer call_id=%s status=%u\n", rv_call_id(call), ev->sip_status);
		break;
	case RV_CALL_EV_HANGUP: {
		struct rv_media_stats st;
		rv_call_media_stats(call, &st);
		/* talk_ms with frames and tx_packets tells whether we kept the 20 ms pace. */
		uint64_t talk_ms = cc && cc->t_answer ? tmr_jiffies() - cc->t_answer : 0;
		out("hangup call_id=%s cause=%s digits=%s recording=%s rx_packets=%llu "
		    "tx_packets=%llu frames=%llu frames_received=%llu rx_bad_source=%llu "
		    "rx_malformed=%llu rx_lost=%llu jitter_ms=%.2f frames_skipped=%llu "
		    "talk_ms=%llu\n",
		    rv_call_id(call), rv_hangup_cause_name(ev->cause), rv_call_digits(call),
		    cc && cc->rec_path[0] ? cc->rec_path : "-", (unsigned long long)st.rx_packets,
		    (unsigned long long)st.tx_packets, (unsigned long long)st.frames,
		    (unsigned long long)st.frames_received, (unsigned long long)st.rx_bad_source,
		    (unsigned long long)st.rx_malformed, (unsigned long long)st.rx_lost,
		    st.jitter_ms, (unsigned long long)st.frames_skipped,
		    (unsigned long long)talk_ms);
		rv_call_set_user(call, NULL);
		if (cc) {
			/* The prompt may still hold cc: it must not reach the call any more. */
			tmr_cancel(&cc->hangup_tmr);
			tmr_cancel(&cc->max_tmr);
			cc->call = mem_deref(cc->call);
			mem_deref(cc);
		}
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

/* Each call holds three descriptors (RTP, RTCP, recording): a soft limit of 1024 would cap
 * the flow near 330 calls, so take whatever the hard limit allows. */
/* SIGINT and SIGTERM are taken with sigtimedwait on the calling thread; blocking them before
 * the loop thread starts makes it inherit the mask, so it is never interrupted. */
static void block_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
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
		int takes = strcmp(o, "--keep-open") != 0 && strcmp(o, "--quiet") != 0 &&
		            strcmp(o, "-h") != 0 && strcmp(o, "--help") != 0;
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
		} else if (!strcmp(o, "--max-calls") && !rv_parse_int64(val, 1, 100000, &v)) {
			cli.cfg.max_calls = (uint32_t)v;
		} else if (!strcmp(o, "--rtp-ports") &&
		           !parse_range(val, &cli.cfg.rtp_port_min, &cli.cfg.rtp_port_max)) {
		} else if (!strcmp(o, "--keep-open")) {
			cli.keep_open = true;
		} else if (!strcmp(o, "--quiet")) {
			cli.quiet = true;
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

	block_stop_signals(&set);
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

/* ---- `revovoice call`: one outbound call ------------------------------------------------- */

struct dialer {
	struct rv_sip_ua_cfg cfg;
	struct rv_sip_dial dial;
	const char *record;
	char listen_buf[64];
	struct rv_pcm *prompt; /* handed to the loop once it starts */
	/* Loop-thread only. */
	struct rv_sip_ua *ua;
	struct rv_call *call; /* our reference until the HANGUP event */
	struct tmr linger_tmr;
	uint64_t t_dial, t_ring, t_answer, t_end;
	bool recording;
	/* Written on the loop before `finished` is set under mu, read by main after. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool finished;
	int dial_err;
	char call_id[256];
	char codec[8];
	enum rv_call_disposition disp;
	enum rv_hangup_cause cause;
	uint16_t status, provisional;
	bool remote, early, answered;
	size_t played_ms;
	struct rv_media_stats st;
};

static const char call_usage[] =
    "usage: revovoice call sip:user@host[:port][;transport=tcp] --play FILE.wav\n"
    "                      [--record OUT.wav] [--from sip:revovoice@IP] [--user U --password P]\n"
    "                      [--timeout S] [--sip HOST:PORT] [--rtp-ports LO-HI]\n"
    "Places one call, plays FILE.wav once answered, records both sides (far end left, us\n"
    "right) and hangs up when the prompt has played or the far end hangs up. Prints one JSON\n"
    "line with the outcome; exits 0 when the call was answered, 1 otherwise, 2 on bad usage.\n";

static void dialer_finish(struct dialer *dl)
{
	pthread_mutex_lock(&dl->mu);
	dl->finished = true;
	pthread_cond_broadcast(&dl->cv);
	pthread_mutex_unlock(&dl->mu);
}

static void dialer_hangup(void *arg)
{
	struct dialer *dl = arg;
	if (dl->call)
		rv_call_hangup(dl->call);
}

static void dialer_prompt_done_h(uint32_t id, enum rv_play_end how, size_t played, size_t total,
                                 void *arg)
{
	struct dialer *dl = arg;
	(void)id;
	(void)total;
	dl->played_ms = played / (RV_MEDIA_RATE / 1000);
	if (how == RV_PLAY_DONE)
		tmr_start(&dl->linger_tmr, LINGER_MS, dialer_hangup, dl);
}

/* Record from the first media on (early media included), so the file shows what we heard. */
static void dialer_record(struct dialer *dl, struct rv_audio *a)
{
	if (!dl->record || dl->recording || !a)
		return;
	int err = rv_audio_record(a, dl->record);
	if (err)
		rv_error("sip", "cannot record to %s: %s", dl->record, strerror(-err));
	else
		dl->recording = true;
}

static void dialer_event_h(struct rv_call *call, const struct rv_call_event *ev, void *arg)
{
	struct dialer *dl = arg;
	if (call != dl->call)
		return;
	switch (ev->type) {
	case RV_CALL_EV_INCOMING:
	case RV_CALL_EV_DTMF:
	case RV_CALL_EV_HOLD:
	case RV_CALL_EV_UNHOLD:
	case RV_CALL_EV_TRANSFER:
		break;
	case RV_CALL_EV_RINGING:
		if (!dl->t_ring)
			dl->t_ring = tmr_jiffies();
		dl->provisional = ev->sip_status;
		break;
	case RV_CALL_EV_EARLY_MEDIA:
		dl->early = true;
		dialer_record(dl, rv_call_audio(call));
		break;
	case RV_CALL_EV_ANSWERED: {
		dl->t_answer = tmr_jiffies();
		dl->answered = true;
		struct rv_audio *a = rv_call_audio(call);
		dialer_record(dl, a);
		int err = rv_audio_play(a, dl->prompt, dialer_prompt_done_h, dl, NULL);
		if (err) {
			rv_error("sip", "cannot queue the prompt: %s", strerror(-err));
			rv_call_hangup(call);
		}
		break;
	}
	case RV_CALL_EV_HANGUP:
		dl->t_end = tmr_jiffies();
		tmr_cancel(&dl->linger_tmr);
		rv_strlcpy(dl->call_id, rv_call_id(call) ? rv_call_id(call) : "",
		           sizeof(dl->call_id));
		rv_strlcpy(dl->codec, rv_call_codec(call) ? rv_call_codec(call) : "",
		           sizeof(dl->codec));
		dl->disp = ev->disposition;
		dl->cause = ev->cause;
		dl->status = ev->sip_status;
		dl->remote = ev->remote;
		rv_call_media_stats(call, &dl->st);
		dl->call = mem_deref(dl->call);
		dialer_finish(dl);
		break;
	}
}

/* With no --sip, listen where the target is reachable from: loopback for loopback. */
static int dialer_listen_addr(struct dialer *dl)
{
	struct uri u;
	struct pl pl;
	struct sa dst, src;
	pl_set_str(&pl, dl->dial.uri);
	if (uri_decode(&u, &pl) || sa_set(&dst, &u.host, 0))
		return EINVAL;
	if (sa_is_loopback(&dst))
		sa_set_str(&src, sa_af(&dst) == AF_INET6 ? "::1" : "127.0.0.1", 0);
	else if (net_default_source_addr_get(sa_af(&dst), &src))
		return EADDRNOTAVAIL;
	if (re_snprintf(dl->listen_buf, sizeof(dl->listen_buf), "%J", &src) < 0)
		return ENOMEM;
	dl->cfg.listen = dl->listen_buf;
	return 0;
}

static int dialer_init(void *arg)
{
	struct dialer *dl = arg;
	tmr_init(&dl->linger_tmr);
	if (!dl->cfg.listen && dialer_listen_addr(dl)) {
		rv_error("sip", "cannot dial \"%s\": not sip:user@IP[:port]", dl->dial.uri);
		dl->dial_err = -EINVAL;
		dialer_finish(dl);
		return 0;
	}
	int err = rv_sip_ua_alloc(&dl->cfg, dialer_event_h, dl, &dl->ua);
	if (err)
		return err;
	struct rv_call *call = NULL;
	dl->t_dial = tmr_jiffies();
	err = rv_sip_ua_dial(dl->ua, &dl->dial, dl, &call);
	if (err) {
		dl->dial_err = err;
		dialer_finish(dl);
		return 0;
	}
	dl->call = mem_ref(call);
	return 0;
}

static void dialer_fini(void *arg)
{
	struct dialer *dl = arg;
	tmr_cancel(&dl->linger_tmr);
	if (dl->call)
		rv_call_hangup(dl->call);
	dl->call = mem_deref(dl->call);
	dl->ua = mem_deref(dl->ua);
	dl->prompt = mem_deref(dl->prompt);
}

static int64_t span_ms(uint64_t from, uint64_t to)
{
	return from && to >= from ? (int64_t)(to - from) : 0;
}

static void dialer_report(const struct dialer *dl)
{
	char err[128];
	struct rv_call_report r = {.uri = dl->dial.uri};
	if (dl->dial_err) {
		rv_strlcpy(err, strerror(-dl->dial_err), sizeof(err));
		r.error = err;
	}
	r.call_id = dl->call_id;
	r.disposition = rv_call_disposition_name(dl->disp);
	r.cause = rv_hangup_cause_name(dl->cause);
	r.hangup_by = dl->remote ? "remote" : "local";
	r.codec = dl->codec[0] ? dl->codec : NULL;
	r.recording = dl->recording ? dl->record : NULL;
	r.sip_status = dl->status;
	r.last_provisional = dl->provisional;
	r.early_media = dl->early;
	r.ring_ms = span_ms(dl->t_dial, dl->t_ring);
	r.setup_ms = span_ms(dl->t_dial, dl->answered ? dl->t_answer : dl->t_end);
	r.talk_ms = span_ms(dl->t_answer, dl->t_end);
	r.duration_ms = span_ms(dl->t_dial, dl->t_end);
	r.prompt_played_ms = (int64_t)dl->played_ms;
	r.rx_packets = dl->st.rx_packets;
	r.tx_packets = dl->st.tx_packets;
	r.lost = dl->st.rx_lost;
	r.frames_received = dl->st.frames_received;
	r.rx_bad_source = dl->st.rx_bad_source;
	r.rx_malformed = dl->st.rx_malformed;
	r.jitter_ms = dl->st.jitter_ms;
	char *text = NULL;
	if (rv_call_report_json(&r, &text) == 0)
		out("%s\n", text);
	else
		fprintf(stderr, "revovoice call: cannot format the result\n");
	free(text);
}

int rv_sip_cli_call(int argc, char **argv)
{
	struct dialer dl = {0};
	struct rv_media_loop *loop = NULL;
	const char *play = NULL;
	int64_t v;
	sigset_t set;

	dl.cfg.rtp_port_min = 20000;
	dl.cfg.rtp_port_max = 29999;
	dl.cfg.max_calls = 1;
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			fputs(call_usage, stdout);
			return 0;
		}
		if (o[0] != '-') {
			if (dl.dial.uri) {
				fprintf(stderr, "revovoice call: one URI only\n%s", call_usage);
				return 2;
			}
			dl.dial.uri = o;
			continue;
		}
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val) {
			fprintf(stderr, "revovoice call: %s needs a value\n%s", o, call_usage);
			return 2;
		}
		if (!strcmp(o, "--play")) {
			play = val;
		} else if (!strcmp(o, "--record")) {
			dl.record = val;
		} else if (!strcmp(o, "--from")) {
			dl.dial.from = val;
		} else if (!strcmp(o, "--user")) {
			dl.dial.user = val;
		} else if (!strcmp(o, "--password")) {
			dl.dial.password = val;
		} else if (!strcmp(o, "--sip")) {
			dl.cfg.listen = val;
		} else if (!strcmp(o, "--timeout") && !rv_parse_int64(val, 1, 3600, &v)) {
			dl.dial.timeout_ms = (uint32_t)(v * 1000);
		} else if (!strcmp(o, "--rtp-ports") &&
		           !parse_range(val, &dl.cfg.rtp_port_min, &dl.cfg.rtp_port_max)) {
		} else {
			fprintf(stderr, "revovoice call: bad option or value: %s %s\n%s", o, val,
			        call_usage);
			return 2;
		}
		i++;
	}
	if (!dl.dial.uri || !play) {
		fprintf(stderr, "revovoice call: a sip: URI and --play FILE.wav are required\n%s",
		        call_usage);
		return 2;
	}
	if (dl.dial.password && !dl.dial.user) {
		fprintf(stderr, "revovoice call: --password needs --user\n%s", call_usage);
		return 2;
	}
	if (rv_pcm_load_file(play, RV_MEDIA_RATE, &dl.prompt) != 0) {
		fprintf(stderr, "revovoice call: cannot read %s as audio\n", play);
		return 1;
	}

	block_stop_signals(&set);
	pthread_mutex_init(&dl.mu, NULL);
	pthread_cond_init(&dl.cv, NULL);

	int ret = 1;
	int err = rv_media_loop_start(dialer_init, &dl, &loop);
	if (err) {
		fprintf(stderr, "revovoice call: cannot start SIP on %s: %s\n",
		        dl.cfg.listen ? dl.cfg.listen : "?", strerror(-err));
		mem_deref(dl.prompt);
		goto out;
	}
	/* A signal hangs the call up (CANCEL or BYE); the outcome is still reported. */
	uint64_t hangup_deadline = 0;
	for (;;) {
		pthread_mutex_lock(&dl.mu);
		bool finished = dl.finished;
		pthread_mutex_unlock(&dl.mu);
		if (finished)
			break;
		struct timespec ts = {0, 100 * 1000000L};
		int sig = sigtimedwait(&set, NULL, &ts);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
		if ((sig == SIGINT || sig == SIGTERM) && !hangup_deadline) {
			rv_info("sip", "signal %d: hanging up", sig);
			hangup_deadline = now_ms + 5000;
			(void)rv_media_loop_exec(loop, dialer_hangup, &dl);
		} else if (hangup_deadline && now_ms > hangup_deadline) {
			break;
		}
	}
	/* When we ended the call, our BYE or CANCEL is still in flight: keep the SIP stack up
	 * long enough to take the 200 and to ACK the 487 that follows a CANCEL, or the far end
	 * retransmits it into a closed socket and counts the call as failed. */
	if (!dl.dial_err && !dl.remote) {
		struct timespec linger = {1, 0};
		nanosleep(&linger, NULL);
	}
	rv_media_loop_stop(loop, dialer_fini, &dl);
	if (rv_rec_wait_idle(10000) != 0)
		fprintf(stderr, "revovoice call: the recording is still being written at exit\n");
	dialer_report(&dl);
	ret = dl.answered ? 0 : 1;
out:
	pthread_mutex_destroy(&dl.mu);
	pthread_cond_destroy(&dl.cv);
	return ret;
}
