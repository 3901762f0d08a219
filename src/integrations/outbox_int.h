/*
 * Inside the outbox: the state shared by outbox.c (emit, the preparer thread, claims),
 * outbox_send.c (the sender thread: libcurl, signatures, backoff) and outbox_call.c (what
 * call.ended carries: the call row and the post-call analysis).
 */
#ifndef RV_OUTBOX_INT_H
#define RV_OUTBOX_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "integrations/outbox.h"
#include "store/store.h"

#define OB_COMP      "outbox"
#define OB_CLAIM_MAX 64 /* rows one claim takes at most */

struct rv_llm;

struct rv_outbox {
	struct rv_app *app;
	struct rv_store *st;
	bool pg;            /* PostgreSQL: claims use FOR UPDATE SKIP LOCKED */
	struct rv_llm *llm; /* post-call summaries from the model (llm.*); NULL: extractive */

	/* Settings (webhooks.* in the config), copied at start. */
	int max_attempts;
	int64_t timeout_ms, base_ms, max_ms, poll_ms, retention_h;
	int concurrency;
	int64_t last_cleanup; /* sender thread: last retention sweep, ms */

	pthread_mutex_t mu;
	pthread_cond_t cv; /* the preparer waits on it */
	bool stop;
	bool prep_kick; /* new events may be due */

	pthread_t prep, send;
	bool prep_started, send_started;
	void *multi; /* CURLM *, created before the sender starts; curl_multi_wakeup is
	              * safe from any thread */
};

/* ---- outbox.c ---- */

/* Unix time in milliseconds, and as "YYYY-MM-DDTHH:MM:SS.mmmZ" (the store's time format,
 * which sorts as text). */
int64_t ob_now_ms(void);
char *ob_iso_ms(int64_t ms, char *buf, size_t len);

/*
 * Claim up to `max` due rows of one kind (deliveries: webhook_id set; else events) by setting
 * their lease to now + lease_ms in one transaction. *ids is malloc'd (caller frees), *n set;
 * 0 rows is success. Returns 0 or a store error.
 */
int ob_claim(struct rv_outbox *ob, bool deliveries, size_t max, int64_t lease_ms, int64_t **ids,
             size_t *n);

/* Milliseconds until the next pending row of the kind becomes due (0: now), capped at cap. */
int64_t ob_next_due_ms(struct rv_outbox *ob, bool deliveries, int64_t cap);

/* Refresh the rv_outbox_pending gauge; every hour also delete finished rows older than
 * webhooks.retention_hours. Called by the sender between rounds. */
void ob_housekeeping(struct rv_outbox *ob);

/* A row of a result as JSON (INT, REAL, TEXT, NULL); the caller owns it. */
json_t *ob_val_json(const struct rv_val *v);

/* ---- outbox_send.c ---- */

int ob_sender_start(struct rv_outbox *ob);
void ob_sender_stop(struct rv_outbox *ob);
void ob_sender_wake(struct rv_outbox *ob);

/* ---- outbox_call.c ---- */

/*
 * The data of call.ended for `call_id`: the calls row (JSON columns parsed) and its post-call
 * "analysis", computed from the call's turns. *data is new (caller owns). Computing is slow
 * (an LLM request when one is configured), so it runs outside any transaction; the store
 * writes happen in ob_call_store_tx. Returns 0, -ENOENT (no such call) or a store error.
 */
int ob_call_build(struct rv_outbox *ob, int64_t call_id, json_t **data);

/*
 * Inside the fan-out transaction on db: store the analysis in data on the calls row, and
 * record lead.dnc / callback.scheduled events the call produced. 0 or a store error.
 */
int ob_call_store_tx(struct rv_outbox *ob, struct rv_db *db, int64_t call_id, const json_t *data);

/* The calls row `call_id` on db as a JSON object (JSON text columns parsed), or NULL. */
json_t *ob_call_row(struct rv_db *db, int64_t call_id, int *err);

#endif
