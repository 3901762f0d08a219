/*
 * A blocking WebSocket client (RFC 6455) for threads that own their connection, such as a
 * speech worker talking to a streaming STT service. libcurl makes the TCP/TLS connection
 * (CURLOPT_CONNECT_ONLY, so proxies and certificate checks are curl's), the HTTP/1.1 Upgrade
 * handshake is ours, and wslay does the framing: masking, fragmentation, ping/pong and the
 * closing handshake. Decision: docs/adr/0010-stt.md.
 *
 * One connection is used by one thread at a time; nothing here starts a thread. Every call
 * that waits takes a timeout. Messages are reassembled whole and capped in size.
 */
#ifndef RV_CORE_WS_CLIENT_H
#define RV_CORE_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Caps on what the server may send. */
#define RV_WS_MAX_HANDSHAKE (16 * 1024) /* the upgrade response's header block */
#define RV_WS_MAX_QUEUED    1024        /* received messages not yet taken */

enum rv_ws_opcode {
	RV_WS_TEXT = 1,
	RV_WS_BINARY = 2,
};

struct rv_ws;

struct rv_ws_msg {
	enum rv_ws_opcode opcode;
	size_t len;
	char *data; /* len bytes plus a terminating NUL (text can be used as a C string) */
};

/*
 * Connect to `url` (ws:// or wss://; http:// and https:// are taken as the same) and upgrade.
 * `headers` (NULL-terminated, may be NULL) are extra request header lines ("Authorization:
 * Token ..."). `max_msg` caps one received message (the connection is closed with 1009 when
 * the server sends more). The whole handshake takes at most `timeout_ms`.
 * Returns 0 and sets *out (free with rv_ws_close), or: -EINVAL (bad URL), -ECONNREFUSED
 * (cannot connect or resolve), -ETIMEDOUT, -EACCES (the server answered 401 or 403),
 * -EPROTO (any other answer than 101, or a wrong Sec-WebSocket-Accept), -ENOMEM. When the
 * server answered, its HTTP status goes to *http_status (may be NULL; 0 when there was none).
 * The reason is logged under `log_comp`.
 */
int rv_ws_connect(const char *url, const char *const *headers, size_t max_msg, unsigned timeout_ms,
                  const char *log_comp, long *http_status, struct rv_ws **out);

/*
 * Send one message (copied). Waits at most `timeout_ms` for the socket to take it.
 * Returns 0, -ECONNRESET (the connection is closed or broke), -ETIMEDOUT, -ENOMEM.
 */
int rv_ws_send(struct rv_ws *ws, enum rv_ws_opcode op, const void *data, size_t len,
               unsigned timeout_ms);

/*
 * Take the next received message, waiting at most `timeout_ms` (0: only what has arrived).
 * Pings are answered on the way. Returns 0 and fills *msg (free its data with free()),
 * -EAGAIN (timeout 0 and nothing yet), -ETIMEDOUT, -ECONNRESET (the server closed the
 * connection or it broke; *close_code, if given, holds the server's close code or 0),
 * -EPROTO (the server broke the framing rules or sent a message over the cap).
 */
int rv_ws_recv(struct rv_ws *ws, unsigned timeout_ms, struct rv_ws_msg *msg);

/* The close code the server sent (0 when none). */
uint16_t rv_ws_close_code(const struct rv_ws *ws);

/* Is the connection still usable for sending and receiving? */
int rv_ws_is_open(const struct rv_ws *ws);

/*
 * Close: send a close frame (1000) if the connection is still up, wait up to `timeout_ms` for
 * the server's, and free everything. NULL is fine.
 */
void rv_ws_close(struct rv_ws *ws, unsigned timeout_ms);

#endif
