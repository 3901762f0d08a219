/*
 * The voice agent's store writes, on the call's speech worker: turns with their latency marks,
 * the answering-machine result, and what the dialog's actions change (DNC entries, callbacks,
 * lead fields). A failed write is logged and the call goes on.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent_int.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "store/store.h"

static struct rv_store *store(struct call_ag *c)
{
	return c->ag->app->store;
}

static void logfail(struct call_ag *c, const char *what, int err)
{
	rv_warn("agent", "call %lld: cannot store %s: %s", (long long)c->call_id, what,
	        rv_store_strerror(err));
}

/* A monotonic instant as an ISO 8601 UTC time (wall clock now minus the age). */
static void iso_at(uint64_t mono_ns, char *buf, size_t len)
{
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	int64_t now_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
	uint64_t mono_now = rv_time_mono_ns();
	int64_t at_ms =
	    now_ms - (mono_now > mono_ns ? (int64_t)((mono_now - mono_ns) / 1000000) : 0);
	time_t s = (time_t)(at_ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at_ms % 1000));
}

static json_t *row_json(const struct rv_rows *r, size_t row)
{
	json_t *o = json_object();
	for (size_t i = 0; i < r->ncols; i++) {
		const struct rv_val *v = rv_rows_at(r, row, i);
		json_t *j = v->type == RV_VAL_INT    ? json_integer(v->i)
		            : v->type == RV_VAL_REAL ? json_real(v->r)
		            : v->type == RV_VAL_TEXT ? json_stringn(v->s, v->len)
		                                     : json_null();
		json_object_set_new(o, r->cols[i], j);
	}
	return o;
}

int ag_store_load(struct call_ag *c, json_t **campaign, json_t **lead, json_t **flow_doc)
{
	struct rv_rows *rows = NULL;
	int err = 0;
	*campaign = *lead = *flow_doc = NULL;
	if (c->campaign_id) {
		struct rv_val p[] = {RV_VINT(c->campaign_id)};
		err = rv_store_exec(store(c),
		                    "SELECT c.*, f.definition AS flow_definition FROM campaigns c "
		                    "LEFT JOIN flows f ON f.id = c.flow_id WHERE c.id = $1",
		                    p, 1, &rows, NULL);
		if (!err && rows->nrows == 1) {
			*campaign = row_json(rows, 0);
			const char *def =
			    json_string_value(json_object_get(*campaign, "flow_definition"));
			json_error_t je;
			if (def)
				*flow_doc = json_loads(def, 0, &je);
			json_object_del(*campaign, "flow_definition");
			/* The campaign's settings JSON (transfer_to, ...) reads as campaign.X. */
			const char *set = json_string_value(json_object_get(*campaign, "settings"));
			json_t *s = set ? json_loads(set, 0, &je) : NULL;
			if (json_is_object(s))
				json_object_update_missing(*campaign, s);
			json_decref(s);
		}
		rv_rows_free(rows);
		rows = NULL;
	}
	if (!err && c->lead_id) {
		struct rv_val p[] = {RV_VINT(c->lead_id)};
		err =
		    rv_store_exec(store(c), "SELECT * FROM leads WHERE id = $1", p, 1, &rows, NULL);
		if (!err && rows->nrows == 1) {
			*lead = row_json(rows, 0);
			const char *cf = json_string_value(json_object_get(*lead, "custom_fields"));
			json_error_t je;
			json_t *f = cf ? json_loads(cf, 0, &je) : NULL;
			if (json_is_object(f))
				json_object_update_missing(*lead, f);
			json_decref(f);
		}
		rv_rows_free(rows);
	}
	if (err)
		logfail(c, "(reading the campaign)", err);
	return err;
}

