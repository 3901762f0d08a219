/*
 * The Twilio channel's running instance: start/stop, the table of streams the voice webhook
 * announced, the dialer hook of the telephony service and the module's metrics. See twilio.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "media/media_loop.h"
#include "obs/metrics.h"
#include "tel/tel.h"
#include "twilio/twilio_int.h"

#define M_STREAM_ERRORS "rv_twilio_stream_errors_total"
#define M_WEBHOOKS      "rv_twilio_webhooks_total"

/* The HTTP handlers have only the app; they find the channel here. */
static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct rv_twilio *g_tw;

struct rv_twilio *tw_acquire(void)
{
	pthread_rwlock_rdlock(&g_lock);
	if (!g_tw) {
		pthread_rwlock_unlock(&g_lock);
		return NULL;
	}
	return g_tw;
}

void tw_release(void)
{
	pthread_rwlock_unlock(&g_lock);
}

uint64_t tw_now_ms(void)
{
	return rv_time_mono_ns() / 1000000u;
}

bool tw_sid_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n >= 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static void register_metrics(void)
{
	rv_metrics_register(M_STREAM_ERRORS, RV_METRIC_COUNTER,
	                    "Bad input and failures on Twilio Media Streams sockets, by reason.",
	                    "reason", NULL, 0);
	rv_metrics_register(M_WEBHOOKS, RV_METRIC_COUNTER,
	                    "Twilio webhook requests by route and result (ok, bad_signature, ...).",
	                    "route,result", NULL, 0);
}

void tw_count_stream_error(const char *reason)
{
	register_metrics();
	rv_metrics_inc(M_STREAM_ERRORS, 1, reason, NULL);
}

void tw_count_webhook(const char *route, const char *result)
{
	register_metrics();
	rv_metrics_inc(M_WEBHOOKS, 1, route, result, NULL);
}

/* ---- announced streams ------------------------------------------------------------------ */

/* Drop expired entries; caller holds tw->mu. */
static void pending_expire(struct rv_twilio *tw, uint64_t now)
{
	size_t k = 0;
	for (size_t i = 0; i < tw->npending; i++)
		if (tw->pending[i].expires_ms > now)
			tw->pending[k++] = tw->pending[i];
	tw->npending = k;
}

int tw_pending_add(struct rv_twilio *tw, const struct tw_pending *p)
{
	uint64_t now = tw_now_ms();
	int err = 0;
	pthread_mutex_lock(&tw->mu);
	pending_expire(tw, now);
	size_t i = 0;
	while (i < tw->npending && strcmp(tw->pending[i].call_sid, p->call_sid) != 0)
		i++;
	if (i == tw->npending) {
		if (tw->npending == TW_PENDING_MAX) {
			err = -ENOSPC;
			goto out;
		}
		tw->npending++;
	}
	tw->pending[i] = *p;
	tw->pending[i].expires_ms = now + TW_PENDING_TTL_MS;
out:
	pthread_mutex_unlock(&tw->mu);
	return err;
}

int tw_pending_take(struct rv_twilio *tw, const char *call_sid, int64_t call_id,
                    struct tw_pending *out)
{
	int err = -ENOENT;
	pthread_mutex_lock(&tw->mu);
	pending_expire(tw, tw_now_ms());
	for (size_t i = 0; i < tw->npending; i++) {
		struct tw_pending *p = &tw->pending[i];
		if (strcmp(p->call_sid, call_sid) != 0 || p->call_id != call_id)
			continue;
		*out = *p;
		tw->pending[i] = tw->pending[--tw->npending];
		err = 0;
		break;
	}
	pthread_mutex_unlock(&tw->mu);
	return err;
}

/* ---- the dialer hook -------------------------------------------------------------------- */

/* rv_tel_dial(trunk "twilio") lands here, on the control-plane thread that dialled. */
static int dial_hook(void *arg, int64_t call_id, const char *to, const char *from)
{
	struct rv_twilio *tw = arg;
	char err[512] = "", id[24];
	struct rv_twilio_dial d = {.call_id = call_id, .to = to, .from = from};
	int ret = rv_twilio_dial(tw->app, &d, NULL, 0, err, sizeof(err));
	if (ret) {
		snprintf(id, sizeof(id), "%" PRId64, call_id);
		rv_logkv(RV_LOG_ERROR, TW_COMP, "Twilio did not place the call", "call", id,
		         "error", err, NULL);
	}
	return ret;
}

/* ---- start / stop ----------------------------------------------------------------------- */

