/*
 * The voice agent's speech-worker side: answering-machine detection, VAD and turn-taking,
 * streaming the caller's speech to the STT engine, the dialog turn, speech synthesis, barge-in
 * and the latency marks of every turn. Runs on the call's worker thread only; talks to the
 * loop through ag_loop_* (agent.c) and to the store directly (agent_store.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "dialog/flow.h"
#include "dialog/llm.h"
#include "nlu/intent.h"
#include "obs/metrics.h"
#include "speech/amd.h"
#include "speech/stt.h"
#include "speech/tts.h"
#include "speech/turn.h"
#include "speech/vad.h"

static void speak(struct call_ag *c, const char *preamble, const char *say, bool barge);
static void run_dialog(struct call_ag *c, const struct rv_turn_in *in, const char *heard_text,
                       uint64_t started_ns);

/* ---- Semantic endpointing: does the partial already answer what the flow expects? ---- */

static float complete_h(const char *partial, void *arg)
{
	if (!partial || !*partial || rv_turn_partial_unfinished(partial))
		return 0;
	const struct rv_intent_model *m = rv_intent_builtin();
	if (!m)
		return 0;
	struct rv_intent_result r;
	rv_intent_classify(m, partial, &r);
	/* A confident, complete-sounding answer ("yes", "not interested", "call me tomorrow")
	 * ends the turn sooner; anything out of scope waits for the normal silence. */
	if (strcmp(r.intent, RV_INTENT_OOS) == 0 || strcmp(r.intent, "provide_info") == 0)
		return 0;
	return (float)r.confidence;
}

static void partial_h(const struct rv_stt_result *res, void *arg)
{
	struct call_ag *c = arg;
	if (c->turn && res && res->text)
		rv_turn_set_partial(c->turn, res->text);
}

/* ---- Setup ---- */

void ag_split_voice(const char *spec, char *engine, size_t elen, char *voice, size_t vlen)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;
	if (colon && (size_t)(colon - spec) < elen) {
		memcpy(engine, spec, (size_t)(colon - spec));
		engine[colon - spec] = '\0';
		rv_strlcpy(voice, colon + 1, vlen);
	} else {
		rv_strlcpy(engine, "flite", elen);
		rv_strlcpy(voice, spec && *spec ? spec : "rms", vlen);
	}
}

static void set_voice(struct call_ag *c, const char *spec)
{
	/* "engine:voice" ("flite:rms", "espeak:hi"), or a bare flite voice name. */
	char engine[16];
	ag_split_voice(spec, engine, sizeof(engine), c->voice, sizeof(c->voice));
	c->tts = ag_tts(c->ag, engine);
	if (!c->tts) {
		rv_warn("agent", "call %lld: no TTS engine \"%s\"; using flite rms",
		        (long long)c->call_id, engine);
		c->tts = ag_tts(c->ag, "flite");
		rv_strlcpy(c->voice, "rms", sizeof(c->voice));
	}
}

