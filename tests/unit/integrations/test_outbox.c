/*
 * The outbox (src/integrations/outbox.h): the webhook signature against vectors computed with
 * Python's hmac module, the backoff schedule and its jitter bounds, the retry verdicts, event
 * subscriptions, and on a real SQLite store: an event emitted in a rolled-back transaction is
 * gone, a committed one is claimed once (its lease keeps a second claim away), and a row due
 * later is not claimed yet.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "integrations/outbox.h"
#include "integrations/outbox_int.h"
#include "store/store.h"
#include "../test.h"

RV_TEST(outbox_sign_matches_python_hmac)
{
	static const char body[] = "{\"id\":1,\"event\":\"call.ended\"}";
	char sig[80];
	ASSERT_OK(rv_outbox_sign("whsec-test", 1700000000, body, strlen(body), sig, sizeof(sig)));
	ASSERT_EQ_STR(sig,
	              "sha256=1bfcb1a4265729164bce75f0c856342a5ec3356d4ea9dd3ae02549aa59b874a7");
	/* Empty body, short key, timestamp 0: "0." is what is signed. */
	ASSERT_OK(rv_outbox_sign("k", 0, "", 0, sig, sizeof(sig)));
	ASSERT_EQ_STR(sig,
	              "sha256=6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7");
	/* Any change of body, time or key changes it. */
	char other[80];
	ASSERT_OK(
	    rv_outbox_sign("whsec-test", 1700000001, body, strlen(body), other, sizeof(other)));
	ASSERT(strcmp(other,
	              "sha256=1bfcb1a4265729164bce75f0c856342a5ec3356d4ea9dd3ae02549aa59b874a7"));
	ASSERT_OK(
	    rv_outbox_sign("whsec-tesT", 1700000000, body, strlen(body), other, sizeof(other)));
	ASSERT(strcmp(other,
	              "sha256=1bfcb1a4265729164bce75f0c856342a5ec3356d4ea9dd3ae02549aa59b874a7"));
	/* "sha256=" + 64 hex + NUL needs 72 bytes. */
	ASSERT_EQ_INT(rv_outbox_sign("k", 0, "", 0, sig, 71), -EINVAL);
	ASSERT_OK(rv_outbox_sign("k", 0, "", 0, sig, 72));
	ASSERT_EQ_INT(strlen(sig), 71);
}

RV_TEST(outbox_backoff_doubles_caps_and_jitters_in_the_upper_half)
{
	/* rnd 0 gives the lower bound d/2; rnd = d - d/2 gives d itself. */
	static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
	for (int f = 1; f <= 8; f++) {
		int64_t d = want[f - 1];
		ASSERT_EQ_INT(rv_outbox_backoff_ms(f, 1000, 30000, 0), d / 2);
		ASSERT_EQ_INT(rv_outbox_backoff_ms(f, 1000, 30000, (uint32_t)(d - d / 2)), d);
	}
	/* Spread over random values stays within [d/2, d] and actually varies. */
	int64_t lo = INT64_MAX, hi = 0;
	uint32_t x = 2463534242u;
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		int64_t v = rv_outbox_backoff_ms(3, 5000, 3600000, x);
		ASSERT_MSG(v >= 10000 && v <= 20000, "%lld out of [10000, 20000]", (long long)v);
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	ASSERT_MSG(lo < 11000 && hi > 19000, "jitter spread %lld..%lld", (long long)lo,
	           (long long)hi);
	/* Huge failure counts neither overflow nor exceed the cap; nonsense input is clamped. */
	ASSERT(rv_outbox_backoff_ms(1000, 5000, 3600000, 7) <= 3600000);
	ASSERT(rv_outbox_backoff_ms(1000, 5000, 3600000, 7) >= 1800000);
	ASSERT_EQ_INT(rv_outbox_backoff_ms(0, 100, 1000, 0), 50);
	ASSERT_EQ_INT(rv_outbox_backoff_ms(1, 100, 10, 0), 50); /* max below base: base */
}

RV_TEST(outbox_classify_retryable_and_permanent)
{
	static const long ok[] = {200, 201, 202, 204, 299};
	static const long retry[] = {0, 408, 429, 500, 502, 503, 504, 599};
	static const long perm[] = {100, 301, 302, 304, 400, 401, 403,
	                            404, 405, 409, 410, 413, 422};
	for (size_t i = 0; i < RV_ARRAY_LEN(ok); i++)
		ASSERT_EQ_INT(rv_outbox_classify(ok[i]), RV_OUTBOX_DELIVERED);
	for (size_t i = 0; i < RV_ARRAY_LEN(retry); i++)
		ASSERT_EQ_INT(rv_outbox_classify(retry[i]), RV_OUTBOX_RETRY);
	for (size_t i = 0; i < RV_ARRAY_LEN(perm); i++)
		ASSERT_EQ_INT(rv_outbox_classify(perm[i]), RV_OUTBOX_PERMANENT);
}

RV_TEST(outbox_subscriptions)
{
	ASSERT(rv_outbox_subscribed("[\"call.ended\"]", "call.ended"));
	ASSERT(!rv_outbox_subscribed("[\"call.ended\"]", "call.answered"));
	ASSERT(rv_outbox_subscribed("[\"call.answered\", \"*\"]", "lead.dnc"));
	ASSERT(!rv_outbox_subscribed("[]", "call.ended"));
	ASSERT(!rv_outbox_subscribed("[\"call.ended\"", "call.ended")); /* malformed */
	ASSERT(!rv_outbox_subscribed("{\"call.ended\": 1}", "call.ended"));
	ASSERT(!rv_outbox_subscribed("[1, null, \"call.ende\"]", "call.ended"));
	ASSERT(!rv_outbox_subscribed(NULL, "call.ended"));
}

