/*
 * The telephony service, media-loop side: see tel.h. Every struct rv_tel_call lives on the
 * loop; the control plane reaches one through the live table (tel_store.c) and a command
 * queued with rv_media_loop_exec. Row writes go to the writer thread as jobs, in event order.
 */
#include <errno.h>
#include <inttypes.h>
#include <re.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/util.h"
#include "media/media_audio.h"
#include "media/media_loop.h"
#include "media/media_pcm.h"
#include "media/media_rec.h"
#include "media/media_stream.h"
#include "obs/metrics.h"
#include "sip/sip_ua.h"
#include "tel/tel_int.h"

#define LINGER_MS 500 /* after hanging up at stop: let BYEs and their 200s cross */

struct tel_loop {
	struct rv_sip_ua *ua;
	struct list calls; /* struct rv_tel_call */
	struct list regs;  /* struct tel_reg */
	struct rv_pcm *prompt;
};

struct tel_leg {
	struct rv_tel_call *call;
	bool agent;
};

/* Where an outbound call goes: built on the control plane, consumed by the loop. */
struct tel_plan {
	char uri[TEL_URI_MAX];      /* a SIP URI dialled as is ("" for a number) */
	char number[64];            /* E.164 dialled through trunks */
	char from[TEL_URI_MAX];     /* caller ID: a user part, a full sip: URI, or "" */
	int trunks[TEL_MAX_TRUNKS]; /* candidates in order; for a URI at most one (proxy) */
	size_t ntrunks;
};

struct rv_tel_call {
	struct le le;
	struct rv_tel *tel;
	uint64_t key;
	int64_t id; /* 0 until the writer has inserted the row */
	enum rv_tel_channel channel;
	bool outbound;
	struct tel_leg leg, agent_leg;
	struct rv_call *sip; /* our reference to the SIP leg; NULL when none */
	struct rv_audio *audio;
	const struct rv_tel_channel_ops *ops;
	void *ops_arg;
	int64_t campaign_id, lead_id, flow_id;
	char rec_policy[16];
	char from[TEL_URI_MAX], to[TEL_URI_MAX];
	struct tel_plan plan;
	size_t attempt; /* index into plan.trunks */
	int trunk;      /* index into cfg->trunks of the current attempt, -1: none */
	bool provisional;
	uint64_t t_start, t_answer; /* tmr_jiffies */
	bool ringing, answered, over, runner_started, media_ready_pending;
	void *runner_state;
	char disposition[32]; /* set by the runner or a transfer */
	char end_cause[32], end_by[16];
	struct tmr max_tmr, hangup_tmr;
	char rec_path[TEL_URI_MAX];
	char digits[65];
	/* Transfer. */
	bool xfer_active, transferred, bridged;
	enum rv_tel_transfer_mode xmode;
	struct rv_call *agent;
	struct rv_pcm *whisper;
};

struct tel_reg {
	struct le le;
	struct rv_tel *tel;
	int trunk;
	struct rv_sip_reg *reg;
	int last_status;
};

/* ---- small helpers --------------------------------------------------------------------- */

static const char *tel_str(const char *s)
{
	return s ? s : "";
}

static void id_str(int64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64, id);
}

static struct tel_job *call_job(struct rv_tel_call *call, bool final)
{
	struct tel_job *j = tel_job_new(TEL_JOB_UPDATE, call->key, call->id);
	j->final = final;
	return j;
}

static void log_event(struct rv_tel_call *call, const char *event, const char *k1, const char *v1,
                      const char *k2, const char *v2)
{
	char id[24];
	id_str(call->id, id, sizeof(id));
	rv_logkv(RV_LOG_INFO, TEL_COMP, "call event", "event", event, "call", id, "direction",
	         call->outbound ? "outbound" : "inbound", "channel",
	         call->channel == RV_TEL_TWILIO ? "twilio" : "sip", "sip_call_id",
	         call->sip ? tel_str(rv_call_id(call->sip)) : "", k1, tel_str(v1), k2, tel_str(v2),
	         NULL);
}

static struct rv_tel_call *find_call(struct rv_tel *tel, uint64_t key)
{
	if (!tel->lp)
		return NULL;
	for (struct le *le = list_head(&tel->lp->calls); le; le = le->next) {
		struct rv_tel_call *c = le->data;
		if (c->key == key)
			return c;
	}
	return NULL;
}

static void call_destructor(void *arg)
{
	struct rv_tel_call *call = arg;
	tmr_cancel(&call->max_tmr);
	tmr_cancel(&call->hangup_tmr);
	list_unlink(&call->le);
	mem_deref(call->sip);
	mem_deref(call->agent);
	mem_deref(call->whisper);
}

static struct rv_tel_call *call_alloc(struct rv_tel *tel)
{
	struct rv_tel_call *call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call)
		return NULL;
	call->tel = tel;
	call->trunk = -1;
	call->leg.call = call;
	call->agent_leg.call = call;
	call->agent_leg.agent = true;
	tmr_init(&call->max_tmr);
	tmr_init(&call->hangup_tmr);
	list_append(&tel->lp->calls, &call->le, call);
	return call;
}

/* ---- the default runner ---------------------------------------------------------------- */

static int default_start(struct rv_tel_call *call, struct rv_audio *audio,
                         const struct rv_tel_call_info *info, void *arg, void **state)
{
	struct rv_tel *tel = arg;
	(void)info;
	(void)state;
	/* The prompt plays once; the call stays up until the caller hangs up or the service's
	 * max_call_seconds timer ends it. */
	if (tel->lp->prompt) {
		int err = rv_audio_play(audio, tel->lp->prompt, NULL, NULL, NULL);
		if (err) {
			char id[24];
			id_str(rv_tel_call_id(call), id, sizeof(id));
			rv_logkv(RV_LOG_ERROR, TEL_COMP, "cannot queue the default prompt", "call",
			         id, "error", strerror(-err), NULL);
		}
	}
	return 0;
}

static void default_end(void *state)
{
	(void)state;
}

/* ---- recording and the runner --------------------------------------------------------- */

static void start_recording(struct rv_tel_call *call)
{
	struct rv_tel *tel = call->tel;
	if (!call->audio || call->rec_path[0] || call->id <= 0)
		return;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char path[TEL_URI_MAX];
	snprintf(path, sizeof(path), "%s/%04d-%02d-%02d/call-%" PRId64 ".wav", tel->cfg->rec_dir,
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, call->id);
	int err = rv_audio_record(call->audio, path);
	if (err) {
		char id[24];
		id_str(call->id, id, sizeof(id));
		rv_logkv(RV_LOG_ERROR, TEL_COMP, "cannot record the call", "call", id, "path", path,
		         "error", strerror(-err), NULL);
		return;
	}
	rv_strlcpy(call->rec_path, path, sizeof(call->rec_path));
	struct tel_job *j = call_job(call, false);
	tel_job_text(j, "recording_path", path);
	tel_job_push(tel, j);
	log_event(call, "recording", "path", path, NULL, NULL);
}

static void do_hangup(void *arg);

/* Media runs and the row id is known: recording per policy, then the conversation runner. */
static void media_ready(struct rv_tel_call *call)
{
	struct rv_tel *tel = call->tel;
	call->media_ready_pending = false;
	if (call->over || !call->audio || call->runner_started)
		return;
	const char *pol = call->rec_policy[0] ? call->rec_policy : tel->cfg->rec_default;
	if (strcmp(pol, "always") == 0)
		start_recording(call);
	struct rv_tel_call_info info = {
	    .call_id = call->id,
	    .campaign_id = call->campaign_id,
	    .lead_id = call->lead_id,
	    .flow_id = call->flow_id,
	    .outbound = call->outbound,
	    .channel = call->channel,
	    .from = call->from,
	    .to = call->to,
	};
	call->runner_started = true;
	int err = tel->capp.start(call, call->audio, &info, tel->capp.arg, &call->runner_state);
	if (err) {
		char id[24];
		id_str(call->id, id, sizeof(id));
		rv_logkv(RV_LOG_ERROR, TEL_COMP, "the conversation runner refused the call", "call",
		         id, "runner", tel_str(tel->capp.name), NULL);
		call->runner_started = false;
		rv_strlcpy(call->disposition, "failed", sizeof(call->disposition));
		rv_strlcpy(call->end_by, "system", sizeof(call->end_by));
		rv_strlcpy(call->end_cause, "runner_failed", sizeof(call->end_cause));
		tmr_start(&call->hangup_tmr, 0, do_hangup, call);
	}
}

/* The writer has inserted a row (writer thread): tell the loop. */
struct id_msg {
	struct rv_tel *tel;
	uint64_t key;
	int64_t id;
};

