/*
 * What call.ended carries, built by the outbox's preparer thread (a control-plane thread, so
 * the analysis may be slow): the calls row with its JSON columns parsed, and the post-call
 * analysis computed from the call's turns (src/dialog/postcall.h), which is also stored on
 * the row (calls.summary, calls.extracted). A call that ended with a do-not-call request or
 * booked a callback also yields lead.dnc and callback.scheduled, in the same transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "dialog/postcall.h"
#include "integrations/outbox_int.h"
#include "store/store.h"

/* Rows of a query as an array of objects; JSON text columns listed in json_cols parsed. */
static int rows_json(struct rv_db *db, const char *sql, const struct rv_val *p, size_t n,
                     const char *const *json_cols, size_t njson, json_t **out)
{
	struct rv_rows *rows = NULL;
	int err = rv_db_exec(db, sql, p, n, &rows, NULL);
	if (err)
		return err;
	json_t *a = json_array();
	for (size_t r = 0; r < rows->nrows; r++) {
		json_t *o = json_object();
		for (size_t c = 0; c < rows->ncols; c++) {
			const struct rv_val *v = rv_rows_at(rows, r, c);
			json_t *j = NULL;
			for (size_t k = 0; k < njson && v->type == RV_VAL_TEXT; k++) {
				json_error_t je;
				if (strcmp(rows->cols[c], json_cols[k]) == 0)
					j = json_loadb(v->s, v->len, 0, &je);
			}
			json_object_set_new(o, rows->cols[c], j ? j : ob_val_json(v));
		}
		json_array_append_new(a, o);
	}
	rv_rows_free(rows);
	*out = a;
	return 0;
}

static int load_turns(struct rv_db *db, int64_t call_id, json_t **out)
{
	static const char *const json_cols[] = {"entities", "emotion"};
	struct rv_val p[] = {RV_VINT(call_id)};
	return rows_json(db,
	                 "SELECT seq, speaker, text, intent, confidence, entities, emotion, "
	                 "started_at, ended_at, barge_in FROM call_turns WHERE call_id = $1 "
	                 "ORDER BY seq",
	                 p, 1, json_cols, RV_ARRAY_LEN(json_cols), out);
}

/*
 * The post-call analysis of a call from its row and turns (dialog/postcall.h). The row's
 * disposition is the flow's outcome, except the bare "answered" the telephony service writes
 * when nothing more specific ended the call: the analysis infers that one from the turns, when
 * there are any (a call with no conversation, e.g. the prompt player's, stays "answered").
 */
static int analyse(struct rv_outbox *ob, const json_t *row, const json_t *turns, json_t **out)
{
	struct rv_postcall_turn *t = NULL;
	size_t n = 0;
	int err = rv_postcall_turns_from_json(turns, &t, &n);
	if (err)
		return err;
	const char *disp = json_string_value(json_object_get(row, "disposition"));
	struct rv_postcall_outcome oc = {
	    .disposition = disp && (strcmp(disp, "answered") != 0 || json_array_size(turns) == 0)
	                       ? disp
	                       : NULL,
	    .amd = json_string_value(json_object_get(row, "amd_result")),
	};
	err = rv_postcall_analyze(t, n, &oc, ob->llm, out);
	free(t);
	return err;
}

int ob_call_build(struct rv_outbox *ob, int64_t call_id, json_t **data)
{
	struct rv_db *db = NULL;
	json_t *row = NULL, *turns = NULL, *analysis = NULL;
	int err = rv_store_acquire(ob->st, &db);
	if (err)
		return err;
	row = ob_call_row(db, call_id, &err);
	if (!err)
		err = load_turns(db, call_id, &turns);
	rv_store_release(ob->st, db);
	if (err)
		goto out;

	err = analyse(ob, row, turns, &analysis);
	if (err) {
		/* The event still goes out: the call happened, whatever the analysis made of it. */
		rv_warn(OB_COMP, "call %" PRId64 ": no post-call analysis: %s", call_id,
		        strerror(-err));
		analysis = NULL;
		err = 0;
	}
	json_object_set_new(row, "turn_count", json_integer((json_int_t)json_array_size(turns)));
	json_object_set_new(row, "analysis", analysis ? analysis : json_null());
	analysis = NULL;
	/* The row as it is stored after the analysis (ob_call_store_tx): the summary, and the
	 * whole analysis as the extracted document. */
	json_t *a = json_object_get(row, "analysis");
	if (json_is_object(a)) {
		json_t *summary = json_object_get(a, "summary");
		if (json_is_string(summary))
			json_object_set(row, "summary", summary);
		json_object_set(row, "extracted", a);
	}
	*data = row;
	row = NULL;
out:
	json_decref(row);
	json_decref(turns);
	json_decref(analysis);
	return err;
}

