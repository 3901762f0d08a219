/*
 * The outbox's sender: one thread claims due deliveries and runs up to webhooks.concurrency
 * POSTs at once on a libcurl multi handle, so a slow receiver holds one slot, not the queue.
 * Each answer decides the row: 2xx sent; network error, timeout, 408, 429 or 5xx retried
 * after an exponential, jittered delay (or the receiver's Retry-After, when longer) until
 * webhooks.max_attempts; anything else dead at once.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "integrations/outbox_int.h"
#include "obs/metrics.h"

#define RESP_KEEP       200                  /* bytes of a refusal kept in last_error */
#define LEASE_EXTRA_MS  30000                /* lease beyond the POST's own time limit */
#define RETRY_AFTER_MAX (24 * 3600 * 1000LL) /* a Retry-After we honour at most */
#define HOUSEKEEP_EVERY (5 * 1000)           /* gauge refresh, ms */
#define STOP_GRACE_MS   3000                 /* in-flight POSTs finishing at stop */

/* ---- pure helpers ----------------------------------------------------------------------- */

int rv_outbox_sign(const char *secret, int64_t ts, const char *body, size_t len, char *out,
                   size_t outlen)
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char tsbuf[24];

	if (outlen < 7 + 2 * sizeof(mac) + 1 || !secret || sodium_init() < 0)
		return -EINVAL;
	int tn = snprintf(tsbuf, sizeof(tsbuf), "%" PRId64 ".", ts);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)tsbuf, (unsigned long long)tn);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, (unsigned long long)len);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(out, "sha256=", 7);
	sodium_bin2hex(out + 7, outlen - 7, mac, sizeof(mac));
	sodium_memzero(&st, sizeof(st));
	return 0;
}

int64_t rv_outbox_backoff_ms(int failures, int64_t base_ms, int64_t max_ms, uint32_t rnd)
{
	if (failures < 1)
		failures = 1;
	if (base_ms < 1)
		base_ms = 1;
	if (max_ms < base_ms)
		max_ms = base_ms;
	int64_t d = base_ms;
	for (int i = 1; i < failures && d < max_ms; i++)
		d = d > max_ms / 2 ? max_ms : d * 2;
	if (d > max_ms)
		d = max_ms;
	int64_t half = d / 2;
	return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}

enum rv_outbox_verdict rv_outbox_classify(long status)
{
	if (status >= 200 && status < 300)
		return RV_OUTBOX_DELIVERED;
	if (status == 0 || status == 408 || status == 429 || status >= 500)
		return RV_OUTBOX_RETRY;
	return RV_OUTBOX_PERMANENT;
}

/* ---- one transfer ----------------------------------------------------------------------- */

struct xfer {
	CURL *easy;
	struct curl_slist *hdrs;
	int64_t id;
	int attempts; /* before this one */
	char event[RV_OUTBOX_EVENT_MAX];
	char *url;
	char *body;
	char errbuf[CURL_ERROR_SIZE];
	char resp[RESP_KEEP + 1];
	size_t resp_len;
	uint64_t t0_ns;
};

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->url);
	free(x->body);
	free(x);
}

/* Keep the start of the answer for last_error; the rest is read and dropped. */
static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	size_t room = RESP_KEEP - x->resp_len;
	size_t take = len < room ? len : room;
	memcpy(x->resp + x->resp_len, p, take);
	x->resp_len += take;
	x->resp[x->resp_len] = '\0';
	return len;
}

static void count(const char *result)
{
	rv_metrics_inc("rv_webhook_deliveries_total", 1, result, NULL);
}

static void store_fail(int err, int64_t id)
{
	rv_warn(OB_COMP, "cannot record the outcome of delivery %" PRId64 ": %s", id,
	        rv_store_strerror(err));
	rv_metrics_inc("rv_outbox_store_errors_total", 1, NULL);
}

