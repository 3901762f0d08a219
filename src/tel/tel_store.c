/*
 * The telephony service's control-plane side: the store writer thread (row writes in event
 * order, so the media loop never touches the store), the routing snapshot rebuilt from the
 * campaigns table by its own thread, and the table of live calls the API addresses by id.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "integrations/outbox.h"
#include "obs/metrics.h"
#include "store/store.h"
#include "tel/tel_int.h"

#define ROUTES_REFRESH_S 5
#define LIVE_MAX         100000

/* ---- jobs ------------------------------------------------------------------------------- */

struct tel_job *tel_job_new(enum tel_job_kind kind, uint64_t key, int64_t id)
{
	struct tel_job *j = rv_xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->key = key;
	j->id = id;
	return j;
}

static struct rv_val *job_slot(struct tel_job *j, const char *col)
{
	for (size_t i = 0; i < j->n; i++) {
		if (strcmp(j->cols[i], col) == 0) {
			free(j->owned[i]);
			j->owned[i] = NULL;
			return &j->vals[i];
		}
	}
	if (j->n >= TEL_JOB_MAX_COLS) {
		rv_error(TEL_COMP, "internal: too many columns in one row write (%s dropped)", col);
		return NULL;
	}
	j->cols[j->n] = col;
	return &j->vals[j->n++];
}

void tel_job_text(struct tel_job *j, const char *col, const char *s)
{
	struct rv_val *v = job_slot(j, col);
	if (!v)
		return;
	if (!s) {
		*v = RV_VNULL;
		return;
	}
	char *copy = rv_xstrdup(s);
	j->owned[v - j->vals] = copy;
	*v = RV_VTEXT(copy);
}

void tel_job_int(struct tel_job *j, const char *col, int64_t val)
{
	struct rv_val *v = job_slot(j, col);
	if (v)
		*v = RV_VINT(val);
}

void tel_job_free(struct tel_job *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++)
		free(j->owned[i]);
	free(j);
}

void tel_job_push(struct rv_tel *tel, struct tel_job *j)
{
	pthread_mutex_lock(&tel->wmu);
	j->next = NULL;
	if (tel->wtail)
		tel->wtail->next = j;
	else
		tel->whead = j;
	tel->wtail = j;
	pthread_cond_signal(&tel->wcv);
	pthread_mutex_unlock(&tel->wmu);
}

/* ---- the writer thread ------------------------------------------------------------------ */

static void count_store_error(void)
{
	rv_metrics_inc("rv_tel_store_errors_total", 1, NULL);
}

static int64_t wmap_find(struct rv_tel *tel, uint64_t key, bool remove)
{
	for (size_t i = 0; i < tel->nwmap; i++) {
		if (tel->wmap[i].key != key)
			continue;
		int64_t id = tel->wmap[i].id;
		if (remove)
			tel->wmap[i] = tel->wmap[--tel->nwmap];
		return id;
	}
	return 0;
}

static void wmap_add(struct rv_tel *tel, uint64_t key, int64_t id)
{
	if (tel->nwmap == tel->wmap_cap) {
		size_t cap = tel->wmap_cap ? tel->wmap_cap * 2 : 64;
		void *n = realloc(tel->wmap, cap * sizeof(*tel->wmap));
		if (!n) {
			rv_error(TEL_COMP, "out of memory in the store writer");
			abort();
		}
		tel->wmap = n;
		tel->wmap_cap = cap;
	}
	tel->wmap[tel->nwmap].key = key;
	tel->wmap[tel->nwmap].id = id;
	tel->nwmap++;
}

/* Append to a fixed SQL buffer; the column names are ours, so overflow is a bug, not input. */
static void sql_cat(char *sql, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sql_cat(char *sql, size_t cap, const char *fmt, ...)
{
	size_t len = strlen(sql);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql + len, cap - len, fmt, ap);
	va_end(ap);
}

/* The webhook event a row write is, if any: the call answered, or the call ended. */
static const char *job_event(const struct tel_job *j)
{
	const char *ev = NULL;
	for (size_t i = 0; i < j->n; i++) {
		if (strcmp(j->cols[i], "ended_at") == 0)
			return RV_OUTBOX_CALL_ENDED;
		if (strcmp(j->cols[i], "answered_at") == 0)
			ev = RV_OUTBOX_CALL_ANSWERED;
	}
	return ev;
}

