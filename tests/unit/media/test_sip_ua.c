/*
 * The SIP UA driven directly on a media loop, against sipp on loopback: late offer, hold and
 * unhold (re-INVITE and UPDATE), 503 at capacity, the routing hook, blind transfer (REFER and
 * NOTIFY), REGISTER with digest and refresh, dialling through an outbound proxy found by DNS,
 * and an INVITE nothing answers. Plus the SDP decision (rv_sip_sdp_choose) on its own.
 * Scenarios live in tests/sip/; @KEY@ placeholders are filled in here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <re.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "media/media_loop.h"
#include "media/media_stream.h"
#include "sip/sip_sdp.h"
#include "sip/sip_ua.h"
#include "../test.h"

/* ---- rv_sip_sdp_choose ------------------------------------------------------------------ */

static int choose_str(const char *sdp, struct rv_sdp_choice *c)
{
	return rv_sip_sdp_choose(sdp, strlen(sdp), c);
}

#define SDP_HEAD "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

RV_TEST(sip_ua_sdp_choose_decisions)
{
	struct rv_sdp_choice c;
	ASSERT_OK(choose_str(SDP_HEAD "m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 "
	                              "telephone-event/8000\r\n",
	                     &c));
	ASSERT_EQ_STR(c.codec, "PCMA");
	ASSERT_EQ_INT(c.pt, 8);
	ASSERT(c.pcmu && c.pcma);
	ASSERT_EQ_INT(c.telev_pt, 101);
	ASSERT_EQ_STR(c.addr, "192.0.2.1");
	ASSERT_EQ_INT(c.port, 4000);
	ASSERT(!c.hold && c.recv);

	ASSERT_OK(choose_str(SDP_HEAD "m=audio 4000 RTP/AVP 18 0\r\na=sendonly\r\n", &c));
	ASSERT_EQ_STR(c.codec, "PCMU");
	ASSERT_EQ_INT(c.telev_pt, -1);
	ASSERT(c.hold && c.recv);
	ASSERT_OK(choose_str(SDP_HEAD "m=audio 4000 RTP/AVP 0\r\na=inactive\r\n", &c));
	ASSERT(c.hold && !c.recv);
	ASSERT_OK(choose_str(SDP_HEAD "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n", &c));
	ASSERT(!c.hold && !c.recv);
	ASSERT_OK(choose_str("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 "
	                     "0\r\nm=audio 4000 RTP/AVP 0\r\n",
	                     &c));
	ASSERT(c.hold);
	ASSERT_EQ_STR(c.addr, "");
	/* Media-level c= wins over the session's. */
	ASSERT_OK(choose_str(SDP_HEAD "m=audio 4002 RTP/AVP 0\r\nc=IN IP4 198.51.100.7\r\n", &c));
	ASSERT_EQ_STR(c.addr, "198.51.100.7");

	ASSERT_EQ_INT(choose_str(SDP_HEAD "m=audio 4000 RTP/AVP 18 9\r\n", &c), -ENOTSUP);
	ASSERT_EQ_INT(choose_str(SDP_HEAD "m=audio 0 RTP/AVP 0\r\n", &c), -ENOTCONN);
	ASSERT_EQ_INT(choose_str(SDP_HEAD "m=audio 4000 RTP/SAVP 0\r\n", &c), -ENOMEDIUM);
	ASSERT_EQ_INT(choose_str(SDP_HEAD, &c), -ENOMEDIUM);
	ASSERT_EQ_INT(choose_str(SDP_HEAD "m=video 5000 RTP/AVP 96\r\n", &c), -ENOMEDIUM);
	ASSERT_EQ_INT(choose_str("hello world\r\n", &c), -EBADMSG);
	ASSERT_EQ_INT(choose_str("v=1\r\n", &c), -EBADMSG);
	ASSERT_EQ_INT(rv_sip_sdp_choose("v=0", 0, &c), -EBADMSG);
	char *big = calloc(1, RV_SIP_SDP_MAX + 2);
	ASSERT(big);
	memset(big, 'a', RV_SIP_SDP_MAX + 1);
	int err = rv_sip_sdp_choose(big, RV_SIP_SDP_MAX + 1, &c);
	free(big);
	ASSERT_EQ_INT(err, -EMSGSIZE);
	ASSERT_EQ_STR(rv_sip_sdp_reason(-ENOTSUP), "codec");
	ASSERT_EQ_STR(rv_sip_sdp_reason(-ENOMEDIUM), "no_audio");
}

