/*
 * Blocking WebSocket client: curl connects (CONNECT_ONLY), we upgrade, wslay frames.
 * No jansson and no libre here (their JSON_* names clash; neither is needed).
 */
#include "core/ws_client.h"

#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_qmsg {
	struct ws_qmsg *next;
	struct rv_ws_msg m;
};

struct rv_ws {
	CURL *curl;
	curl_socket_t fd;
	wslay_event_context_ptr ev;
	const char *comp;
	/* Bytes read past the handshake's header block: the first frames. */
	uint8_t *early;
	size_t early_len, early_off;
	bool eof;       /* the peer closed the TCP/TLS stream */
	bool io_failed; /* a read or write failed outright */
	bool proto_err; /* wslay refused the peer's framing */
	uint16_t close_code;
	struct ws_qmsg *head, *tail;
	size_t nqueued;
	size_t dropped;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (sodium_init() < 0)
		abort();
}

static int64_t ms_left(uint64_t deadline_ns)
{
	uint64_t now = rv_time_mono_ns();
	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000);
}

/* Wait for the socket; 1 ready, 0 timeout, -1 error. */
static int wait_fd(curl_socket_t fd, short events, int64_t ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;

	do
		r = poll(&p, 1, (int)(ms > 60000 ? 60000 : ms));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	return r > 0 ? 1 : 0;
}

static ssize_t ev_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
	struct rv_ws *ws = arg;
	size_t n = 0;
	CURLcode rc;

	(void)flags;
	if (ws->early_off < ws->early_len) {
		n = ws->early_len - ws->early_off;
		if (n > len)
			n = len;
		memcpy(buf, ws->early + ws->early_off, n);
		ws->early_off += n;
		return (ssize_t)n;
	}
	rc = curl_easy_recv(ws->curl, buf, len, &n);
	if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (rc != CURLE_OK || n == 0) {
		if (rc == CURLE_OK)
			ws->eof = true;
		else
			ws->io_failed = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)n;
}

static ssize_t ev_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *arg)
{
	struct rv_ws *ws = arg;
	size_t n = 0;
	CURLcode rc;

	(void)flags;
	rc = curl_easy_send(ws->curl, data, len, &n);
	if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (rc != CURLE_OK) {
		ws->io_failed = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)n;
}

static int ev_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *arg)
{
	(void)ctx;
	(void)arg;
	randombytes_buf(buf, len);
	return 0;
}

static void ev_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                   void *arg)
{
	struct rv_ws *ws = arg;
	struct ws_qmsg *q;

	(void)ctx;
	if (a->opcode == WSLAY_CONNECTION_CLOSE) {
		ws->close_code = a->status_code;
		return;
	}
	if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME)
		return; /* pings are answered by wslay; pongs need nothing */
	if (ws->nqueued >= RV_WS_MAX_QUEUED) {
		/* The reader is far behind: keep the connection, lose the message, say so. */
		if (ws->dropped++ == 0)
			rv_warn(ws->comp, "websocket: more than %d messages waiting, dropping",
			        RV_WS_MAX_QUEUED);
		return;
	}
	q = rv_xcalloc(1, sizeof(*q));
	q->m.opcode = a->opcode == WSLAY_TEXT_FRAME ? RV_WS_TEXT : RV_WS_BINARY;
	q->m.len = a->msg_length;
	q->m.data = rv_xmalloc(a->msg_length + 1);
	memcpy(q->m.data, a->msg, a->msg_length);
	q->m.data[a->msg_length] = '\0';
	if (ws->tail)
		ws->tail->next = q;
	else
		ws->head = q;
	ws->tail = q;
	ws->nqueued++;
}

/* Split ws[s]://host[:port]/path?query into curl's URL for the connection and the target. */
static int split_url(const char *url, char *conn, size_t connlen, char *target, size_t tlen,
                     char *host, size_t hostlen)
{
	const char *rest, *slash;
	bool tls;

	if (strncasecmp(url, "wss://", 6) == 0 || strncasecmp(url, "https://", 8) == 0)
		tls = true;
	else if (strncasecmp(url, "ws://", 5) == 0 || strncasecmp(url, "http://", 7) == 0)
		tls = false;
	else
		return -EINVAL;
	rest = strstr(url, "://") + 3;
	slash = strchr(rest, '/');
	size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
	if (hl == 0 || hl >= hostlen || strpbrk(rest, " \r\n"))
		return -EINVAL;
	memcpy(host, rest, hl);
	host[hl] = '\0';
	if (snprintf(conn, connlen, "%s://%s/", tls ? "https" : "http", host) >= (int)connlen)
		return -EINVAL;
	if (snprintf(target, tlen, "%s", slash ? slash : "/") >= (int)tlen)
		return -EINVAL;
	return 0;
}

