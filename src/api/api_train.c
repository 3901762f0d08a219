/*
 * Trained intent models: train, version, list and activate.
 *   POST /api/voice-ai/train-model            train from labelled examples (manager)
 *   GET  /api/voice-ai/models                 every stored version, newest first
 *   GET  /api/voice-ai/models/{id}            one version
 *   POST /api/voice-ai/models/{id}/activate   make it the model calls use; "builtin" goes back
 * Versions live in the intent_models table (migration 0003) as rv_intent_save() bytes; the
 * active one is swapped into src/nlu/model_registry.c, so turns already running finish on the
 * model they started with.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/audit.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "nlu/intent.h"
#include "nlu/model_registry.h"
#include "obs/metrics.h"
#include "store/store.h"

#define COMP         "nlu"
#define MAX_EXAMPLES 20000 /* given in one request, besides the built-in ones */
#define MAX_NAME     64
#define MODEL_COLS                                                                                 \
	"id, name, version, size_bytes, n_examples, n_holdout, holdout_accuracy, temperature, "    \
	"n_features, labels, include_builtin, active, created_at, activated_at"

/* One training at a time: it is CPU-bound for seconds and runs on an HTTP thread. */
static pthread_mutex_t train_lock = PTHREAD_MUTEX_INITIALIZER;
/* Store activation and the registry swap happen together, so the two always agree. */
static pthread_mutex_t activate_lock = PTHREAD_MUTEX_INITIALIZER;
static bool restored;

static void metrics_once(void)
{
	rv_metrics_register("rv_intent_models_trained_total", RV_METRIC_COUNTER,
	                    "Intent models trained through the API, by outcome", "outcome", NULL,
	                    0);
	rv_metrics_register("rv_intent_model_train_seconds", RV_METRIC_HISTOGRAM,
	                    "Time to train an intent model through the API", NULL, NULL, 0);
}

static pthread_once_t metrics_init = PTHREAD_ONCE_INIT;

static json_t *field(const char *name)
{
	return json_pack("{s:s}", "field", name);
}

static void reply_store_error(struct rv_http_resp *resp, int err)
{
	rv_warn(COMP, "intent models: store error: %s", rv_store_strerror(err));
	if (err == RV_STORE_EBUSY || err == -ETIMEDOUT)
		rv_http_reply_error(resp, 503, "unavailable", NULL, "the database is busy");
	else
		rv_http_reply_error(resp, 500, "internal", NULL, "internal error");
}

/* Load the stored active version into the registry, once per process (again after a failure).
 * Returns 0 or a store error. Caller holds activate_lock. */
static int restore_locked(struct rv_app *app)
{
	if (restored)
		return 0;
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(app->store,
	                        "SELECT id, model FROM intent_models WHERE active = 1 "
	                        "ORDER BY id DESC LIMIT 1",
	                        NULL, 0, &rows, NULL);
	if (err)
		return err;
	if (rows->nrows == 1) {
		const struct rv_val *id = rv_rows_at(rows, 0, 0), *blob = rv_rows_at(rows, 0, 1);
		struct rv_intent_model *m = NULL;
		if (blob->type == RV_VAL_BLOB &&
		    rv_intent_load((const uint8_t *)blob->s, blob->len, &m) == 0 &&
		    rv_intent_registry_activate(m, id->i) == 0) {
			rv_info(COMP, "intent model %lld is active", (long long)id->i);
		} else {
			rv_intent_free(m);
			rv_error(COMP,
			         "the active intent model %lld cannot be loaded; using the "
			         "built-in model",
			         (long long)id->i);
		}
	}
	rv_rows_free(rows);
	restored = true;
	return 0;
}

int rv_api_models_restore(struct rv_app *app)
{
	pthread_mutex_lock(&activate_lock);
	int err = restore_locked(app);
	pthread_mutex_unlock(&activate_lock);
	return err;
}