/* ---- A UA on its own loop ---------------------------------------------------------------- */

#define MAX_EVENTS 64

struct rec {
	enum rv_call_event_type type;
	enum rv_hangup_cause cause;
	enum rv_call_disposition disp;
	uint16_t status;
	bool remote, held;
};

static struct {
	struct rv_media_loop *loop;
	struct rv_sip_ua *ua;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rec ev[MAX_EVENTS];
	int nev;
	struct rv_call *call; /* the latest call, referenced */
	char codec[8];
	struct rv_media_stats stats;
	/* behaviour */
	const char *xfer_target;
	int xfer_rc;
	int route_status;
	int routed;
	char in_call_id[128], in_from_uri[128], in_from_user[64], in_to_user[64], in_ruri[64];
	/* registration outcomes */
	int reg_status[16];
	uint32_t reg_expires[16];
	int nreg;
	struct rv_sip_reg *reg;
	char tmp[PATH_MAX];
} H = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void ev_h(struct rv_call *call, const struct rv_call_event *ev, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&H.mu);
	if (H.call != call) {
		mem_deref(H.call);
		H.call = mem_ref(call);
	}
	if (H.nev < MAX_EVENTS)
		H.ev[H.nev++] = (struct rec){ev->type,       ev->cause,  ev->disposition,
		                             ev->sip_status, ev->remote, rv_call_on_hold(call)};
	if (ev->type == RV_CALL_EV_ANSWERED)
		snprintf(H.codec, sizeof(H.codec), "%s", rv_call_codec(call));
	if (ev->type == RV_CALL_EV_HANGUP)
		rv_call_media_stats(call, &H.stats);
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.mu);
	if (ev->type == RV_CALL_EV_ANSWERED && H.xfer_target && !rv_call_outbound(call))
		H.xfer_rc = rv_call_transfer_blind(call, H.xfer_target);
}

static int route_h(struct rv_call *call, const struct rv_sip_inbound *in, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&H.mu);
	H.routed++;
	snprintf(H.in_call_id, sizeof(H.in_call_id), "%s", in->call_id);
	snprintf(H.in_from_uri, sizeof(H.in_from_uri), "%s", in->from_uri);
	snprintf(H.in_from_user, sizeof(H.in_from_user), "%s", in->from_user);
	snprintf(H.in_to_user, sizeof(H.in_to_user), "%s", in->to_user);
	snprintf(H.in_ruri, sizeof(H.in_ruri), "%s", in->ruri_user);
	pthread_mutex_unlock(&H.mu);
	/* The hook may look at the call: its routing data is the same. */
	if (rv_call_inbound(call) != in)
		return 500;
	return H.route_status;
}

struct sync {
	void (*fn)(void *arg);
	void *arg;
	bool done;
};

static void sync_tramp(void *arg)
{
	struct sync *s = arg;
	s->fn(s->arg);
	pthread_mutex_lock(&H.mu);
	s->done = true;
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.mu);
}

/* Run fn(arg) on the loop thread and wait for it. */
static int on_loop(void (*fn)(void *arg), void *arg)
{
	struct sync s = {fn, arg, false};
	int err = rv_media_loop_exec(H.loop, sync_tramp, &s);
	if (err)
		return err;
	pthread_mutex_lock(&H.mu);
	while (!s.done)
		pthread_cond_wait(&H.cv, &H.mu);
	pthread_mutex_unlock(&H.mu);
	return 0;
}

struct ua_args {
	uint32_t max_calls;
	const char *listen, *public_addr;
	int err;
};

static void ua_start_fn(void *arg)
{
	struct ua_args *a = arg;
	struct rv_sip_ua_cfg cfg = {.listen = a->listen ? a->listen : "127.0.0.1:0",
	                            .public_addr = a->public_addr,
	                            .rtp_port_min = 30000,
	                            .rtp_port_max = 39999,
	                            .ring_ms = 100,
	                            .max_calls = a->max_calls};
	a->err = rv_sip_ua_alloc(&cfg, ev_h, NULL, &H.ua);
	if (!a->err)
		rv_sip_ua_set_route_handler(H.ua, route_h, NULL);
}

static void ua_stop_fn(void *arg)
{
	(void)arg;
	H.reg = mem_deref(H.reg);
	H.call = mem_deref(H.call);
	H.ua = mem_deref(H.ua);
}

static void teardown(void);