/* A header's value in a raw header block (case-insensitive name), copied into val. */
static bool header_value(const char *block, const char *name, char *val, size_t vlen)
{
	size_t nl = strlen(name);
	const char *p = strstr(block, "\r\n");

	while (p && p[2] != '\r' && p[2] != '\0') {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if (!end)
			break;
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
		    line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			size_t n = (size_t)(end - v);
			while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n >= vlen)
				n = vlen - 1;
			memcpy(val, v, n);
			val[n] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}

static int send_all(struct rv_ws *ws, const char *p, size_t len, uint64_t deadline)
{
	while (len) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(ws->curl, p, len, &n);
		if (rc == CURLE_AGAIN) {
			int64_t left = ms_left(deadline);
			if (left <= 0 || wait_fd(ws->fd, POLLOUT, left) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		if (rc != CURLE_OK)
			return -ECONNRESET;
		p += n;
		len -= n;
	}
	return 0;
}

/* Read the upgrade response's header block; keep what follows it for the framing. */
static int read_response(struct rv_ws *ws, char *buf, size_t cap, uint64_t deadline)
{
	size_t len = 0;

	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(ws->curl, buf + len, cap - 1 - len, &n);
		if (rc == CURLE_AGAIN) {
			int64_t left = ms_left(deadline);
			if (left <= 0 || wait_fd(ws->fd, POLLIN, left) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		if (rc != CURLE_OK || n == 0)
			return -ECONNRESET;
		len += n;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			size_t hdr = (size_t)(end - buf) + 4;
			if (len > hdr) {
				ws->early = rv_xmalloc(len - hdr);
				memcpy(ws->early, buf + hdr, len - hdr);
				ws->early_len = len - hdr;
			}
			end[2] = '\0'; /* the block keeps its last CRLF for header_value() */
			return 0;
		}
		if (len >= cap - 1)
			return -EPROTO;
	}
}

static void free_queue(struct rv_ws *ws)
{
	while (ws->head) {
		struct ws_qmsg *q = ws->head;
		ws->head = q->next;
		free(q->m.data);
		free(q);
	}
	ws->tail = NULL;
	ws->nqueued = 0;
}

static void ws_free(struct rv_ws *ws)
{
	if (!ws)
		return;
	if (ws->ev)
		wslay_event_context_free(ws->ev);
	if (ws->curl)
		curl_easy_cleanup(ws->curl);
	free_queue(ws);
	free(ws->early);
	free(ws);
}

static int map_curl_connect(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -ECONNREFUSED;
	default:
		return -ECONNREFUSED;
	}
}