/* A function run on the loop while the caller waits for it. */
struct loop_sync {
	struct rv_twilio *tw;
	const char *listen;
	int err, port;
	bool done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void sync_done(struct loop_sync *s)
{
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void start_on_loop(void *arg)
{
	struct loop_sync *s = arg;
	s->err = tw_server_start(s->tw, s->listen, &s->tw->srv, &s->port);
	sync_done(s);
}

static void stop_on_loop(void *arg)
{
	struct loop_sync *s = arg;
	tw_server_stop(s->tw->srv);
	s->tw->srv = NULL;
	sync_done(s);
}

static int run_on_loop(struct rv_twilio *tw, void (*fn)(void *), struct loop_sync *s)
{
	int err;
	s->tw = tw;
	s->done = false;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (rv_media_loop_is_current(tw->loop)) {
		fn(s);
		err = 0;
	} else {
		err = rv_media_loop_exec(tw->loop, fn, s);
		pthread_mutex_lock(&s->mu);
		while (!err && !s->done)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	return err;
}

static void tw_free(struct rv_twilio *tw)
{
	if (!tw)
		return;
	pthread_mutex_destroy(&tw->mu);
	free(tw->pending);
	free(tw);
}

int rv_twilio_start(struct rv_app *app, struct rv_tel *tel, struct rv_twilio **out)
{
	const struct rv_config *cfg = app ? app->cfg : NULL;
	char stream_url[512];
	int err = 0;

	if (!cfg || !tel || !out)
		return -EINVAL;
	register_metrics();
	struct rv_twilio *tw = rv_xcalloc(1, sizeof(*tw));
	tw->app = app;
	tw->tel = tel;
	tw->loop = rv_tel_loop(tel);
	pthread_mutex_init(&tw->mu, NULL);

	if (!cfg->twilio_sid || !*cfg->twilio_sid) {
		rv_info(TW_COMP, "Twilio channel off (twilio.account_sid is empty)");
		*out = tw;
		return 0;
	}
	if (!tw_sid_ok(cfg->twilio_sid)) {
		rv_error(TW_COMP, "twilio.account_sid is not a Twilio SID");
		err = -EINVAL;
		goto out;
	}
	if (!cfg->twilio_token || !*cfg->twilio_token) {
		rv_error(TW_COMP, "twilio.auth_token is empty: webhooks cannot be checked and the "
		                  "REST API will refuse us");
		err = -EINVAL;
		goto out;
	}
	if (tw_stream_url(cfg->twilio_public, stream_url, sizeof(stream_url)) != 0) {
		rv_error(TW_COMP,
		         "twilio.public_url \"%s\" is not an http(s) URL; Twilio needs it "
		         "to reach the webhooks and the stream",
		         cfg->twilio_public ? cfg->twilio_public : "");
		err = -EINVAL;
		goto out;
	}
	if (!cfg->twilio_validate)
		rv_warn(TW_COMP,
		        "twilio.validate_signature is 0: webhook signatures are not checked");
	tw->pending = rv_xcalloc(TW_PENDING_MAX, sizeof(*tw->pending));

	const char *sl = cfg->twilio_stream;
	if (sl && *sl && strcmp(sl, "off") != 0) {
		if (!tw->loop) {
			err = -EINVAL;
			goto out;
		}
		struct loop_sync s = {.listen = sl};
		err = run_on_loop(tw, start_on_loop, &s);
		if (!err)
			err = s.err;
		if (err) {
			rv_error(TW_COMP, "cannot listen for Media Streams on %s: %s", sl,
			         strerror(-err));
			goto out;
		}
		tw->streams_on = true;
		tw->stream_port = s.port;
	}
	rv_tel_set_twilio_dialer(tel, dial_hook, tw);
	pthread_rwlock_wrlock(&g_lock);
	if (g_tw) {
		pthread_rwlock_unlock(&g_lock);
		rv_error(TW_COMP, "the Twilio channel is already running in this process");
		rv_tel_set_twilio_dialer(tel, NULL, NULL);
		if (tw->streams_on) {
			struct loop_sync s = {0};
			run_on_loop(tw, stop_on_loop, &s);
		}
		err = -EALREADY;
		goto out;
	}
	g_tw = tw;
	pthread_rwlock_unlock(&g_lock);
	char port[16];
	snprintf(port, sizeof(port), "%d", tw->stream_port);
	rv_logkv(RV_LOG_INFO, TW_COMP, "Twilio channel ready", "stream_listen",
	         tw->streams_on ? sl : "off", "stream_port", port, "stream_url", stream_url,
	         "validate_signature", cfg->twilio_validate ? "1" : "0", NULL);
out:
	if (err) {
		tw_free(tw);
		return err;
	}
	*out = tw;
	return 0;
}

void rv_twilio_stop(struct rv_twilio *tw)
{
	if (!tw)
		return;
	pthread_rwlock_wrlock(&g_lock);
	if (g_tw == tw)
		g_tw = NULL;
	pthread_rwlock_unlock(&g_lock);
	if (tw->pending) /* configured: the hook was set */
		rv_tel_set_twilio_dialer(tw->tel, NULL, NULL);
	if (tw->streams_on) {
		struct loop_sync s = {0};
		if (run_on_loop(tw, stop_on_loop, &s) != 0)
			rv_warn(TW_COMP,
			        "the media loop has stopped; Media Streams were not closed");
	}
	tw_free(tw);
	rv_info(TW_COMP, "Twilio channel stopped");
}