static int setup_cfg(uint32_t max_calls, const char *listen, const char *public_addr)
{
	teardown(); /* a failed test returns early and leaves its UA behind */
	memset(H.ev, 0, sizeof(H.ev));
	H.nev = 0;
	H.call = NULL;
	H.codec[0] = '\0';
	memset(&H.stats, 0, sizeof(H.stats));
	H.xfer_target = NULL;
	H.xfer_rc = -1;
	H.route_status = 0;
	H.routed = 0;
	H.nreg = 0;
	H.reg = NULL;
	snprintf(H.tmp, sizeof(H.tmp), "/tmp/rv-sipua-XXXXXX");
	if (!mkdtemp(H.tmp))
		return -errno;
	int err = rv_media_loop_start(NULL, NULL, &H.loop);
	if (err)
		return err;
	struct ua_args a = {max_calls, listen, public_addr, 0};
	err = on_loop(ua_start_fn, &a);
	return err ? err : a.err;
}

static int setup(uint32_t max_calls)
{
	return setup_cfg(max_calls, NULL, NULL);
}

static void teardown(void)
{
	if (H.loop) {
		(void)on_loop(ua_stop_fn, NULL);
		rv_media_loop_stop(H.loop, NULL, NULL);
		H.loop = NULL;
	}
	char cmd[PATH_MAX + 16];
	if (getenv("RV_TEST_KEEP"))
		fprintf(stderr, "  kept %s\n", H.tmp);
	else if (H.tmp[0] && snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.tmp) < (int)sizeof(cmd))
		(void)!system(cmd);
	H.tmp[0] = '\0';
}

/* Wait until n events of `type` were seen (ms timeout); returns how many there are. */
static int wait_ev(enum rv_call_event_type type, int n, int ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&H.mu);
	int got;
	for (;;) {
		got = 0;
		for (int i = 0; i < H.nev; i++)
			got += H.ev[i].type == type;
		if (got >= n || pthread_cond_timedwait(&H.cv, &H.mu, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&H.mu);
	return got;
}

static int find_ev(enum rv_call_event_type type, int nth)
{
	for (int i = 0; i < H.nev; i++)
		if (H.ev[i].type == type && nth-- == 0)
			return i;
	return -1;
}

/* A UDP port free on 127.0.0.1 (with port+1 too when pair). */
static uint16_t free_port(bool pair)
{
	for (int tries = 0; tries < 100; tries++) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_addr.s_addr = htonl(0x7f000001)};
		socklen_t len = sizeof(a);
		if (s < 0)
			return 0;
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) || getsockname(s, (void *)&a, &len)) {
			close(s);
			continue;
		}
		uint16_t port = ntohs(a.sin_port);
		close(s);
		if (port > 64000)
			continue;
		if (!pair)
			return port;
		s = socket(AF_INET, SOCK_DGRAM, 0);
		a.sin_port = htons(port + 1);
		int ok = s >= 0 && !bind(s, (struct sockaddr *)&a, sizeof(a));
		if (s >= 0)
			close(s);
		if (ok)
			return port;
	}
	return 0;
}

/* tests/sip/<name> with @KEY@ replaced (kv: key, value, ..., NULL), written to H.tmp. */
static int scenario(const char *name, char *out, size_t outlen, ...)
{
	char exe[PATH_MAX], path[PATH_MAX * 2];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	/* BUILD/rv-unit-tests: the repository is the build directory's parent. */
	snprintf(path, sizeof(path), "%s/tests/sip/%s", dirname(dirname(exe)), name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	static char text[65536], tmp[65536];
	size_t len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	va_list ap;
	va_start(ap, outlen);
	for (const char *k; (k = va_arg(ap, const char *));) {
		const char *v = va_arg(ap, const char *);
		char key[64];
		snprintf(key, sizeof(key), "@%s@", k);
		char *p;
		while ((p = strstr(text, key))) {
			size_t pre = (size_t)(p - text);
			int w = snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)pre, text, v,
			                 p + strlen(key));
			if (w < 0 || (size_t)w >= sizeof(tmp)) {
				va_end(ap);
				return -E2BIG;
			}
			memcpy(text, tmp, (size_t)w + 1);
		}
	}
	va_end(ap);
	if (snprintf(out, outlen, "%s/%s", H.tmp, name) >= (int)outlen)
		return -ENAMETOOLONG;
	f = fopen(out, "wb");
	if (!f)
		return -errno;
	fputs(text, f);
	fclose(f);
	return 0;
}

