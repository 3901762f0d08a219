/*
 * The outbox's database side: events written in the caller's transaction, claims with leases,
 * and the preparer thread that turns each event into one delivery row per subscribed webhook
 * (outbox.h has the whole picture; outbox_send.c sends the deliveries).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "dialog/llm.h"
#include "integrations/outbox_int.h"
#include "obs/metrics.h"
#include "store/store.h"

#define PAYLOAD_MAX   (4u << 20) /* an event's JSON; ours are far smaller */
#define PREP_BATCH    16
#define PREP_LEASE_MS (120 * 1000) /* longer than any post-call analysis (llm.timeout_ms) */
#define HOUSEKEEP_MS  (3600 * 1000)

/* ---- small helpers ---------------------------------------------------------------------- */

int64_t ob_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *ob_iso_ms(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

json_t *ob_val_json(const struct rv_val *v)
{
	switch (v->type) {
	case RV_VAL_INT:
		return json_integer(v->i);
	case RV_VAL_REAL:
		return json_real(v->r);
	case RV_VAL_TEXT:
		return json_stringn(v->s, v->len);
	default:
		return json_null();
	}
}

static int64_t val_int(const struct rv_val *v)
{
	int64_t i = 0;
	if (v->type == RV_VAL_INT)
		return v->i;
	if (v->type == RV_VAL_TEXT && rv_parse_int64(v->s, INT64_MIN, INT64_MAX, &i) == 0)
		return i;
	return 0;
}

static void count_store_error(void)
{
	rv_metrics_inc("rv_outbox_store_errors_total", 1, NULL);
}

/* Event names are ours, but rv_outbox_emit is an interface: keep them to [a-z0-9._-]. */
static bool event_name_ok(const char *ev)
{
	size_t n = ev ? strlen(ev) : 0;
	if (n == 0 || n >= RV_OUTBOX_EVENT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = ev[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

bool rv_outbox_subscribed(const char *events_json, const char *event)
{
	json_error_t je;
	bool yes = false;
	json_t *a = events_json ? json_loads(events_json, 0, &je) : NULL;
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e)
	{
		const char *s = json_string_value(e);
		if (s && (strcmp(s, "*") == 0 || strcmp(s, event) == 0)) {
			yes = true;
			break;
		}
	}
	json_decref(a);
	return yes;
}

/* ---- emit ------------------------------------------------------------------------------- */

static int insert_event(struct rv_db *db, const char *event, const char *payload, int64_t due_ms,
                        int64_t *id)
{
	char now[40], due[40];
	struct rv_rows *rows = NULL;
	ob_iso_ms(ob_now_ms(), now, sizeof(now));
	ob_iso_ms(due_ms, due, sizeof(due));
	struct rv_val p[] = {RV_VTEXT(event), RV_VTEXT(payload), RV_VTEXT(due), RV_VTEXT(now)};
	int err = rv_db_exec(db,
	                     "INSERT INTO outbox (webhook_id, event, payload, status, attempts, "
	                     "next_attempt_at, created_at) VALUES (NULL, $1, $2, 'pending', 0, $3, "
	                     "$4) RETURNING id",
	                     p, RV_ARRAY_LEN(p), &rows, NULL);
	if (!err && (rows->nrows != 1 || rv_rows_at(rows, 0, 0)->type == RV_VAL_NULL))
		err = -EIO;
	if (!err && id)
		*id = val_int(rv_rows_at(rows, 0, 0));
	rv_rows_free(rows);
	return err;
}

int rv_outbox_emit(struct rv_store *st, struct rv_db *db, const char *event,
                   const struct json_t *data, int64_t *event_id)
{
	struct rv_db *own = NULL;
	char *payload = NULL;
	int64_t id = 0;
	int err = 0;

	if (!event_name_ok(event) || strcmp(event, RV_OUTBOX_CALL_ENDED) == 0 ||
	    !json_is_object(data) || (!db && !st))
		return -EINVAL;
	payload = json_dumps(data, JSON_COMPACT);
	if (!payload)
		return -ENOMEM;
	if (strlen(payload) > PAYLOAD_MAX) {
		rv_warn(OB_COMP, "event %s not recorded: its data is larger than %u bytes", event,
		        PAYLOAD_MAX);
		err = -EFBIG;
		goto out;
	}
	if (!db) {
		err = rv_store_acquire(st, &own);
		if (err)
			goto out;
		db = own;
	}
	err = insert_event(db, event, payload, ob_now_ms(), &id);
	if (err) {
		rv_warn(OB_COMP, "cannot record event %s: %s", event, rv_store_strerror(err));
		count_store_error();
		goto out;
	}
	if (event_id)
		*event_id = id;
out:
	if (own)
		rv_store_release(st, own);
	free(payload);
	return err;
}

int rv_outbox_emit_call_ended(struct rv_db *db, int64_t call_id, int delay_ms)
{
	char payload[64];
	snprintf(payload, sizeof(payload), "{\"call_id\":%" PRId64 "}", call_id);
	if (call_id <= 0 || delay_ms < 0)
		return -EINVAL;
	int err = insert_event(db, RV_OUTBOX_CALL_ENDED, payload, ob_now_ms() + delay_ms, NULL);
	if (err) {
		rv_warn(OB_COMP, "cannot record call.ended for call %" PRId64 ": %s", call_id,
		        rv_store_strerror(err));
		count_store_error();
	}
	return err;
}

json_t *ob_call_row(struct rv_db *db, int64_t call_id, int *errp)
{
	/* Columns that hold JSON documents are sent as JSON, not as strings holding JSON. */
	static const char *const json_cols[] = {"rtp_stats", "latency", "extracted"};
	struct rv_rows *rows = NULL;
	struct rv_val p[] = {RV_VINT(call_id)};
	json_t *o = NULL;
	int err = rv_db_exec(db, "SELECT * FROM calls WHERE id = $1", p, 1, &rows, NULL);
	if (!err && rows->nrows != 1)
		err = -ENOENT;
	if (err)
		goto out;
	o = json_object();
	for (size_t c = 0; c < rows->ncols; c++) {
		const struct rv_val *v = rv_rows_at(rows, 0, c);
		json_t *j = NULL;
		for (size_t k = 0; k < RV_ARRAY_LEN(json_cols) && v->type == RV_VAL_TEXT; k++) {
			json_error_t je;
			if (strcmp(rows->cols[c], json_cols[k]) == 0)
				j = json_loadb(v->s, v->len, 0, &je);
		}
		json_object_set_new(o, rows->cols[c], j ? j : ob_val_json(v));
	}
out:
	rv_rows_free(rows);
	if (errp)
		*errp = err;
	return o;
}

int rv_outbox_call_update(struct rv_app *app, const char *sql, const struct rv_val *params,
                          size_t n, int64_t call_id, const char *event)
{
	struct rv_db *db = NULL;
	json_t *row = NULL;
	bool open = false;
	int err = rv_store_acquire(app->store, &db);
	if (err)
		return err;
	err = rv_db_begin(db);
	if (err)
		goto out;
	open = true;
	err = rv_db_exec(db, sql, params, n, NULL, NULL);
	if (err)
		goto out;
	if (strcmp(event, RV_OUTBOX_CALL_ENDED) == 0) {
		err = rv_outbox_emit_call_ended(db, call_id, app->cfg->webhooks_postcall_delay_ms);
	} else {
		row = ob_call_row(db, call_id, &err);
		if (!err)
			err = rv_outbox_emit(app->store, db, event, row, NULL);
	}
	if (err)
		goto out;
	err = rv_db_commit(db);
	open = err != 0;
out:
	if (open)
		(void)rv_db_rollback(db);
	rv_store_release(app->store, db);
	json_decref(row);
	if (!err)
		rv_outbox_kick(app->outbox);
	return err;
}

/* ---- claims ----------------------------------------------------------------------------- */

int ob_claim(struct rv_outbox *ob, bool deliveries, size_t max, int64_t lease_ms, int64_t **ids,
             size_t *n)
{
	char sql[512], now[40], lease[40];
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	int64_t *out = NULL;
	bool open = false;
	size_t got = 0;

	int64_t t = ob_now_ms();
	ob_iso_ms(t, now, sizeof(now));
	ob_iso_ms(t + lease_ms, lease, sizeof(lease));
	/* The lease, not the row lock, keeps other claimers away while the row is worked on
	 * outside this transaction; SKIP LOCKED only stops two claims racing for one row. */
	snprintf(sql, sizeof(sql),
	         "SELECT id FROM outbox WHERE status = 'pending' AND webhook_id IS %s NULL AND "
	         "next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) "
	         "ORDER BY next_attempt_at, id LIMIT $2%s",
	         deliveries ? "NOT" : "", ob->pg ? " FOR UPDATE SKIP LOCKED" : "");
	int err = rv_store_acquire(ob->st, &db);
	if (err)
		return err;
	err = rv_db_begin(db);
	if (err)
		goto out;
	open = true;
	struct rv_val p[] = {RV_VTEXT(now), RV_VINT((int64_t)max)};
	err = rv_db_exec(db, sql, p, 2, &rows, NULL);
	if (err)
		goto out;
	out = rv_xcalloc(rows->nrows ? rows->nrows : 1, sizeof(*out));
	for (size_t i = 0; i < rows->nrows; i++) {
		int64_t id = val_int(rv_rows_at(rows, i, 0));
		struct rv_val q[] = {RV_VTEXT(lease), RV_VINT(id)};
		err = rv_db_exec(db, "UPDATE outbox SET locked_until = $1 WHERE id = $2", q, 2,
		                 NULL, NULL);
		if (err)
			goto out;
		out[got++] = id;
	}
	err = rv_db_commit(db);
	open = err != 0;
out:
	if (open)
		(void)rv_db_rollback(db);
	rv_store_release(ob->st, db);
	rv_rows_free(rows);
	if (err) {
		free(out);
		count_store_error();
		return err;
	}
	*ids = out;
	*n = got;
	return 0;
}

int64_t ob_next_due_ms(struct rv_outbox *ob, bool deliveries, int64_t cap)
{
	char sql[256];
	struct rv_rows *rows = NULL;
	int64_t wait = cap;
	snprintf(sql, sizeof(sql),
	         "SELECT MIN(CASE WHEN locked_until IS NOT NULL AND locked_until > next_attempt_at "
	         "THEN locked_until ELSE next_attempt_at END) FROM outbox WHERE status = 'pending' "
	         "AND webhook_id IS %s NULL",
	         deliveries ? "NOT" : "");
	if (rv_store_exec(ob->st, sql, NULL, 0, &rows, NULL) == 0 && rows->nrows == 1) {
		const struct rv_val *v = rv_rows_at(rows, 0, 0);
		int64_t due;
		if (v->type == RV_VAL_TEXT && rv_time_parse_iso(v->s, &due) == 0) {
			int64_t d = due - ob_now_ms();
			wait = d < 0 ? 0 : d < cap ? d : cap;
		}
	}
	rv_rows_free(rows);
	return wait;
}

void ob_housekeeping(struct rv_outbox *ob)
{
	struct rv_rows *rows = NULL;
	if (rv_store_exec(ob->st, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'", NULL, 0,
	                  &rows, NULL) == 0 &&
	    rows->nrows == 1)
		rv_metrics_set("rv_outbox_pending", (double)val_int(rv_rows_at(rows, 0, 0)), NULL);
	rv_rows_free(rows);

	int64_t now = ob_now_ms();
	if (ob->retention_h <= 0 || now - ob->last_cleanup < HOUSEKEEP_MS)
		return;
	ob->last_cleanup = now;
	char cut[40];
	int64_t gone = 0;
	ob_iso_ms(now - ob->retention_h * 3600 * 1000, cut, sizeof(cut));
	struct rv_val p[] = {RV_VTEXT(cut)};
	int err = rv_store_exec(ob->st,
	                        "DELETE FROM outbox WHERE status IN ('sent', 'dead') AND "
	                        "created_at < $1",
	                        p, 1, NULL, &gone);
	if (err)
		rv_warn(OB_COMP, "cannot delete old outbox rows: %s", rv_store_strerror(err));
	else if (gone)
		rv_info(OB_COMP,
		        "deleted %" PRId64 " finished outbox rows older than %" PRId64 " h", gone,
		        ob->retention_h);
}

/* ---- the preparer: events -> deliveries ------------------------------------------------- */

/* Give up on an event that can never be sent (its data is gone or broken). */
static void event_dead(struct rv_outbox *ob, int64_t id, const char *why)
{
	char now[40];
	struct rv_val p[] = {RV_VTEXT(why), RV_VTEXT(ob_iso_ms(ob_now_ms(), now, sizeof(now))),
	                     RV_VINT(id)};
	rv_warn(OB_COMP, "event %" PRId64 " dropped: %s", id, why);
	if (rv_store_exec(
	        ob->st,
	        "UPDATE outbox SET status = 'dead', last_error = $1, last_attempt_at = $2, "
	        "locked_until = NULL WHERE id = $3",
	        p, 3, NULL, NULL) != 0)
		count_store_error();
}

/* Inside the fan-out transaction: one delivery per active webhook subscribed to the event. */
static int fan_out(struct rv_db *db, int64_t id, const char *event, const char *body,
                   const char *now, size_t *count)
{
	struct rv_rows *rows = NULL;
	int err = rv_db_exec(db, "SELECT id, events FROM webhooks WHERE active = 1 ORDER BY id",
	                     NULL, 0, &rows, NULL);
	for (size_t i = 0; !err && i < rows->nrows; i++) {
		const struct rv_val *ev = rv_rows_at(rows, i, 1);
		if (ev->type != RV_VAL_TEXT || !rv_outbox_subscribed(ev->s, event))
			continue;
		struct rv_val p[] = {RV_VINT(val_int(rv_rows_at(rows, i, 0))), RV_VTEXT(event),
		                     RV_VTEXT(body), RV_VTEXT(now), RV_VINT(id)};
		err =
		    rv_db_exec(db,
		               "INSERT INTO outbox (webhook_id, event, payload, status, attempts, "
		               "next_attempt_at, created_at, event_id) VALUES ($1, $2, $3, "
		               "'pending', 0, $4, $4, $5)",
		               p, RV_ARRAY_LEN(p), NULL, NULL);
		if (!err)
			(*count)++;
	}
	rv_rows_free(rows);
	return err;
}

/* Prepare one claimed event. Returns the deliveries it made, or a negative store error (the
 * lease then runs out and the event is tried again). */
static int prepare(struct rv_outbox *ob, int64_t id)
{
	struct rv_rows *rows = NULL;
	struct rv_db *db = NULL;
	json_t *data = NULL, *env = NULL;
	char *body = NULL, event[RV_OUTBOX_EVENT_MAX], created[40], now[40], why[160];
	bool open = false, is_call = false;
	int64_t call_id = 0;
	size_t count = 0;
	json_error_t je;

	struct rv_val p[] = {RV_VINT(id)};
	int err = rv_store_exec(ob->st,
	                        "SELECT event, payload, created_at FROM outbox WHERE id = $1 AND "
	                        "status = 'pending'",
	                        p, 1, &rows, NULL);
	if (err || rows->nrows != 1)
		goto out; /* gone, or sent by another node meanwhile */
	rv_strlcpy(event, rv_rows_at(rows, 0, 0)->s ? rv_rows_at(rows, 0, 0)->s : "",
	           sizeof(event));
	rv_strlcpy(created, rv_rows_at(rows, 0, 2)->s ? rv_rows_at(rows, 0, 2)->s : "",
	           sizeof(created));
	const struct rv_val *pv = rv_rows_at(rows, 0, 1);
	data = pv->type == RV_VAL_TEXT ? json_loadb(pv->s, pv->len, 0, &je) : NULL;
	if (!json_is_object(data)) {
		event_dead(ob, id, "the event's data is not a JSON object");
		goto out;
	}
	if (strcmp(event, RV_OUTBOX_CALL_ENDED) == 0) {
		is_call = true;
		call_id = json_integer_value(json_object_get(data, "call_id"));
		json_decref(data);
		data = NULL;
		err = ob_call_build(ob, call_id, &data);
		if (err == -ENOENT) {
			snprintf(why, sizeof(why), "call %" PRId64 " no longer exists", call_id);
			event_dead(ob, id, why);
			err = 0;
			goto out;
		}
		if (err)
			goto out;
	}
	env = json_pack("{s:I,s:s,s:s,s:O}", "id", (json_int_t)id, "event", event, "created_at",
	                created, "data", data);
	body = env ? json_dumps(env, JSON_COMPACT) : NULL;
	if (!body) {
		err = -ENOMEM;
		goto out;
	}

	err = rv_store_acquire(ob->st, &db);
	if (err)
		goto out;
	err = rv_db_begin(db);
	if (err)
		goto out;
	open = true;
	ob_iso_ms(ob_now_ms(), now, sizeof(now));
	if (is_call)
		err = ob_call_store_tx(ob, db, call_id, data);
	if (!err)
		err = fan_out(db, id, event, body, now, &count);
	if (!err) {
		struct rv_val q[] = {RV_VTEXT(now), RV_VINT(id)};
		err =
		    rv_db_exec(db,
		               "UPDATE outbox SET status = 'sent', sent_at = $1, last_attempt_at = "
		               "$1, locked_until = NULL WHERE id = $2",
		               q, 2, NULL, NULL);
	}
	if (!err)
		err = rv_db_commit(db);
	open = err != 0;
	if (!err) {
		char ids[24], n[24];
		snprintf(ids, sizeof(ids), "%" PRId64, id);
		snprintf(n, sizeof(n), "%zu", count);
		rv_logkv(RV_LOG_INFO, OB_COMP, "event fanned out", "event", event, "event_id", ids,
		         "deliveries", n, NULL);
		rv_metrics_inc("rv_outbox_events_total", 1, event, NULL);
	}
out:
	if (open)
		(void)rv_db_rollback(db);
	if (db)
		rv_store_release(ob->st, db);
	if (err) {
		rv_warn(OB_COMP,
		        "cannot prepare event %" PRId64 " (%s): %s; it is tried again later", id,
		        event, rv_store_strerror(err));
		count_store_error();
	}
	rv_rows_free(rows);
	json_decref(env);
	json_decref(data);
	free(body);
	return err ? err : (int)count;
}

static void *prep_main(void *arg)
{
	struct rv_outbox *ob = arg;
	for (;;) {
		pthread_mutex_lock(&ob->mu);
		bool stop = ob->stop;
		ob->prep_kick = false;
		pthread_mutex_unlock(&ob->mu);
		if (stop)
			break;

		int64_t *ids = NULL;
		size_t n = 0, made = 0;
		if (ob_claim(ob, false, PREP_BATCH, PREP_LEASE_MS, &ids, &n) != 0)
			n = 0;
		for (size_t i = 0; i < n; i++) {
			int r = prepare(ob, ids[i]);
			made += r > 0 ? (size_t)r : 0;
		}
		free(ids);
		if (made)
			ob_sender_wake(ob);
		if (n == PREP_BATCH)
			continue; /* more may be due */

		/* Derived events (lead.dnc, callback.scheduled) are due at once: n > 0 loops
		 * back through the short wait below. */
		int64_t wait = n ? 0 : ob_next_due_ms(ob, false, ob->poll_ms);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait / 1000;
		until.tv_nsec += (long)(wait % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&ob->mu);
		while (!ob->stop && !ob->prep_kick && wait > 0) {
			if (pthread_cond_timedwait(&ob->cv, &ob->mu, &until) == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&ob->mu);
	}
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void register_metrics(void)
{
	static const double lat_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	                                     0.5,   1,    2.5,   5,    10,  30};
	rv_metrics_register("rv_outbox_pending", RV_METRIC_GAUGE,
	                    "Outbox rows (events and deliveries) not yet sent or given up", NULL,
	                    NULL, 0);
	rv_metrics_register("rv_outbox_events_total", RV_METRIC_COUNTER,
	                    "Events fanned out to webhook deliveries", "event", NULL, 0);
	rv_metrics_register("rv_outbox_store_errors_total", RV_METRIC_COUNTER,
	                    "Outbox reads and writes the store refused", NULL, NULL, 0);
	rv_metrics_register("rv_webhook_deliveries_total", RV_METRIC_COUNTER,
	                    "Webhook delivery attempts by result (delivered, retry, dead)",
	                    "result", NULL, 0);
	rv_metrics_register("rv_webhook_delivery_seconds", RV_METRIC_HISTOGRAM,
	                    "Time from sending a webhook POST to its answer (or error)", NULL,
	                    lat_buckets, RV_ARRAY_LEN(lat_buckets));
}

int rv_outbox_start(struct rv_app *app, struct rv_outbox **out, char *err, size_t errlen)
{
	const struct rv_config *cfg = app->cfg;
	struct rv_outbox *ob = rv_xcalloc(1, sizeof(*ob));
	int e = 0;

	ob->app = app;
	ob->st = app->store;
	ob->pg = strcmp(cfg->store_driver, "postgres") == 0;
	ob->max_attempts = cfg->webhooks_max_attempts;
	ob->timeout_ms = cfg->webhooks_timeout_ms;
	ob->base_ms = cfg->webhooks_backoff_base_ms;
	ob->max_ms = cfg->webhooks_backoff_max_ms;
	ob->poll_ms = cfg->webhooks_poll_ms;
	ob->retention_h = cfg->webhooks_retention_hours;
	ob->concurrency = cfg->webhooks_concurrency;
	pthread_mutex_init(&ob->mu, NULL);
	pthread_cond_init(&ob->cv, NULL);
	register_metrics();
	/* With llm.* configured, summaries come from the model (the analysis falls back to its
	 * extractive summary on any model failure). */
	e = rv_llm_from_config(cfg, &ob->llm);
	if (e && e != -ENOENT) {
		snprintf(err, errlen, "outbox: cannot make the LLM client for summaries: %s",
		         strerror(-e));
		goto fail;
	}
	e = 0;

	if (!ob->pg) {
		/* One process owns a SQLite file, so a lease still held at start is one a stopped
		 * or crashed run left behind: free it now rather than after it runs out. */
		int64_t freed = 0;
		int se = rv_store_exec(ob->st,
		                       "UPDATE outbox SET locked_until = NULL WHERE status = "
		                       "'pending' AND locked_until IS NOT NULL",
		                       NULL, 0, NULL, &freed);
		if (se) {
			snprintf(err, errlen, "outbox: cannot read the outbox table: %s",
			         rv_store_strerror(se));
			e = se;
			goto fail;
		}
		if (freed)
			rv_info(OB_COMP, "released %" PRId64 " claims left by the previous run",
			        freed);
	}
	e = ob_sender_start(ob);
	if (e) {
		snprintf(err, errlen, "outbox: cannot start the webhook sender: %s", strerror(-e));
		goto fail;
	}
	e = -pthread_create(&ob->prep, NULL, prep_main, ob);
	if (e) {
		snprintf(err, errlen, "outbox: cannot start a thread: %s", strerror(-e));
		goto fail;
	}
	ob->prep_started = true;
	rv_info(OB_COMP,
	        "outbox started (%s claims, %d attempts, backoff %" PRId64 "..%" PRId64
	        " ms, timeout %" PRId64 " ms)",
	        ob->pg ? "SKIP LOCKED" : "single-node", ob->max_attempts, ob->base_ms, ob->max_ms,
	        ob->timeout_ms);
	*out = ob;
	return 0;
fail:
	rv_outbox_stop(ob);
	return e;
}

void rv_outbox_stop(struct rv_outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->stop = true;
	pthread_cond_broadcast(&ob->cv);
	pthread_mutex_unlock(&ob->mu);
	if (ob->prep_started)
		pthread_join(ob->prep, NULL);
	ob_sender_stop(ob);
	rv_llm_free(ob->llm);
	pthread_cond_destroy(&ob->cv);
	pthread_mutex_destroy(&ob->mu);
	free(ob);
}

void rv_outbox_kick(struct rv_outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->prep_kick = true;
	pthread_cond_signal(&ob->cv);
	pthread_mutex_unlock(&ob->mu);
}