void ag_worker_start(struct call_ag *c)
{
	struct rv_agent *ag = c->ag;
	json_t *flow_doc = NULL;
	if (atomic_load(&c->ended))
		return;
	if (ag_store_load(c, &c->campaign, &c->lead, &flow_doc) != 0)
		rv_warn("agent", "call %lld: campaign or lead could not be read; using defaults",
		        (long long)c->call_id);
	if (!c->campaign)
		c->campaign = json_object();
	if (!c->lead)
		c->lead = json_object();
	const char *tz = json_string_value(json_object_get(c->lead, "timezone"));
	if (!tz || !*tz)
		tz = json_string_value(json_object_get(c->campaign, "timezone"));
	rv_strlcpy(c->tz, tz && *tz ? tz : "UTC", sizeof(c->tz));
	const char *voice = json_string_value(json_object_get(c->campaign, "voice"));
	set_voice(c, voice && *voice ? voice : ag->app->cfg->speech_voice);

	/* The flow: the campaign's, else the shipped default. */
	json_t *errors = NULL;
	if (!flow_doc || rv_flow_parse(flow_doc, &c->flow, &errors) != 0) {
		if (flow_doc) {
			char *e = json_dumps(errors, JSON_COMPACT);
			rv_warn("agent",
			        "call %lld: the campaign's flow is not valid (%s); using the "
			        "default flow",
			        (long long)c->call_id, e ? e : "?");
			free(e);
			json_decref(errors);
			errors = NULL;
		}
		json_error_t je;
		json_t *def = json_loads(rv_flow_builtin_json("default"), 0, &je);
		if (rv_flow_parse(def, &c->flow, &errors) != 0)
			c->flow = NULL;
		json_decref(def);
		json_decref(errors);
	}
	json_decref(flow_doc);

	struct rv_vad_cfg vc;
	rv_vad_cfg_defaults(&vc);
	struct rv_turn_cfg tc;
	rv_turn_cfg_defaults(&tc);
	tc.end_silence_ms = (uint32_t)ag->app->cfg->speech_end_ms;
	tc.complete_h = complete_h;
	tc.arg = c;
	struct rv_stt_engine *eng = ag_stt(ag);
	if (!c->flow || rv_vad_alloc(&vc, &c->vad) != 0 || rv_turn_alloc(&tc, &c->turn) != 0 ||
	    !eng || rv_stt_session_new(eng, 0, partial_h, c, &c->stt) != 0 || !c->tts) {
		rv_error("agent", "call %lld: the speech pipeline could not start",
		         (long long)c->call_id);
		ag_loop_hangup(c, "failed");
		return;
	}

	/* Answering-machine detection on outbound calls, per the campaign's policy. */
	const char *pol = json_string_value(json_object_get(c->campaign, "amd_policy"));
	rv_strlcpy(c->amd_policy, pol ? pol : "hangup", sizeof(c->amd_policy));
	const char *vm = json_string_value(json_object_get(c->campaign, "voicemail_message"));
	rv_strlcpy(c->voicemail, vm ? vm : "", sizeof(c->voicemail));
	if (c->outbound && strcmp(c->amd_policy, "off") != 0) {
		struct rv_amd_cfg ac;
		rv_amd_cfg_defaults(&ac);
		if (rv_amd_alloc(&ac, &c->amd) == 0)
			c->amd_state = AG_AMD_LISTEN;
	}
	c->ready = true;
	if (c->amd_state != AG_AMD_LISTEN)
		run_dialog(c, NULL, NULL, 0);
	else
		rv_turn_stop(c->turn); /* nobody's turn until the machine question is settled */
}

/* ---- Playback ---- */

struct synth_ctx {
	struct call_ag *c;
	struct rv_pcm *buf;
	size_t n;
	bool barge;
	bool trim; /* drop the leading silence (the first audio of a prompt) */
};

#define TRIM_LEVEL 300 /* |sample| below this counts as the synthesizer's lead-in silence */

static uint32_t post_item(struct call_ag *c, struct rv_pcm *pcm, bool barge)
{
	uint32_t tag = ++c->next_tag;
	if (!c->first_tag)
		c->first_tag = tag;
	if (barge && !c->barge_tag)
		c->barge_tag = tag;
	c->last_tag = tag;
	c->items_out++;
	c->total += pcm->n;
	ag_loop_play(c, pcm, tag);
	return tag;
}

static int flush_chunk(struct synth_ctx *s)
{
	if (!s->buf || s->n == 0)
		return 0;
	struct rv_pcm *out = NULL;
	if (rv_pcm_alloc(s->n, RV_MEDIA_RATE, &out) != 0)
		return -ENOMEM;
	memcpy(out->s, s->buf->s, s->n * sizeof(int16_t));
	s->n = 0;
	post_item(s->c, out, s->barge);
	return 0;
}