static json_t *model_json(const struct rv_rows *rows, size_t r)
{
	const struct rv_val *v = rv_rows_at(rows, r, 0);
	json_error_t je;
	json_t *labels = json_loads(v[9].type == RV_VAL_TEXT ? v[9].s : "{}", 0, &je);
	return json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:o, s:f, s:I, s:o, s:b, s:b, s:s, s:o}",
	                 "id", (json_int_t)v[0].i, "name", v[1].s ? v[1].s : "", "version",
	                 (json_int_t)v[2].i, "size_bytes", (json_int_t)v[3].i, "n_examples",
	                 (json_int_t)v[4].i, "n_holdout", (json_int_t)v[5].i, "holdout_accuracy",
	                 v[6].type == RV_VAL_REAL ? json_real(v[6].r) : json_null(), "temperature",
	                 v[7].r, "n_features", (json_int_t)v[8].i, "labels",
	                 labels ? labels : json_object(), "include_builtin", (int)v[10].i, "active",
	                 (int)v[11].i, "created_at", v[12].s ? v[12].s : "", "activated_at",
	                 v[13].type == RV_VAL_TEXT ? json_string(v[13].s) : json_null());
}

/* The label rules: what flows can name in "on" and "globals". */
static bool label_ok(const char *l, size_t len)
{
	if (len == 0 || len >= RV_INTENT_MAX_LABEL)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = l[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == ' '))
			return false;
	}
	return true;
}

/* Check the body; on success the examples point into body (and into *builtin_buf). */
static int parse_train_body(json_t *body, struct rv_http_resp *resp, const char **name,
                            struct rv_intent_example **exp, size_t *nexp, char **builtin_buf,
                            double *holdout, bool *incl, bool *activate)
{
	static const char *const allowed[] = {"name",    "examples", "include_builtin",
	                                      "holdout", "activate", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v)
	{
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (!allowed[i]) {
			rv_http_reply_error(resp, 400, "invalid_field", field(k),
			                    "unknown field \"%s\"", k);
			return -EINVAL;
		}
	}
	json_t *jn = json_object_get(body, "name");
	if (!json_is_string(jn) || !name_ok(json_string_value(jn), json_string_length(jn))) {
		rv_http_reply_error(resp, 400, "invalid_field", field("name"),
		                    "\"name\" is required: 1-%d letters, digits, spaces or _ - .",
		                    MAX_NAME);
		return -EINVAL;
	}
	*name = json_string_value(jn);
	json_t *ji = json_object_get(body, "include_builtin"),
	       *ja = json_object_get(body, "activate"), *jh = json_object_get(body, "holdout");
	if ((ji && !json_is_boolean(ji)) || (ja && !json_is_boolean(ja))) {
		rv_http_reply_error(
		    resp, 400, "invalid_field",
		    field(ji && !json_is_boolean(ji) ? "include_builtin" : "activate"),
		    "\"include_builtin\" and \"activate\" are true or false");
		return -EINVAL;
	}
	*incl = json_is_true(ji);
	*activate = json_is_true(ja);
	*holdout = 0.2;
	if (jh) {
		double h = json_is_number(jh) ? json_number_value(jh) : -1;
		if (!(h >= 0 && h <= 0.5)) {
			rv_http_reply_error(
			    resp, 400, "invalid_field", field("holdout"),
			    "\"holdout\" is the share held out to measure accuracy, "
			    "from 0 to 0.5");
			return -EINVAL;
		}
		*holdout = h;
	}
	json_t *je = json_object_get(body, "examples");
	if (je && !json_is_array(je)) {
		rv_http_reply_error(resp, 400, "invalid_field", field("examples"),
		                    "\"examples\" is a list of {\"intent\", \"text\"}");
		return -EINVAL;
	}
	size_t ne = je ? json_array_size(je) : 0;
	if (ne > MAX_EXAMPLES || (ne == 0 && !*incl)) {
		rv_http_reply_error(resp, 400, "invalid_field", field("examples"),
		                    "give 1 to %d \"examples\" (and/or \"include_builtin\": true)",
		                    MAX_EXAMPLES);
		return -EINVAL;
	}
	struct rv_intent_example *bex = NULL;
	long nb = 0;
	if (*incl) {
		nb = rv_intent_builtin_examples(builtin_buf, &bex);
		if (nb < 0) {
			rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
			return (int)nb;
		}
	}
	struct rv_intent_example *ex = malloc((ne + (size_t)nb + 1) * sizeof(*ex));
	if (!ex) {
		free(bex);
		rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < ne; i++) {
		json_t *e = json_array_get(je, i), *ji2, *jt;
		char f[48];
		const char *bad = NULL, *why = NULL;
		if (!json_is_object(e) || json_object_size(e) != 2) {
			bad = "";
			why = "is an object with exactly \"intent\" and \"text\"";
		} else if (!json_is_string(ji2 = json_object_get(e, "intent")) ||
		           !label_ok(json_string_value(ji2), json_string_length(ji2))) {
			bad = ".intent";
			why = "is 1-47 letters, digits or _ - . :";
		} else if (!json_is_string(jt = json_object_get(e, "text")) ||
		           json_string_length(jt) == 0 ||
		           json_string_length(jt) > RV_INTENT_MAX_TEXT) {
			bad = ".text";
			why = "is a non-empty caller utterance of at most 2000 bytes";
		}
		if (bad) {
			snprintf(f, sizeof(f), "examples[%zu]%s", i, bad);
			rv_http_reply_error(resp, 400, "invalid_field", field(f), "%s %s", f, why);
			free(ex);
			free(bex);
			return -EINVAL;
		}
		ex[i].label = json_string_value(ji2);
		ex[i].text = json_string_value(jt);
	}
	if (nb > 0)
		memcpy(ex + ne, bex, (size_t)nb * sizeof(*ex));
	free(bex);
	*exp = ex;
	*nexp = ne + (size_t)nb;
	return 0;
}