int rv_ws_connect(const char *url, const char *const *headers, size_t max_msg, unsigned timeout_ms,
                  const char *log_comp, long *http_status, struct rv_ws **out)
{
	char conn[1024], target[8192], host[512], key_b64[32], want[64], got[128];
	char *resp = NULL, *req = NULL;
	uint8_t key[16], digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	struct rv_ws *ws = NULL;
	uint64_t deadline =
	    rv_time_mono_ns() + (uint64_t)(timeout_ms ? timeout_ms : 10000) * 1000000;
	const char *comp = log_comp ? log_comp : "ws";
	long status = 0;
	CURLcode rc;
	int err;

	if (http_status)
		*http_status = 0;
	if (!url ||
	    split_url(url, conn, sizeof(conn), target, sizeof(target), host, sizeof(host)) != 0) {
		rv_warn(comp, "websocket: unusable URL");
		return -EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	ws = rv_xcalloc(1, sizeof(*ws));
	ws->comp = comp;
	ws->curl = curl_easy_init();
	if (!ws->curl) {
		err = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(ws->curl, CURLOPT_URL, conn);
	curl_easy_setopt(ws->curl, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(ws->curl, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(timeout_ms ? timeout_ms : 10000));
	curl_easy_setopt(ws->curl, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(ws->curl);
	if (rc != CURLE_OK) {
		err = map_curl_connect(rc);
		rv_warn(comp, "websocket: cannot connect to %s: %s", host, curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(ws->curl, CURLINFO_ACTIVESOCKET, &ws->fd);

	randombytes_buf(key, sizeof(key));
	sodium_bin2base64(key_b64, sizeof(key_b64), key, sizeof(key),
	                  sodium_base64_VARIANT_ORIGINAL);
	size_t cap = strlen(target) + strlen(host) + 512, off;
	for (size_t i = 0; headers && headers[i]; i++)
		cap += strlen(headers[i]) + 2;
	req = rv_xmalloc(cap);
	off = (size_t)snprintf(req, cap,
	                       "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
	                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	                       "Sec-WebSocket-Version: 13\r\nUser-Agent: revovoice/" RV_VERSION
	                       "\r\n",
	                       target, host, key_b64);
	for (size_t i = 0; headers && headers[i]; i++) {
		if (strpbrk(headers[i], "\r\n")) {
			rv_warn(comp, "websocket: a request header holds a line break");
			err = -EINVAL;
			goto out;
		}
		off += (size_t)snprintf(req + off, cap - off, "%s\r\n", headers[i]);
	}
	off += (size_t)snprintf(req + off, cap - off, "\r\n");
	err = send_all(ws, req, off, deadline);
	if (err) {
		rv_warn(comp, "websocket: cannot send the upgrade request to %s", host);
		goto out;
	}
	resp = rv_xmalloc(RV_WS_MAX_HANDSHAKE);
	err = read_response(ws, resp, RV_WS_MAX_HANDSHAKE, deadline);
	if (err) {
		rv_warn(comp, "websocket: no usable upgrade response from %s (%s)", host,
		        err == -ETIMEDOUT ? "timed out"
		        : err == -EPROTO  ? "header block too large"
		                          : "connection closed");
		goto out;
	}
	/* "HTTP/1.1 101 Switching Protocols": the three digits after the version. */
	if (strlen(resp) >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && resp[12 - 4] == ' ' &&
	    isdigit((unsigned char)resp[9]) && isdigit((unsigned char)resp[10]) &&
	    isdigit((unsigned char)resp[11]))
		status = (resp[9] - '0') * 100 + (resp[10] - '0') * 10 + (resp[11] - '0');
	if (http_status)
		*http_status = status;
	if (status == 401 || status == 403) {
		rv_warn(comp, "websocket: %s rejected the credentials (HTTP %ld)", host, status);
		err = -EACCES;
		goto out;
	}
	if (status != 101) {
		rv_warn(comp, "websocket: %s answered HTTP %ld, not 101", host, status);
		err = -EPROTO;
		goto out;
	}
	/* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), RFC 6455 4.2.2. */
	char cat[sizeof(key_b64) + sizeof(WS_GUID)];
	snprintf(cat, sizeof(cat), "%s%s", key_b64, WS_GUID);
	if (!EVP_Digest(cat, strlen(cat), digest, &dlen, EVP_sha1(), NULL) || dlen != 20) {
		err = -ENOMEM;
		goto out;
	}
	sodium_bin2base64(want, sizeof(want), digest, 20, sodium_base64_VARIANT_ORIGINAL);
	if (!header_value(resp, "Sec-WebSocket-Accept", got, sizeof(got)) ||
	    strcmp(got, want) != 0) {
		rv_warn(comp, "websocket: %s sent a wrong Sec-WebSocket-Accept", host);
		err = -EPROTO;
		goto out;
	}

	struct wslay_event_callbacks cb = {
	    .recv_callback = ev_recv,
	    .send_callback = ev_send,
	    .genmask_callback = ev_genmask,
	    .on_msg_recv_callback = ev_msg,
	};
	if (wslay_event_context_client_init(&ws->ev, &cb, ws) != 0) {
		err = -ENOMEM;
		goto out;
	}
	wslay_event_config_set_max_recv_msg_length(ws->ev, max_msg ? max_msg : (1u << 20));
	err = 0;
out:
	free(req);
	free(resp);
	if (err)
		ws_free(ws);
	else
		*out = ws;
	return err;
}

int rv_ws_is_open(const struct rv_ws *ws)
{
	return ws && !ws->eof && !ws->io_failed && !ws->proto_err &&
	       wslay_event_want_read(ws->ev) && !wslay_event_get_close_sent(ws->ev);
}

uint16_t rv_ws_close_code(const struct rv_ws *ws)
{
	return ws ? ws->close_code : 0;
}

/* Push queued frames out until done or the deadline. */
static int flush(struct rv_ws *ws, uint64_t deadline)
{
	while (wslay_event_want_write(ws->ev)) {
		int r = wslay_event_send(ws->ev);
		if (r != 0 || ws->io_failed)
			return -ECONNRESET;
		if (!wslay_event_want_write(ws->ev))
			break;
		int64_t left = ms_left(deadline);
		if (left <= 0 || wait_fd(ws->fd, POLLOUT, left) <= 0)
			return -ETIMEDOUT;
	}
	return 0;
}

int rv_ws_send(struct rv_ws *ws, enum rv_ws_opcode op, const void *data, size_t len,
               unsigned timeout_ms)
{
	struct wslay_event_msg m = {
	    .opcode = op == RV_WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
	    .msg = data,
	    .msg_length = len,
	};

	if (!rv_ws_is_open(ws))
		return -ECONNRESET;
	int r = wslay_event_queue_msg(ws->ev, &m);
	if (r == WSLAY_ERR_NOMEM)
		return -ENOMEM;
	if (r != 0)
		return -ECONNRESET;
	return flush(ws, rv_time_mono_ns() + (uint64_t)timeout_ms * 1000000);
}

static int pop(struct rv_ws *ws, struct rv_ws_msg *msg)
{
	struct ws_qmsg *q = ws->head;

	if (!q)
		return -EAGAIN;
	ws->head = q->next;
	if (!ws->head)
		ws->tail = NULL;
	ws->nqueued--;
	*msg = q->m;
	free(q);
	return 0;
}

int rv_ws_recv(struct rv_ws *ws, unsigned timeout_ms, struct rv_ws_msg *msg)
{
	uint64_t deadline = rv_time_mono_ns() + (uint64_t)timeout_ms * 1000000;

	if (!ws)
		return -EINVAL;
	for (;;) {
		if (pop(ws, msg) == 0)
			return 0;
		if (ws->proto_err)
			return -EPROTO;
		if (ws->eof || ws->io_failed || !wslay_event_want_read(ws->ev))
			return -ECONNRESET;
		int r = wslay_event_recv(ws->ev);
		if (r == WSLAY_ERR_PROTO || r == WSLAY_ERR_INVALID_ARGUMENT) {
			ws->proto_err = true;
			rv_warn(ws->comp, "websocket: the server broke the framing rules");
		}
		/* Pongs and the reply to a close frame go out right away. */
		flush(ws, rv_time_mono_ns() + 1000000000ull);
		if (pop(ws, msg) == 0)
			return 0;
		if (r != 0 && !ws->proto_err)
			return -ECONNRESET;
		if (ws->proto_err)
			return -EPROTO;
		if (!wslay_event_want_read(ws->ev)) {
			/* wslay stops reading after a close, including the 1009 it sends itself
			 * for an oversize message. */
			return ws->close_code ? -ECONNRESET : -EPROTO;
		}
		int64_t left = ms_left(deadline);
		if (timeout_ms == 0)
			return -EAGAIN;
		if (left <= 0)
			return -ETIMEDOUT;
		int w = wait_fd(ws->fd, POLLIN, left);
		if (w < 0)
			return -ECONNRESET;
		if (w == 0)
			return -ETIMEDOUT;
	}
}

void rv_ws_close(struct rv_ws *ws, unsigned timeout_ms)
{
	if (!ws)
		return;
	if (rv_ws_is_open(ws) && wslay_event_queue_close(ws->ev, 1000, NULL, 0) == 0) {
		uint64_t deadline = rv_time_mono_ns() + (uint64_t)timeout_ms * 1000000;
		if (flush(ws, deadline) == 0) {
			struct rv_ws_msg m;
			/* Wait for the server's close frame; anything else still arriving is
			 * dropped. */
			while (ms_left(deadline) > 0 &&
			       rv_ws_recv(ws, (unsigned)ms_left(deadline), &m) == 0)
				free(m.data);
		}
	}
	ws_free(ws);
}