static int chunk_h(const int16_t *x, size_t n, void *arg)
{
	struct synth_ctx *s = arg;
	if (!s->c->lat.tts_first && s->c->lat.speech_end)
		s->c->lat.tts_first = rv_time_mono_ns();
	if (atomic_load(&s->c->ended))
		return 1;
	/* flite opens every utterance with ~175 ms of near-silence: at the start of a reply that
	 * is pure delay for the caller, so it is skipped (later sentences keep their pauses). */
	if (s->trim) {
		while (n > 0 && x[0] > -TRIM_LEVEL && x[0] < TRIM_LEVEL) {
			x++;
			n--;
		}
		if (n == 0)
			return 0;
		s->trim = false;
	}
	while (n > 0) {
		size_t room = s->buf->n - s->n, k = n < room ? n : room;
		memcpy(s->buf->s + s->n, x, k * sizeof(int16_t));
		s->n += k;
		x += k;
		n -= k;
		/* The first piece goes as soon as there is 100 ms; later ones in 400 ms pieces. */
		size_t want = s->c->items_out == 0 ? RV_MEDIA_RATE / 10 : s->buf->n;
		if (s->n >= want && flush_chunk(s) != 0)
			return 1;
	}
	return 0;
}

/*
 * A cached prompt without the synthesizer's lead-in silence, for the first audio of a reply
 * (as chunk_h does for streamed audio). Takes `pcm`, returns a trimmed copy, or `pcm` itself
 * when there is nothing to trim or no memory for the copy.
 */
static struct rv_pcm *trim_lead_in(struct rv_pcm *pcm)
{
	size_t k = 0;
	while (k < pcm->n && pcm->s[k] > -TRIM_LEVEL && pcm->s[k] < TRIM_LEVEL)
		k++;
	struct rv_pcm *out = NULL;
	if (k == 0 || k == pcm->n || rv_pcm_alloc(pcm->n - k, pcm->rate, &out) != 0)
		return pcm;
	memcpy(out->s, pcm->s + k, (pcm->n - k) * sizeof(int16_t));
	ag_pcm_release(pcm);
	return out;
}

/* Split text into sentences at . ! ? followed by a space (keeps "3.5" and "Dr." whole when
 * no space follows the dot inside a number; a short abbreviation may split, which only
 * costs a pause). */
size_t ag_next_sentence(const char *p, char *out, size_t cap)
{
	size_t i = 0, n = 0;
	while (p[i] == ' ')
		i++;
	while (p[i] && n + 1 < cap) {
		out[n++] = p[i];
		bool end =
		    (p[i] == '.' || p[i] == '!' || p[i] == '?') && (p[i + 1] == ' ' || !p[i + 1]);
		i++;
		if (end && n > 12)
			break;
	}
	out[n] = '\0';
	return i;
}

static void synth_text(struct call_ag *c, const char *text, bool barge)
{
	char sentence[AG_SENTENCE_MAX];
	struct synth_ctx s = {.c = c, .barge = barge, .trim = c->items_out == 0};
	if (rv_pcm_alloc(RV_MEDIA_RATE * 2 / 5, RV_MEDIA_RATE, &s.buf) != 0)
		return;
	for (const char *p = text; *p && !atomic_load(&c->ended);) {
		size_t used = ag_next_sentence(p, sentence, sizeof(sentence));
		p += used;
		if (!sentence[0])
			continue;
		struct rv_tts_req req = {.text = sentence, .voice = c->voice};
		char why[160] = "";
		/* A cached prompt plays with no synthesis delay; anything else streams. */
		struct rv_pcm *cached = NULL;
		enum rv_tts_cache_src src = RV_TTS_CACHE_SYNTH;
		/* In memory (a warmed greeting, a repeated prompt): no synthesis at all. Later
		 * sentences may wait for a synthesis into the cache while the first plays; the
		 * first streams on a miss, so the caller hears it as soon as possible. */
		if (c->ag->cache &&
		    (rv_tts_cache_peek(c->ag->cache, c->tts, &req, &cached) == 0 ||
		     (c->items_out > 0 && rv_tts_cache_get(c->ag->cache, c->tts, &req, &cached,
		                                           &src, why, sizeof(why)) == 0))) {
			flush_chunk(&s);
			if (s.trim && c->items_out == 0)
				cached = trim_lead_in(cached);
			s.trim = false;
			post_item(c, cached, barge);
			continue;
		}
		int err = rv_tts_synth(c->tts, &req, chunk_h, &s, why, sizeof(why));
		if (err && err != -ECANCELED)
			rv_warn("agent", "call %lld: speech synthesis failed: %s",
			        (long long)c->call_id, why);
		flush_chunk(&s);
	}
	ag_pcm_release(s.buf);
}