static void train_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	json_t *body = NULL, *labels = NULL;
	struct rv_intent_example *ex = NULL;
	char *builtin_buf = NULL;
	struct rv_intent_model *m = NULL;
	struct rv_rows *rows = NULL;
	struct rv_db *db = NULL;
	uint8_t *bin = NULL;
	size_t nex = 0, len = 0;
	bool locked = false, in_tx = false, act_locked = false;
	const char *name = NULL;
	double holdout = 0.2;
	bool incl = false, activate = false;
	int err;

	pthread_once(&metrics_init, metrics_once);
	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	if (parse_train_body(body, resp, &name, &ex, &nex, &builtin_buf, &holdout, &incl,
	                     &activate) != 0)
		goto out;
	if (pthread_mutex_trylock(&train_lock) != 0) {
		rv_http_reply_error(resp, 409, "conflict", NULL,
		                    "another model is being trained; try again when it is done");
		goto out;
	}
	locked = true;

	struct rv_intent_train_cfg cfg;
	rv_intent_train_defaults(&cfg);
	cfg.holdout = holdout;
	struct rv_intent_report rep;
	char why[160] = "";
	uint64_t t0 = rv_time_mono_ns();
	err = rv_intent_train(ex, nex, &cfg, &m, &rep, why, sizeof(why));
	double secs = (double)(rv_time_mono_ns() - t0) / 1e9;
	if (err) {
		rv_metrics_inc("rv_intent_models_trained_total", 1, "rejected", (const char *)NULL);
		if (err == -ENOMEM) {
			rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
		} else {
			rv_info(COMP, "train-model \"%s\": %s", name, why);
			rv_http_reply_error(resp, 400, "invalid_field", field("examples"),
			                    "cannot train on these examples: %s", why);
		}
		goto out;
	}
	rv_metrics_observe("rv_intent_model_train_seconds", secs, (const char *)NULL);
	if ((err = rv_intent_save(m, &bin, &len)) != 0) {
		rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
		goto out;
	}
	/* Examples per intent, in the model's label order. */
	labels = json_object();
	const char *const *names;
	unsigned k = rv_intent_labels(m, &names);
	for (unsigned c = 0; c < k; c++) {
		json_int_t cnt = 0;
		for (size_t i = 0; i < nex; i++)
			cnt += strcmp(ex[i].label, names[c]) == 0;
		json_object_set_new(labels, names[c], json_integer(cnt));
	}
	char *labels_s = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	if (!labels_s) {
		rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
		goto out;
	}

	char now[32];
	rv_time_iso_now(now, sizeof(now));
	if (activate) {
		pthread_mutex_lock(&activate_lock);
		act_locked = true;
		/* Activating after a restart must not be undone by a later restore. */
		restore_locked(app);
	}
	err = rv_store_acquire(app->store, &db);
	if (!err)
		err = rv_db_begin(db);
	in_tx = !err;
	struct rv_val pn[] = {RV_VTEXT(name)};
	if (!err)
		err = rv_db_exec(db,
		                 "SELECT COALESCE(MAX(version), 0) + 1 FROM intent_models "
		                 "WHERE name = $1",
		                 pn, 1, &rows, NULL);
	int64_t version = !err && rows->nrows == 1 ? rv_rows_at(rows, 0, 0)->i : 1;
	rv_rows_free(rows);
	rows = NULL;
	struct rv_val p[] = {RV_VTEXT(name),
	                     RV_VINT(version),
	                     RV_VBLOB(bin, len),
	                     RV_VINT((int64_t)len),
	                     RV_VINT((int64_t)nex),
	                     RV_VINT((int64_t)rep.n_holdout),
	                     rep.holdout_accuracy >= 0 ? RV_VREAL(rep.holdout_accuracy) : RV_VNULL,
	                     RV_VREAL(rep.temperature),
	                     RV_VINT((int64_t)rep.n_features),
	                     RV_VTEXT(labels_s),
	                     RV_VINT(incl),
	                     RV_VINT(activate),
	                     req->who.user_id > 0 ? RV_VINT(req->who.user_id) : RV_VNULL,
	                     RV_VTEXT(now),
	                     activate ? RV_VTEXT(now) : RV_VNULL};
	if (!err && activate)
		err = rv_db_exec(db, "UPDATE intent_models SET active = 0 WHERE active = 1", NULL,
		                 0, NULL, NULL);
	if (!err)
		err =
		    rv_db_exec(db,
		               "INSERT INTO intent_models (name, version, model, size_bytes, "
		               "n_examples, n_holdout, holdout_accuracy, temperature, n_features, "
		               "labels, include_builtin, active, created_by, created_at, "
		               "activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
		               "$11, $12, $13, $14, $15) RETURNING " MODEL_COLS,
		               p, RV_ARRAY_LEN(p), &rows, NULL);
	free(labels_s);
	int64_t id = !err && rows->nrows == 1 ? rv_rows_at(rows, 0, 0)->i : 0;
	if (!err) {
		json_t *d = json_pack("{s:s, s:I, s:b}", "name", name, "version",
		                      (json_int_t)version, "activate", activate);
		err = rv_audit(db, req, "create", "intent_models", id, d);
		json_decref(d);
	}
	if (!err)
		err = rv_db_commit(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = false;
	if (activate && rv_intent_registry_activate(m, id) == 0)
		m = NULL;
	rv_metrics_inc("rv_intent_models_trained_total", 1, "stored", (const char *)NULL);
	rv_logkv(RV_LOG_INFO, COMP, "intent model trained", "name", name, "by", req->who.email,
	         (const char *)NULL);
	json_t *out = model_json(rows, 0);
	json_object_set_new(out, "train_seconds", json_real(secs));
	rv_http_reply_json(resp, 201, out);
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	if (act_locked)
		pthread_mutex_unlock(&activate_lock);
	if (locked)
		pthread_mutex_unlock(&train_lock);
	rv_rows_free(rows);
	rv_intent_free(m);
	free(bin);
	free(ex);
	free(builtin_buf);
	json_decref(labels);
	json_decref(body);
}