/* Start sipp with argv (NULL-terminated) in H.tmp, output to H.tmp/sipp-<tag>.log. */
static pid_t sipp_start(const char *tag, char *const argv[])
{
	char log[PATH_MAX + 32];
	snprintf(log, sizeof(log), "%s/sipp-%s.log", H.tmp, tag);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (chdir(H.tmp) || fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp("sipp", argv);
		_exit(127);
	}
	return pid;
}

/* Wait for sipp's exit (ms timeout, then it is killed): its exit code, or -1. */
static int sipp_wait(pid_t pid, int ms)
{
	int st;
	for (int waited = 0; waited < ms; waited += 50) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(50000);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	return -1;
}

static void sipp_show(const char *tag)
{
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "tail -n 25 '%s/sipp-%s.log' >&2", H.tmp, tag);
	(void)!system(cmd);
}

/* Run a caller scenario against the UA; returns sipp's exit code. */
static int sipp_uac(const char *xml, const char *service, bool echo, int timeout_s)
{
	char dst[32], sport[8], mport[8], to[16];
	snprintf(dst, sizeof(dst), "127.0.0.1:%u", rv_sip_ua_port(H.ua));
	snprintf(sport, sizeof(sport), "%u", free_port(false));
	snprintf(mport, sizeof(mport), "%u", free_port(true));
	snprintf(to, sizeof(to), "%ds", timeout_s);
	char *argv[] = {"sipp",
	                dst,
	                "-sf",
	                (char *)xml,
	                "-i",
	                "127.0.0.1",
	                "-p",
	                sport,
	                "-mp",
	                mport,
	                "-m",
	                "1",
	                "-l",
	                "1",
	                "-nostdin",
	                "-s",
	                (char *)service,
	                "-timeout",
	                to,
	                "-timeout_error",
	                echo ? "-rtp_echo" : NULL,
	                NULL};
	pid_t pid = sipp_start(service, argv);
	int rc = pid > 0 ? sipp_wait(pid, (timeout_s + 10) * 1000) : -1;
	if (rc != 0)
		sipp_show(service);
	return rc;
}

/* A callee/registrar scenario on `port`, started in the background. */
static pid_t sipp_uas(const char *xml, uint16_t port, const char *tag, int timeout_s)
{
	char sport[8], mport[8], to[16];
	snprintf(sport, sizeof(sport), "%u", port);
	snprintf(mport, sizeof(mport), "%u", free_port(true));
	snprintf(to, sizeof(to), "%ds", timeout_s);
	char *argv[] = {"sipp", "-sf",      (char *)xml, "-i",  "127.0.0.1",
	                "-p",   sport,      "-mp",       mport, "-m",
	                "1",    "-nostdin", "-timeout",  to,    "-timeout_error",
	                NULL};
	pid_t pid = sipp_start(tag, argv);
	usleep(300000); /* let it bind */
	return pid;
}

/* ---- Tests -------------------------------------------------------------------------------- */

RV_TEST(sip_ua_late_offer_rtp_both_ways)
{
	char xml[PATH_MAX];
	ASSERT_OK(setup(10));
	ASSERT_OK(scenario("uac_late_offer.xml", xml, sizeof(xml), "HOLD", "2000", NULL));
	int rc = sipp_uac(xml, "late", true, 20);
	wait_ev(RV_CALL_EV_HANGUP, 1, 5000);
	teardown();
	ASSERT_EQ_INT(rc, 0);
	ASSERT(find_ev(RV_CALL_EV_INCOMING, 0) >= 0);
	int a = find_ev(RV_CALL_EV_ANSWERED, 0), h = find_ev(RV_CALL_EV_HANGUP, 0);
	ASSERT(a >= 0 && h > a);
	ASSERT_EQ_STR(H.codec, "PCMA");
	ASSERT_EQ_INT(H.ev[h].cause, RV_HANGUP_REMOTE_BYE);
	/* sipp echoes what we send: packets came back from the address its ACK named. */
	ASSERT_MSG(H.stats.tx_packets >= 50, "tx %llu", (unsigned long long)H.stats.tx_packets);
	ASSERT_MSG(H.stats.rx_packets >= 40, "rx %llu", (unsigned long long)H.stats.rx_packets);
	ASSERT_EQ_INT(H.stats.rx_bad_source, 0);
	ASSERT_EQ_INT(H.stats.rx_malformed, 0);
}

