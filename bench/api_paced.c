/*
 * A fixed-rate (open-loop) HTTP load generator for bench/api_bench.sh, because wrk only measures
 * closed-loop maximum throughput. Request i is due at start + i / rate whether or not earlier
 * ones have finished; its latency is measured from the moment it was due, so a stall of the
 * server shows up in the percentiles instead of silently lowering the offered load (the
 * "coordinated omission" wrk2 corrects for). Uses libcurl's multi interface over a capped pool
 * of keep-alive connections.
 *
 *   api_paced --url URL --rate R --duration S [--connections C] [--header "K: V"]...
 *             [--method POST --body TEMPLATE [--start N]]
 * ("{n}" in TEMPLATE becomes a number unique to the request, counting from N, default 0)
 *
 * Prints "key value" lines: requests, errors, offered_rps, achieved_rps, p50_ms, p90_ms,
 * p95_ms, p99_ms, p999_ms, max_ms, plus service_p50_ms / service_p99_ms (measured from the
 * actual send time instead of the due time).
 */
#include <curl/curl.h>
#include <sys/select.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEADERS     8
#define MAX_CONNECTIONS 256
#define MAX_BODY        4096

struct slot {
	CURL *easy;
	int busy;
	uint64_t due_us;   /* when the schedule wanted it sent */
	uint64_t start_us; /* when it was actually handed to curl */
	char body[MAX_BODY];
};

struct opts {
	const char *url;
	const char *method;
	const char *body_tpl;
	const char *headers[MAX_HEADERS];
	int nheaders;
	double rate;
	double duration;
	int connections;
	double start;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i] / 1000.0;
}

/* Replace each "{n}" in tpl with the number n; 0 or -ENOSPC when it does not fit. */
static int render_body(const char *tpl, uint64_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = tpl; *p; p++) {
		if (p[0] == '{' && p[1] == 'n' && p[2] == '}') {
			int w = snprintf(out + o, outlen - o, "%llu", (unsigned long long)n);
			if (w < 0 || (size_t)w >= outlen - o)
				return -ENOSPC;
			o += (size_t)w;
			p += 2;
			continue;
		}
		if (o + 1 >= outlen)
			return -ENOSPC;
		out[o++] = *p;
	}
	out[o] = '\0';
	return 0;
}