void ag_store_turn(struct call_ag *c, int seq, const char *speaker, const char *text,
                   const char *intent, double conf, const json_t *entities, const json_t *emotion,
                   uint64_t started_ns, uint64_t ended_ns)
{
	char st[64], en[64];
	iso_at(started_ns, st, sizeof(st));
	if (ended_ns)
		iso_at(ended_ns, en, sizeof(en));
	char *ents = entities ? json_dumps(entities, JSON_COMPACT) : NULL;
	char *emo = emotion ? json_dumps(emotion, JSON_COMPACT) : NULL;
	struct rv_val p[] = {RV_VINT(c->call_id),
	                     RV_VINT(seq),
	                     RV_VTEXT(speaker),
	                     RV_VTEXT(text ? text : ""),
	                     RV_VTEXT(st),
	                     ended_ns ? RV_VTEXT(en) : RV_VNULL,
	                     RV_VTEXT(intent),
	                     intent ? RV_VREAL(conf) : RV_VNULL,
	                     RV_VTEXT(ents ? ents : "[]"),
	                     RV_VTEXT(emo ? emo : "{}")};
	int err =
	    rv_store_exec(store(c),
	                  "INSERT INTO call_turns (call_id, seq, speaker, text, started_at, "
	                  "ended_at, intent, confidence, entities, emotion) VALUES ($1, $2, $3, "
	                  "$4, $5, $6, $7, $8, $9, $10)",
	                  p, RV_ARRAY_LEN(p), NULL, NULL);
	if (err)
		logfail(c, "a turn", err);
	if (strcmp(speaker, "caller") == 0)
		rv_metrics_inc("rv_agent_turns_total", 1, NULL);
	free(ents);
	free(emo);
}

void ag_store_turn_heard(struct call_ag *c, int seq, bool barge_in, size_t heard_ms)
{
	struct rv_val p[] = {RV_VINT(barge_in), RV_VINT((int64_t)heard_ms), RV_VINT(c->call_id),
	                     RV_VINT(seq)};
	int err =
	    rv_store_exec(store(c),
	                  "UPDATE call_turns SET barge_in = $1, heard_ms = $2 WHERE call_id = "
	                  "$3 AND seq = $4",
	                  p, 4, NULL, NULL);
	if (err)
		logfail(c, "how much of a prompt was heard", err);
}

void ag_store_turn_latency(struct call_ag *c, int seq, const json_t *latency)
{
	char *l = json_dumps(latency, JSON_COMPACT);
	struct rv_val p[] = {RV_VTEXT(l ? l : "{}"), RV_VINT(c->call_id), RV_VINT(seq)};
	int err = rv_store_exec(
	    store(c), "UPDATE call_turns SET latency = $1 WHERE call_id = $2 AND seq = $3", p, 3,
	    NULL, NULL);
	if (err)
		logfail(c, "latency marks", err);
	free(l);
}

void ag_store_amd(struct call_ag *c, const char *result)
{
	struct rv_val p[] = {RV_VTEXT(result), RV_VINT(c->call_id)};
	int err = rv_store_exec(store(c), "UPDATE calls SET amd_result = $1 WHERE id = $2", p, 2,
	                        NULL, NULL);
	if (err)
		logfail(c, "the answering-machine result", err);
}

/* The caller's number: the lead's, else the far end of the call. */
static const char *caller_number(struct call_ag *c)
{
	const char *p = json_string_value(json_object_get(c->lead, "phone"));
	if (p && *p)
		return p;
	return c->outbound ? c->to : c->from;
}

void ag_store_dnc(struct call_ag *c, const char *reason)
{
	char now[40];
	rv_time_iso_now(now, sizeof(now));
	const char *phone = caller_number(c);
	if (!phone || phone[0] != '+') {
		rv_warn("agent",
		        "call %lld: a do-not-call request, but no E.164 number to list (%s)",
		        (long long)c->call_id, phone ? phone : "none");
		return;
	}
	struct rv_val p[] = {RV_VTEXT(phone), RV_VTEXT(reason), RV_VTEXT(now)};
	int err =
	    rv_store_exec(store(c),
	                  "INSERT INTO dnc (phone, reason, source, created_at) VALUES ($1, $2, "
	                  "'call', $3) ON CONFLICT (phone) DO NOTHING",
	                  p, 3, NULL, NULL);
	if (!err) {
		struct rv_val q[] = {RV_VTEXT(now), RV_VTEXT(phone)};
		err = rv_store_exec(
		    store(c), "UPDATE leads SET status = 'dnc', updated_at = $1 WHERE phone = $2",
		    q, 2, NULL, NULL);
	}
	if (err)
		logfail(c, "a do-not-call entry", err);
	else
		rv_logkv(RV_LOG_INFO, "agent", "do-not-call request stored", "phone", phone, NULL);
}

