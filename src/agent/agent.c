/*
 * The voice agent: see agent.h. One struct call_ag per call, shared by the media loop (audio,
 * call control) and the call's speech worker (VAD, turns, STT, dialog, TTS), reference
 * counted with an atomic count because two threads hold it. Messages:
 *   loop -> worker: every caller frame (with the echo reference and the tick's clock), digits,
 *                   "an item started playing", "an item finished", the end of the call;
 *   worker -> loop: play this audio, flush (barge-in), hang up, transfer, send digits.
 * The worker never touches libre objects and the loop never blocks.
 */
#include "agent/agent.h"

#include <errno.h>
#include <re.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "media/media_audio.h"
#include "media/media_loop.h"
#include "media/media_pcm.h"
#include "obs/metrics.h"
#include "speech/workers.h"
#include "tel/tel.h"

#define PREROLL_FRAMES 20                  /* 400 ms kept before speech starts, for the STT */
#define CHUNK_SAMPLES  (RV_MEDIA_RATE / 5) /* TTS audio goes out in 200 ms pieces */

static void call_ref(struct call_ag *c)
{
	atomic_fetch_add(&c->refs, 1);
}

static void call_unref(struct call_ag *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	ag_worker_release(c);
	free(c);
}

/* ---- Loop side ---- */

struct loop_msg {
	struct call_ag *c;
	enum { LM_PLAY, LM_FLUSH, LM_HANGUP, LM_TRANSFER, LM_DTMF } type;
	struct rv_pcm *pcm;
	uint32_t tag; /* LM_PLAY: the worker's item number */
	char text[256];
	struct rv_tel_transfer tr;
	char to[256];
};

struct item_cb {
	struct call_ag *c;
	uint32_t tag;
};

static void worker_post_played(struct call_ag *c, uint32_t tag, bool flushed, size_t played,
                               size_t total);
static void worker_post_started(struct call_ag *c, uint32_t tag, uint64_t at_ns);

static void play_done_h(uint32_t id, enum rv_play_end how, size_t played, size_t total, void *arg)
{
	struct item_cb *ic = arg;
	worker_post_played(ic->c, ic->tag, how == RV_PLAY_FLUSHED, played, total);
	call_unref(ic->c);
	free(ic);
}

static void play_start_h(uint32_t id, void *arg)
{
	struct call_ag *c = arg;
	/* Items are pushed in tag order and ids rise in push order: map by the id we recorded. */
	for (size_t i = 0; i < RV_ARRAY_LEN(c->loop_ids); i++) {
		if (c->loop_ids[i].id == id) {
			worker_post_started(c, c->loop_ids[i].tag, rv_time_mono_ns());
			c->loop_ids[i].id = 0;
			return;
		}
	}
}

static void loop_exec_h(void *arg)
{
	struct loop_msg *m = arg;
	struct call_ag *c = m->c;
	if (c->loop_over)
		goto out;
	switch (m->type) {
	case LM_PLAY: {
		struct item_cb *ic = calloc(1, sizeof(*ic));
		uint32_t id = 0;
		if (!ic)
			break;
		ic->c = c;
		ic->tag = m->tag;
		call_ref(c);
		if (rv_audio_play(c->audio, m->pcm, play_done_h, ic, &id) != 0) {
			/* Never queued: report it as played so the worker's count stays right. */
			worker_post_played(c, m->tag, true, 0, m->pcm->n);
			call_unref(c);
			free(ic);
			break;
		}
		c->loop_ids[c->loop_id_next++ % RV_ARRAY_LEN(c->loop_ids)] =
		    (struct loop_id){.id = id, .tag = m->tag};
		break;
	}
	case LM_FLUSH:
		rv_audio_flush(c->audio);
		break;
	case LM_HANGUP:
		c->loop_over = true;
		rv_tel_call_hangup(c->call, m->text[0] ? m->text : NULL);
		break;
	case LM_TRANSFER:
		m->tr.to = m->to;
		m->tr.whisper = m->text[0] ? m->text : NULL;
		if (rv_tel_call_transfer(c->call, &m->tr) != 0)
			rv_warn("agent", "call %lld: transfer to %s refused", (long long)c->call_id,
			        m->to);
		break;
	case LM_DTMF:
		if (rv_audio_send_dtmf(c->audio, m->text, 0) != 0)
			rv_warn("agent", "call %lld: cannot send digits", (long long)c->call_id);
		break;
	}
out:
	if (m->pcm)
		mem_deref(m->pcm); /* handed over from the worker; the queue holds its own ref */
	call_unref(c);
	free(m);
}