static int parse_double(const char *s, double min, double max, double *out)
{
	char *end = NULL;

	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int usage(void)
{
	fprintf(
	    stderr,
	    "usage: api_paced --url URL --rate R --duration S [--connections C]\n"
	    "                 [--header 'K: V']... [--method POST --body TEMPLATE [--start N]]\n");
	return 2;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	double conns = 16;

	o->method = "GET";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			return -EINVAL;
		if (!strcmp(a, "--url"))
			o->url = v;
		else if (!strcmp(a, "--method"))
			o->method = v;
		else if (!strcmp(a, "--body"))
			o->body_tpl = v;
		else if (!strcmp(a, "--header") && o->nheaders < MAX_HEADERS)
			o->headers[o->nheaders++] = v;
		else if (!strcmp(a, "--rate")) {
			if (parse_double(v, 1, 1e6, &o->rate))
				return -EINVAL;
		} else if (!strcmp(a, "--duration")) {
			if (parse_double(v, 0.1, 3600, &o->duration))
				return -EINVAL;
		} else if (!strcmp(a, "--start")) {
			if (parse_double(v, 0, 1e15, &o->start))
				return -EINVAL;
		} else if (!strcmp(a, "--connections")) {
			if (parse_double(v, 1, MAX_CONNECTIONS, &conns))
				return -EINVAL;
		} else
			return -EINVAL;
		i++;
	}
	o->connections = (int)conns;
	if (!o->url || o->rate <= 0 || o->duration <= 0)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct curl_slist *hdrs = NULL;
	struct slot *slots = NULL;
	uint32_t *lat = NULL, *svc = NULL;
	CURLM *multi = NULL;
	int rc = 1;

	if (parse_args(argc, argv, &o))
		return usage();
	size_t total = (size_t)(o.rate * o.duration);
	if (total == 0)
		return usage();

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "api_paced: curl_global_init failed\n");
		return 1;
	}
	for (int i = 0; i < o.nheaders; i++)
		hdrs = curl_slist_append(hdrs, o.headers[i]);
	if (o.body_tpl)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	/* libcurl would otherwise send "Expect: 100-continue" and wait for the server. */
	hdrs = curl_slist_append(hdrs, "Expect:");

	slots = calloc((size_t)o.connections, sizeof(*slots));
	lat = calloc(total, sizeof(*lat));
	svc = calloc(total, sizeof(*svc));
	multi = curl_multi_init();
	if (!slots || !lat || !svc || !multi) {
		fprintf(stderr, "api_paced: out of memory\n");
		goto out;
	}
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o.connections);
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o.connections);
	for (int i = 0; i < o.connections; i++) {
		CURL *e = curl_easy_init();
		if (!e) {
			fprintf(stderr, "api_paced: curl_easy_init failed\n");
			goto out;
		}
		slots[i].easy = e;
		curl_easy_setopt(e, CURLOPT_URL, o.url);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o.method);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	}

	size_t sent = 0, done = 0, errors = 0;
	uint64_t t0 = now_us() + 1000;
	double interval_us = 1e6 / o.rate;
	int running = 0;

	while (done < total) {
		uint64_t now = now_us();
		/* Hand every request that is due to a free connection; late ones keep their due
		 * time. */
		while (sent < total && t0 + (uint64_t)((double)sent * interval_us) <= now) {
			struct slot *s = NULL;
			for (int i = 0; i < o.connections && !s; i++)
				if (!slots[i].busy)
					s = &slots[i];
			if (!s)
				break;
			s->busy = 1;
			s->due_us = t0 + (uint64_t)((double)sent * interval_us);
			s->start_us = now;
			if (o.body_tpl) {
				if (render_body(o.body_tpl, (uint64_t)o.start + sent, s->body,
				                sizeof(s->body))) {
					fprintf(stderr, "api_paced: body template too long\n");
					goto out;
				}
				curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
			}
			curl_multi_add_handle(multi, s->easy);
			sent++;
		}
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *s = NULL;
			long status = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result != CURLE_OK || status < 200 || status > 299)
				errors++;
			uint64_t end = now_us();
			uint64_t l = end - s->due_us, sv = end - s->start_us;
			lat[done] = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
			svc[done] = sv > UINT32_MAX ? UINT32_MAX : (uint32_t)sv;
			done++;
			curl_multi_remove_handle(multi, msg->easy_handle);
			s->busy = 0;
		}
		/*
		 * Wait for socket activity until the next request is due, with microsecond
		 * precision: curl's own poll takes whole milliseconds, which at 1,000 requests/s
		 * would add up to a millisecond to every measured latency.
		 */
		uint64_t wait_us = 10000;
		if (sent < total) {
			uint64_t next = t0 + (uint64_t)((double)sent * interval_us);
			uint64_t n2 = now_us();
			wait_us = next > n2 ? next - n2 : 0;
			if (wait_us == 0 && running < o.connections)
				continue;
			if (wait_us == 0)
				wait_us = 1000; /* every connection busy: wait for one to finish */
		}
		long curl_ms = -1;
		curl_multi_timeout(multi, &curl_ms);
		if (curl_ms >= 0 && (uint64_t)curl_ms * 1000 < wait_us)
			wait_us = (uint64_t)curl_ms * 1000;
		fd_set rd, wr, ex;
		int maxfd = -1;
		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_ZERO(&ex);
		curl_multi_fdset(multi, &rd, &wr, &ex, &maxfd);
		struct timespec ts = {(time_t)(wait_us / 1000000),
		                      (long)(wait_us % 1000000) * 1000};
		if (maxfd >= 0)
			pselect(maxfd + 1, &rd, &wr, &ex, &ts, NULL);
		else if (wait_us > 0)
			nanosleep(&ts, NULL);
	}
	double elapsed = (double)(now_us() - t0) / 1e6;

	qsort(lat, done, sizeof(*lat), cmp_u32);
	qsort(svc, done, sizeof(*svc), cmp_u32);
	printf("requests %zu\n", done);
	printf("errors %zu\n", errors);
	printf("offered_rps %.1f\n", o.rate);
	printf("achieved_rps %.1f\n", elapsed > 0 ? (double)done / elapsed : 0);
	printf("p50_ms %.3f\n", pct_ms(lat, done, 0.50));
	printf("p90_ms %.3f\n", pct_ms(lat, done, 0.90));
	printf("p95_ms %.3f\n", pct_ms(lat, done, 0.95));
	printf("p99_ms %.3f\n", pct_ms(lat, done, 0.99));
	printf("p999_ms %.3f\n", pct_ms(lat, done, 0.999));
	printf("max_ms %.3f\n", done ? lat[done - 1] / 1000.0 : 0);
	printf("service_p50_ms %.3f\n", pct_ms(svc, done, 0.50));
	printf("service_p99_ms %.3f\n", pct_ms(svc, done, 0.99));
	rc = 0;
out:
	if (slots) {
		for (int i = 0; i < o.connections; i++) {
			if (!slots[i].easy)
				continue;
			if (slots[i].busy)
				curl_multi_remove_handle(multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
		}
	}
	if (multi)
		curl_multi_cleanup(multi);
	curl_slist_free_all(hdrs);
	free(slots);
	free(lat);
	free(svc);
	curl_global_cleanup();
	return rc;
}
