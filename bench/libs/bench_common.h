/*
 * Shared pieces of the HTTP library benchmarks: the response body, a
 * busy-wait that stands in for handler work, and a probe that measures how
 * late a 20 ms timer fires on the re_main loop (the media plane's clock).
 *
 * Header-only on purpose: each benchmark is one translation unit built by
 * run.sh with a single compiler line.
 */
#ifndef RV_BENCH_COMMON_H
#define RV_BENCH_COMMON_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* About 300 bytes, shaped like a GET /api/calls/{id} summary. */
static const char rv_bench_body[] = "{\"id\":\"c_01HZX3K9Q7M2V8\",\"campaign_id\":\"cmp_42\","
                                    "\"lead_id\":\"ld_90177\",\"direction\":\"outbound\","
                                    "\"to\":\"+14155550123\",\"from\":\"+14155550100\","
                                    "\"state\":\"answered\",\"disposition\":\"human\","
                                    "\"started_at\":\"2024-05-01T14:03:11Z\",\"duration_ms\":48210,"
                                    "\"emotion\":{\"label\":\"neutral\",\"score\":0.71},"
                                    "\"latency_ms\":{\"stt\":182,\"llm\":412,\"tts\":96},"
                                    "\"recording\":true}";

static inline uint64_t rv_bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Burns CPU for usec microseconds, like a handler doing real work. */
static inline void rv_bench_spin(unsigned usec)
{
	uint64_t end;

	if (!usec)
		return;
	end = rv_bench_now_us() + usec;
	while (rv_bench_now_us() < end)
		;
}

/* Set by the first HTTP request so the probe ignores the idle start-up. */
static atomic_int rv_bench_active;

#define RV_PROBE_PERIOD_US 20000u
#define RV_PROBE_MAX       8192

struct rv_probe {
	uint64_t next_us;
	size_t n;
	uint32_t late_us[RV_PROBE_MAX];
};

static int rv_bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Records the lateness of one tick and returns the delay in ms to the next
 * tick on an absolute 20 ms grid, as the media plane's pacing does. */
static inline uint64_t rv_probe_tick(struct rv_probe *p)
{
	uint64_t now = rv_bench_now_us();

	if (p->next_us && atomic_load(&rv_bench_active) && p->n < RV_PROBE_MAX)
		p->late_us[p->n++] = now > p->next_us ? (uint32_t)(now - p->next_us) : 0;
	if (!p->next_us)
		p->next_us = now;
	p->next_us += RV_PROBE_PERIOD_US;
	while (p->next_us <= now)
		p->next_us += RV_PROBE_PERIOD_US;
	return (p->next_us - now + 999u) / 1000u;
}

static inline void rv_probe_report(struct rv_probe *p, const char *name)
{
	if (!p->n) {
		printf("probe %s: no samples\n", name);
		return;
	}
	qsort(p->late_us, p->n, sizeof(p->late_us[0]), rv_bench_cmp_u32);
	printf("probe %s: ticks=%zu late_p50_us=%u late_p99_us=%u late_max_us=%u\n", name, p->n,
	       p->late_us[p->n / 2], p->late_us[(p->n * 99) / 100], p->late_us[p->n - 1]);
	fflush(stdout);
}

#endif