static void speak_begin(struct call_ag *c)
{
	c->first_tag = c->barge_tag = 0;
	c->heard = c->total = 0;
	c->barged = false;
	c->prompt_active = true;
	c->prompt_barge = false; /* becomes true when the first interruptible item starts */
	c->posting = true;
	rv_turn_prompt_start(c->turn, false);
}

static void speak_end(struct call_ag *c)
{
	c->posting = false;
	if (c->items_out == 0) {
		/* Nothing could be synthesized: listen again instead of waiting forever. */
		c->prompt_active = false;
		rv_turn_prompt_end(c->turn);
		if (c->hangup_after)
			ag_loop_hangup(c, c->hangup_disp);
	}
}

static void speak(struct call_ag *c, const char *preamble, const char *say, bool barge)
{
	bool pre = preamble && *preamble, main = say && *say;
	if (!pre && !main)
		return;
	speak_begin(c);
	if (pre)
		synth_text(c, preamble, false);
	if (main)
		synth_text(c, say, barge);
	speak_end(c);
}

/* LLM mode: each sentence is spoken as soon as the model has written it. */
static void stream_sentence(const char *sentence, void *arg)
{
	struct call_ag *c = arg;
	if (atomic_load(&c->ended))
		return;
	if (!c->streaming) {
		c->streaming = true;
		c->lat.reply_ready = rv_time_mono_ns();
		speak_begin(c);
	}
	synth_text(c, sentence, true);
}

/* ---- Latency ---- */

static double ms_between(uint64_t a, uint64_t b)
{
	return a && b && b >= a ? (double)(b - a) / 1e6 : -1;
}

static void finish_latency(struct call_ag *c)
{
	struct ag_lat *l = &c->lat;
	if (!l->speech_end || !l->audio_out)
		return;
	static const char *const stages[] = {"endpoint", "stt_final", "reply_ready", "tts_first",
	                                     "audio_out"};
	uint64_t marks[] = {l->endpoint, l->stt_final, l->reply_ready, l->tts_first, l->audio_out};
	json_t *j = json_object();
	for (size_t i = 0; i < RV_ARRAY_LEN(stages); i++) {
		double ms = ms_between(l->speech_end, marks[i]);
		if (ms < 0)
			continue;
		char key[40];
		snprintf(key, sizeof(key), "%s_ms", stages[i]);
		json_object_set_new(j, key, json_real(ms));
		rv_metrics_observe("rv_turn_latency_seconds", ms / 1000.0, stages[i], NULL);
	}
	ag_store_turn_latency(c, l->seq, j);
	json_decref(j);
	memset(l, 0, sizeof(*l));
}

/* ---- Dialog ---- */

