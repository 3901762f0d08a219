/* The demo data of `make run`: see demo.h. */
#include "campaign/demo.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "dialog/flow.h"
#include "store/store.h"

static const struct {
	const char *builtin, *name, *description;
} FLOWS[] = {
    {"appointment", "Appointment setting (example)",
     "Books an appointment or a callback; the shipped example of src/dialog/flows."},
    {"support", "Support triage (example)",
     "Inbound triage: billing or technical, account number, callback number."},
};

int rv_demo_seed(struct rv_app *app)
{
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	int64_t appt = 0;
	char now[40];
	rv_time_iso_now(now, sizeof(now));
	int err = rv_store_acquire(app->store, &db);
	if (err)
		return err;
	err = rv_db_begin(db);
	if (!err)
		err = rv_db_exec(db, "SELECT COUNT(*) FROM flows", NULL, 0, &rows, NULL);
	if (err || rv_rows_at(rows, 0, 0)->i > 0)
		goto out;
	for (size_t i = 0; i < RV_ARRAY_LEN(FLOWS); i++) {
		struct rv_rows *id = NULL;
		struct rv_val p[] = {RV_VTEXT(FLOWS[i].name), RV_VTEXT(FLOWS[i].description),
		                     RV_VTEXT(rv_flow_builtin_json(FLOWS[i].builtin)),
		                     RV_VTEXT(now)};
		err = rv_db_exec(
		    db,
		    "INSERT INTO flows (name, description, kind, definition, created_at, "
		    "updated_at) VALUES ($1, $2, 'scripted', $3, $4, $4) RETURNING id",
		    p, 4, &id, NULL);
		if (!err && i == 0)
			appt = rv_rows_at(id, 0, 0)->i;
		rv_rows_free(id);
		if (err)
			goto out;
	}
	struct rv_val c[] = {RV_VINT(appt), RV_VTEXT(now)};
	err = rv_db_exec(
	    db,
	    "INSERT INTO campaigns (name, description, status, flow_id, inbound_numbers, "
	    "settings, created_at, updated_at) VALUES ('Demo appointments', 'Call "
	    "sip:demo@<this host> from a softphone to talk to the agent.', 'active', $1, "
	    "'demo', '{}', $2, $2)",
	    c, 2, NULL, NULL);
out:
	rv_rows_free(rows);
	if (err) {
		rv_db_rollback(db);
		rv_warn("demo", "could not seed the demo: %s", rv_store_strerror(err));
	} else if (rv_db_commit(db) == 0 && appt) {
		rv_info("demo",
		        "seeded the demo: call sip:demo@<this host>:<sip port> from a softphone");
	}
	rv_store_release(app->store, db);
	return err;
}
