#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int min_level = RV_LOG_INFO;
static _Atomic int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rv_log_set_level(enum rv_log_level level)
{
	min_level = level;
}

void rv_log_set_fd(int fd)
{
	log_fd = fd;
}

int rv_log_level_parse(const char *s, enum rv_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (s && strcmp(s, level_names[i]) == 0) {
			*out = (enum rv_log_level)i;
			return 0;
		}
	}
	return -22; /* -EINVAL */
}

/* A bounded line builder: appends are truncated at the cap, never overflow. */
struct line {
	char buf[4096];
	size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - 2 - l->len; /* keep space for "}\n" */
	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void put_escaped(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[6];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(l, esc, 2);
		} else if (c == '\n') {
			put(l, "\\n", 2);
		} else if (c == '\t') {
			put(l, "\\t", 2);
		} else if (c < 0x20) {
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			put(l, esc, 6);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
}

static void begin(struct line *l, enum rv_log_level level, const char *component)
{
	struct timespec ts;
	struct tm tm;
	char tbuf[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(tbuf, sizeof(tbuf), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000);
	l->len = 0;
	put(l, tbuf, (size_t)n);
	put(l, ",\"level\":\"", 10);
	put(l, level_names[level], strlen(level_names[level]));
	put(l, "\",\"component\":\"", 15);
	put_escaped(l, component ? component : "main");
	put(l, "\",\"msg\":\"", 9);
}

static void finish(struct line *l)
{
	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	ssize_t w = write(log_fd, l->buf, l->len);
	(void)w;
}

void rv_logf(enum rv_log_level level, const char *component, const char *fmt, ...)
{
	if ((int)level < min_level)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct line l;
	begin(&l, level, component);
	put_escaped(&l, msg);
	put(&l, "\"", 1);
	finish(&l);
}

void rv_logkv(enum rv_log_level level, const char *component, const char *msg, ...)
{
	if ((int)level < min_level)
		return;
	struct line l;
	begin(&l, level, component);
	put_escaped(&l, msg);
	put(&l, "\"", 1);

	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		put(&l, ",\"", 2);
		put_escaped(&l, k);
		put(&l, "\":\"", 3);
		put_escaped(&l, v ? v : "");
		put(&l, "\"", 1);
	}
	va_end(ap);
	finish(&l);
}
