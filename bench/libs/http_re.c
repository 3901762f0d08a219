/*
 * libre benchmark server: GET /x returns a fixed ~300-byte JSON body.
 *
 * The HTTP server runs on libre's single re_main thread, which also runs a
 * 20 ms timer standing in for the media plane's pacing clock; its lateness
 * is printed on exit. This is what "API handlers on the media loop" means.
 *
 * Usage: http_re [-w spin_usec] [-s sleep_usec]
 * Listens on 127.0.0.1 on an ephemeral port and prints "port N" on stdout.
 * -w burns CPU and -s sleeps in every handler, standing in for building a
 * JSON page and for waiting on the database. SIGTERM/SIGINT stops it and
 * prints the timer probe.
 */
#include <re.h>
#include <unistd.h>

#include "bench_common.h"

static unsigned handler_usec;
static unsigned handler_sleep_usec;
static struct rv_probe probe;
static struct tmr probe_tmr;

static void req_h(struct http_conn *conn, const struct http_msg *msg, void *arg)
{
	(void)arg;
	atomic_store(&rv_bench_active, 1);
	if (pl_strcmp(&msg->met, "GET") || pl_strcmp(&msg->path, "/x")) {
		(void)http_ereply(conn, 404, "Not Found");
		return;
	}
	rv_bench_spin(handler_usec);
	if (handler_sleep_usec)
		usleep(handler_sleep_usec);
	(void)http_creply(conn, 200, "OK", "application/json", "%s", rv_bench_body);
}

static void probe_h(void *arg)
{
	(void)arg;
	tmr_start(&probe_tmr, rv_probe_tick(&probe), probe_h, NULL);
}

static void signal_h(int sig)
{
	(void)sig;
	re_cancel();
}

int main(int argc, char **argv)
{
	struct http_sock *sock = NULL;
	struct sa laddr, bound;
	int opt, err;

	while ((opt = getopt(argc, argv, "w:s:")) != -1) {
		if (opt == 'w')
			handler_usec = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 's')
			handler_sleep_usec = (unsigned)strtoul(optarg, NULL, 10);
	}
	err = libre_init();
	if (err)
		return 1;
	sa_set_str(&laddr, "127.0.0.1", 0);
	err = http_listen(&sock, &laddr, req_h, NULL);
	if (err) {
		fprintf(stderr, "http_re: http_listen: %s\n", strerror(err));
		return 1;
	}
	tcp_sock_local_get(http_sock_tcp(sock), &bound);
	printf("port %u\n", sa_port(&bound));
	fflush(stdout);

	tmr_init(&probe_tmr);
	tmr_start(&probe_tmr, 20, probe_h, NULL);
	re_main(signal_h);

	tmr_cancel(&probe_tmr);
	mem_deref(sock);
	rv_probe_report(&probe, "re");
	libre_close();
	return 0;
}