static void id_known(void *arg)
{
	struct id_msg *m = arg;
	struct rv_tel_call *call = find_call(m->tel, m->key);
	if (call && !call->id) {
		call->id = m->id;
		if (call->media_ready_pending)
			media_ready(call);
	}
	free(m);
}

static void inserted_h(struct rv_tel *tel, uint64_t key, int64_t id)
{
	tel_live_set_id(tel, key, id);
	struct id_msg *m = malloc(sizeof(*m));
	if (!m)
		return;
	*m = (struct id_msg){tel, key, id};
	if (rv_media_loop_exec(tel->loop, id_known, m) != 0)
		free(m);
}

/* ---- ending a call --------------------------------------------------------------------- */

static void rtp_json(const struct rv_media_stats *st, char *buf, size_t len)
{
	snprintf(buf, len,
	         "{\"rx_packets\":%llu,\"tx_packets\":%llu,\"lost\":%llu,\"jitter_ms\":%.2f,"
	         "\"rx_bytes\":%llu,\"rx_bad_source\":%llu,\"rx_malformed\":%llu,\"frames\":%llu,"
	         "\"frames_received\":%llu,\"frames_skipped\":%llu,\"dtmf_events\":%llu}",
	         (unsigned long long)st->rx_packets, (unsigned long long)st->tx_packets,
	         (unsigned long long)st->rx_lost, st->jitter_ms, (unsigned long long)st->rx_bytes,
	         (unsigned long long)st->rx_bad_source, (unsigned long long)st->rx_malformed,
	         (unsigned long long)st->frames, (unsigned long long)st->frames_received,
	         (unsigned long long)st->frames_skipped, (unsigned long long)st->dtmf_events);
}

static void drop_agent(struct rv_tel_call *call)
{
	struct rv_call *ag = call->agent;
	if (!ag)
		return;
	call->agent = NULL;
	rv_call_set_user(ag, NULL);
	rv_call_hangup(ag);
	mem_deref(ag);
}

/*
 * The call is over: stop the runner, end the agent leg, write the final row, count it and free
 * it. sip_disp/cause/remote describe the channel's end; the call's own fields (a runner's
 * disposition, a transfer, a shutdown) take precedence.
 */
static void finalize(struct rv_tel_call *call, const char *sip_disp, const char *cause, bool remote,
                     const struct rv_media_stats *st)
{
	struct rv_tel *tel = call->tel;
	char now[40], rtp[512];
	if (call->over)
		return;
	call->over = true;
	tmr_cancel(&call->max_tmr);
	tmr_cancel(&call->hangup_tmr);
	if (call->runner_started) {
		call->runner_started = false;
		if (tel->capp.end)
			tel->capp.end(call->runner_state);
	}
	drop_agent(call);

	const char *disp = call->transferred      ? "transferred"
	                   : call->disposition[0] ? call->disposition
	                                          : sip_disp;
	const char *by = call->end_by[0] ? call->end_by : remote ? "remote" : "local";
	const char *why = call->end_cause[0] ? call->end_cause : cause;
	struct tel_job *j = call_job(call, true);
	tel_job_text(j, "state", "ended");
	tel_job_text(j, "ended_at", rv_time_iso_now(now, sizeof(now)));
	tel_job_text(j, "disposition", disp);
	tel_job_text(j, "hangup_cause", why);
	tel_job_text(j, "hangup_by", by);
	int64_t dur_ms = 0;
	if (call->answered) {
		dur_ms = (int64_t)(tmr_jiffies() - call->t_answer);
		tel_job_int(j, "duration_ms", dur_ms);
	}
	if (st) {
		rtp_json(st, rtp, sizeof(rtp));
		tel_job_text(j, "rtp_stats", rtp);
	}
	const char *digits = call->sip ? rv_call_digits(call->sip) : call->digits;
	if (digits && *digits)
		tel_job_text(j, "dtmf", digits);
	tel_job_push(tel, j);

	rv_metrics_inc("rv_calls_total", 1, call->outbound ? "outbound" : "inbound", disp, NULL);
	if (call->answered)
		rv_metrics_observe("rv_call_duration_seconds", (double)dur_ms / 1000.0, NULL);
	log_event(call, "ended", "disposition", disp, "hangup_by", by);
	tel_live_remove(tel, call->key);
	if (call->sip) {
		rv_call_set_user(call->sip, NULL);
		call->sip = mem_deref(call->sip);
	}
	call->audio = NULL;
	mem_deref(call);
}

static void do_hangup(void *arg)
{
	struct rv_tel_call *call = arg;
	if (call->over)
		return;
	if (call->channel == RV_TEL_SIP && call->sip) {
		rv_call_hangup(call->sip); /* the HANGUP event finalizes the call */
	} else if (call->channel == RV_TEL_TWILIO && call->ops && call->ops->hangup) {
		call->ops->hangup(call->ops_arg); /* rv_tel_call_ended follows */
	} else {
		finalize(call, "failed", "local", false, NULL);
	}
}

static void max_tmr_h(void *arg)
{
	struct rv_tel_call *call = arg;
	rv_strlcpy(call->end_by, "system", sizeof(call->end_by));
	rv_strlcpy(call->end_cause, "max_duration", sizeof(call->end_cause));
	do_hangup(call);
}

static void on_answered(struct rv_tel_call *call, const char *codec)
{
	struct rv_tel *tel = call->tel;
	char now[40];
	call->answered = true;
	call->t_answer = tmr_jiffies();
	struct tel_job *j = call_job(call, false);
	tel_job_text(j, "state", "answered");
	tel_job_text(j, "answered_at", rv_time_iso_now(now, sizeof(now)));
	if (codec)
		tel_job_text(j, "codec", codec);
	tel_job_push(tel, j);
	rv_metrics_observe("rv_call_setup_seconds",
	                   (double)(call->t_answer - call->t_start) / 1000.0, NULL);
	log_event(call, "answered", "codec", codec, NULL, NULL);
	tmr_start(&call->max_tmr, (uint64_t)tel->cfg->sip_max_call_s * 1000, max_tmr_h, call);
	if (call->id)
		media_ready(call);
	else
		call->media_ready_pending = true;
}

/* ---- outbound attempts ----------------------------------------------------------------- */

static int attempt_dial(struct rv_tel_call *call);

/* 5xx, or silence from the trunk: the next trunk may do better. */
static bool failover_ok(const struct rv_tel_call *call, const struct rv_call_event *ev)
{
	if (call->answered || call->plan.number[0] == '\0')
		return false;
	if (call->attempt + 1 >= call->plan.ntrunks)
		return false;
	if (ev->cause == RV_HANGUP_REJECTED && ev->sip_status >= 500 && ev->sip_status < 600)
		return true;
	return ev->cause == RV_HANGUP_TIMEOUT && !call->provisional;
}

/* Try the plan's attempts from call->attempt on; 0 once one is ringing out. */
static int dial_from(struct rv_tel_call *call)
{
	int err = -EBUSY;
	for (; call->attempt < call->plan.ntrunks || (call->attempt == 0 && !call->plan.ntrunks);
	     call->attempt++) {
		err = attempt_dial(call);
		if (!err)
			return 0;
		if (!call->plan.number[0])
			break;
	}
	return err;
}

static void outbound_failed_now(struct rv_tel_call *call, int err)
{
	rv_strlcpy(call->end_by, "system", sizeof(call->end_by));
	rv_strlcpy(call->end_cause, err == -EBUSY ? "capacity" : "dial_error",
	           sizeof(call->end_cause));
	finalize(call, "failed", "dial_error", false, NULL);
}

static void build_from(const struct rv_trunk_cfg *t, const char *cid, char *buf, size_t len)
{
	if (strncmp(cid, "sip:", 4) == 0) {
		rv_strlcpy(buf, cid, len);
		return;
	}
	const char *user = *cid ? cid : t && *t->caller_id ? t->caller_id : "revovoice";
	if (!t) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, len, "sip:%s@%s", user, *t->domain ? t->domain : t->host);
}

/* The request URI and proxy for a number or URI over trunk `t` (NULL: direct). */
static void trunk_target(const struct rv_trunk_cfg *t, const char *number, const char *uri,
                         char *ruri, size_t rlen, char *proxy, size_t plen)
{
	if (uri && *uri)
		rv_strlcpy(ruri, uri, rlen);
	else
		snprintf(ruri, rlen, "sip:%s%s@%s", t->prefix, number,
		         *t->domain ? t->domain : t->host);
	proxy[0] = '\0';
	if (t)
		snprintf(proxy, plen, "sip:%s:%d;transport=%s", t->host, t->port ? t->port : 5060,
		         t->transport);
}