static void run_actions(struct call_ag *c, const struct rv_turn_out *o)
{
	for (size_t i = 0; i < o->nactions; i++) {
		const json_t *a = o->actions[i].args;
		switch (o->actions[i].type) {
		case RV_ACT_DNC:
			ag_store_dnc(c, "asked on a call");
			break;
		case RV_ACT_SCHEDULE_CALLBACK: {
			const char *at = json_string_value(json_object_get(a, "at"));
			if (at && *at)
				ag_store_callback(c, at);
			break;
		}
		case RV_ACT_SET_FIELD: {
			const char *f = json_string_value(json_object_get(a, "field"));
			if (f && *f)
				ag_store_set_field(c, f, json_object_get(a, "value"));
			break;
		}
		case RV_ACT_TRANSFER: {
			const char *to = json_string_value(json_object_get(a, "to"));
			const char *mode = json_string_value(json_object_get(a, "mode"));
			if (to && *to)
				ag_loop_transfer(c, to, mode && strcmp(mode, "bridged") == 0,
				                 json_string_value(json_object_get(a, "whisper")));
			break;
		}
		case RV_ACT_SEND_DTMF: {
			const char *d = json_string_value(json_object_get(a, "digits"));
			if (d && *d)
				ag_loop_dtmf(c, d);
			break;
		}
		case RV_ACT_WEBHOOK:
			break; /* the engine ran it */
		}
	}
}

/* in NULL: start the conversation. heard_text: what the STT gave (for the caller row). */
static void run_dialog(struct call_ag *c, const struct rv_turn_in *in, const char *heard_text,
                       uint64_t started_ns)
{
	struct rv_turn_out o = {0};
	int err;
	if (!in) {
		struct rv_convo_ctx ctx = {.lead = c->lead,
		                           .campaign = c->campaign,
		                           .timezone = c->tz,
		                           .outbound = c->outbound};
		err = rv_llm_convo_start(c->flow, c->ag->llm, &ctx, &c->convo, &o);
	} else {
		/* With a model, the reply is spoken sentence by sentence while it streams; a
		 * scripted turn is spoken whole below, with its own barge-in setting. */
		bool stream = c->ag->llm && rv_llm_flow_has_section(c->flow);
		c->streaming = false;
		err = rv_llm_convo_turn(c->convo, in, stream ? stream_sentence : NULL, c, &o);
	}
	if (err) {
		rv_turn_out_clear(&o);
		if (err != -EALREADY)
			ag_loop_hangup(c, "failed");
		return;
	}
	uint64_t now = rv_time_mono_ns();
	if (in) {
		json_t *emo = NULL;
		if (heard_text) {
			struct rv_emotion_text et;
			struct rv_emotion e;
			rv_emotion_text(heard_text, &et);
			rv_emotion_fuse(&et, c->voice_feat.valid ? &c->voice_feat : NULL,
			                &c->emo_base, &e);
			emo = json_pack("{s:s, s:f, s:f, s:f}", "label", e.label, "valence",
			                e.valence, "arousal", e.arousal, "voice_arousal",
			                e.voice_arousal);
			memset(&c->voice_feat, 0, sizeof(c->voice_feat));
		}
		ag_store_turn(c, c->seq++, "caller", heard_text ? heard_text : "", o.intent,
		              o.intent_conf, o.entities, emo, started_ns ? started_ns : now, now);
		json_decref(emo);
		if (!c->lat.reply_ready)
			c->lat.reply_ready = now;
	}
	c->turns++;
	char *said = NULL;
	if (o.preamble && *o.preamble && o.say && *o.say) {
		size_t n = strlen(o.preamble) + strlen(o.say) + 2;
		said = malloc(n);
		if (said)
			snprintf(said, n, "%s %s", o.preamble, o.say);
	}
	c->prompt_seq = c->seq;
	c->lat.seq = c->seq;
	ag_store_turn(c, c->seq++, "agent", said ? said : (o.say ? o.say : ""), NULL, 0, NULL, NULL,
	              now, 0);
	free(said);
	run_actions(c, &o);
	if (o.end) {
		c->hangup_after = true;
		rv_strlcpy(c->hangup_disp, o.disposition ? o.disposition : "completed",
		           sizeof(c->hangup_disp));
	}
	/* The next answer is likely to contain these: bias the recognizer towards them. */
	if (c->stt && json_is_array(o.expect)) {
		const char *ph[64];
		size_t n = 0, i;
		const json_t *p;
		json_array_foreach(o.expect, i, p) if (json_is_string(p) && n < 64) ph[n++] =
		    json_string_value(p);
		rv_stt_set_bias(c->stt, ph, n);
	}
	if (c->streaming) {
		c->streaming = false;
		speak_end(c); /* the words are already on their way */
	} else {
		speak(c, o.preamble, o.say, o.barge_in);
	}
	rv_turn_out_clear(&o);
}