static void run_job(struct rv_tel *tel, struct tel_job *j)
{
	char sql[2048] = "";
	struct rv_val params[TEL_JOB_MAX_COLS + 1];
	struct rv_rows *rows = NULL;
	int err;

	if (j->kind == TEL_JOB_INSERT) {
		sql_cat(sql, sizeof(sql), "INSERT INTO calls (");
		for (size_t i = 0; i < j->n; i++)
			sql_cat(sql, sizeof(sql), "%s%s", i ? ", " : "", j->cols[i]);
		sql_cat(sql, sizeof(sql), ") VALUES (");
		for (size_t i = 0; i < j->n; i++)
			sql_cat(sql, sizeof(sql), "%s$%zu", i ? ", " : "", i + 1);
		sql_cat(sql, sizeof(sql), ") RETURNING id");
		err = rv_store_exec(tel->app->store, sql, j->vals, j->n, &rows, NULL);
		if (err || rows->nrows != 1 || rv_rows_at(rows, 0, 0)->type != RV_VAL_INT) {
			rv_error(TEL_COMP, "cannot insert a call row: %s",
			         err ? rv_store_strerror(err) : "no id returned");
			count_store_error();
		} else {
			int64_t id = rv_rows_at(rows, 0, 0)->i;
			if (!j->final)
				wmap_add(tel, j->key, id);
			if (tel->inserted_h)
				tel->inserted_h(tel, j->key, id);
		}
		if (rows)
			rv_rows_free(rows);
		return;
	}

	int64_t id = j->id ? j->id : wmap_find(tel, j->key, false);
	if (j->final && j->key)
		(void)wmap_find(tel, j->key, true);
	if (!id) {
		/* The insert failed (logged then); nothing to update. */
		return;
	}
	if (j->n == 0)
		return;
	sql_cat(sql, sizeof(sql), "UPDATE calls SET ");
	for (size_t i = 0; i < j->n; i++) {
		sql_cat(sql, sizeof(sql), "%s%s = $%zu", i ? ", " : "", j->cols[i], i + 1);
		params[i] = j->vals[i];
	}
	sql_cat(sql, sizeof(sql), " WHERE id = $%zu", j->n + 1);
	params[j->n] = RV_VINT(id);
	/* The outbox records the event in the row's own transaction (outbox.h). */
	const char *event = job_event(j);
	if (event)
		err = rv_outbox_call_update(tel->app, sql, params, j->n + 1, id, event);
	else
		err = rv_store_exec(tel->app->store, sql, params, j->n + 1, NULL, NULL);
	if (err) {
		char ids[24];
		snprintf(ids, sizeof(ids), "%" PRId64, id);
		rv_logkv(RV_LOG_ERROR, TEL_COMP, "cannot update a call row", "call", ids, "error",
		         rv_store_strerror(err), NULL);
		count_store_error();
	}
}

static void *writer_main(void *arg)
{
	struct rv_tel *tel = arg;
	pthread_mutex_lock(&tel->wmu);
	for (;;) {
		while (!tel->whead && !tel->wstop)
			pthread_cond_wait(&tel->wcv, &tel->wmu);
		struct tel_job *j = tel->whead;
		if (!j)
			break; /* stopping and drained */
		tel->whead = j->next;
		if (!tel->whead)
			tel->wtail = NULL;
		tel->wbusy = true;
		pthread_mutex_unlock(&tel->wmu);
		run_job(tel, j);
		tel_job_free(j);
		pthread_mutex_lock(&tel->wmu);
		tel->wbusy = false;
		if (!tel->whead)
			pthread_cond_broadcast(&tel->widle);
	}
	pthread_mutex_unlock(&tel->wmu);
	return NULL;
}