RV_TEST(sip_ua_hold_unhold_reinvite_and_update)
{
	char xml[PATH_MAX], port[8];
	ASSERT_OK(setup(10));
	snprintf(port, sizeof(port), "%u", free_port(true));
	ASSERT_OK(scenario("uac_hold.xml", xml, sizeof(xml), "NEWPORT", port, NULL));
	int rc = sipp_uac(xml, "hold", false, 20);
	wait_ev(RV_CALL_EV_HANGUP, 1, 5000);
	teardown();
	ASSERT_EQ_INT(rc, 0); /* sipp checked recvonly, sendrecv, inactive, recvonly answers */
	int h1 = find_ev(RV_CALL_EV_HOLD, 0), u1 = find_ev(RV_CALL_EV_UNHOLD, 0);
	int h2 = find_ev(RV_CALL_EV_HOLD, 1), end = find_ev(RV_CALL_EV_HANGUP, 0);
	ASSERT_MSG(h1 >= 0 && u1 > h1 && h2 > u1 && end > h2, "%d %d %d %d", h1, u1, h2, end);
	ASSERT_EQ_INT(find_ev(RV_CALL_EV_HOLD, 2), -1); /* c=0.0.0.0 while held: no news */
	ASSERT_EQ_INT(find_ev(RV_CALL_EV_UNHOLD, 1), -1);
	ASSERT(H.ev[h1].held && !H.ev[u1].held && H.ev[h2].held);
	ASSERT_EQ_INT(H.ev[end].cause, RV_HANGUP_REMOTE_BYE);
	/* The media clock kept running through the hold. */
	ASSERT_MSG(H.stats.frames >= 80, "frames %llu", (unsigned long long)H.stats.frames);
}

struct dial_args {
	struct rv_sip_dial d;
	int err;
};

static void dial_fn(void *arg)
{
	struct dial_args *a = arg;
	struct rv_call *call = NULL;
	a->err = rv_sip_ua_dial(H.ua, &a->d, NULL, &call);
}

RV_TEST(sip_ua_capacity_503_and_silent_trunk_timeout)
{
	char xml[PATH_MAX], uri[64];
	/* A "trunk" that swallows everything: bound, never read, so no ICMP either. */
	int hole = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(a);
	ASSERT(hole >= 0 && !bind(hole, (struct sockaddr *)&a, sizeof(a)) &&
	       !getsockname(hole, (struct sockaddr *)&a, &len));
	snprintf(uri, sizeof(uri), "sip:bob@127.0.0.1:%u", ntohs(a.sin_port));
	ASSERT_OK(setup(1));
	struct dial_args d = {.d = {.uri = uri, .timeout_ms = 5000}};
	ASSERT_OK(on_loop(dial_fn, &d));
	ASSERT_OK(d.err);
	/* The one slot is taken: an inbound call gets 503 with Retry-After. */
	ASSERT_OK(scenario("uac_503.xml", xml, sizeof(xml), NULL));
	int rc = sipp_uac(xml, "capacity", false, 10);
	int got = wait_ev(RV_CALL_EV_HANGUP, 1, 15000);
	teardown();
	close(hole);
	ASSERT_EQ_INT(rc, 0);
	ASSERT_EQ_INT(got, 1);
	ASSERT_EQ_INT(H.routed, 0);
	int h = find_ev(RV_CALL_EV_HANGUP, 0);
	ASSERT_EQ_INT(H.ev[h].cause, RV_HANGUP_TIMEOUT);
	ASSERT_EQ_INT(H.ev[h].disp, RV_DISP_FAILED);
	ASSERT_EQ_INT(H.ev[h].status, 0);
	ASSERT(!H.ev[h].remote);
}

RV_TEST(sip_ua_route_hook_refuses)
{
	char xml[PATH_MAX];
	ASSERT_OK(setup(10));
	H.route_status = 404;
	ASSERT_OK(scenario("uac_reject.xml", xml, sizeof(xml), "CODECS", "0", "CODE", "404", NULL));
	int rc1 = sipp_uac(xml, "nobody", false, 10);
	char call_id[128], from_uri[128], from_user[64], to_user[64], ruri[64];
	pthread_mutex_lock(&H.mu);
	snprintf(call_id, sizeof(call_id), "%s", H.in_call_id);
	snprintf(from_uri, sizeof(from_uri), "%s", H.in_from_uri);
	snprintf(from_user, sizeof(from_user), "%s", H.in_from_user);
	snprintf(to_user, sizeof(to_user), "%s", H.in_to_user);
	snprintf(ruri, sizeof(ruri), "%s", H.in_ruri);
	pthread_mutex_unlock(&H.mu);
	H.route_status = 486;
	ASSERT_OK(scenario("uac_reject.xml", xml, sizeof(xml), "CODECS", "0", "CODE", "486", NULL));
	int rc2 = sipp_uac(xml, "campaign7", false, 10);
	teardown();
	ASSERT_EQ_INT(rc1, 0);
	ASSERT_EQ_INT(rc2, 0);
	ASSERT_EQ_INT(H.routed, 2);
	ASSERT_EQ_INT(H.nev, 0); /* refused calls never reach the event handler */
	ASSERT_EQ_STR(ruri, "nobody");
	ASSERT_EQ_STR(to_user, "nobody");
	ASSERT_EQ_STR(from_user, "sipp");
	ASSERT(!strncmp(from_uri, "sip:sipp@127.0.0.1:", 19));
	ASSERT(strlen(call_id) > 0);
	ASSERT_EQ_STR(H.in_ruri, "campaign7");
}