/* ---- Frames ---- */

static void preroll_push(struct call_ag *c, const struct ag_frame *f)
{
	unsigned i = (c->pre_head + c->pre_n) % AG_PREROLL;
	if (c->pre_n == AG_PREROLL) {
		c->pre_head = (c->pre_head + 1) % AG_PREROLL;
		i = (c->pre_head + c->pre_n - 1) % AG_PREROLL;
	} else {
		c->pre_n++;
	}
	memcpy(c->pre[i].s, f->mic, sizeof(c->pre[i].s));
	c->pre[i].ts_ms = f->ts_ms;
}

/* Monotonic time of a media-time instant, from the frame being handled. */
static uint64_t media_to_ns(const struct call_ag *c, uint64_t ms)
{
	uint64_t frame_end = c->last_ts_ms + RV_MEDIA_PTIME_MS;
	if (ms >= frame_end)
		return c->last_at_ns;
	return c->last_at_ns - (frame_end - ms) * 1000000ull;
}

static void amd_step(struct call_ag *c, const struct ag_frame *f, const struct rv_vad_frame *vf)
{
	const struct rv_amd_state *st = rv_amd_process(c->amd, f->mic, RV_MEDIA_FRAME, vf->voiced);
	if (c->amd_state == AG_AMD_LISTEN && st->result != RV_AMD_PENDING) {
		const char *res = rv_amd_result_name(st->result);
		rv_logkv(RV_LOG_INFO, "agent", "answering-machine detection", "result", res,
		         "cause", rv_amd_cause_name(st->cause), NULL);
		rv_metrics_inc("rv_amd_results_total", 1, res, NULL);
		ag_store_amd(c, res);
		if (st->result != RV_AMD_MACHINE || strcmp(c->amd_policy, "continue") == 0) {
			c->amd_state = AG_AMD_DONE;
			run_dialog(c, NULL, NULL, 0);
		} else if (strcmp(c->amd_policy, "voicemail") == 0 && c->voicemail[0]) {
			c->amd_state = AG_AMD_WAIT_BEEP;
			/* No beep within 10 s after the decision: leave the message anyway. */
			c->amd_deadline_ms = f->ts_ms + 10000;
		} else {
			c->amd_state = AG_AMD_DONE;
			ag_loop_hangup(c, "machine");
		}
	}
	if (c->amd_state == AG_AMD_WAIT_BEEP && (st->beep || f->ts_ms >= c->amd_deadline_ms)) {
		c->amd_state = AG_AMD_DONE;
		c->hangup_after = true;
		rv_strlcpy(c->hangup_disp, "voicemail", sizeof(c->hangup_disp));
		c->prompt_seq = c->seq;
		ag_store_turn(c, c->seq++, "agent", c->voicemail, NULL, 0, NULL, NULL,
		              rv_time_mono_ns(), 0);
		speak(c, c->voicemail, NULL, false);
	}
}

/* The caller's voiced audio of the turn, kept for the voice's part of the emotion. */
static void voice_keep(struct call_ag *c, const int16_t *x)
{
	if (!c->voice_buf) {
		c->voice_buf = malloc(AG_VOICE_MAX * sizeof(int16_t));
		if (!c->voice_buf)
			return;
	}
	if (c->voice_n + RV_MEDIA_FRAME <= AG_VOICE_MAX) {
		memcpy(c->voice_buf + c->voice_n, x, RV_MEDIA_FRAME * sizeof(int16_t));
		c->voice_n += RV_MEDIA_FRAME;
	}
}