int tel_writer_start(struct rv_tel *tel)
{
	rv_metrics_register("rv_tel_store_errors_total", RV_METRIC_COUNTER,
	                    "Call row writes the store refused", NULL, NULL, 0);
	int e = pthread_create(&tel->writer, NULL, writer_main, tel);
	if (e)
		return -e;
	tel->writer_started = true;
	return 0;
}

void tel_writer_stop(struct rv_tel *tel)
{
	if (!tel->writer_started)
		return;
	pthread_mutex_lock(&tel->wmu);
	tel->wstop = true;
	pthread_cond_broadcast(&tel->wcv);
	pthread_mutex_unlock(&tel->wmu);
	pthread_join(tel->writer, NULL);
	tel->writer_started = false;
	free(tel->wmap);
	tel->wmap = NULL;
	tel->nwmap = tel->wmap_cap = 0;
}

int tel_close_stale(struct rv_tel *tel, int64_t *closed)
{
	static const char sql[] =
	    "UPDATE calls SET state = 'ended', ended_at = $1, disposition = 'failed', "
	    "hangup_cause = 'restart', hangup_by = 'system' WHERE ended_at IS NULL";
	char now[40];
	struct rv_val p[1] = {RV_VTEXT(rv_time_iso_now(now, sizeof(now)))};
	return rv_store_exec(tel->app->store, sql, p, 1, NULL, closed);
}

/* ---- live calls ------------------------------------------------------------------------- */

static struct tel_live *live_find(struct rv_tel *tel, uint64_t key)
{
	for (size_t i = 0; i < tel->nlive; i++)
		if (tel->live[i].key == key)
			return &tel->live[i];
	return NULL;
}

uint64_t tel_live_add(struct rv_tel *tel, int64_t id, int64_t campaign_id, int trunk)
{
	uint64_t key = 0;
	pthread_mutex_lock(&tel->live_mu);
	if (tel->nlive == tel->live_cap && tel->live_cap < LIVE_MAX) {
		size_t cap = tel->live_cap ? tel->live_cap * 2 : 64;
		void *n = realloc(tel->live, cap * sizeof(*tel->live));
		if (n) {
			tel->live = n;
			tel->live_cap = cap;
		}
	}
	if (tel->nlive < tel->live_cap) {
		key = ++tel->next_key;
		tel->live[tel->nlive++] = (struct tel_live){
		    .key = key, .id = id, .campaign_id = campaign_id, .trunk = trunk};
	}
	size_t n = tel->nlive;
	pthread_mutex_unlock(&tel->live_mu);
	rv_metrics_set("rv_calls_live", (double)n, NULL);
	return key;
}