RV_TEST(sip_ua_refer_accepted_notify_then_bye)
{
	char xml[PATH_MAX];
	ASSERT_OK(setup(10));
	H.xfer_target = "sip:agent@127.0.0.1:5999";
	ASSERT_OK(scenario("uac_refer_ok.xml", xml, sizeof(xml), "TARGET", H.xfer_target, NULL));
	int rc = sipp_uac(xml, "xfer", false, 20);
	wait_ev(RV_CALL_EV_HANGUP, 1, 5000);
	teardown();
	ASSERT_EQ_INT(rc, 0);
	ASSERT_EQ_INT(H.xfer_rc, 0);
	int t1 = find_ev(RV_CALL_EV_TRANSFER, 0), t2 = find_ev(RV_CALL_EV_TRANSFER, 1);
	int h = find_ev(RV_CALL_EV_HANGUP, 0);
	ASSERT_MSG(t1 >= 0 && t2 > t1 && h > t2, "%d %d %d", t1, t2, h);
	ASSERT_EQ_INT(H.ev[t1].status, 100);
	ASSERT_EQ_INT(H.ev[t2].status, 200);
	ASSERT_EQ_INT(H.ev[h].cause, RV_HANGUP_TRANSFERRED);
	ASSERT_EQ_INT(H.ev[h].disp, RV_DISP_ANSWERED);
	ASSERT(!H.ev[h].remote);
}

RV_TEST(sip_ua_refer_refused_call_stays_up)
{
	char xml[PATH_MAX];
	ASSERT_OK(setup(10));
	H.xfer_target = "sip:agent@127.0.0.1:5999";
	ASSERT_OK(
	    scenario("uac_refer_refused.xml", xml, sizeof(xml), "TARGET", H.xfer_target, NULL));
	int rc = sipp_uac(xml, "xfer603", false, 20);
	wait_ev(RV_CALL_EV_HANGUP, 1, 5000);
	teardown();
	ASSERT_EQ_INT(rc, 0); /* sipp hung up itself, a second after the 603 */
	int t = find_ev(RV_CALL_EV_TRANSFER, 0), h = find_ev(RV_CALL_EV_HANGUP, 0);
	ASSERT(t >= 0 && h > t);
	ASSERT_EQ_INT(H.ev[t].status, 603);
	ASSERT_EQ_INT(find_ev(RV_CALL_EV_TRANSFER, 1), -1);
	ASSERT_EQ_INT(H.ev[h].cause, RV_HANGUP_REMOTE_BYE);
	ASSERT(H.ev[h].remote);
}

static void reg_h(int status, uint32_t expires, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&H.mu);
	if (H.nreg < 16) {
		H.reg_status[H.nreg] = status;
		H.reg_expires[H.nreg] = expires;
		H.nreg++;
	}
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.mu);
}

struct reg_args {
	char registrar[64];
	int err;
};

static void reg_fn(void *arg)
{
	struct reg_args *a = arg;
	struct rv_sip_reg_cfg cfg = {.registrar = a->registrar,
	                             .aor = "sip:alice@rv.test",
	                             .user = "alice",
	                             .password = "s3cret",
	                             .expires = 60};
	a->err = rv_sip_ua_register(H.ua, &cfg, reg_h, NULL, &H.reg);
}

static void unreg_fn(void *arg)
{
	(void)arg;
	H.reg = mem_deref(H.reg);
}