static void feed(struct call_ag *c, const int16_t *x)
{
	rv_stt_feed(c->stt, x, RV_MEDIA_FRAME);
	voice_keep(c, x);
}

static void end_of_turn(struct call_ag *c, const struct rv_turn_event *ev)
{
	c->lat.speech_end = media_to_ns(c, ev->speech_end_ms);
	c->lat.endpoint = media_to_ns(c, ev->t_ms);
	char text[RV_STT_MAX_TEXT] = "";
	if (c->utt_open) {
		struct rv_stt_result *res = NULL;
		int err = rv_stt_end_utt(c->stt, &res);
		c->utt_open = false;
		if (!err && res && res->text)
			rv_strlcpy(text, res->text, sizeof(text));
		else if (err)
			rv_warn("agent", "call %lld: STT failed: %s", (long long)c->call_id,
			        rv_stt_strerror(err));
		/* Pitch, loudness and rate of this turn, judged later against the caller's own
		 * earlier turns (nlu/emotion.h). */
		memset(&c->voice_feat, 0, sizeof(c->voice_feat));
		if (c->voice_buf && c->voice_n)
			rv_voice_features(c->voice_buf, c->voice_n, RV_MEDIA_RATE,
			                  !err && res ? (unsigned)res->nwords : 0, &c->voice_feat);
		c->voice_n = 0;
		rv_stt_result_free(res);
	}
	c->lat.stt_final = rv_time_mono_ns();
	if (!text[0]) {
		/* Noise or a cough with no words: not a turn. Keep listening. */
		memset(&c->lat, 0, sizeof(c->lat));
		rv_turn_listen(c->turn);
		return;
	}
	struct rv_turn_in in = {.text = text};
	run_dialog(c, &in, text, media_to_ns(c, ev->speech_start_ms));
}

void ag_worker_frame(struct call_ag *c, const struct ag_frame *f)
{
	if (!c->ready || atomic_load(&c->ended))
		return;
	c->last_ts_ms = f->ts_ms;
	c->last_at_ns = f->at_ns;
	struct rv_vad_frame vf;
	if (rv_vad_process(c->vad, f->mic, f->ref_active ? f->ref : NULL, &vf) != 0)
		return;
	preroll_push(c, f);
	if (c->amd && (c->amd_state == AG_AMD_LISTEN || c->amd_state == AG_AMD_WAIT_BEEP)) {
		amd_step(c, f, &vf);
		if (c->amd_state != AG_AMD_DONE)
			return;
	}

	/* The recognizer hears speech only: from where it really began (the preroll) to its
	 * end, across the pauses of one turn. */
	if ((vf.events & RV_VAD_EV_START) && !c->utt_open && rv_stt_start_utt(c->stt) == 0) {
		c->utt_open = true;
		c->utt_start_ms = vf.start_ms;
		for (unsigned k = 0; k < c->pre_n; k++) {
			unsigned i = (c->pre_head + k) % AG_PREROLL;
			if (c->pre[i].ts_ms + RV_MEDIA_PTIME_MS > vf.start_ms)
				feed(c, c->pre[i].s);
		}
	} else if (c->utt_open && vf.speech) {
		feed(c, f->mic);
	}
	/* The caller has just gone quiet: judge every word so far, not a partial up to 250 ms
	 * old, so a complete answer can end the turn after the short silence (turn.h). Once per
	 * pause: later partials of the same pause were measured to flip finished answers to
	 * "unfinished" as often as the reverse (docs/BENCHMARKS.md, voice-to-voice latency). */
	c->quiet_frames = vf.voiced ? 0 : c->quiet_frames + 1;
	if (c->utt_open && c->quiet_frames == 1)
		rv_stt_partial_now(c->stt);

	struct rv_turn_event ev[RV_TURN_MAX_EVENTS];
	size_t n = 0;
	if (rv_turn_process(c->turn, &vf, ev, RV_TURN_MAX_EVENTS, &n) != 0)
		return;
	for (size_t i = 0; i < n && !atomic_load(&c->ended); i++) {
		switch (ev[i].type) {
		case RV_TURN_EV_BARGE_IN:
			if (c->prompt_active && c->prompt_barge) {
				c->barged = true;
				ag_loop_flush(c);
				rv_metrics_inc("rv_barge_ins_total", 1, NULL);
			}
			break;
		case RV_TURN_EV_END_OF_TURN:
			end_of_turn(c, &ev[i]);
			break;
		case RV_TURN_EV_NO_INPUT: {
			if (c->utt_open) {
				struct rv_stt_result *res = NULL;
				rv_stt_end_utt(c->stt, &res);
				rv_stt_result_free(res);
				c->utt_open = false;
				c->voice_n = 0;
			}
			struct rv_turn_in in = {.silence = true};
			run_dialog(c, &in, NULL, 0);
			break;
		}
		case RV_TURN_EV_SPEECH_START:
		case RV_TURN_EV_SPEECH_END:
			break;
		}
	}
}