static int attempt_dial(struct rv_tel_call *call)
{
	struct rv_tel *tel = call->tel;
	const struct rv_trunk_cfg *t = NULL;
	char ruri[TEL_URI_MAX], proxy[TEL_URI_MAX], from[TEL_URI_MAX];
	int ti = call->plan.ntrunks ? call->plan.trunks[call->attempt] : -1;

	if (ti >= 0) {
		t = &tel->cfg->trunks[ti];
		if (t->max_calls > 0 && ti != call->trunk &&
		    tel_live_trunk_count(tel, ti) >= (size_t)t->max_calls) {
			rv_logkv(RV_LOG_INFO, TEL_COMP, "trunk full, skipped", "trunk", t->name,
			         NULL);
			return -EBUSY;
		}
	}
	trunk_target(t, call->plan.number, call->plan.uri, ruri, sizeof(ruri), proxy,
	             sizeof(proxy));
	build_from(t, call->plan.from, from, sizeof(from));
	struct rv_sip_dial d = {
	    .uri = ruri,
	    .from = from[0] ? from : NULL,
	    .outbound_proxy = proxy[0] ? proxy : NULL,
	    .user = t && *t->username ? t->username : NULL,
	    .password = t && *t->username ? t->password : NULL,
	    .timeout_ms = (uint32_t)tel->cfg->sip_no_answer * 1000,
	};
	struct rv_call *sc = NULL;
	int err = rv_sip_ua_dial(tel->lp->ua, &d, &call->leg, &sc);
	if (err)
		return err;
	call->sip = mem_ref(sc);
	call->trunk = ti;
	call->provisional = false;
	tel_live_set_trunk(tel, call->key, ti);
	struct tel_job *j = call_job(call, false);
	tel_job_text(j, "sip_call_id", rv_call_id(sc));
	tel_job_text(j, "trunk", t ? t->name : "");
	if (from[0])
		tel_job_text(j, "from_uri", from);
	tel_job_push(tel, j);
	log_event(call, "dialing", "uri", ruri, "trunk", t ? t->name : "");
	return 0;
}

/* ---- SIP events ------------------------------------------------------------------------ */

static void update_text(struct rv_tel_call *call, const char *col, const char *val)
{
	struct tel_job *j = call_job(call, false);
	tel_job_text(j, col, val);
	tel_job_push(call->tel, j);
}

static void bridge_now(struct rv_tel_call *call)
{
	struct rv_audio *ag = call->agent ? rv_call_audio(call->agent) : NULL;
	if (call->over || !ag || !call->audio)
		return;
	rv_audio_flush(call->audio);
	int err = rv_audio_bridge(call->audio, ag);
	if (err) {
		update_text(call, "transfer_outcome", "bridge_failed");
		drop_agent(call);
		call->xfer_active = false;
		return;
	}
	call->bridged = true;
	call->transferred = true;
	update_text(call, "transfer_outcome", "bridged");
	log_event(call, "bridged", NULL, NULL, NULL, NULL);
}

static void whisper_done_h(uint32_t id, enum rv_play_end how, size_t played, size_t total,
                           void *arg)
{
	struct rv_tel_call *call = arg;
	(void)id;
	(void)played;
	(void)total;
	if (how == RV_PLAY_DONE && !call->over && call->agent)
		bridge_now(call);
	mem_deref(call);
}

static void agent_event(struct rv_tel_call *call, struct rv_call *sc,
                        const struct rv_call_event *ev)
{
	switch (ev->type) {
	case RV_CALL_EV_ANSWERED: {
		struct rv_audio *ag = rv_call_audio(sc);
		if (call->whisper && ag) {
			struct rv_pcm *w = call->whisper;
			call->whisper = NULL;
			int err = rv_audio_play(ag, w, whisper_done_h, mem_ref(call), NULL);
			mem_deref(w);
			if (!err) {
				update_text(call, "transfer_whisper", "played");
				return;
			}
			mem_deref(call);
			update_text(call, "transfer_whisper", "failed");
		}
		bridge_now(call);
		break;
	}
	case RV_CALL_EV_HANGUP:
		rv_call_set_user(sc, NULL);
		if (call->agent == sc)
			call->agent = mem_deref(call->agent);
		if (call->bridged) {
			/* The agent left: the caller's call ends with the bridge. */
			call->bridged = false;
			rv_strlcpy(call->end_by, "remote", sizeof(call->end_by));
			rv_strlcpy(call->end_cause, "agent_hangup", sizeof(call->end_cause));
			tmr_start(&call->hangup_tmr, 0, do_hangup, call);
		} else {
			call->xfer_active = false;
			update_text(call, "transfer_outcome",
			            rv_call_disposition_name(ev->disposition));
			log_event(call, "transfer_failed", "disposition",
			          rv_call_disposition_name(ev->disposition), NULL, NULL);
		}
		break;
	default:
		break;
	}
}

static struct rv_tel_call *inbound_new(struct rv_tel *tel, struct rv_call *sc,
                                       const struct rv_sip_inbound *in,
                                       const struct rv_tel_route *route);

static void call_event_h(struct rv_call *sc, const struct rv_call_event *ev, void *arg)
{
	struct rv_tel *tel = arg;
	struct tel_leg *leg = rv_call_user(sc);
	char now[40];

	if (!leg && ev->type == RV_CALL_EV_INCOMING) {
		/* No routing hook ran (or it had nothing): take the call with its data. */
		struct rv_tel_call *call = inbound_new(tel, sc, rv_call_inbound(sc), NULL);
		if (!call)
			rv_call_hangup(sc);
		return;
	}
	if (!leg)
		return;
	struct rv_tel_call *call = leg->call;
	if (leg->agent) {
		agent_event(call, sc, ev);
		return;
	}
	switch (ev->type) {
	case RV_CALL_EV_INCOMING:
		break;
	case RV_CALL_EV_RINGING:
		if (ev->sip_status > 100)
			call->provisional = true;
		if (!call->ringing) {
			call->ringing = true;
			struct tel_job *j = call_job(call, false);
			tel_job_text(j, "state", "ringing");
			tel_job_text(j, "ringing_at", rv_time_iso_now(now, sizeof(now)));
			tel_job_push(tel, j);
			log_event(call, "ringing", NULL, NULL, NULL, NULL);
		}
		break;
	case RV_CALL_EV_EARLY_MEDIA:
		call->provisional = true;
		log_event(call, "early_media", "codec", rv_call_codec(sc), NULL, NULL);
		break;
	case RV_CALL_EV_ANSWERED:
		call->audio = rv_call_audio(sc);
		on_answered(call, rv_call_codec(sc));
		break;
	case RV_CALL_EV_DTMF: {
		char d[2] = {ev->digit, '\0'};
		update_text(call, "dtmf", rv_call_digits(sc));
		log_event(call, "dtmf", "digit", d, NULL, NULL);
		if (call->runner_started && tel->capp.dtmf)
			tel->capp.dtmf(call->runner_state, ev->digit);
		break;
	}
	case RV_CALL_EV_HOLD:
	case RV_CALL_EV_UNHOLD:
		log_event(call, ev->type == RV_CALL_EV_HOLD ? "hold" : "unhold", NULL, NULL, NULL,
		          NULL);
		break;
	case RV_CALL_EV_TRANSFER: {
		char st[8];
		snprintf(st, sizeof(st), "%u", ev->sip_status);
		log_event(call, "transfer_progress", "sip_status", st, NULL, NULL);
		if (ev->sip_status >= 200 && ev->sip_status < 300) {
			call->transferred = true;
			update_text(call, "transfer_outcome", "accepted");
		} else if (ev->sip_status >= 300) {
			char o[32];
			snprintf(o, sizeof(o), "failed_%u", ev->sip_status);
			call->xfer_active = false;
			update_text(call, "transfer_outcome", o);
		}
		break;
	}
	case RV_CALL_EV_HANGUP: {
		struct rv_media_stats st;
		rv_call_media_stats(sc, &st);
		if (call->sip == sc && failover_ok(call, ev)) {
			const char *tname = call->tel->cfg->trunks[call->trunk].name;
			rv_metrics_inc("rv_tel_trunk_failover_total", 1, tname, NULL);
			rv_logkv(RV_LOG_WARN, TEL_COMP, "trunk failed, trying the next", "trunk",
			         tname, "cause", rv_hangup_cause_name(ev->cause), NULL);
			rv_call_set_user(sc, NULL);
			call->sip = mem_deref(call->sip);
			call->attempt++;
			int err = dial_from(call);
			if (!err)
				return;
			outbound_failed_now(call, err);
			return;
		}
		if (ev->cause == RV_HANGUP_TRANSFERRED)
			call->transferred = true;
		finalize(call, rv_call_disposition_name(ev->disposition),
		         rv_hangup_cause_name(ev->cause), ev->remote, &st);
		break;
	}
	}
}

