/*
 * libmicrohttpd benchmark server: GET /x returns a fixed ~300-byte JSON body.
 *
 * MHD runs with an internal thread pool of 2 and epoll, so handlers run on
 * MHD's threads. The main thread runs a libre re_main loop with a 20 ms
 * timer standing in for the media plane; its lateness is printed on exit.
 *
 * Usage: http_mhd [-w spin_usec] [-s sleep_usec]
 * Listens on 127.0.0.1 on an ephemeral port and prints "port N" on stdout.
 * -w burns CPU and -s sleeps in every handler, standing in for building a
 * JSON page and for waiting on the database. SIGTERM/SIGINT stops it and
 * prints the timer probe.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <re.h>
#include <unistd.h>

#include "bench_common.h"

static unsigned handler_usec;
static unsigned handler_sleep_usec;
static struct rv_probe probe;
static struct tmr probe_tmr;

static enum MHD_Result req_h(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned code = MHD_HTTP_OK;
	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;

	/* MHD calls once with headers only; answer on the second call. */
	if (!*req_cls) {
		*req_cls = (void *)1;
		return MHD_YES;
	}
	atomic_store(&rv_bench_active, 1);
	if (strcmp(method, "GET") || strcmp(url, "/x"))
		code = MHD_HTTP_NOT_FOUND;
	rv_bench_spin(handler_usec);
	if (handler_sleep_usec)
		usleep(handler_sleep_usec);
	resp = MHD_create_response_from_buffer(sizeof(rv_bench_body) - 1, (void *)rv_bench_body,
	                                       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
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
	struct sockaddr_in sin;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	int opt;

	while ((opt = getopt(argc, argv, "w:s:")) != -1) {
		if (opt == 'w')
			handler_usec = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 's')
			handler_sleep_usec = (unsigned)strtoul(optarg, NULL, 10);
	}
	if (libre_init())
		return 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = 0;

	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, req_h,
	                     NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
	                     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2, MHD_OPTION_CONNECTION_LIMIT,
	                     (unsigned)1024, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "http_mhd: MHD_start_daemon failed\n");
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("port %u\n", info ? (unsigned)info->port : 0u);
	fflush(stdout);

	tmr_init(&probe_tmr);
	tmr_start(&probe_tmr, 20, probe_h, NULL);
	re_main(signal_h);

	tmr_cancel(&probe_tmr);
	MHD_stop_daemon(d);
	rv_probe_report(&probe, "mhd");
	libre_close();
	return 0;
}