void ag_store_callback(struct call_ag *c, const char *at)
{
	int64_t ms;
	if (rv_time_parse_iso(at, &ms) != 0) {
		rv_warn("agent", "call %lld: callback time \"%s\" is not a date-time",
		        (long long)c->call_id, at);
		return;
	}
	char utc[40], now[40];
	rv_time_iso(ms / 1000, utc, sizeof(utc));
	rv_time_iso_now(now, sizeof(now));
	struct rv_val p[] = {RV_VINT(c->call_id),
	                     c->lead_id ? RV_VINT(c->lead_id) : RV_VNULL,
	                     c->campaign_id ? RV_VINT(c->campaign_id) : RV_VNULL,
	                     RV_VTEXT(utc),
	                     RV_VTEXT(at),
	                     RV_VTEXT(now)};
	int err = rv_store_exec(store(c),
	                        "INSERT INTO callbacks (call_id, lead_id, campaign_id, due_at, "
	                        "local_time, status, created_at) VALUES ($1, $2, $3, $4, $5, "
	                        "'pending', $6)",
	                        p, RV_ARRAY_LEN(p), NULL, NULL);
	if (!err && c->lead_id) {
		struct rv_val q[] = {RV_VTEXT(utc), RV_VTEXT(now), RV_VINT(c->lead_id)};
		err = rv_store_exec(store(c),
		                    "UPDATE leads SET status = 'callback', next_attempt_at = $1, "
		                    "updated_at = $2 WHERE id = $3",
		                    q, 3, NULL, NULL);
	}
	if (err)
		logfail(c, "a callback", err);
	else
		rv_logkv(RV_LOG_INFO, "agent", "callback scheduled", "at", at, "utc", utc, NULL);
}

void ag_store_set_field(struct call_ag *c, const char *field, const json_t *value)
{
	if (!c->lead_id)
		return;
	/* Read-modify-write of the lead's custom fields; the call is the only writer of its
	 * lead while it runs. */
	struct rv_rows *rows = NULL;
	struct rv_val p[] = {RV_VINT(c->lead_id)};
	int err = rv_store_exec(store(c), "SELECT custom_fields FROM leads WHERE id = $1", p, 1,
	                        &rows, NULL);
	if (err || rows->nrows != 1) {
		rv_rows_free(rows);
		if (err)
			logfail(c, "a lead field", err);
		return;
	}
	json_error_t je;
	const struct rv_val *v = rv_rows_at(rows, 0, 0);
	json_t *f = v->type == RV_VAL_TEXT ? json_loads(v->s, 0, &je) : NULL;
	rv_rows_free(rows);
	if (!json_is_object(f)) {
		json_decref(f);
		f = json_object();
	}
	json_object_set(f, field, value ? (json_t *)value : json_null());
	char *s = json_dumps(f, JSON_COMPACT);
	char now[40];
	rv_time_iso_now(now, sizeof(now));
	struct rv_val q[] = {RV_VTEXT(s ? s : "{}"), RV_VTEXT(now), RV_VINT(c->lead_id)};
	err = rv_store_exec(store(c),
	                    "UPDATE leads SET custom_fields = $1, updated_at = $2 WHERE id = $3", q,
	                    3, NULL, NULL);
	if (err)
		logfail(c, "a lead field", err);
	free(s);
	json_decref(f);
}