void ag_worker_dtmf(struct call_ag *c, char digit)
{
	if (!c->ready || atomic_load(&c->ended) || c->amd_state == AG_AMD_LISTEN)
		return;
	/* A key press answers at once and, like speech, stops an interruptible prompt. */
	if (c->prompt_active && c->prompt_barge)
		ag_loop_flush(c);
	struct rv_turn_in in = {.dtmf = digit};
	char text[2] = {digit, 0};
	run_dialog(c, &in, text, rv_time_mono_ns());
}

void ag_worker_started(struct call_ag *c, uint32_t tag, uint64_t at_ns)
{
	if (!c->ready)
		return;
	if (tag == c->barge_tag && c->prompt_active) {
		/* The interruptible part has begun: from now on caller speech may stop it. */
		c->prompt_barge = true;
		rv_turn_prompt_start(c->turn, true);
	}
	if (tag == c->first_tag && c->lat.speech_end && !c->lat.audio_out) {
		c->lat.audio_out = at_ns;
		finish_latency(c);
	}
}

void ag_worker_played(struct call_ag *c, uint32_t tag, bool flushed, size_t played, size_t total)
{
	if (c->items_out > 0)
		c->items_out--;
	c->heard += played;
	if (!c->ready || c->posting || c->items_out > 0 || !c->prompt_active)
		return;
	/* The whole prompt is over: played out, or cut off by the caller. */
	c->prompt_active = false;
	ag_store_turn_heard(c, c->prompt_seq, c->barged, c->heard * 1000 / RV_MEDIA_RATE);
	if (c->hangup_after && !atomic_load(&c->ended)) {
		ag_loop_hangup(c, c->hangup_disp);
		return;
	}
	rv_turn_prompt_end(c->turn);
}

void ag_worker_end(struct call_ag *c)
{
	if (c->utt_open && c->stt) {
		struct rv_stt_result *res = NULL;
		rv_stt_end_utt(c->stt, &res);
		rv_stt_result_free(res);
		c->utt_open = false;
	}
	ag_worker_release(c);
}

void ag_worker_release(struct call_ag *c)
{
	free(c->voice_buf);
	c->voice_buf = NULL;
	c->voice_n = 0;
	rv_stt_session_free(c->stt);
	c->stt = NULL;
	rv_vad_free(c->vad);
	c->vad = NULL;
	rv_turn_free(c->turn);
	c->turn = NULL;
	rv_amd_free(c->amd);
	c->amd = NULL;
	rv_llm_convo_free(c->convo);
	c->convo = NULL;
	rv_flow_free(c->flow);
	c->flow = NULL;
	json_decref(c->lead);
	c->lead = NULL;
	json_decref(c->campaign);
	c->campaign = NULL;
	c->ready = false;
}