/* ---- inbound ---------------------------------------------------------------------------- */

static struct rv_tel_call *inbound_new(struct rv_tel *tel, struct rv_call *sc,
                                       const struct rv_sip_inbound *in,
                                       const struct rv_tel_route *route)
{
	char now[40];
	struct rv_tel_call *call = call_alloc(tel);
	if (!call)
		return NULL;
	call->channel = RV_TEL_SIP;
	call->t_start = tmr_jiffies();
	if (route) {
		call->campaign_id = route->campaign_id;
		call->flow_id = route->flow_id;
		rv_strlcpy(call->rec_policy, route->recording_policy, sizeof(call->rec_policy));
	}
	rv_strlcpy(call->from, in ? tel_str(in->from_uri) : "", sizeof(call->from));
	rv_strlcpy(call->to, in ? tel_str(in->to_uri) : "", sizeof(call->to));
	call->key = tel_live_add(tel, 0, call->campaign_id, -1);
	if (!call->key) {
		mem_deref(call);
		return NULL;
	}
	call->sip = mem_ref(sc);
	rv_call_set_user(sc, &call->leg);

	struct tel_job *j = tel_job_new(TEL_JOB_INSERT, call->key, 0);
	if (call->campaign_id)
		tel_job_int(j, "campaign_id", call->campaign_id);
	tel_job_text(j, "direction", "inbound");
	tel_job_text(j, "channel", "sip");
	tel_job_text(j, "sip_call_id", rv_call_id(sc));
	tel_job_text(j, "from_uri", call->from);
	tel_job_text(j, "to_uri", call->to);
	tel_job_text(j, "state", "queued");
	tel_job_text(j, "created_at", rv_time_iso_now(now, sizeof(now)));
	tel_job_push(tel, j);
	log_event(call, "incoming", "from", call->from, "to", call->to);
	return call;
}

/*
 * Routing: the Request-URI's user (else the To user) picks the campaign. A number no campaign
 * claims is still answered, with no campaign (the default runner and recording.default): a
 * misrouted DID then reaches a person-free prompt rather than a bare 404, and the call is on
 * record. A campaign at its max_concurrent gets 486, so the carrier can try elsewhere.
 */
static int route_h(struct rv_call *sc, const struct rv_sip_inbound *in, void *arg)
{
	struct rv_tel *tel = arg;
	struct rv_tel_route r;
	const char *called = in && in->ruri_user && *in->ruri_user ? in->ruri_user
	                     : in                                  ? in->to_user
	                                                           : NULL;
	bool routed = rv_tel_route_lookup(tel, called, &r) == 0;
	if (routed && r.max_concurrent > 0 &&
	    tel_live_campaign_count(tel, r.campaign_id) >= (size_t)r.max_concurrent) {
		char cid[24];
		id_str(r.campaign_id, cid, sizeof(cid));
		rv_logkv(RV_LOG_INFO, TEL_COMP, "inbound call refused: campaign at max_concurrent",
		         "campaign", cid, "called", tel_str(called), "sip_call_id",
		         tel_str(rv_call_id(sc)), NULL);
		rv_metrics_inc("rv_tel_inbound_refused_total", 1, "campaign_busy", NULL);
		return 486;
	}
	if (!routed) {
		rv_logkv(RV_LOG_INFO, TEL_COMP,
		         "inbound call with no route: answered without a campaign", "called",
		         tel_str(called), NULL);
		rv_metrics_inc("rv_tel_inbound_unrouted_total", 1, NULL);
	}
	if (!inbound_new(tel, sc, in, routed ? &r : NULL)) {
		rv_metrics_inc("rv_tel_inbound_refused_total", 1, "internal", NULL);
		return 500;
	}
	return 0;
}

/* ---- REGISTER --------------------------------------------------------------------------- */

static void reg_destructor(void *arg)
{
	struct tel_reg *r = arg;
	list_unlink(&r->le);
	mem_deref(r->reg);
}

static void reg_h(int status, uint32_t expires, void *arg)
{
	struct tel_reg *r = arg;
	const char *name = r->tel->cfg->trunks[r->trunk].name;
	char st[8], ex[16];
	snprintf(st, sizeof(st), "%d", status);
	snprintf(ex, sizeof(ex), "%u", expires);
	bool ok = status >= 200 && status < 300;
	rv_logkv(ok ? RV_LOG_INFO : RV_LOG_WARN, TEL_COMP,
	         ok ? "registered with the trunk" : "registration failed", "trunk", name, "status",
	         st, "expires", ex, NULL);
	rv_metrics_inc("rv_tel_register_total", 1, name,
	               ok       ? "ok"
	               : status ? "rejected"
	                        : "error",
	               NULL);
	rv_metrics_set("rv_tel_registered", ok ? 1 : 0, name, NULL);
	r->last_status = status;
}

static void start_registrations(struct rv_tel *tel)
{
	for (size_t i = 0; i < tel->cfg->ntrunks; i++) {
		const struct rv_trunk_cfg *t = &tel->cfg->trunks[i];
		if (!t->register_)
			continue;
		char registrar[TEL_URI_MAX], aor[TEL_URI_MAX];
		snprintf(registrar, sizeof(registrar), "sip:%s:%d;transport=%s", t->host,
		         t->port ? t->port : 5060, t->transport);
		snprintf(aor, sizeof(aor), "sip:%s@%s", t->username,
		         *t->domain ? t->domain : t->host);
		struct rv_sip_reg_cfg rc = {.registrar = registrar,
		                            .aor = aor,
		                            .user = t->username,
		                            .password = t->password,
		                            .expires = t->expires ? (uint32_t)t->expires : 3600};
		struct tel_reg *r = mem_zalloc(sizeof(*r), reg_destructor);
		if (!r)
			continue;
		r->tel = tel;
		r->trunk = (int)i;
		int err = rv_sip_ua_register(tel->lp->ua, &rc, reg_h, r, &r->reg);
		if (err) {
			rv_logkv(RV_LOG_ERROR, TEL_COMP, "cannot start REGISTER", "trunk", t->name,
			         "error", strerror(-err), NULL);
			rv_metrics_inc("rv_tel_register_total", 1, t->name, "error", NULL);
			mem_deref(r);
			continue;
		}
		list_append(&tel->lp->regs, &r->le, r);
		rv_logkv(RV_LOG_INFO, TEL_COMP, "registering with the trunk", "trunk", t->name,
		         "registrar", registrar, "aor", aor, NULL);
	}
}

/* ---- loop start and stop ---------------------------------------------------------------- */