/* An event the call produced, recorded in the fan-out transaction. */
static int derived(struct rv_outbox *ob, struct rv_db *db, const char *event, json_t *data)
{
	int err = rv_outbox_emit(ob->st, db, event, data, NULL);
	json_decref(data);
	return err;
}

static json_t *ids_json(const json_t *call)
{
	return json_pack("{s:O,s:O,s:O}", "call_id", json_object_get(call, "id"), "lead_id",
	                 json_object_get(call, "lead_id"), "campaign_id",
	                 json_object_get(call, "campaign_id"));
}

static int callbacks_tx(struct rv_outbox *ob, struct rv_db *db, int64_t call_id, const json_t *call)
{
	json_t *cbs = NULL;
	size_t i;
	json_t *cb;
	struct rv_val p[] = {RV_VINT(call_id)};
	int err = rows_json(db,
	                    "SELECT id, lead_id, campaign_id, due_at, local_time, status, "
	                    "created_at FROM callbacks WHERE call_id = $1 ORDER BY id",
	                    p, 1, NULL, 0, &cbs);
	json_array_foreach(cbs, i, cb)
	{
		if (err)
			break;
		json_t *d = ids_json(call);
		json_object_set(d, "callback", cb);
		err = derived(ob, db, RV_OUTBOX_CALLBACK_SCHEDULED, d);
	}
	json_decref(cbs);
	return err;
}

/*
 * A do-not-call request on the call: the DNC entry the conversation stored (source "call",
 * listed since the call began, for the lead's number or the far end's), and the disposition
 * the flow ended with. Either one is enough; the entry adds the number and reason.
 */
static int dnc_tx(struct rv_outbox *ob, struct rv_db *db, const json_t *call)
{
	const char *disp = json_string_value(json_object_get(call, "disposition"));
	const char *since = json_string_value(json_object_get(call, "created_at"));
	const char *from = json_string_value(json_object_get(call, "from_uri"));
	const char *to = json_string_value(json_object_get(call, "to_uri"));
	const char *dir = json_string_value(json_object_get(call, "direction"));
	bool outbound = dir && strcmp(dir, "outbound") == 0;
	const char *far = outbound ? to : from;
	json_t *lead_phone = NULL, *entries = NULL, *hit = NULL;
	int err = 0;

	json_int_t lead_id = json_integer_value(json_object_get(call, "lead_id"));
	if (lead_id > 0) {
		json_t *l = NULL;
		struct rv_val p[] = {RV_VINT(lead_id)};
		err = rows_json(db, "SELECT phone FROM leads WHERE id = $1", p, 1, NULL, 0, &l);
		if (!err && json_array_size(l) == 1)
			lead_phone = json_incref(json_object_get(json_array_get(l, 0), "phone"));
		json_decref(l);
	}
	if (!err && since) {
		struct rv_val p[] = {RV_VTEXT(since)};
		err = rows_json(
		    db,
		    "SELECT id, phone, reason, source, created_at FROM dnc WHERE source = "
		    "'call' AND created_at >= $1 ORDER BY id",
		    p, 1, NULL, 0, &entries);
	}
	size_t i;
	json_t *e;
	json_array_foreach(entries, i, e)
	{
		const char *ph = json_string_value(json_object_get(e, "phone"));
		const char *lp = json_string_value(lead_phone);
		if (!ph || !*ph)
			continue;
		if ((lp && strcmp(lp, ph) == 0) || (far && strstr(far, ph))) {
			hit = e;
			break;
		}
	}
	if (!err && (hit || (disp && strcmp(disp, "dnc_request") == 0))) {
		json_t *d = ids_json(call);
		const char *phone = hit ? json_string_value(json_object_get(hit, "phone"))
		                        : json_string_value(lead_phone);
		json_object_set_new(d, "phone", phone ? json_string(phone) : json_null());
		json_object_set(d, "dnc", hit ? hit : json_null());
		json_object_set(d, "disposition", json_object_get(call, "disposition"));
		err = derived(ob, db, RV_OUTBOX_LEAD_DNC, d);
	}
	json_decref(lead_phone);
	json_decref(entries);
	return err;
}

int ob_call_store_tx(struct rv_outbox *ob, struct rv_db *db, int64_t call_id, const json_t *data)
{
	int err = 0;
	const json_t *a = json_object_get(data, "analysis");
	if (json_is_object(a)) {
		const char *summary = json_string_value(json_object_get(a, "summary"));
		char *extracted = json_dumps(a, JSON_COMPACT);
		struct rv_val p[] = {RV_VTEXT(summary), RV_VTEXT(extracted ? extracted : "{}"),
		                     RV_VINT(call_id)};
		err = rv_db_exec(db, "UPDATE calls SET summary = $1, extracted = $2 WHERE id = $3",
		                 p, 3, NULL, NULL);
		free(extracted);
	}
	if (!err)
		err = callbacks_tx(ob, db, call_id, data);
	if (!err)
		err = dnc_tx(ob, db, data);
	return err;
}
