/* Small helpers shared by every module: time stamps, bounded strings, number parsing. */
#ifndef RV_UTIL_H
#define RV_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define RV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Abort with a clear message when a fixed-size allocation fails (never for input-sized ones). */
void *rv_xmalloc(size_t n);
void *rv_xcalloc(size_t n, size_t size);
char *rv_xstrdup(const char *s);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (>= 32 bytes). Returns buf. */
char *rv_time_iso_now(char *buf, size_t len);
/* UTC time `t` (unix seconds) as "YYYY-MM-DDTHH:MM:SSZ". Returns buf. */
char *rv_time_iso(int64_t t, char *buf, size_t len);
/* Monotonic clock in nanoseconds. */
uint64_t rv_time_mono_ns(void);

/*
 * Parse an ISO 8601 date-time with an offset: "YYYY-MM-DDTHH:MM[:SS[.fff]](Z|+HH:MM|-HH:MM)"
 * (a space may replace the T). Returns 0 and sets *ms (Unix milliseconds), or -EINVAL.
 */
int rv_time_parse_iso(const char *s, int64_t *ms);

/*
 * Parse a base-10 integer that must fill the whole string and lie in [min, max].
 * Returns 0 and sets *out, or -EINVAL / -ERANGE.
 */
int rv_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Copy at most dstlen-1 bytes and always NUL-terminate; returns strlen(src). */
size_t rv_strlcpy(char *dst, const char *src, size_t dstlen);

/* Is the byte range valid UTF-8 (no overlongs, no surrogates)? */
int rv_utf8_valid(const char *s, size_t len);

/*
 * Make a NUL-terminated string valid UTF-8 in place: every byte that does not start a valid
 * sequence (stray bytes from outside input, a sequence cut by truncation) becomes '?'.
 * Returns the number of bytes replaced.
 */
size_t rv_utf8_scrub(char *s);

#endif
