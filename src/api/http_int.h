/*
 * Internals of the HTTP server shared with its unit tests: the router's matcher and the
 * percent-decoder, which are pure functions over the route table.
 */
#ifndef RV_HTTP_INT_H
#define RV_HTTP_INT_H

#include <stddef.h>

#include "api/http.h"

/* Longest path (segments) a route pattern or request may have. */
#define RV_HTTP_MAX_SEGMENTS 16

/* What the router decided for one method and path. */
struct rv_http_match {
	int status;                   /* 0 matched, 404 no pattern fits, 405 wrong method */
	const struct rv_route *route; /* the route, when status is 0 */
	const char *pattern;          /* the best pattern that fits the path, ignoring method */
	const char *params[RV_HTTP_MAX_PARAMS]; /* decoded {name} values, inside the scratch */
	size_t nparams;
	char allow[96]; /* "GET, PATCH" for 405: methods the path accepts */
};

/*
 * Match a method and a raw (still percent-encoded, query-less) path against the routes. Each
 * segment is decoded on its own, so "%2F" inside an id never becomes a separator. HEAD is
 * served by GET routes. The decoded segments go into scratch, which must hold at least
 * strlen(raw_path) + 1 bytes and outlive *m. Malformed escapes, NUL bytes and paths deeper than
 * RV_HTTP_MAX_SEGMENTS match nothing (404). Always fills *m.
 */
void rv_http_match(const struct rv_http *http, const char *method, const char *raw_path,
                   char *scratch, size_t scratch_len, struct rv_http_match *m);

/*
 * Decode %XX escapes in src[0..n) into dst (dstlen bytes, NUL-terminated); '+' stays '+'.
 * Returns the decoded length, or -EINVAL for a malformed escape, an escaped NUL, or a dst
 * that is too small.
 */
int rv_http_pct_decode(const char *src, size_t n, char *dst, size_t dstlen);

#endif