static void list_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	struct rv_rows *rows = NULL;
	int err = rv_api_models_restore(app);
	if (!err)
		err = rv_store_exec(app->store,
		                    "SELECT " MODEL_COLS " FROM intent_models ORDER BY id DESC "
		                    "LIMIT 1000",
		                    NULL, 0, &rows, NULL);
	if (err) {
		reply_store_error(resp, err);
		return;
	}
	json_t *list = json_array();
	for (size_t r = 0; r < rows->nrows; r++)
		json_array_append_new(list, model_json(rows, r));
	rv_rows_free(rows);
	int64_t active = rv_intent_registry_active_version();
	rv_http_reply_json(resp, 200,
	                   json_pack("{s:o, s:o}", "models", list, "active",
	                             active ? json_integer(active) : json_string("builtin")));
}

static int model_id(struct rv_http_req *req, struct rv_http_resp *resp, int64_t *id)
{
	if (req->nparams < 1 || rv_parse_int64(req->params[0], 1, INT64_MAX, id) != 0) {
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such model");
		return -ENOENT;
	}
	return 0;
}

static void get_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	int64_t id;
	struct rv_rows *rows = NULL;
	if (model_id(req, resp, &id) != 0)
		return;
	struct rv_val p[] = {RV_VINT(id)};
	int err =
	    rv_store_exec(app->store, "SELECT " MODEL_COLS " FROM intent_models WHERE id = $1", p,
	                  1, &rows, NULL);
	if (err) {
		reply_store_error(resp, err);
		return;
	}
	if (rows->nrows == 0)
		rv_http_reply_error(resp, 404, "not_found", NULL, "no such model");
	else
		rv_http_reply_json(resp, 200, model_json(rows, 0));
	rv_rows_free(rows);
}

