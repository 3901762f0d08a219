/*
 * Internals shared by the Twilio channel's files: twilio.c (the running instance and the table
 * of expected streams), twilio_api.c (webhooks), twilio_form.c (form bodies), twilio_sig.c
 * (X-Twilio-Signature), twilio_rest.c (REST client) and twilio_stream.c (the Media Streams
 * WebSocket on the media loop). Neither re.h nor jansson.h appears here, so every file of the
 * module can include it.
 */
#ifndef RV_TWILIO_INT_H
#define RV_TWILIO_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twilio/twilio.h"

#define TW_COMP "twilio"

struct rv_app;
struct rv_tel;
struct rv_media_loop;
struct tw_server;

/* Longest From/To we keep: E.164 numbers, "client:name", or SIP URIs for SIP-domain calls. */
#define TW_ADDR_MAX 256
/* A stream must open this long after the webhook that announced it, or it is refused. */
#define TW_PENDING_TTL_MS 120000
#define TW_PENDING_MAX    4096

/* A stream the voice webhook announced: what the socket may claim on its start message. */
struct tw_pending {
	int64_t call_id;
	int64_t campaign_id;
	bool outbound;
	char call_sid[64];
	char from[TW_ADDR_MAX], to[TW_ADDR_MAX];
	uint64_t expires_ms; /* monotonic */
};

struct rv_twilio {
	struct rv_app *app;
	struct rv_tel *tel;
	struct rv_media_loop *loop;
	bool streams_on;       /* the WebSocket listener runs */
	struct tw_server *srv; /* loop-thread only */
	int stream_port;

	pthread_mutex_t mu; /* guards the pending table */
	struct tw_pending *pending;
	size_t npending;
};

/* ---- twilio.c ---- */

/*
 * The running instance for the HTTP handlers: a read lock on it, NULL when none runs. Every
 * non-NULL return must be paired with tw_release().
 */
struct rv_twilio *tw_acquire(void);
void tw_release(void);

/* Monotonic milliseconds. */
uint64_t tw_now_ms(void);

/*
 * Remember a stream the webhook announced (any thread). A second announcement of the same
 * CallSid replaces the first (Twilio retries webhooks). Returns 0, or -ENOSPC when the table
 * is full of live entries.
 */
int tw_pending_add(struct rv_twilio *tw, const struct tw_pending *p);

/*
 * Take (and remove) the announcement for this CallSid and call id (any thread). Returns 0 and
 * fills *out, or -ENOENT when none matches or it has expired.
 */
int tw_pending_take(struct rv_twilio *tw, const char *call_sid, int64_t call_id,
                    struct tw_pending *out);

/* Count an event in rv_twilio_stream_errors_total{reason} / rv_twilio_webhooks_total. */
void tw_count_stream_error(const char *reason);
void tw_count_webhook(const char *route, const char *result);

/* SIDs: letters, digits, '-' and '_', 1..63 characters. */
bool tw_sid_ok(const char *s);

/* ---- twilio_form.c: application/x-www-form-urlencoded bodies ---- */

#define TW_FORM_MAX_PAIRS 128

struct tw_pair {
	char *name, *value; /* decoded, NUL-terminated */
};

struct tw_form {
	struct tw_pair *p;
	size_t n;
};

/*
 * Decode a form body with libcurl's percent decoder ('+' is a space). Pairs keep their order;
 * a name without '=' has an empty value. Returns 0 and fills *out (release with
 * tw_form_free), -EINVAL for a malformed escape, a NUL byte or more than TW_FORM_MAX_PAIRS
 * pairs, -ENOMEM.
 */
int tw_form_parse(const char *body, size_t len, struct tw_form *out);
void tw_form_free(struct tw_form *f);
/* First value of `name`, or NULL. Borrowed from f. */
const char *tw_form_get(const struct tw_form *f, const char *name);

/* ---- twilio_sig.c: X-Twilio-Signature ---- */

/*
 * Twilio's request signature: base64(HMAC-SHA1(token, url + name1 + value1 + name2 + ...))
 * with the POST parameters sorted by name (then value, for repeated names). Writes the 28
 * characters and a NUL into out (>= 29 bytes). Returns 0, -ENOMEM (input-sized buffer),
 * -EINVAL.
 */
int tw_signature(const char *token, const char *url, const struct tw_form *form, char *out,
                 size_t outlen);

/*
 * Does `header` (the X-Twilio-Signature value, may be NULL) match? The comparison takes the
 * same time wherever the strings differ. Returns 1 on a match, 0 otherwise, negative on error.
 */
int tw_signature_check(const char *token, const char *url, const struct tw_form *form,
                       const char *header);

/* ---- twilio_api.c ---- */

/*
 * The webhook URL as Twilio saw it: public_url (without a trailing '/') + path + ("?" query).
 * Returns 0, -ENAMETOOLONG.
 */
int tw_public_url(const char *public_url, const char *path, const char *query, char *out,
                  size_t outlen);

/*
 * XML-escape `s` into out (outlen bytes): & < > " ' become entities; control characters XML 1.0
 * cannot carry and invalid UTF-8 become '?'. Returns 0, -ENOSPC.
 */
int tw_xml_escape(const char *s, char *out, size_t outlen);

/*
 * The wss:// URL of the stream from public_url: https://HOST[:PORT][/PREFIX] becomes
 * wss://HOST[:PORT][/PREFIX]/twilio/stream (http:// gives ws://, for development). Returns 0,
 * -EINVAL when public_url is not an http(s) URL, -ENAMETOOLONG.
 */
int tw_stream_url(const char *public_url, char *out, size_t outlen);

/* ---- twilio_stream.c (media loop thread only) ---- */

/* Listen for Media Streams WebSockets on `listen` (HOST:PORT). 0 and *out, or -errno. */
int tw_server_start(struct rv_twilio *tw, const char *listen, struct tw_server **out, int *port);
/* End every stream (their calls end with cause "shutdown") and stop listening. */
void tw_server_stop(struct tw_server *srv);

#endif
