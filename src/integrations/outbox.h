/*
 * The durable outbox behind webhooks (docs/adr/0013-outbox.md). A change and the event that
 * reports it are written in one database transaction (rv_outbox_emit), so an event is never
 * lost and never sent for a change that was rolled back. Two control-plane threads started by
 * `serve` do the rest:
 *   - the preparer claims new events, enriches call.ended with the post-call analysis (stored
 *     on the call row too) and fans each event out into one delivery row per active webhook
 *     subscribed to it;
 *   - the sender claims due deliveries (PostgreSQL: FOR UPDATE SKIP LOCKED, so several nodes
 *     share the work; SQLite: one claimer per process) and POSTs them with libcurl, signed
 *     with the webhook's secret, retrying with exponential backoff and jitter.
 * Delivery is at least once; receivers deduplicate on the event id in the body. Order across
 * events is not guaranteed (a retried event may arrive after a later one).
 *
 * A delivery is `POST url` with the JSON body
 *   {"id": EVENT_ID, "event": "call.ended", "created_at": "ISO 8601", "data": {...}}
 * and the headers X-RevoVoice-Event, X-RevoVoice-Delivery (the delivery row id),
 * X-RevoVoice-Timestamp (Unix seconds) and
 * X-RevoVoice-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body)).
 */
#ifndef RV_OUTBOX_H
#define RV_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct json_t;
struct rv_app;
struct rv_outbox;

/* Events this version emits. Webhooks subscribe by name, or to "*". */
#define RV_OUTBOX_CALL_ANSWERED      "call.answered"
#define RV_OUTBOX_CALL_ENDED         "call.ended"
#define RV_OUTBOX_LEAD_DNC           "lead.dnc"
#define RV_OUTBOX_CALLBACK_SCHEDULED "callback.scheduled"

#define RV_OUTBOX_EVENT_MAX 64 /* bytes of an event name, NUL included */

/*
 * Record an event whose `data` (a JSON object, borrowed) describes a change. With db (a
 * borrowed connection, normally inside the caller's open transaction) the row is written on
 * it, so it commits or rolls back with the change; with db NULL it is written on its own
 * connection from st. Call rv_outbox_kick(app->outbox) after the commit to have it sent at
 * once; otherwise the outbox finds it within webhooks.poll_ms. Sets *event_id (may be NULL).
 * Returns 0, -EINVAL (bad name or data; call.ended has its own function), -EFBIG (data over
 * 4 MiB) or a store error; on error nothing is written.
 */
int rv_outbox_emit(struct rv_store *st, struct rv_db *db, const char *event,
                   const struct json_t *data, int64_t *event_id);

/*
 * Record that call `call_id` ended, on db inside the caller's transaction: after delay_ms (so
 * the conversation's last turns are stored) the outbox computes the post-call analysis,
 * stores it on the calls row (summary, extracted) and sends call.ended with the whole row,
 * plus lead.dnc and callback.scheduled when the call produced them. 0 or a store error.
 */
int rv_outbox_emit_call_ended(struct rv_db *db, int64_t call_id, int delay_ms);

/*
 * For the telephony writer: run one UPDATE of a calls row (`sql` with `n` params, borrowed)
 * and record `event` (call.answered: with a snapshot of the row; call.ended: as above) in the
 * same transaction, then wake the outbox (app->outbox, may be NULL). Returns 0 or a store
 * error, in which case neither the update nor the event happened.
 */
int rv_outbox_call_update(struct rv_app *app, const char *sql, const struct rv_val *params,
                          size_t n, int64_t call_id, const char *event);

/*
 * Start the outbox threads (serve only), after the store is open. Returns 0 and sets *out,
 * or a negative errno with a sentence in err. The outbox registers its metrics.
 */
int rv_outbox_start(struct rv_app *app, struct rv_outbox **out, char *err, size_t errlen);

/* Stop the threads: transfers in flight get a short grace, then their claims are released
 * so the next start sends them again. NULL is a no-op. */
void rv_outbox_stop(struct rv_outbox *ob);

/* Look for new work now (any thread; NULL is a no-op). */
void rv_outbox_kick(struct rv_outbox *ob);

/* ---- Pure helpers (exported for the unit tests) ---- */

/*
 * The signature header value for `body` sent at `ts`: "sha256=" and the lower-case hex
 * HMAC-SHA256 of "<ts>.<body>" keyed with the secret's bytes as given. out needs 72 bytes.
 * Returns 0, or -EINVAL when out is too small or libsodium cannot start.
 */
int rv_outbox_sign(const char *secret, int64_t ts, const char *body, size_t len, char *out,
                   size_t outlen);

/*
 * The delay before attempt number `failures + 1`, after `failures` (>= 1) failed ones:
 * base * 2^(failures - 1), capped at max, with "equal jitter" — a random point in the upper
 * half [d/2, d] — chosen by `rnd` (any 32-bit random value), so retries of many events that
 * failed together spread out without ever coming sooner than half the schedule.
 */
int64_t rv_outbox_backoff_ms(int failures, int64_t base_ms, int64_t max_ms, uint32_t rnd);

enum rv_outbox_verdict {
	RV_OUTBOX_DELIVERED, /* 2xx */
	RV_OUTBOX_RETRY,     /* network error, timeout, 408, 429, 5xx */
	RV_OUTBOX_PERMANENT, /* any other status: the receiver refuses it for good */
};

/* Classify an attempt: `status` is the HTTP status, or 0 when no response came. */
enum rv_outbox_verdict rv_outbox_classify(long status);

/*
 * Does a webhook's `events` (its JSON array text) include `event`, directly or through "*"?
 * Malformed text subscribes to nothing.
 */
bool rv_outbox_subscribed(const char *events_json, const char *event);

#endif