static int parse_ports(const char *s, uint16_t *lo, uint16_t *hi)
{
	char a[16];
	int64_t x, y;
	const char *dash = strchr(s, '-');
	if (!dash || (size_t)(dash - s) >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	if (rv_parse_int64(a, 1024, 65534, &x) || rv_parse_int64(dash + 1, 1025, 65535, &y))
		return -EINVAL;
	*lo = (uint16_t)x;
	*hi = (uint16_t)y;
	return 0;
}

static int loop_init(void *arg)
{
	struct rv_tel *tel = arg;
	struct tel_loop *lp = mem_zalloc(sizeof(*lp), NULL);
	if (!lp)
		return -ENOMEM;
	list_init(&lp->calls);
	list_init(&lp->regs);
	lp->prompt = tel->prompt; /* the one reference moves to the loop */
	tel->prompt = NULL;
	tel->lp = lp;
	if (!tel->sip_on)
		return 0;
	struct rv_sip_ua_cfg uc = {
	    .listen = tel->cfg->sip_listen,
	    .ring_ms = (uint32_t)tel->cfg->sip_ring_ms,
	    .max_calls = (uint32_t)tel->cfg->sip_max_calls,
	    .public_addr = tel->cfg->sip_public_addr,
	};
	if (parse_ports(tel->cfg->sip_rtp_ports, &uc.rtp_port_min, &uc.rtp_port_max) != 0)
		return -EINVAL;
	int err = rv_sip_ua_alloc(&uc, call_event_h, tel, &lp->ua);
	if (err)
		return err;
	rv_sip_ua_set_route_handler(lp->ua, route_h, tel);
	tel->sip_port = rv_sip_ua_port(lp->ua);
	start_registrations(tel);
	return 0;
}

/* Shutdown, on the loop: end every call (rows get cause "shutdown", by "system"). */
static void loop_hangup_all(void *arg)
{
	struct rv_tel *tel = arg;
	list_flush(&tel->lp->regs);
	struct le *le = list_head(&tel->lp->calls);
	while (le) {
		struct rv_tel_call *call = le->data;
		le = le->next;
		rv_strlcpy(call->end_by, "system", sizeof(call->end_by));
		rv_strlcpy(call->end_cause, "shutdown", sizeof(call->end_cause));
		mem_ref(call);
		do_hangup(call);
		mem_deref(call);
	}
}

static void loop_fini(void *arg)
{
	struct rv_tel *tel = arg;
	struct tel_loop *lp = tel->lp;
	/* Channel calls whose transport never confirmed the end are closed here. */
	while (!list_isempty(&lp->calls)) {
		struct rv_tel_call *call = list_ledata(list_head(&lp->calls));
		rv_strlcpy(call->end_by, "system", sizeof(call->end_by));
		rv_strlcpy(call->end_cause, "shutdown", sizeof(call->end_cause));
		finalize(call, "failed", "shutdown", false, NULL);
	}
	lp->ua = mem_deref(lp->ua);
	lp->prompt = mem_deref(lp->prompt);
	tel->lp = NULL;
	mem_deref(lp);
}

static void register_metrics(void)
{
	static const double setup_b[] = {0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60};
	static const double dur_b[] = {1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600};
	rv_metrics_register("rv_calls_total", RV_METRIC_COUNTER, "Calls ended, by outcome",
	                    "direction,disposition", NULL, 0);
	rv_metrics_register("rv_calls_live", RV_METRIC_GAUGE, "Calls in progress on this node",
	                    NULL, NULL, 0);
	rv_metrics_register("rv_call_setup_seconds", RV_METRIC_HISTOGRAM,
	                    "Time from INVITE to answer", NULL, setup_b, RV_ARRAY_LEN(setup_b));
	rv_metrics_register("rv_call_duration_seconds", RV_METRIC_HISTOGRAM,
	                    "Answered calls, answer to hang-up", NULL, dur_b, RV_ARRAY_LEN(dur_b));
	rv_metrics_register("rv_tel_register_total", RV_METRIC_COUNTER,
	                    "REGISTER outcomes per trunk", "trunk,outcome", NULL, 0);
	rv_metrics_register("rv_tel_registered", RV_METRIC_GAUGE,
	                    "1 while the trunk's registration is valid", "trunk", NULL, 0);
	rv_metrics_register("rv_tel_trunk_failover_total", RV_METRIC_COUNTER,
	                    "Outbound attempts moved off a failing trunk", "trunk", NULL, 0);
	rv_metrics_register("rv_tel_inbound_refused_total", RV_METRIC_COUNTER,
	                    "Inbound calls refused by routing", "reason", NULL, 0);
	rv_metrics_register("rv_tel_inbound_unrouted_total", RV_METRIC_COUNTER,
	                    "Inbound calls to a number no campaign claims", NULL, NULL, 0);
	rv_metrics_set("rv_calls_live", 0, NULL);
}

static void tel_free(struct rv_tel *tel)
{
	tel_routes_stop(tel);
	tel_writer_stop(tel);
	mem_deref(tel->prompt);
	pthread_mutex_destroy(&tel->live_mu);
	pthread_mutex_destroy(&tel->wmu);
	pthread_cond_destroy(&tel->wcv);
	pthread_cond_destroy(&tel->widle);
	pthread_mutex_destroy(&tel->rmu);
	pthread_cond_destroy(&tel->rcv);
	pthread_mutex_destroy(&tel->hook_mu);
	free(tel->live);
	free(tel);
}

int rv_tel_start(struct rv_app *app, const struct rv_call_app *capp, struct rv_tel **out, char *err,
                 size_t errlen)
{
	struct rv_tel *tel = rv_xcalloc(1, sizeof(*tel));
	int ret;
	tel->app = app;
	tel->cfg = app->cfg;
	pthread_mutex_init(&tel->live_mu, NULL);
	pthread_mutex_init(&tel->wmu, NULL);
	pthread_cond_init(&tel->wcv, NULL);
	pthread_cond_init(&tel->widle, NULL);
	pthread_mutex_init(&tel->rmu, NULL);
	pthread_cond_init(&tel->rcv, NULL);
	pthread_mutex_init(&tel->hook_mu, NULL);
	tel->inserted_h = inserted_h;
	if (capp) {
		tel->capp = *capp;
	} else {
		tel->capp = (struct rv_call_app){
		    .name = "default", .start = default_start, .end = default_end, .arg = tel};
	}
	const char *sl = tel->cfg->sip_listen;
	tel->sip_on = sl && *sl && strcmp(sl, "off") != 0;
	register_metrics();

	int64_t stale = 0;
	ret = tel_close_stale(tel, &stale);
	if (ret) {
		snprintf(err, errlen, "cannot close the calls left open: %s",
		         rv_store_strerror(ret));
		goto fail;
	}
	if (stale > 0)
		rv_warn(TEL_COMP,
		        "%" PRId64 " call(s) left open by an earlier run closed as failed", stale);
	const char *prompt = tel->cfg->calls_prompt;
	if (prompt && *prompt) {
		ret = rv_pcm_load_file(prompt, RV_MEDIA_RATE, &tel->prompt);
		if (ret) {
			snprintf(err, errlen, "calls.default_prompt: cannot read %s as audio",
			         prompt);
			goto fail;
		}
	}
	ret = tel_writer_start(tel);
	if (ret) {
		snprintf(err, errlen, "cannot start the call store writer: %s", strerror(-ret));
		goto fail;
	}
	ret = tel_routes_start(tel);
	if (ret) {
		snprintf(err, errlen, "cannot load the inbound routes: %s", rv_store_strerror(ret));
		goto fail;
	}
	ret = rv_media_loop_start(loop_init, tel, &tel->loop);
	if (ret) {
		snprintf(err, errlen, "cannot start SIP on %s: %s", tel->cfg->sip_listen,
		         strerror(-ret));
		goto fail;
	}
	if (tel->sip_on)
		rv_info(TEL_COMP, "telephony ready: SIP on %s (port %u), %zu trunk(s)",
		        tel->cfg->sip_listen, tel->sip_port, tel->cfg->ntrunks);
	else
		rv_info(TEL_COMP, "telephony ready: SIP off");
	*out = tel;
	return 0;
fail:
	tel_free(tel);
	return ret < 0 ? ret : -EIO;
}

void rv_tel_stop(struct rv_tel *tel)
{
	if (!tel)
		return;
	size_t live = rv_tel_live_count(tel);
	if (rv_media_loop_exec(tel->loop, loop_hangup_all, tel) == 0 && live > 0) {
		/* Our BYEs (and CANCELs) are in flight: keep SIP up long enough for the far ends
		 * to answer them, or they retransmit into a closed socket. */
		usleep(LINGER_MS * 1000);
	}
	rv_media_loop_stop(tel->loop, loop_fini, tel);
	tel->loop = NULL;
	if (rv_rec_wait_idle(10000) != 0)
		rv_warn(TEL_COMP, "recordings were still being written at stop");
	tel_free(tel);
	rv_info(TEL_COMP, "telephony stopped (%zu call(s) ended at stop)", live);
}

struct rv_media_loop *rv_tel_loop(struct rv_tel *tel)
{
	return tel ? tel->loop : NULL;
}

uint16_t rv_tel_sip_port(const struct rv_tel *tel)
{
	return tel && tel->sip_on ? tel->sip_port : 0;
}

/* ---- outbound: rv_tel_dial ------------------------------------------------------------- */

struct dial_msg {
	struct rv_tel *tel;
	uint64_t key;
	int64_t id, campaign_id, lead_id, flow_id;
	char rec_policy[16];
	char from[TEL_URI_MAX], to[TEL_URI_MAX];
	struct tel_plan plan;
};

static void end_row_now(struct rv_tel *tel, int64_t id, const char *disp, const char *cause,
                        const char *by, const char *direction)
{
	char now[40];
	struct tel_job *j = tel_job_new(TEL_JOB_UPDATE, 0, id);
	tel_job_text(j, "state", "ended");
	tel_job_text(j, "ended_at", rv_time_iso_now(now, sizeof(now)));
	tel_job_text(j, "disposition", disp);
	tel_job_text(j, "hangup_cause", cause);
	tel_job_text(j, "hangup_by", by);
	tel_job_push(tel, j);
	rv_metrics_inc("rv_calls_total", 1, direction, disp, NULL);
}

static void dial_cmd(void *arg)
{
	struct dial_msg *m = arg;
	struct rv_tel *tel = m->tel;
	struct rv_tel_call *call = call_alloc(tel);
	if (!call) {
		end_row_now(tel, m->id, "failed", "internal", "system", "outbound");
		tel_live_remove(tel, m->key);
		free(m);
		return;
	}
	call->key = m->key;
	call->id = m->id;
	call->outbound = true;
	call->channel = RV_TEL_SIP;
	call->campaign_id = m->campaign_id;
	call->lead_id = m->lead_id;
	call->flow_id = m->flow_id;
	rv_strlcpy(call->rec_policy, m->rec_policy, sizeof(call->rec_policy));
	rv_strlcpy(call->from, m->from, sizeof(call->from));
	rv_strlcpy(call->to, m->to, sizeof(call->to));
	call->plan = m->plan;
	call->t_start = tmr_jiffies();
	free(m);
	int err = dial_from(call);
	if (err)
		outbound_failed_now(call, err);
}

static int trunk_index(const struct rv_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ntrunks; i++)
		if (strcmp(cfg->trunks[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* A SIP URI we can dial: sip:[user@]host[:port][;params], no spaces or controls. */
static bool uri_ok(const char *s)
{
	struct uri u;
	struct pl pl;
	if (strncmp(s, "sip:", 4) != 0 || strlen(s) >= TEL_URI_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == '<' || *c == '>' || *c == '"')
			return false;
	pl_set_str(&pl, s);
	return uri_decode(&u, &pl) == 0 && pl_isset(&u.host);
}

/* The campaign's dialling fields (control plane). 0, -ENOENT or a store error. */
static int load_campaign(struct rv_tel *tel, int64_t cid, struct dial_msg *m, char *caller_id,
                         size_t cidlen, char *trunk, size_t tlen, char *region, size_t rlen)
{
	static const char sql[] = "SELECT caller_id, trunk, recording_policy, flow_id, "
	                          "default_country FROM campaigns WHERE id = $1";
	struct rv_val p[1] = {RV_VINT(cid)};
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(tel->app->store, sql, p, 1, &rows, NULL);
	if (err)
		return err;
	if (rows->nrows == 0) {
		rv_rows_free(rows);
		return -ENOENT;
	}
	const struct rv_val *v = rv_rows_at(rows, 0, 0);
	rv_strlcpy(caller_id, v->type == RV_VAL_TEXT ? v->s : "", cidlen);
	v = rv_rows_at(rows, 0, 1);
	rv_strlcpy(trunk, v->type == RV_VAL_TEXT ? v->s : "", tlen);
	v = rv_rows_at(rows, 0, 2);
	rv_strlcpy(m->rec_policy, v->type == RV_VAL_TEXT ? v->s : "", sizeof(m->rec_policy));
	v = rv_rows_at(rows, 0, 3);
	m->flow_id = v->type == RV_VAL_INT ? v->i : 0;
	v = rv_rows_at(rows, 0, 4);
	if (v->type == RV_VAL_TEXT && v->s[0])
		rv_strlcpy(region, v->s, rlen);
	rv_rows_free(rows);
	return 0;
}

static int insert_outbound(struct rv_tel *tel, const struct dial_msg *m, const char *trunk,
                           const char *channel, int64_t *id)
{
	static const char sql[] =
	    "INSERT INTO calls (campaign_id, lead_id, direction, channel, from_uri, to_uri, trunk, "
	    "state, created_at) VALUES ($1, $2, 'outbound', $3, $4, $5, $6, 'queued', $7) "
	    "RETURNING id";
	char now[40];
	struct rv_val p[7] = {m->campaign_id ? RV_VINT(m->campaign_id) : RV_VNULL,
	                      m->lead_id ? RV_VINT(m->lead_id) : RV_VNULL,
	                      RV_VTEXT(channel),
	                      RV_VTEXT(m->from),
	                      RV_VTEXT(m->to),
	                      RV_VTEXT(trunk),
	                      RV_VTEXT(rv_time_iso_now(now, sizeof(now)))};
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(tel->app->store, sql, p, 7, &rows, NULL);
	if (err)
		return err;
	if (rows->nrows != 1 || rv_rows_at(rows, 0, 0)->type != RV_VAL_INT) {
		rv_rows_free(rows);
		return -EIO;
	}
	*id = rv_rows_at(rows, 0, 0)->i;
	rv_rows_free(rows);
	return 0;
}

static int dial_twilio(struct rv_tel *tel, struct dial_msg *m, int64_t *call_id)
{
	struct tel_twilio_hook hook;
	pthread_mutex_lock(&tel->hook_mu);
	hook = tel->twilio;
	pthread_mutex_unlock(&tel->hook_mu);
	if (!hook.dial) {
		rv_warn(TEL_COMP, "cannot dial through trunk \"twilio\": Twilio is not configured");
		return -EINVAL;
	}
	int64_t id = 0;
	int err = insert_outbound(tel, m, "twilio", "twilio", &id);
	if (err)
		return err;
	uint64_t key = tel_live_add(tel, id, m->campaign_id, -1);
	if (!key) {
		end_row_now(tel, id, "failed", "capacity", "system", "outbound");
		return -EBUSY;
	}
	struct tel_live l;
	if (tel_live_get(tel, key, 0, &l)) {
		l.lead_id = m->lead_id;
		l.flow_id = m->flow_id;
		rv_strlcpy(l.rec_policy, m->rec_policy, sizeof(l.rec_policy));
		tel_live_update(tel, &l);
	}
	err = hook.dial(hook.arg, id, m->to, m->from[0] ? m->from : NULL);
	if (err) {
		end_row_now(tel, id, "failed", "twilio_error", "system", "outbound");
		tel_live_remove(tel, key);
		return err;
	}
	*call_id = id;
	return 0;
}

int rv_tel_dial(struct rv_tel *tel, const struct rv_tel_dial *d, int64_t *call_id)
{
	char caller_id[TEL_URI_MAX] = "", ctrunk[200] = "", region[8];
	if (!tel || !d || !d->to || !*d->to || !call_id)
		return -EINVAL;
	struct dial_msg *m = rv_xcalloc(1, sizeof(*m));
	int err = 0;
	m->tel = tel;
	m->campaign_id = d->campaign_id;
	m->lead_id = d->lead_id;
	rv_strlcpy(region,
	           tel->cfg->default_country && *tel->cfg->default_country
	               ? tel->cfg->default_country
	               : "US",
	           sizeof(region));
	if (d->campaign_id > 0) {
		err = load_campaign(tel, d->campaign_id, m, caller_id, sizeof(caller_id), ctrunk,
		                    sizeof(ctrunk), region, sizeof(region));
		if (err)
			goto out;
	}
	/* Caller ID: the request's, else the campaign's, else (at dial time) the trunk's. */
	rv_strlcpy(m->from, d->from && *d->from ? d->from : caller_id, sizeof(m->from));
	const char *tname = d->trunk && *d->trunk ? d->trunk : NULL;

	bool is_uri = strncmp(d->to, "sip:", 4) == 0;
	if (is_uri) {
		if (!uri_ok(d->to)) {
			err = -EINVAL;
			goto out;
		}
		rv_strlcpy(m->plan.uri, d->to, sizeof(m->plan.uri));
		rv_strlcpy(m->to, d->to, sizeof(m->to));
	} else {
		const char *why = NULL;
		if (rv_phone_e164(d->to, region, m->plan.number, sizeof(m->plan.number), &why) !=
		    0) {
			err = -EINVAL;
			goto out;
		}
		rv_strlcpy(m->to, m->plan.number, sizeof(m->to));
		if (!tname && *ctrunk)
			tname = ctrunk;
	}
	if (tname && strcmp(tname, "twilio") == 0) {
		err = dial_twilio(tel, m, call_id);
		goto out;
	}
	if (!tel->sip_on) {
		err = -ENOTCONN;
		goto out;
	}
	if (rv_tel_live_count(tel) >= (size_t)tel->cfg->sip_max_calls) {
		err = -EBUSY;
		goto out;
	}
	if (tname) {
		int ti = trunk_index(tel->cfg, tname);
		if (ti < 0) {
			err = -EINVAL;
			goto out;
		}
		m->plan.trunks[m->plan.ntrunks++] = ti;
	} else if (!is_uri) {
		for (size_t i = 0; i < tel->cfg->ntrunks && m->plan.ntrunks < TEL_MAX_TRUNKS; i++)
			m->plan.trunks[m->plan.ntrunks++] = (int)i;
		if (!m->plan.ntrunks) {
			rv_warn(TEL_COMP, "cannot dial a number: no trunks are configured");
			err = -EINVAL;
			goto out;
		}
	}
	/* Every candidate trunk at its own limit: refuse now rather than fail later. */
	size_t room = 0;
	for (size_t i = 0; i < m->plan.ntrunks; i++) {
		const struct rv_trunk_cfg *t = &tel->cfg->trunks[m->plan.trunks[i]];
		room += t->max_calls == 0 ||
		        tel_live_trunk_count(tel, m->plan.trunks[i]) < (size_t)t->max_calls;
	}
	if (m->plan.ntrunks && !room) {
		err = -EBUSY;
		goto out;
	}
	rv_strlcpy(m->plan.from, m->from, sizeof(m->plan.from));
	int first = m->plan.ntrunks ? m->plan.trunks[0] : -1;
	err =
	    insert_outbound(tel, m, first >= 0 ? tel->cfg->trunks[first].name : "", "sip", &m->id);
	if (err)
		goto out;
	m->key = tel_live_add(tel, m->id, m->campaign_id, first);
	if (!m->key) {
		end_row_now(tel, m->id, "failed", "capacity", "system", "outbound");
		err = -EBUSY;
		goto out;
	}
	int64_t id = m->id;
	uint64_t key = m->key;
	err = rv_media_loop_exec(tel->loop, dial_cmd, m);
	if (err) {
		end_row_now(tel, id, "failed", "internal", "system", "outbound");
		tel_live_remove(tel, key);
		goto out;
	}
	m = NULL; /* the loop owns it */
	*call_id = id;
	char ids[24];
	id_str(id, ids, sizeof(ids));
	rv_logkv(RV_LOG_INFO, TEL_COMP, "call event", "event", "queued", "call", ids, "direction",
	         "outbound", "to", d->to, NULL);
out:
	free(m);
	return err;
}

/* ---- control-plane commands ------------------------------------------------------------ */

enum cmd_type { CMD_HANGUP, CMD_DTMF, CMD_RECORD, CMD_TRANSFER };

struct cmd_msg {
	struct rv_tel *tel;
	uint64_t key;
	enum cmd_type type;
	char digits[64];
	bool on;
	enum rv_tel_transfer_mode mode;
	char to[TEL_URI_MAX];
	int trunk; /* transfer to a number: the trunk it goes through, -1: direct URI */
	bool whisper_asked;
	struct rv_pcm *whisper; /* one reference, handed to the loop */
};

static int call_transfer(struct rv_tel_call *call, enum rv_tel_transfer_mode mode, const char *to,
                         int trunk, struct rv_pcm *whisper, bool whisper_asked);

static void cmd_run(void *arg)
{
	struct cmd_msg *m = arg;
	struct rv_tel_call *call = find_call(m->tel, m->key);
	char id[24];
	if (!call || call->over) {
		rv_logkv(RV_LOG_INFO, TEL_COMP, "command for a call that has ended", NULL);
		goto out;
	}
	id_str(call->id, id, sizeof(id));
	switch (m->type) {
	case CMD_HANGUP:
		rv_strlcpy(call->end_by, "local", sizeof(call->end_by));
		rv_strlcpy(call->end_cause, "api", sizeof(call->end_cause));
		do_hangup(call);
		break;
	case CMD_DTMF: {
		int err = -ENOTSUP;
		if (call->channel == RV_TEL_TWILIO && call->ops && call->ops->send_dtmf)
			err = call->ops->send_dtmf(call->ops_arg, m->digits);
		else if (call->audio)
			err = rv_audio_send_dtmf(call->audio, m->digits, 0);
		rv_logkv(err ? RV_LOG_WARN : RV_LOG_INFO, TEL_COMP,
		         err ? "cannot send DTMF" : "sending DTMF", "call", id, "digits", m->digits,
		         "error", err ? strerror(-err) : "", NULL);
		break;
	}
	case CMD_RECORD:
		if (!call->audio)
			break;
		if (m->on) {
			start_recording(call);
		} else {
			rv_audio_record_stop(call->audio);
			log_event(call, "recording_stopped", NULL, NULL, NULL, NULL);
		}
		break;
	case CMD_TRANSFER: {
		struct rv_pcm *w = m->whisper;
		m->whisper = NULL;
		(void)call_transfer(call, m->mode, m->to, m->trunk, w, m->whisper_asked);
		break;
	}
	}
out:
	mem_deref(m->whisper);
	free(m);
}

static int queue_cmd(struct rv_tel *tel, int64_t call_id, struct cmd_msg *m)
{
	if (!tel) {
		mem_deref(m->whisper);
		free(m);
		return -ENOTCONN;
	}
	m->tel = tel;
	m->key = tel_live_key(tel, call_id);
	if (!m->key) {
		mem_deref(m->whisper);
		free(m);
		return -ENOENT;
	}
	int err = rv_media_loop_exec(tel->loop, cmd_run, m);
	if (err) {
		mem_deref(m->whisper);
		free(m);
	}
	return err;
}

int rv_tel_hangup(struct rv_tel *tel, int64_t call_id)
{
	struct cmd_msg *m = rv_xcalloc(1, sizeof(*m));
	m->type = CMD_HANGUP;
	return queue_cmd(tel, call_id, m);
}

static bool digits_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n > 0 && n < 64 && strspn(s, "0123456789*#ABCD") == n;
}

int rv_tel_send_dtmf(struct rv_tel *tel, int64_t call_id, const char *digits)
{
	if (!digits_ok(digits))
		return -EINVAL;
	struct cmd_msg *m = rv_xcalloc(1, sizeof(*m));
	m->type = CMD_DTMF;
	rv_strlcpy(m->digits, digits, sizeof(m->digits));
	return queue_cmd(tel, call_id, m);
}

int rv_tel_record(struct rv_tel *tel, int64_t call_id, bool on)
{
	struct cmd_msg *m = rv_xcalloc(1, sizeof(*m));
	m->type = CMD_RECORD;
	m->on = on;
	return queue_cmd(tel, call_id, m);
}

/* A transfer target as a dialable URI: a SIP URI as is, a number through the first trunk. */
static int transfer_uri(struct rv_tel *tel, const char *to, char *uri, size_t len, int *trunk)
{
	*trunk = -1;
	if (strncmp(to, "sip:", 4) == 0) {
		if (!uri_ok(to))
			return -EINVAL;
		rv_strlcpy(uri, to, len);
		return 0;
	}
	char e164[64], proxy[TEL_URI_MAX];
	const char *why = NULL;
	const char *region = tel->cfg->default_country && *tel->cfg->default_country
	                         ? tel->cfg->default_country
	                         : "US";
	if (rv_phone_e164(to, region, e164, sizeof(e164), &why) != 0 || tel->cfg->ntrunks == 0)
		return -EINVAL;
	*trunk = 0;
	trunk_target(&tel->cfg->trunks[0], e164, NULL, uri, len, proxy, sizeof(proxy));
	return 0;
}

int rv_tel_transfer(struct rv_tel *tel, int64_t call_id, const struct rv_tel_transfer *t)
{
	if (!t || !t->to)
		return -EINVAL;
	if (!tel)
		return -ENOTCONN;
	struct cmd_msg *m = rv_xcalloc(1, sizeof(*m));
	int trunk;
	m->type = CMD_TRANSFER;
	m->mode = t->mode;
	if (transfer_uri(tel, t->to, m->to, sizeof(m->to), &trunk) != 0) {
		free(m);
		return -EINVAL;
	}
	m->trunk = trunk;
	if (!tel_live_key(tel, call_id)) {
		free(m);
		return -ENOENT;
	}
	if (t->mode == RV_TEL_TRANSFER_BRIDGED && t->whisper && *t->whisper) {
		m->whisper_asked = true;
		/* Synthesis blocks: it runs here, on the control plane, never on the loop. */
		if (tel_whisper_synth(t->whisper, &m->whisper) != 0)
			m->whisper = NULL;
	}
	return queue_cmd(tel, call_id, m);
}

/* ---- transfers (loop) ------------------------------------------------------------------- */

static int call_transfer(struct rv_tel_call *call, enum rv_tel_transfer_mode mode, const char *to,
                         int trunk, struct rv_pcm *whisper, bool whisper_asked)
{
	struct rv_tel *tel = call->tel;
	int err = 0;
	struct tel_job *j = call_job(call, false);
	tel_job_text(j, "transfer_target", to);
	tel_job_text(j, "transfer_mode", mode == RV_TEL_TRANSFER_BLIND ? "blind" : "bridged");
	if (call->channel != RV_TEL_SIP || !call->sip || !call->answered || call->xfer_active) {
		tel_job_text(j, "transfer_outcome",
		             call->xfer_active ? "refused_busy" : "refused_not_answered");
		tel_job_push(tel, j);
		mem_deref(whisper);
		return -EPROTO;
	}
	if (mode == RV_TEL_TRANSFER_BLIND) {
		err = rv_call_transfer_blind(call->sip, to);
		tel_job_text(j, "transfer_outcome", err ? "refer_failed" : "refer_sent");
		if (!err)
			call->xfer_active = true;
		tel_job_push(tel, j);
		log_event(call, "transfer", "mode", "blind", "to", to);
		mem_deref(whisper);
		return err;
	}
	/* Bridged: dial the agent; on answer whisper, then connect the legs. */
	char proxy[TEL_URI_MAX] = "", from[TEL_URI_MAX] = "";
	const struct rv_trunk_cfg *t = trunk >= 0 ? &tel->cfg->trunks[trunk] : NULL;
	if (t) {
		snprintf(proxy, sizeof(proxy), "sip:%s:%d;transport=%s", t->host,
		         t->port ? t->port : 5060, t->transport);
		build_from(t, call->plan.from, from, sizeof(from));
	}
	struct rv_sip_dial d = {
	    .uri = to,
	    .from = from[0] ? from : NULL,
	    .outbound_proxy = proxy[0] ? proxy : NULL,
	    .user = t && *t->username ? t->username : NULL,
	    .password = t && *t->username ? t->password : NULL,
	    .timeout_ms = (uint32_t)tel->cfg->sip_no_answer * 1000,
	};
	struct rv_call *ag = NULL;
	err = rv_sip_ua_dial(tel->lp->ua, &d, &call->agent_leg, &ag);
	if (err) {
		tel_job_text(j, "transfer_outcome", "dial_failed");
		tel_job_push(tel, j);
		mem_deref(whisper);
		return err;
	}
	call->agent = mem_ref(ag);
	call->xfer_active = true;
	call->xmode = mode;
	mem_deref(call->whisper);
	call->whisper = whisper;
	tel_job_text(j, "transfer_outcome", "dialing_agent");
	if (whisper_asked && !whisper)
		tel_job_text(j, "transfer_whisper", "unavailable");
	else if (!whisper_asked)
		tel_job_text(j, "transfer_whisper", "none");
	tel_job_push(tel, j);
	log_event(call, "transfer", "mode", "bridged", "to", to);
	return 0;
}

/* ---- loop-thread API -------------------------------------------------------------------- */

void rv_tel_call_hangup(struct rv_tel_call *call, const char *disposition)
{
	if (!call || call->over)
		return;
	if (!call->disposition[0])
		rv_strlcpy(call->disposition, disposition ? disposition : "completed",
		           sizeof(call->disposition));
	if (!call->end_by[0])
		rv_strlcpy(call->end_by, "local", sizeof(call->end_by));
	if (!call->end_cause[0])
		rv_strlcpy(call->end_cause, "runner", sizeof(call->end_cause));
	/* Not from inside a runner hook: the end hook must not run under the caller's feet. */
	tmr_start(&call->hangup_tmr, 0, do_hangup, call);
}

int rv_tel_call_transfer(struct rv_tel_call *call, const struct rv_tel_transfer *t)
{
	char uri[TEL_URI_MAX];
	int trunk;
	if (!call || !t || !t->to)
		return -EINVAL;
	if (transfer_uri(call->tel, t->to, uri, sizeof(uri), &trunk) != 0)
		return -EINVAL;
	bool asked = t->whisper && *t->whisper;
	if (asked)
		rv_logkv(RV_LOG_INFO, TEL_COMP,
		         "whisper skipped: a transfer from the loop cannot synthesize speech",
		         NULL);
	return call_transfer(call, t->mode, uri, trunk, NULL, asked);
}

int64_t rv_tel_call_id(const struct rv_tel_call *call)
{
	return call ? call->id : 0;
}

int rv_tel_call_attach(struct rv_tel *tel, const struct rv_tel_attach *a, struct rv_tel_call **out)
{
	char now[40];
	if (!tel || !a || !a->audio || !out)
		return -EINVAL;
	struct tel_live l = {0};
	bool existing = a->call_id > 0 && tel_live_get(tel, 0, a->call_id, &l);
	if (a->call_id > 0 && !existing)
		return -ENOENT;
	if (existing && l.attached)
		return -EALREADY;
	struct rv_tel_call *call = call_alloc(tel);
	if (!call)
		return -ENOMEM;
	call->channel = a->channel;
	call->outbound = a->outbound;
	call->audio = a->audio;
	call->ops = a->ops;
	call->ops_arg = a->ops_arg;
	call->t_start = tmr_jiffies();
	rv_strlcpy(call->from, tel_str(a->from), sizeof(call->from));
	rv_strlcpy(call->to, tel_str(a->to), sizeof(call->to));
	if (existing) {
		call->key = l.key;
		call->id = l.id;
		call->campaign_id = l.campaign_id;
		call->lead_id = l.lead_id;
		call->flow_id = l.flow_id;
		rv_strlcpy(call->rec_policy, l.rec_policy, sizeof(call->rec_policy));
		l.attached = true;
		tel_live_update(tel, &l);
		struct tel_job *j = call_job(call, false);
		if (a->external_id)
			tel_job_text(j, "twilio_call_sid", a->external_id);
		tel_job_push(tel, j);
	} else {
		struct rv_tel_route r;
		call->campaign_id = a->campaign_id;
		if (!a->campaign_id && !a->outbound && rv_tel_route_lookup(tel, a->to, &r) == 0) {
			call->campaign_id = r.campaign_id;
			call->flow_id = r.flow_id;
			rv_strlcpy(call->rec_policy, r.recording_policy, sizeof(call->rec_policy));
		}
		call->key = tel_live_add(tel, 0, call->campaign_id, -1);
		if (!call->key) {
			mem_deref(call);
			return -EBUSY;
		}
		struct tel_job *j = tel_job_new(TEL_JOB_INSERT, call->key, 0);
		if (call->campaign_id)
			tel_job_int(j, "campaign_id", call->campaign_id);
		tel_job_text(j, "direction", a->outbound ? "outbound" : "inbound");
		tel_job_text(j, "channel", a->channel == RV_TEL_TWILIO ? "twilio" : "sip");
		if (a->external_id)
			tel_job_text(j, "twilio_call_sid", a->external_id);
		tel_job_text(j, "from_uri", call->from);
		tel_job_text(j, "to_uri", call->to);
		tel_job_text(j, "trunk", a->channel == RV_TEL_TWILIO ? "twilio" : "");
		tel_job_text(j, "state", "queued");
		tel_job_text(j, "created_at", rv_time_iso_now(now, sizeof(now)));
		tel_job_push(tel, j);
	}
	log_event(call, "attached", "from", call->from, "to", call->to);
	on_answered(call, a->channel == RV_TEL_TWILIO ? "PCMU" : NULL);
	*out = call;
	return 0;
}

void rv_tel_call_dtmf(struct rv_tel_call *call, char digit)
{
	if (!call || call->over)
		return;
	size_t n = strlen(call->digits);
	if (n + 1 < sizeof(call->digits)) {
		call->digits[n] = digit;
		call->digits[n + 1] = '\0';
	}
	update_text(call, "dtmf", call->digits);
	char d[2] = {digit, '\0'};
	log_event(call, "dtmf", "digit", d, NULL, NULL);
	if (call->runner_started && call->tel->capp.dtmf)
		call->tel->capp.dtmf(call->runner_state, digit);
}

void rv_tel_call_ended(struct rv_tel_call *call, bool remote, const char *cause)
{
	if (!call || call->over)
		return;
	call->audio = NULL;
	finalize(call, call->answered ? "answered" : "failed", cause ? cause : "ended", remote,
	         NULL);
}

void rv_tel_set_twilio_dialer(struct rv_tel *tel, rv_tel_twilio_dial_h *h, void *arg)
{
	if (!tel)
		return;
	pthread_mutex_lock(&tel->hook_mu);
	tel->twilio.dial = h;
	tel->twilio.arg = h ? arg : NULL;
	pthread_mutex_unlock(&tel->hook_mu);
}

int rv_tel_call_unattached_end(struct rv_tel *tel, int64_t call_id, const char *disposition,
                               const char *cause)
{
	struct tel_live l;
	if (!tel || !tel_live_get(tel, 0, call_id, &l))
		return -ENOENT;
	if (l.attached)
		return -EALREADY;
	end_row_now(tel, call_id, disposition ? disposition : "failed", cause ? cause : "ended",
	            "remote", "outbound");
	tel_live_remove(tel, l.key);
	return 0;
}