/* ---- on a real store ---- */

struct tmpstore {
	char dir[64];
	char path[128];
	struct rv_store *st;
};

static int tmpstore_open(struct tmpstore *t)
{
	char err[256];
	snprintf(t->dir, sizeof(t->dir), "/tmp/rv-outbox-XXXXXX");
	if (!mkdtemp(t->dir))
		return -errno;
	snprintf(t->path, sizeof(t->path), "%s/t.db", t->dir);
	int e = rv_store_open("sqlite", t->path, 2, &t->st, err, sizeof(err));
	if (e)
		fprintf(stderr, "  store: %s\n", err);
	return e;
}

static void tmpstore_close(struct tmpstore *t)
{
	char p[160];
	rv_store_close(t->st);
	snprintf(p, sizeof(p), "%s-wal", t->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", t->path);
	unlink(p);
	unlink(t->path);
	rmdir(t->dir);
}

static int64_t count_rows(struct rv_store *st, const char *where)
{
	char sql[256];
	struct rv_rows *rows = NULL;
	int64_t n = -1;
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM outbox WHERE %s", where);
	if (rv_store_exec(st, sql, NULL, 0, &rows, NULL) == 0 && rows->nrows == 1)
		n = rv_rows_at(rows, 0, 0)->i;
	rv_rows_free(rows);
	return n;
}

RV_TEST(outbox_emit_follows_the_callers_transaction)
{
	struct tmpstore t;
	struct rv_db *db = NULL;
	int64_t id = 0;
	json_t *data = json_pack("{s:s,s:i}", "phone", "+14155550100", "lead_id", 7);
	ASSERT_OK(tmpstore_open(&t));
	ASSERT_OK(rv_store_acquire(t.st, &db));

	/* Rolled back: the event is gone with the change. */
	ASSERT_OK(rv_db_begin(db));
	ASSERT_OK(rv_outbox_emit(t.st, db, RV_OUTBOX_LEAD_DNC, data, &id));
	ASSERT(id > 0);
	ASSERT_OK(rv_db_rollback(db));
	ASSERT_EQ_INT(count_rows(t.st, "1 = 1"), 0);

	/* Committed: one pending event row carrying the data. */
	ASSERT_OK(rv_db_begin(db));
	ASSERT_OK(rv_outbox_emit(t.st, db, RV_OUTBOX_LEAD_DNC, data, &id));
	ASSERT_OK(rv_outbox_emit_call_ended(db, 42, 60000));
	ASSERT_OK(rv_db_commit(db));
	rv_store_release(t.st, db);
	ASSERT_EQ_INT(count_rows(t.st, "status = 'pending' AND webhook_id IS NULL"), 2);
	ASSERT_EQ_INT(count_rows(t.st, "event = 'lead.dnc' AND payload = "
	                               "'{\"phone\":\"+14155550100\",\"lead_id\":7}'"),
	              1);

	/* Without a db: its own connection. Bad input writes nothing. */
	ASSERT_OK(rv_outbox_emit(t.st, NULL, RV_OUTBOX_CALLBACK_SCHEDULED, data, NULL));
	ASSERT_EQ_INT(rv_outbox_emit(t.st, NULL, "Call Ended!", data, NULL), -EINVAL);
	ASSERT_EQ_INT(rv_outbox_emit(t.st, NULL, RV_OUTBOX_CALL_ENDED, data, NULL), -EINVAL);
	json_t *arr = json_array();
	ASSERT_EQ_INT(rv_outbox_emit(t.st, NULL, RV_OUTBOX_LEAD_DNC, arr, NULL), -EINVAL);
	json_decref(arr);
	ASSERT_EQ_INT(count_rows(t.st, "1 = 1"), 3);

	/* Claims: the two due events are claimed once; call.ended (due in a minute) is not. */
	struct rv_outbox ob = {.st = t.st};
	int64_t *ids = NULL;
	size_t n = 0;
	ASSERT_OK(ob_claim(&ob, false, 10, 30000, &ids, &n));
	ASSERT_EQ_INT(n, 2);
	ASSERT(ids[0] == id);
	free(ids);
	ids = NULL;
	ASSERT_OK(ob_claim(&ob, false, 10, 30000, &ids, &n));
	ASSERT_EQ_INT(n, 0); /* leased */
	free(ids);
	ids = NULL;
	ASSERT_OK(ob_claim(&ob, true, 10, 30000, &ids, &n));
	ASSERT_EQ_INT(n, 0); /* no deliveries */
	free(ids);
	ASSERT_EQ_INT(count_rows(t.st, "locked_until IS NOT NULL"), 2);
	/* The next event is due when the first lease runs out (the call.ended comes later). */
	ASSERT_EQ_INT(ob_next_due_ms(&ob, false, 5000), 5000);
	int64_t wait = ob_next_due_ms(&ob, false, 100000);
	ASSERT_MSG(wait > 25000 && wait <= 30000, "wait %lld", (long long)wait);

	json_decref(data);
	tmpstore_close(&t);
}