bool tel_live_get(struct rv_tel *tel, uint64_t key, int64_t id, struct tel_live *out)
{
	bool found = false;
	pthread_mutex_lock(&tel->live_mu);
	for (size_t i = 0; i < tel->nlive; i++) {
		if ((key && tel->live[i].key == key) || (!key && id > 0 && tel->live[i].id == id)) {
			*out = tel->live[i];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&tel->live_mu);
	return found;
}

void tel_live_update(struct rv_tel *tel, const struct tel_live *l)
{
	pthread_mutex_lock(&tel->live_mu);
	struct tel_live *e = live_find(tel, l->key);
	if (e)
		*e = *l;
	pthread_mutex_unlock(&tel->live_mu);
}

void tel_live_set_id(struct rv_tel *tel, uint64_t key, int64_t id)
{
	pthread_mutex_lock(&tel->live_mu);
	struct tel_live *l = live_find(tel, key);
	if (l)
		l->id = id;
	pthread_mutex_unlock(&tel->live_mu);
}

void tel_live_set_trunk(struct rv_tel *tel, uint64_t key, int trunk)
{
	pthread_mutex_lock(&tel->live_mu);
	struct tel_live *l = live_find(tel, key);
	if (l)
		l->trunk = trunk;
	pthread_mutex_unlock(&tel->live_mu);
}

void tel_live_remove(struct rv_tel *tel, uint64_t key)
{
	pthread_mutex_lock(&tel->live_mu);
	struct tel_live *l = live_find(tel, key);
	if (l)
		*l = tel->live[--tel->nlive];
	size_t n = tel->nlive;
	pthread_mutex_unlock(&tel->live_mu);
	rv_metrics_set("rv_calls_live", (double)n, NULL);
}

uint64_t tel_live_key(struct rv_tel *tel, int64_t id)
{
	uint64_t key = 0;
	pthread_mutex_lock(&tel->live_mu);
	for (size_t i = 0; i < tel->nlive && id > 0; i++) {
		if (tel->live[i].id == id) {
			key = tel->live[i].key;
			break;
		}
	}
	pthread_mutex_unlock(&tel->live_mu);
	return key;
}

size_t tel_live_campaign_count(struct rv_tel *tel, int64_t campaign_id)
{
	size_t n = 0;
	pthread_mutex_lock(&tel->live_mu);
	for (size_t i = 0; i < tel->nlive; i++)
		n += tel->live[i].campaign_id == campaign_id;
	pthread_mutex_unlock(&tel->live_mu);
	return n;
}

size_t tel_live_trunk_count(struct rv_tel *tel, int trunk)
{
	size_t n = 0;
	pthread_mutex_lock(&tel->live_mu);
	for (size_t i = 0; i < tel->nlive; i++)
		n += tel->live[i].trunk == trunk;
	pthread_mutex_unlock(&tel->live_mu);
	return n;
}

size_t rv_tel_live_count(struct rv_tel *tel)
{
	if (!tel)
		return 0;
	pthread_mutex_lock(&tel->live_mu);
	size_t n = tel->nlive;
	pthread_mutex_unlock(&tel->live_mu);
	return n;
}

/* ---- routing snapshot ------------------------------------------------------------------- */

struct route_entry {
	char called[64];
	struct rv_tel_route r;
};

struct tel_routes {
	size_t n;
	struct route_entry e[];
};

static int64_t val_int(const struct rv_val *v)
{
	int64_t i = 0;
	if (v->type == RV_VAL_INT)
		return v->i;
	if (v->type == RV_VAL_TEXT && rv_parse_int64(v->s, INT64_MIN, INT64_MAX, &i) == 0)
		return i;
	return 0;
}

/* Inbound routes are the active campaigns' inbound_numbers; drafts and paused ones do not
 * answer, so a number can be prepared before it goes live. */
static int routes_build(struct rv_tel *tel, struct tel_routes **out)
{
	static const char sql[] =
	    "SELECT id, flow_id, recording_policy, max_concurrent, inbound_numbers FROM campaigns "
	    "WHERE status = 'active' AND inbound_numbers <> '' ORDER BY id";
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(tel->app->store, sql, NULL, 0, &rows, NULL);
	if (err)
		return err;
	size_t total = 0;
	for (size_t i = 0; i < rows->nrows; i++) {
		const struct rv_val *v = rv_rows_at(rows, i, 4);
		if (v->type == RV_VAL_TEXT && v->s[0]) {
			total++;
			for (const char *c = v->s; *c; c++)
				total += *c == ',';
		}
	}
	struct tel_routes *rt = rv_xcalloc(1, sizeof(*rt) + total * sizeof(rt->e[0]));
	for (size_t i = 0; i < rows->nrows; i++) {
		const struct rv_val *v = rv_rows_at(rows, i, 4);
		if (v->type != RV_VAL_TEXT)
			continue;
		struct rv_tel_route r = {.campaign_id = val_int(rv_rows_at(rows, i, 0)),
		                         .flow_id = val_int(rv_rows_at(rows, i, 1)),
		                         .max_concurrent = (int)val_int(rv_rows_at(rows, i, 3))};
		const struct rv_val *pol = rv_rows_at(rows, i, 2);
		rv_strlcpy(r.recording_policy, pol->type == RV_VAL_TEXT ? pol->s : "never",
		           sizeof(r.recording_policy));
		const char *s = v->s;
		while (*s && rt->n < total) {
			size_t len = strcspn(s, ",");
			if (len > 0 && len < sizeof(rt->e[0].called)) {
				memcpy(rt->e[rt->n].called, s, len);
				rt->e[rt->n].called[len] = '\0';
				rt->e[rt->n].r = r;
				rt->n++;
			}
			s += len;
			if (*s == ',')
				s++;
		}
	}
	rv_rows_free(rows);
	*out = rt;
	return 0;
}

static int routes_refresh(struct rv_tel *tel)
{
	struct tel_routes *rt = NULL;
	int err = routes_build(tel, &rt);
	if (err) {
		rv_warn(TEL_COMP, "cannot rebuild the inbound routes: %s", rv_store_strerror(err));
		return err;
	}
	pthread_mutex_lock(&tel->rmu);
	struct tel_routes *old = tel->routes;
	tel->routes = rt;
	pthread_mutex_unlock(&tel->rmu);
	free(old);
	return 0;
}

int rv_tel_route_lookup(struct rv_tel *tel, const char *called, struct rv_tel_route *out)
{
	char plus[80];
	int ret = -ENOENT;
	if (!tel || !called || !*called)
		return -ENOENT;
	/* Carriers send the called number with or without its '+'. */
	snprintf(plus, sizeof(plus), "+%s", called);
	pthread_mutex_lock(&tel->rmu);
	for (size_t i = 0; tel->routes && i < tel->routes->n; i++) {
		const char *c = tel->routes->e[i].called;
		if (strcmp(c, called) == 0 || (called[0] != '+' && strcmp(c, plus) == 0)) {
			*out = tel->routes->e[i].r;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&tel->rmu);
	return ret;
}

void rv_tel_routes_changed(struct rv_tel *tel)
{
	if (!tel || !tel->ctl_started)
		return;
	pthread_mutex_lock(&tel->rmu);
	tel->rdirty = true;
	pthread_cond_signal(&tel->rcv);
	pthread_mutex_unlock(&tel->rmu);
}

static void mkdir_day(const char *root, time_t t)
{
	struct tm tm;
	char path[4096];
	gmtime_r(&t, &tm);
	snprintf(path, sizeof(path), "%s/%04d-%02d-%02d", root, tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday);
	if (mkdir(path, 0750) != 0 && errno != EEXIST)
		rv_warn(TEL_COMP, "cannot create the recording directory %s: %s", path,
		        strerror(errno));
}

void tel_rec_dirs(struct rv_tel *tel)
{
	const char *root = tel->cfg->rec_dir;
	if (!root || !*root)
		return;
	if (mkdir(root, 0750) != 0 && errno != EEXIST) {
		rv_warn(TEL_COMP, "cannot create the recording directory %s: %s", root,
		        strerror(errno));
		return;
	}
	time_t now = time(NULL);
	mkdir_day(root, now);
	mkdir_day(root, now + 24 * 3600);
}

static void *ctl_main(void *arg)
{
	struct rv_tel *tel = arg;
	pthread_mutex_lock(&tel->rmu);
	while (!tel->rstop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += ROUTES_REFRESH_S;
		while (!tel->rdirty && !tel->rstop) {
			if (pthread_cond_timedwait(&tel->rcv, &tel->rmu, &until) == ETIMEDOUT)
				break;
		}
		if (tel->rstop)
			break;
		tel->rdirty = false;
		pthread_mutex_unlock(&tel->rmu);
		(void)routes_refresh(tel);
		/* Recordings go to a directory per UTC day; the loop never creates directories. */
		tel_rec_dirs(tel);
		pthread_mutex_lock(&tel->rmu);
	}
	pthread_mutex_unlock(&tel->rmu);
	return NULL;
}

int tel_routes_start(struct rv_tel *tel)
{
	int err = routes_refresh(tel);
	if (err)
		return err;
	tel_rec_dirs(tel);
	int e = pthread_create(&tel->ctl, NULL, ctl_main, tel);
	if (e)
		return -e;
	tel->ctl_started = true;
	return 0;
}

void tel_routes_stop(struct rv_tel *tel)
{
	if (tel->ctl_started) {
		pthread_mutex_lock(&tel->rmu);
		tel->rstop = true;
		pthread_cond_broadcast(&tel->rcv);
		pthread_mutex_unlock(&tel->rmu);
		pthread_join(tel->ctl, NULL);
		tel->ctl_started = false;
	}
	free(tel->routes);
	tel->routes = NULL;
}