RV_TEST(sip_ua_register_challenge_refresh_unregister)
{
	char xml[PATH_MAX];
	ASSERT_OK(setup(10));
	uint16_t port = free_port(false);
	ASSERT_OK(scenario("uas_register.xml", xml, sizeof(xml), "USER", "alice", "PASSWORD",
	                   "s3cret", NULL));
	pid_t pid = sipp_uas(xml, port, "registrar", 20);
	struct reg_args a;
	snprintf(a.registrar, sizeof(a.registrar), "sip:127.0.0.1:%u", port);
	ASSERT_OK(on_loop(reg_fn, &a));
	ASSERT_OK(a.err);
	/* Granted for 3 s, so the refresh comes ~2.7 s later. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&H.mu);
		int n = H.nreg;
		pthread_mutex_unlock(&H.mu);
		if (n >= 2)
			break;
		usleep(100000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_OK(on_loop(unreg_fn, NULL));
	int rc = sipp_wait(pid, 15000);
	if (rc)
		sipp_show("registrar");
	teardown();
	ASSERT_EQ_INT(rc, 0); /* sipp saw the digest, the refresh and the un-REGISTER */
	ASSERT_MSG(H.nreg >= 2, "%d outcomes", H.nreg);
	ASSERT_EQ_INT(H.reg_status[0], 200);
	ASSERT_EQ_INT(H.reg_expires[0], 3);
	ASSERT_EQ_INT(H.reg_status[1], 200);
	ASSERT_EQ_INT(H.reg_expires[1], 3);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ASSERT_MSG(took > 2.0 && took < 4.5, "refresh after %.2f s", took);
}

/* ---- A tiny DNS server: "trunk.rv.test" A 127.0.0.1, NXDOMAIN for everything else. -------- */

static struct {
	int fd;
	volatile int stop;
	int queries; /* A queries for the name */
	pthread_t th;
} dns;