/* Post a message to the loop (any thread). Consumes pcm on failure too. */
static void to_loop(struct call_ag *c, struct loop_msg *m)
{
	m->c = c;
	call_ref(c);
	if (rv_media_loop_exec(c->loop, loop_exec_h, m) != 0) {
		/* The loop has stopped: nothing to play to any more. pcm was allocated on this
		 * thread and never shared, so releasing it here is safe. */
		if (m->pcm)
			mem_deref(m->pcm);
		call_unref(c);
		free(m);
	}
}

void ag_loop_play(struct call_ag *c, struct rv_pcm *pcm, uint32_t tag)
{
	struct loop_msg *m = calloc(1, sizeof(*m));
	if (!m) {
		mem_deref(pcm);
		return;
	}
	m->type = LM_PLAY;
	m->pcm = pcm;
	m->tag = tag;
	to_loop(c, m);
}

void ag_pcm_release(struct rv_pcm *pcm)
{
	mem_deref(pcm);
}

void ag_loop_flush(struct call_ag *c)
{
	struct loop_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->type = LM_FLUSH;
	to_loop(c, m);
}

void ag_loop_hangup(struct call_ag *c, const char *disposition)
{
	struct loop_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->type = LM_HANGUP;
	rv_strlcpy(m->text, disposition ? disposition : "", sizeof(m->text));
	to_loop(c, m);
}

void ag_loop_transfer(struct call_ag *c, const char *to, bool bridged, const char *whisper)
{
	struct loop_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->type = LM_TRANSFER;
	m->tr.mode = bridged ? RV_TEL_TRANSFER_BRIDGED : RV_TEL_TRANSFER_BLIND;
	rv_strlcpy(m->to, to, sizeof(m->to));
	rv_strlcpy(m->text, whisper ? whisper : "", sizeof(m->text));
	to_loop(c, m);
}

void ag_loop_dtmf(struct call_ag *c, const char *digits)
{
	struct loop_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->type = LM_DTMF;
	rv_strlcpy(m->text, digits, sizeof(m->text));
	to_loop(c, m);
}

/* ---- Loop -> worker ---- */

struct worker_msg {
	struct call_ag *c;
	enum { WM_START, WM_FRAME, WM_DTMF, WM_PLAYED, WM_STARTED, WM_END } type;
	struct ag_frame frame;
	char digit;
	uint32_t tag;
	bool flushed;
	size_t played, total;
	uint64_t at_ns;
};

static void worker_h(void *arg)
{
	struct worker_msg *m = arg;
	struct call_ag *c = m->c;
	switch (m->type) {
	case WM_START:
		ag_worker_start(c);
		break;
	case WM_FRAME:
		ag_worker_frame(c, &m->frame);
		break;
	case WM_DTMF:
		ag_worker_dtmf(c, m->digit);
		break;
	case WM_PLAYED:
		ag_worker_played(c, m->tag, m->flushed, m->played, m->total);
		break;
	case WM_STARTED:
		ag_worker_started(c, m->tag, m->at_ns);
		break;
	case WM_END:
		ag_worker_end(c);
		break;
	}
	call_unref(c);
	free(m);
}

static void to_worker(struct call_ag *c, struct worker_msg *m)
{
	m->c = c;
	call_ref(c);
	int err = rv_workers_post(c->ag->workers, c->worker, worker_h, m);
	if (err) {
		if (m->type == WM_FRAME)
			c->frames_dropped++;
		call_unref(c);
		free(m);
	}
}

static void worker_post_played(struct call_ag *c, uint32_t tag, bool flushed, size_t played,
                               size_t total)
{
	struct worker_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	*m = (struct worker_msg){
	    .type = WM_PLAYED, .tag = tag, .flushed = flushed, .played = played, .total = total};
	to_worker(c, m);
}