static void mark_dead(struct rv_outbox *ob, int64_t id, int attempts, long status, const char *why)
{
	char now[40];
	ob_iso_ms(ob_now_ms(), now, sizeof(now));
	struct rv_val p[] = {RV_VINT(attempts), RV_VTEXT(why), RV_VTEXT(now),
	                     status ? RV_VINT(status) : RV_VNULL, RV_VINT(id)};
	int err =
	    rv_store_exec(ob->st,
	                  "UPDATE outbox SET status = 'dead', attempts = $1, last_error = $2, "
	                  "last_attempt_at = $3, last_status = $4, locked_until = NULL "
	                  "WHERE id = $5",
	                  p, RV_ARRAY_LEN(p), NULL, NULL);
	if (err)
		store_fail(err, id);
}

/* Load a claimed delivery and put its POST on the multi handle. A delivery whose webhook was
 * switched off meanwhile is given up without a request. */
static int xfer_start(struct rv_outbox *ob, int64_t id, struct xfer **out)
{
	struct rv_rows *rows = NULL;
	struct xfer *x = NULL;
	char hdr[128], sig[80];
	struct rv_val p[] = {RV_VINT(id)};
	int err = rv_store_exec(ob->st,
	                        "SELECT o.event, o.payload, o.attempts, w.url, w.secret, w.active "
	                        "FROM outbox o LEFT JOIN webhooks w ON w.id = o.webhook_id "
	                        "WHERE o.id = $1 AND o.status = 'pending'",
	                        p, 1, &rows, NULL);
	if (err || rows->nrows != 1) {
		err = err ? err : -ENOENT;
		goto out;
	}
	const struct rv_val *ev = rv_rows_at(rows, 0, 0), *body = rv_rows_at(rows, 0, 1),
	                    *url = rv_rows_at(rows, 0, 3), *secret = rv_rows_at(rows, 0, 4),
	                    *active = rv_rows_at(rows, 0, 5);
	int attempts = (int)rv_rows_at(rows, 0, 2)->i;
	if (url->type != RV_VAL_TEXT || secret->type != RV_VAL_TEXT || active->type != RV_VAL_INT ||
	    !active->i) {
		mark_dead(ob, id, attempts, 0, "the webhook was deactivated before delivery");
		count("dead");
		err = -ENOENT;
		goto out;
	}
	if (ev->type != RV_VAL_TEXT || body->type != RV_VAL_TEXT) {
		mark_dead(ob, id, attempts, 0, "malformed outbox row");
		count("dead");
		err = -EINVAL;
		goto out;
	}

	x = rv_xcalloc(1, sizeof(*x));
	x->id = id;
	x->attempts = attempts;
	rv_strlcpy(x->event, ev->s, sizeof(x->event));
	x->url = rv_xstrdup(url->s);
	x->body = rv_xstrdup(body->s);
	int64_t ts = ob_now_ms() / 1000;
	err = rv_outbox_sign(secret->s, ts, x->body, strlen(x->body), sig, sizeof(sig));
	if (err)
		goto out;
	x->easy = curl_easy_init();
	if (!x->easy) {
		err = -ENOMEM;
		goto out;
	}
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "User-Agent: RevoVoice-Webhooks/" RV_VERSION);
	h = curl_slist_append(h, "Expect:");
	snprintf(hdr, sizeof(hdr), "X-RevoVoice-Event: %s", x->event);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof(hdr), "X-RevoVoice-Delivery: %" PRId64, id);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof(hdr), "X-RevoVoice-Timestamp: %" PRId64, ts);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof(hdr), "X-RevoVoice-Signature: %s", sig);
	h = curl_slist_append(h, hdr);
	sodium_memzero(sig, sizeof(sig));
	x->hdrs = h;
	if (!h) {
		err = -ENOMEM;
		goto out;
	}
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ob->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(ob->timeout_ms < 5000 ? ob->timeout_ms : 5000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	x->t0_ns = rv_time_mono_ns();
	if (curl_multi_add_handle(ob->multi, e) != CURLM_OK) {
		err = -ENOMEM;
		goto out;
	}
out:
	rv_rows_free(rows);
	if (err) {
		xfer_free(x);
		return err;
	}
	*out = x;
	return 0;
}