static void activate_h(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	int64_t id = 0;
	bool builtin = req->nparams >= 1 && strcmp(req->params[0], "builtin") == 0;
	struct rv_rows *rows = NULL;
	struct rv_intent_model *m = NULL;
	struct rv_db *db = NULL;
	bool in_tx = false;
	char now[32];
	int err;
	if (!builtin && model_id(req, resp, &id) != 0)
		return;
	pthread_mutex_lock(&activate_lock);
	if ((err = restore_locked(app)) != 0) {
		reply_store_error(resp, err);
		goto out;
	}
	if (!builtin) {
		struct rv_val p[] = {RV_VINT(id)};
		err = rv_store_exec(app->store, "SELECT model FROM intent_models WHERE id = $1", p,
		                    1, &rows, NULL);
		if (err) {
			reply_store_error(resp, err);
			goto out;
		}
		if (rows->nrows == 0) {
			rv_http_reply_error(resp, 404, "not_found", NULL, "no such model");
			goto out;
		}
		const struct rv_val *b = rv_rows_at(rows, 0, 0);
		if (b->type != RV_VAL_BLOB ||
		    rv_intent_load((const uint8_t *)b->s, b->len, &m) != 0) {
			rv_error(COMP, "intent model %lld is corrupt in the store", (long long)id);
			rv_http_reply_error(resp, 422, "unprocessable", NULL,
			                    "the stored model %lld cannot be loaded",
			                    (long long)id);
			goto out;
		}
		rv_rows_free(rows);
		rows = NULL;
	}
	rv_time_iso_now(now, sizeof(now));
	err = rv_store_acquire(app->store, &db);
	if (!err)
		err = rv_db_begin(db);
	in_tx = !err;
	if (!err)
		err = rv_db_exec(db, "UPDATE intent_models SET active = 0 WHERE active = 1", NULL,
		                 0, NULL, NULL);
	struct rv_val p2[] = {RV_VTEXT(now), RV_VINT(id)};
	if (!err && !builtin)
		err = rv_db_exec(
		    db, "UPDATE intent_models SET active = 1, activated_at = $1 WHERE id = $2", p2,
		    2, NULL, NULL);
	if (!err)
		err = rv_audit(db, req, "activate", "intent_models", id, NULL);
	if (!err)
		err = rv_db_commit(db);
	if (err) {
		reply_store_error(resp, err);
		goto out;
	}
	in_tx = false;
	if (builtin) {
		rv_intent_registry_reset();
	} else if ((err = rv_intent_registry_activate(m, id)) != 0) {
		rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
		goto out;
	} else {
		m = NULL;
	}
	rv_logkv(RV_LOG_INFO, COMP, "intent model activated", "model",
	         builtin ? "builtin" : req->params[0], "by", req->who.email, (const char *)NULL);
	rv_http_reply_json(
	    resp, 200,
	    json_pack("{s:o}", "active", builtin ? json_string("builtin") : json_integer(id)));
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	pthread_mutex_unlock(&activate_lock);
	rv_rows_free(rows);
	rv_intent_free(m);
}

const struct rv_route rv_api_train_routes[] = {
    /* Example lists are uploads: the larger http.max_upload cap applies. */
    {"POST", "/api/voice-ai/train-model", RV_ROLE_MANAGER, RV_ROUTE_UPLOAD, train_h},
    {"GET", "/api/voice-ai/models", RV_ROLE_VIEWER, 0, list_h},
    {"GET", "/api/voice-ai/models/{id}", RV_ROLE_VIEWER, 0, get_h},
    {"POST", "/api/voice-ai/models/{id}/activate", RV_ROLE_MANAGER, 0, activate_h},
};
const size_t rv_api_train_routes_len = sizeof(rv_api_train_routes) / sizeof(rv_api_train_routes[0]);