static void *dns_main(void *arg)
{
	(void)arg;
	uint8_t q[512], r[600];
	while (!dns.stop) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(dns.fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		if (n < 17)
			continue;
		/* The question: labels from byte 12, then type and class. */
		size_t p = 12;
		char name[256];
		size_t nl = 0;
		while (p < (size_t)n && q[p] && nl + q[p] + 2 < sizeof(name)) {
			if (nl)
				name[nl++] = '.';
			memcpy(name + nl, q + p + 1, q[p]);
			nl += q[p];
			p += q[p] + 1;
		}
		name[nl] = '\0';
		if (p + 5 > (size_t)n)
			continue;
		uint16_t qtype = (uint16_t)(q[p + 1] << 8 | q[p + 2]);
		size_t qend = p + 5;
		bool ours = !strcasecmp(name, "trunk.rv.test");
		bool answer = ours && qtype == 1;
		if (answer)
			__atomic_add_fetch(&dns.queries, 1, __ATOMIC_SEQ_CST);
		memcpy(r, q, qend);
		r[2] = 0x80 | (q[2] & 0x01); /* a response; RD copied */
		r[3] = ours ? 0x80 : 0x83;   /* RA; NXDOMAIN for other names */
		r[4] = 0, r[5] = 1, r[6] = 0, r[7] = answer ? 1 : 0;
		r[8] = r[9] = r[10] = r[11] = 0;
		size_t len = qend;
		if (answer) {
			const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0,   1, 0, 0,
			                      0,    60,   0, 4, 127, 0, 0, 1};
			memcpy(r + len, rr, sizeof(rr));
			len += sizeof(rr);
		}
		(void)sendto(dns.fd, r, len, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static int dns_start(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(a);
	struct timeval tv = {0, 100000};
	dns.fd = socket(AF_INET, SOCK_DGRAM, 0);
	dns.stop = 0;
	dns.queries = 0;
	if (dns.fd < 0 || bind(dns.fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(dns.fd, (struct sockaddr *)&a, &len) ||
	    setsockopt(dns.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		return -errno;
	*port = ntohs(a.sin_port);
	return -pthread_create(&dns.th, NULL, dns_main, NULL);
}

static void dns_stop(void)
{
	dns.stop = 1;
	pthread_join(dns.th, NULL);
	close(dns.fd);
}

struct dns_args {
	char servers[32];
	int err;
};

static void set_dns_fn(void *arg)
{
	struct dns_args *a = arg;
	a->err = rv_sip_ua_set_dns(H.ua, a->servers);
}

static void hangup_fn(void *arg)
{
	(void)arg;
	rv_call_hangup(H.call);
}

RV_TEST(sip_ua_dns_name_outbound_proxy)
{
	char xml[PATH_MAX], route[64], proxy[64];
	uint16_t dport = 0;
	ASSERT_OK(dns_start(&dport));
	ASSERT_OK(setup(10));
	struct dns_args da;
	snprintf(da.servers, sizeof(da.servers), "127.0.0.1:%u", dport);
	ASSERT_OK(on_loop(set_dns_fn, &da));
	ASSERT_OK(da.err);
	uint16_t port = free_port(false);
	snprintf(proxy, sizeof(proxy), "sip:trunk.rv.test:%u", port);
	snprintf(route, sizeof(route), "sip:trunk.rv.test:%u", port);
	ASSERT_OK(scenario("uas_proxy.xml", xml, sizeof(xml), "RURI",
	                   "sip:\\+15551234567@carrier.example", "ROUTE", route, NULL));
	pid_t pid = sipp_uas(xml, port, "proxy", 20);
	struct dial_args d = {.d = {.uri = "sip:+15551234567@carrier.example",
	                            .outbound_proxy = proxy,
	                            .timeout_ms = 10000}};
	ASSERT_OK(on_loop(dial_fn, &d));
	int answered = wait_ev(RV_CALL_EV_ANSWERED, 1, 10000);
	if (answered)
		ASSERT_OK(on_loop(hangup_fn, NULL));
	int rc = sipp_wait(pid, 15000);
	if (rc)
		sipp_show("proxy");
	wait_ev(RV_CALL_EV_HANGUP, 1, 5000);
	teardown();
	dns_stop();
	ASSERT_OK(d.err);
	ASSERT_EQ_INT(answered, 1);
	ASSERT_EQ_INT(rc, 0); /* Request-URI kept, Route to the proxy with ;lr */
	ASSERT_MSG(dns.queries >= 1, "%d A queries", dns.queries);
	int h = find_ev(RV_CALL_EV_HANGUP, 0);
	ASSERT(h >= 0);
	ASSERT_EQ_INT(H.ev[h].cause, RV_HANGUP_LOCAL);
	ASSERT_EQ_STR(H.codec, "PCMU");
}

RV_TEST(sip_ua_dial_rejects_bad_uris)
{
	ASSERT_OK(setup(10));
	struct dial_args d1 = {.d = {.uri = "sip:bob@host name"}};
	struct dial_args d2 = {.d = {.uri = "sip:bob@example.com", .outbound_proxy = "http://x"}};
	struct dial_args d3 = {.d = {.uri = "sip:bob@example.com;transport=sctp"}};
	struct dial_args d4 = {.d = {.uri = "sip:bob@1.2.3.4>\r\nX-Evil: 1"}};
	ASSERT_OK(on_loop(dial_fn, &d1));
	ASSERT_OK(on_loop(dial_fn, &d2));
	ASSERT_OK(on_loop(dial_fn, &d3));
	ASSERT_OK(on_loop(dial_fn, &d4));
	teardown();
	ASSERT_EQ_INT(d1.err, -EINVAL);
	ASSERT_EQ_INT(d2.err, -EINVAL);
	ASSERT_EQ_INT(d3.err, -EINVAL);
	ASSERT_EQ_INT(d4.err, -EINVAL);
	ASSERT_EQ_INT(H.nev, 0);
}

RV_TEST(sip_ua_advertises_public_addr_never_wildcard)
{
	char xml[PATH_MAX];
	/* public_addr wins for Contact, c= and o=. */
	ASSERT_OK(setup_cfg(10, "127.0.0.1:0", "203.0.113.5"));
	ASSERT_OK(
	    scenario("uac_public_addr.xml", xml, sizeof(xml), "ADDR", "203\\.0\\.113\\.5", NULL));
	int rc1 = sipp_uac(xml, "public", false, 10);
	wait_ev(RV_CALL_EV_HANGUP, 1, 3000);
	/* A wildcard listener advertises the address the caller can reach (loopback here). */
	ASSERT_OK(setup_cfg(10, "0.0.0.0:0", NULL));
	ASSERT_OK(
	    scenario("uac_public_addr.xml", xml, sizeof(xml), "ADDR", "127\\.0\\.0\\.1", NULL));
	int rc2 = sipp_uac(xml, "wildcard", false, 10);
	wait_ev(RV_CALL_EV_HANGUP, 1, 3000);
	teardown();
	ASSERT_EQ_INT(rc1, 0);
	ASSERT_EQ_INT(rc2, 0);
	ASSERT_EQ_INT(find_ev(RV_CALL_EV_HANGUP, 0) >= 0, 1);
}