/* A transfer finished: write what it means into the row. */
static void xfer_done(struct rv_outbox *ob, struct xfer *x, CURLcode rc)
{
	long status = 0;
	char why[512], now[40], ids[24], st[16], att[16];
	curl_off_t retry_after = -1;

	double secs = (double)(rv_time_mono_ns() - x->t0_ns) / 1e9;
	rv_metrics_observe("rv_webhook_delivery_seconds", secs, NULL);
	if (rc == CURLE_OK)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	enum rv_outbox_verdict v = rc == CURLE_OK ? rv_outbox_classify(status) : RV_OUTBOX_RETRY;
	int attempts = x->attempts + 1;
	if (rc != CURLE_OK) {
		snprintf(why, sizeof(why), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
	} else {
		rv_utf8_scrub(x->resp);
		snprintf(why, sizeof(why), "HTTP %ld%s%s", status, x->resp_len ? ": " : "",
		         x->resp);
	}
	snprintf(ids, sizeof(ids), "%" PRId64, x->id);
	snprintf(st, sizeof(st), "%ld", status);
	snprintf(att, sizeof(att), "%d", attempts);
	ob_iso_ms(ob_now_ms(), now, sizeof(now));

	if (v == RV_OUTBOX_DELIVERED) {
		struct rv_val p[] = {RV_VINT(attempts), RV_VTEXT(now), RV_VINT(status),
		                     RV_VINT(x->id)};
		int err =
		    rv_store_exec(ob->st,
		                  "UPDATE outbox SET status = 'sent', attempts = $1, sent_at = $2, "
		                  "last_attempt_at = $2, last_status = $3, last_error = NULL, "
		                  "locked_until = NULL WHERE id = $4",
		                  p, RV_ARRAY_LEN(p), NULL, NULL);
		if (err)
			store_fail(err, x->id);
		count("delivered");
		rv_logkv(RV_LOG_INFO, OB_COMP, "webhook delivered", "delivery", ids, "event",
		         x->event, "status", st, "attempts", att, NULL);
		return;
	}
	if (v == RV_OUTBOX_RETRY && attempts < ob->max_attempts) {
		int64_t delay =
		    rv_outbox_backoff_ms(attempts, ob->base_ms, ob->max_ms, randombytes_random());
		if (rc == CURLE_OK &&
		    curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
		    retry_after > 0) {
			int64_t ra = (int64_t)retry_after * 1000;
			if (ra > RETRY_AFTER_MAX)
				ra = RETRY_AFTER_MAX;
			if (ra > delay)
				delay = ra;
		}
		char next[40], dl[24];
		ob_iso_ms(ob_now_ms() + delay, next, sizeof(next));
		snprintf(dl, sizeof(dl), "%" PRId64, delay);
		struct rv_val p[] = {RV_VINT(attempts),
		                     RV_VTEXT(next),
		                     RV_VTEXT(why),
		                     RV_VTEXT(now),
		                     status ? RV_VINT(status) : RV_VNULL,
		                     RV_VINT(x->id)};
		int err = rv_store_exec(ob->st,
		                        "UPDATE outbox SET attempts = $1, next_attempt_at = $2, "
		                        "last_error = $3, last_attempt_at = $4, last_status = $5, "
		                        "locked_until = NULL WHERE id = $6",
		                        p, RV_ARRAY_LEN(p), NULL, NULL);
		if (err)
			store_fail(err, x->id);
		count("retry");
		rv_logkv(RV_LOG_WARN, OB_COMP, "webhook delivery failed; will retry", "delivery",
		         ids, "event", x->event, "attempts", att, "retry_in_ms", dl, "error", why,
		         NULL);
		return;
	}
	mark_dead(ob, x->id, attempts, status, why);
	count("dead");
	rv_logkv(RV_LOG_WARN, OB_COMP,
	         v == RV_OUTBOX_PERMANENT ? "webhook refused the delivery; given up"
	                                  : "webhook delivery failed too often; given up",
	         "delivery", ids, "event", x->event, "attempts", att, "error", why, NULL);
}

/* Undo a claim without counting an attempt (shutdown): the next run sends it at once. */
static void release(struct rv_outbox *ob, int64_t id)
{
	struct rv_val p[] = {RV_VINT(id)};
	int err = rv_store_exec(ob->st, "UPDATE outbox SET locked_until = NULL WHERE id = $1", p, 1,
	                        NULL, NULL);
	if (err)
		store_fail(err, id);
}

/* Finished transfers: record each and free its slot in live[]. Returns how many. */
static size_t drain(struct rv_outbox *ob, struct xfer **live)
{
	CURLMsg *m;
	int left;
	size_t done = 0;
	while ((m = curl_multi_info_read(ob->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(ob->multi, e);
		for (int i = 0; i < ob->concurrency; i++)
			if (live[i] == x)
				live[i] = NULL;
		xfer_done(ob, x, rc);
		xfer_free(x);
		done++;
	}
	return done;
}

static bool stopping(struct rv_outbox *ob)
{
	pthread_mutex_lock(&ob->mu);
	bool s = ob->stop;
	pthread_mutex_unlock(&ob->mu);
	return s;
}

static void *send_main(void *arg)
{
	struct rv_outbox *ob = arg;
	struct xfer **live = rv_xcalloc((size_t)ob->concurrency, sizeof(*live));
	size_t active = 0;
	uint64_t last_gauge = 0;
	int running = 0;

	while (!stopping(ob)) {
		uint64_t now_ns = rv_time_mono_ns();
		if (now_ns - last_gauge > (uint64_t)HOUSEKEEP_EVERY * 1000000ull) {
			ob_housekeeping(ob);
			last_gauge = now_ns;
		}
		size_t room =
		    (size_t)ob->concurrency > active ? (size_t)ob->concurrency - active : 0;
		size_t claimed = 0;
		if (room) {
			int64_t *ids = NULL;
			if (ob_claim(ob, true, room, ob->timeout_ms + LEASE_EXTRA_MS, &ids,
			             &claimed) != 0)
				claimed = 0;
			for (size_t i = 0; i < claimed; i++) {
				struct xfer *x = NULL;
				if (xfer_start(ob, ids[i], &x) != 0)
					continue;
				for (int k = 0; k < ob->concurrency; k++) {
					if (!live[k]) {
						live[k] = x;
						break;
					}
				}
				active++;
			}
			free(ids);
		}
		curl_multi_perform(ob->multi, &running);
		active -= drain(ob, live);
		if (claimed == room && room > 0)
			continue; /* a full batch: more may be due */
		int64_t wait = active < (size_t)ob->concurrency
		                   ? ob_next_due_ms(ob, true, ob->poll_ms)
		                   : ob->poll_ms;
		if (wait > 0)
			curl_multi_poll(ob->multi, NULL, 0, (int)wait, NULL);
		curl_multi_perform(ob->multi, &running);
		active -= drain(ob, live);
	}

	/* Stopping: let what is in flight finish for a moment, then hand the rest back. */
	uint64_t until = rv_time_mono_ns() + (uint64_t)STOP_GRACE_MS * 1000000ull;
	while (active && rv_time_mono_ns() < until) {
		curl_multi_poll(ob->multi, NULL, 0, 100, NULL);
		curl_multi_perform(ob->multi, &running);
		active -= drain(ob, live);
	}
	for (int i = 0; i < ob->concurrency; i++) {
		struct xfer *x = live[i];
		if (!x)
			continue;
		curl_multi_remove_handle(ob->multi, x->easy);
		rv_warn(OB_COMP,
		        "delivery %" PRId64 " interrupted by shutdown; sent again at start", x->id);
		release(ob, x->id);
		xfer_free(x);
	}
	free(live);
	ob_housekeeping(ob);
	return NULL;
}

int ob_sender_start(struct rv_outbox *ob)
{
	if (sodium_init() < 0)
		return -EIO;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	ob->multi = curl_multi_init();
	if (!ob->multi)
		return -ENOMEM;
	curl_multi_setopt(ob->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)ob->concurrency);
	int e = pthread_create(&ob->send, NULL, send_main, ob);
	if (e)
		return -e;
	ob->send_started = true;
	return 0;
}

void ob_sender_wake(struct rv_outbox *ob)
{
	if (ob->multi)
		curl_multi_wakeup(ob->multi);
}

void ob_sender_stop(struct rv_outbox *ob)
{
	if (ob->send_started) {
		ob_sender_wake(ob); /* ob->stop is already set */
		pthread_join(ob->send, NULL);
		ob->send_started = false;
	}
	if (ob->multi) {
		curl_multi_cleanup(ob->multi);
		ob->multi = NULL;
	}
}