static void worker_post_started(struct call_ag *c, uint32_t tag, uint64_t at_ns)
{
	struct worker_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	*m = (struct worker_msg){.type = WM_STARTED, .tag = tag, .at_ns = at_ns};
	to_worker(c, m);
}

static void frame_h(const struct rv_audio_frame *f, void *arg)
{
	struct call_ag *c = arg;
	struct worker_msg *m = malloc(sizeof(*m));
	if (!m)
		return;
	m->type = WM_FRAME;
	memcpy(m->frame.mic, f->samples, sizeof(m->frame.mic));
	memcpy(m->frame.ref, rv_audio_last_played(c->audio), sizeof(m->frame.ref));
	m->frame.ref_active = rv_audio_playing(c->audio);
	m->frame.ts_ms = f->ts_ms;
	m->frame.at_ns = rv_time_mono_ns();
	to_worker(c, m);
}

/* ---- The runner's hooks (loop thread) ---- */

static int runner_start(struct rv_tel_call *call, struct rv_audio *audio,
                        const struct rv_tel_call_info *info, void *arg, void **state)
{
	struct rv_agent *ag = arg;
	if (!ag->app->tel)
		return -ENODEV;
	struct call_ag *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	c->ag = ag;
	c->call = call;
	c->audio = audio;
	c->loop = rv_tel_loop(ag->app->tel);
	c->call_id = info->call_id;
	c->campaign_id = info->campaign_id;
	c->lead_id = info->lead_id;
	c->flow_id = info->flow_id;
	c->outbound = info->outbound;
	rv_strlcpy(c->from, info->from ? info->from : "", sizeof(c->from));
	rv_strlcpy(c->to, info->to ? info->to : "", sizeof(c->to));
	c->worker = rv_workers_pin(ag->workers);
	rv_audio_set_frame_handler(audio, frame_h, c);
	rv_audio_set_start_handler(audio, play_start_h, c);
	struct worker_msg *m = calloc(1, sizeof(*m));
	if (m) {
		m->type = WM_START;
		to_worker(c, m);
	}
	*state = c;
	return 0;
}

static void runner_dtmf(void *state, char digit)
{
	struct call_ag *c = state;
	struct worker_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->type = WM_DTMF;
	m->digit = digit;
	to_worker(c, m);
}

static void runner_end(void *state)
{
	struct call_ag *c = state;
	c->loop_over = true;
	rv_audio_set_frame_handler(c->audio, NULL, NULL);
	rv_audio_set_start_handler(c->audio, NULL, NULL);
	c->audio = NULL;
	atomic_store(&c->ended, true);
	struct worker_msg *m = calloc(1, sizeof(*m));
	if (m) {
		m->type = WM_END;
		to_worker(c, m);
	}
	rv_workers_unpin(c->ag->workers, c->worker);
	call_unref(c); /* the runner's reference */
}

/* ---- The service ---- */

int rv_agent_start(struct rv_app *app, struct rv_agent **out, char *err, size_t errlen)
{
	struct rv_agent *ag = calloc(1, sizeof(*ag));
	if (!ag)
		return -ENOMEM;
	ag->app = app;
	ag->capp = (struct rv_call_app){.name = "agent",
	                                .start = runner_start,
	                                .dtmf = runner_dtmf,
	                                .end = runner_end,
	                                .arg = ag};
	int e = rv_workers_start((unsigned)app->cfg->speech_workers, &ag->workers);
	if (!e)
		e = ag_engines_open(ag, err, errlen);
	ag->engines_open = e == 0;
	if (e) {
		if (!*err)
			snprintf(err, errlen, "cannot start the voice agent: %s", strerror(-e));
		rv_agent_stop(ag);
		return e;
	}
	ag_metrics_register();
	app->agent = ag;
	rv_agent_campaigns_changed(ag); /* warm the prompts of campaigns already active */
	*out = ag;
	return 0;
}

const struct rv_call_app *rv_agent_call_app(struct rv_agent *ag)
{
	return &ag->capp;
}

void rv_agent_stop(struct rv_agent *ag)
{
	if (!ag)
		return;
	if (ag->app && ag->app->agent == ag)
		ag->app->agent = NULL;
	if (ag->engines_open)
		ag_warm_stop(ag);
	rv_workers_stop(ag->workers);
	if (ag->engines_open)
		ag_engines_close(ag);
	free(ag);
}
