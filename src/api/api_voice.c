/*
 * Voice-AI understanding endpoints, text in, JSON out, no phone needed:
 *   POST /api/voice-ai/understand        intent, entities and emotion of one utterance
 *   POST /api/voice-ai/analyze-emotion   emotion of a text and/or a WAV of the caller's voice
 *   POST /api/voice-ai/manage-conversation  one turn of a flow; the answer carries the
 *                                           conversation to send back with the next turn
 *   POST /api/voice-ai/generate-response    the agent's reply to one utterance
 * They run the same code as a live call's turn (src/nlu, src/dialog), so flows can be
 * checked and tuned over HTTP without a phone.
 */
#include <errno.h>
#include <sndfile.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "dialog/flow.h"
#include "dialog/llm.h"
#include "media/media_pcm.h"
#include "nlu/emotion.h"
#include "nlu/entities.h"
#include "nlu/entities_json.h"
#include "nlu/intent.h"
#include "nlu/model_registry.h"
#include "obs/metrics.h"
#include "store/store.h"

#define MAX_UTTERANCE 2000

static json_t *field(const char *name)
{
	return json_pack("{s:s}", "field", name);
}

/* Every member of body must be in allowed; replies 400 invalid_field otherwise. */
static int only(json_t *body, const char *const *allowed, struct rv_http_resp *resp)
{
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
	return 0;
}

/* An optional string member (NULL when absent); 400 when present but wrong. */
static int opt_str(json_t *body, const char *name, size_t max, const char **out,
                   struct rv_http_resp *resp)
{
	json_t *v = json_object_get(body, name);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) > max) {
		rv_http_reply_error(resp, 400, "invalid_field", field(name),
		                    "\"%s\" must be a string of at most %zu bytes", name, max);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

static json_t *emotion_json(const struct rv_emotion *e)
{
	return json_pack("{s:s, s:f, s:f, s:f}", "label", e->label, "valence", e->valence,
	                 "arousal", e->arousal, "confidence", e->confidence);
}

/* The shared form plus where the words are in the input. */
static json_t *entity_json(const struct rv_entity *e)
{
	json_t *j = rv_entity_json(e);
	json_object_set_new(j, "start", json_integer((json_int_t)e->start));
	json_object_set_new(j, "end", json_integer((json_int_t)e->end));
	return j;
}

static void understand(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {"text",        "timezone", "now",
	                                      "expect_name", "region",   NULL};
	json_t *body = NULL;
	struct rv_intent_ref *mref = NULL; /* the model in use, held for this turn */
	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	const char *text, *tz, *now_s, *region;
	if (only(body, allowed, resp) || opt_str(body, "text", MAX_UTTERANCE, &text, resp) ||
	    opt_str(body, "timezone", 64, &tz, resp) || opt_str(body, "now", 64, &now_s, resp) ||
	    opt_str(body, "region", 2, &region, resp))
		goto out;
	if (!text) {
		rv_http_reply_error(resp, 400, "invalid_field", field("text"),
		                    "\"text\" (the caller's words) is required");
		goto out;
	}
	json_t *en = json_object_get(body, "expect_name");
	if (en && !json_is_boolean(en)) {
		rv_http_reply_error(resp, 400, "invalid_field", field("expect_name"),
		                    "\"expect_name\" must be true or false");
		goto out;
	}
	int64_t now_ms;
	if (now_s) {
		if (rv_time_parse_iso(now_s, &now_ms) != 0) {
			rv_http_reply_error(
			    resp, 400, "invalid_field", field("now"),
			    "\"now\" must be an ISO 8601 date-time with an offset, e.g. "
			    "2026-11-22T10:00:00-05:00");
			goto out;
		}
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	/* The operator's active trained model (model_registry.h), else the built-in one. A store
	 * hiccup while restoring it is retried on the next request. */
	rv_api_models_restore(app);
	const struct rv_intent_model *model = rv_intent_registry_acquire(&mref);
	if (!model) {
		rv_http_reply_error(resp, 500, "internal", NULL,
		                    "the intent model is not available");
		goto out;
	}
	uint64_t t0 = rv_time_mono_ns();
	struct rv_intent_result ir;
	rv_intent_classify(model, text, &ir);

	struct rv_entity ents[RV_ENTITY_MAX];
	size_t nent = 0;
	struct rv_entity_ctx ctx = {.timezone = tz ? tz : "UTC",
	                            .now_ms = now_ms,
	                            .region = region ? region : app->cfg->default_country,
	                            .expect_name = en && json_is_true(en)};
	if (rv_entities_extract(text, &ctx, ents, RV_ENTITY_MAX, &nent) != 0) {
		rv_http_reply_error(resp, 400, "invalid_field", field("timezone"),
		                    "unknown time zone \"%s\" (use an IANA name such as "
		                    "America/New_York)",
		                    ctx.timezone);
		goto out;
	}
	struct rv_emotion_text et;
	struct rv_emotion emo;
	rv_emotion_text(text, &et);
	rv_emotion_fuse(&et, NULL, NULL, &emo);
	double secs = (double)(rv_time_mono_ns() - t0) / 1e9;
	rv_metrics_observe("rv_nlu_understand_seconds", secs, NULL);

	json_t *alts = json_array(), *jents = json_array();
	for (int i = 0; i < 3 && ir.top[i].label; i++)
		json_array_append_new(alts, json_pack("{s:s, s:f}", "intent", ir.top[i].label,
		                                      "confidence", ir.top[i].conf));
	for (size_t i = 0; i < nent; i++)
		json_array_append_new(jents, entity_json(&ents[i]));
	rv_http_reply_json(
	    resp, 200,
	    json_pack("{s:s, s:f, s:o, s:o, s:o, s:f, s:o}", "intent", ir.intent, "confidence",
	              ir.confidence, "alternatives", alts, "entities", jents, "emotion",
	              emotion_json(&emo), "elapsed_ms", secs * 1000, "model",
	              rv_intent_ref_version(mref) ? json_integer(rv_intent_ref_version(mref))
	                                          : json_string("builtin")));
out:
	rv_intent_registry_release(mref);
	json_decref(body);
}

/* libsndfile reading from memory. */
struct vio {
	const unsigned char *p;
	sf_count_t n, off;
};

static sf_count_t vio_len(void *u)
{
	return ((struct vio *)u)->n;
}

static sf_count_t vio_seek(sf_count_t o, int whence, void *u)
{
	struct vio *v = u;
	sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? v->off : v->n;
	if (base + o < 0 || base + o > v->n)
		return -1;
	v->off = base + o;
	return v->off;
}

static sf_count_t vio_read(void *dst, sf_count_t n, void *u)
{
	struct vio *v = u;
	if (n > v->n - v->off)
		n = v->n - v->off;
	memcpy(dst, v->p + v->off, (size_t)n);
	v->off += n;
	return n;
}

static sf_count_t vio_write(const void *src, sf_count_t n, void *u)
{
	return 0;
}

static sf_count_t vio_tell(void *u)
{
	return ((struct vio *)u)->off;
}

/* Decode a WAV (any libsndfile format) to mono 16-bit. Returns 0 and sets *pcm (malloc'd). */
static int decode_audio(const unsigned char *buf, size_t len, int16_t **pcm, size_t *n,
                        uint32_t *rate)
{
	SF_VIRTUAL_IO io = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
	struct vio v = {buf, (sf_count_t)len, 0};
	SF_INFO info = {0};
	SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &v);
	if (!sf)
		return -EINVAL;
	int ret = -EINVAL;
	if (info.channels < 1 || info.channels > 8 || info.samplerate < 8000 ||
	    info.samplerate > 48000 || info.frames <= 0 || info.frames > 48000 * 120)
		goto out;
	short *all = malloc((size_t)info.frames * (size_t)info.channels * sizeof(short));
	int16_t *mono = malloc((size_t)info.frames * sizeof(int16_t));
	if (!all || !mono) {
		free(all);
		free(mono);
		ret = -ENOMEM;
		goto out;
	}
	sf_count_t got = sf_readf_short(sf, all, info.frames);
	for (sf_count_t i = 0; i < got; i++) {
		int sum = 0;
		for (int c = 0; c < info.channels; c++)
			sum += all[i * info.channels + c];
		mono[i] = (int16_t)(sum / info.channels);
	}
	free(all);
	*pcm = mono;
	*n = (size_t)got;
	*rate = (uint32_t)info.samplerate;
	ret = got > 0 ? 0 : -EINVAL;
	if (ret)
		free(mono);
out:
	sf_close(sf);
	return ret;
}

static void analyze_emotion(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp)
{
	static const char *const allowed[] = {"text", "audio", "words", NULL};
	json_t *body = NULL;
	unsigned char *wav = NULL;
	int16_t *pcm = NULL;
	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	const char *text, *audio;
	if (only(body, allowed, resp) || opt_str(body, "text", MAX_UTTERANCE, &text, resp) ||
	    opt_str(body, "audio", (size_t)app->cfg->http_max_body, &audio, resp))
		goto out;
	json_t *jw = json_object_get(body, "words");
	if (jw && (!json_is_integer(jw) || json_integer_value(jw) < 0 ||
	           json_integer_value(jw) > 10000)) {
		rv_http_reply_error(resp, 400, "invalid_field", field("words"),
		                    "\"words\" must be a word count from 0 to 10000");
		goto out;
	}
	if (!text && !audio) {
		rv_http_reply_error(resp, 400, "invalid_field", field("text"),
		                    "give \"text\", \"audio\" (base64 WAV) or both");
		goto out;
	}
	struct rv_emotion_text et = {0};
	if (text)
		rv_emotion_text(text, &et);
	struct rv_voice_feat vf = {0};
	json_t *voice = json_null();
	if (audio) {
		size_t alen = strlen(audio), wlen = 0;
		wav = malloc(alen / 4 * 3 + 4);
		if (!wav) {
			rv_http_reply_error(resp, 500, "internal", NULL, "out of memory");
			goto out;
		}
		size_t n = 0;
		uint32_t rate = 0;
		if (sodium_base642bin(wav, alen / 4 * 3 + 4, audio, alen, " \r\n", &wlen, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    decode_audio(wav, wlen, &pcm, &n, &rate) != 0) {
			rv_info("nlu", "analyze-emotion: audio is not base64 of a readable WAV");
			rv_http_reply_error(
			    resp, 422, "unprocessable", field("audio"),
			    "\"audio\" must be base64 of a WAV file (8-48 kHz, at most "
			    "two minutes)");
			goto out;
		}
		int err =
		    rv_voice_features(pcm, n, rate, jw ? (unsigned)json_integer_value(jw) : 0, &vf);
		if (err) {
			rv_http_reply_error(resp, 422, "unprocessable", field("audio"),
			                    "cannot measure the audio");
			goto out;
		}
		json_decref(voice);
		voice = json_pack("{s:b, s:f, s:f, s:f, s:f, s:f}", "valid", vf.valid, "pitch_hz",
		                  vf.f0_hz, "pitch_range_semitones", vf.f0_range, "level_dbfs",
		                  vf.energy_db, "words_per_second", vf.rate_wps, "voiced_seconds",
		                  vf.voiced_s);
	}
	/* One turn on its own has no baseline: the voice is reported, the label comes from the
	 * words (a call's turns build the baseline that makes the voice count). */
	struct rv_emotion emo;
	rv_emotion_fuse(&et, &vf, NULL, &emo);
	json_t *out = emotion_json(&emo);
	json_object_set_new(out, "text_cues", json_integer(et.cues));
	json_object_set_new(out, "voice", voice);
	rv_http_reply_json(resp, 200, out);
out:
	free(wav);
	free(pcm);
	json_decref(body);
}

/* The flow a conversation request names: flow_id (stored), flow_name (shipped) or an inline
 * document. Replies with the error and returns non-zero when it cannot. */
static int resolve_flow(struct rv_app *app, json_t *body, struct rv_http_resp *resp,
                        struct rv_flow **out)
{
	json_t *doc = NULL, *id = json_object_get(body, "flow_id");
	json_t *inline_doc = json_object_get(body, "flow");
	const char *name = json_string_value(json_object_get(body, "flow_name"));
	int given = !!id + !!inline_doc + !!json_object_get(body, "flow_name");
	if (given > 1) {
		rv_http_reply_error(resp, 400, "invalid_field", field("flow_id"),
		                    "give one of flow_id, flow_name or flow");
		return -EINVAL;
	}
	if (id) {
		if (!json_is_integer(id) || json_integer_value(id) < 1) {
			rv_http_reply_error(resp, 400, "invalid_field", field("flow_id"),
			                    "\"flow_id\" must be a positive integer");
			return -EINVAL;
		}
		struct rv_rows *rows = NULL;
		struct rv_val p[] = {RV_VINT(json_integer_value(id))};
		int err = rv_store_exec(app->store, "SELECT definition FROM flows WHERE id = $1", p,
		                        1, &rows, NULL);
		if (err) {
			rv_http_reply_error(resp, 503, "unavailable", NULL,
			                    "the store is not answering");
			return err;
		}
		if (rows->nrows == 1 && rv_rows_at(rows, 0, 0)->type == RV_VAL_TEXT) {
			json_error_t je;
			doc = json_loads(rv_rows_at(rows, 0, 0)->s, 0, &je);
		}
		bool found = rows->nrows == 1;
		rv_rows_free(rows);
		if (!found) {
			rv_http_reply_error(resp, 422, "unprocessable", field("flow_id"),
			                    "there is no flow %lld",
			                    (long long)json_integer_value(id));
			return -ENOENT;
		}
	} else if (inline_doc) {
		doc = json_incref(inline_doc);
	} else {
		const char *j = rv_flow_builtin_json(name ? name : "default");
		if (!j) {
			rv_http_reply_error(
			    resp, 422, "unprocessable", field("flow_name"),
			    "no shipped flow is called \"%s\" (default, appointment, "
			    "support)",
			    name);
			return -ENOENT;
		}
		json_error_t je;
		doc = json_loads(j, 0, &je);
	}
	json_t *errors = NULL;
	int err = doc ? rv_flow_parse(doc, out, &errors) : -EINVAL;
	json_decref(doc);
	if (err) {
		rv_http_reply_error(resp, 422, "unprocessable",
		                    json_pack("{s:s, s:o?}", "field", "flow", "errors", errors),
		                    "the flow is not valid");
		return err;
	}
	return 0;
}

static json_t *turn_json(const struct rv_turn_out *o)
{
	json_t *acts = json_array();
	for (size_t i = 0; i < o->nactions; i++) {
		static const char *const names[] = {"transfer", "schedule_callback", "send_dtmf",
		                                    "webhook",  "set_field",         "dnc"};
		json_t *a = json_deep_copy(o->actions[i].args);
		json_object_set_new(a, "type", json_string(names[o->actions[i].type]));
		json_array_append_new(acts, a);
	}
	return json_pack("{s:s, s:s, s:b, s:s, s:s?, s:f, s:O, s:o, s:b, s:s?, s:O}", "preamble",
	                 o->preamble ? o->preamble : "", "say", o->say ? o->say : "", "barge_in",
	                 o->barge_in, "state", o->state ? o->state : "", "intent", o->intent,
	                 "confidence", o->intent_conf, "entities",
	                 o->entities ? o->entities : json_array(), "actions", acts, "end", o->end,
	                 "disposition", o->end ? o->disposition : NULL, "expect",
	                 o->expect ? o->expect : json_array());
}

/* Sentences as the model streamed them, with when each arrived (ms from the turn's start). */
struct llm_sentences {
	json_t *list;
	uint64_t t0;
};

static void llm_sentence_cb(const char *s, void *arg)
{
	struct llm_sentences *ls = arg;
	json_array_append_new(ls->list, json_pack("{s:s, s:f}", "text", s, "ms",
	                                          (double)(rv_time_mono_ns() - ls->t0) / 1e6));
}

/* A turn of a flow with an "llm" section (src/dialog/llm.h): the model when llm.base_url is
 * set, the scripted states otherwise or when the model fails. The answer also says which
 * engine produced the turn ("mode", "fallback_reason") and the sentences as they streamed. */
static void run_llm_turn(struct rv_app *app, const struct rv_flow *flow,
                         const struct rv_convo_ctx *ctx, json_t *conv, const struct rv_turn_in *in,
                         bool full, struct rv_http_resp *resp)
{
	struct rv_llm *llm = NULL;
	struct rv_llm_convo *c = NULL;
	struct rv_turn_out o = {0};
	struct llm_sentences ls = {json_array(), rv_time_mono_ns()};
	int err = rv_llm_from_config(app->cfg, &llm);
	if (err && err != -ENOENT)
		rv_warn("llm", "the LLM client could not be made (%d); running the flow scripted",
		        err);
	if (!conv) {
		err = rv_llm_convo_start(flow, llm, ctx, &c, &o);
		if (!err && in) {
			rv_turn_out_clear(&o);
			err = rv_llm_convo_turn(c, in, llm_sentence_cb, &ls, &o);
		}
	} else {
		err = rv_llm_convo_resume(flow, llm, ctx, conv, &c);
		if (err) {
			rv_http_reply_error(resp, 422, "unprocessable", field("conversation"),
			                    "the conversation does not belong to this flow");
			goto out;
		}
		if (!in) {
			rv_http_reply_error(
			    resp, 400, "invalid_field", field("text"),
			    "give the caller's \"text\", \"silence\": true or a \"dtmf\" key");
			goto out;
		}
		err = rv_llm_convo_turn(c, in, llm_sentence_cb, &ls, &o);
		if (err == -EALREADY) {
			rv_http_reply_error(resp, 409, "conflict", field("conversation"),
			                    "the conversation has ended");
			goto out;
		}
	}
	if (err) {
		rv_http_reply_error(resp, 500, "internal", NULL, "the conversation could not run");
		goto out;
	}
	struct rv_llm_turn_info info;
	rv_llm_convo_info(c, &info);
	json_t *r = turn_json(&o);
	json_object_set_new(r, "mode", json_string(info.mode));
	json_object_set_new(r, "fallback_reason", json_string(info.reason));
	json_object_set_new(r, "truncated", json_boolean(info.truncated));
	json_object_set_new(r, "deflected", json_boolean(info.deflected));
	json_object_set(r, "sentences", ls.list);
	if (full)
		json_object_set_new(r, "conversation", rv_llm_convo_snapshot(c));
	else
		json_object_set(r, "response", json_object_get(r, "say"));
	rv_http_reply_json(resp, 200, r);
out:
	json_decref(ls.list);
	rv_turn_out_clear(&o);
	rv_llm_convo_free(c);
	rv_llm_free(llm);
}

/* One turn (or the start) of a flow over HTTP; shared by both conversation endpoints. */
static void run_turn(struct rv_app *app, struct rv_http_req *req, struct rv_http_resp *resp,
                     bool full)
{
	static const char *const allowed[] = {
	    "flow_id", "flow_name", "flow",     "conversation", "text",     "silence", "dtmf",
	    "lead",    "campaign",  "timezone", "now",          "outbound", NULL};
	json_t *body = NULL;
	struct rv_flow *flow = NULL;
	struct rv_convo *c = NULL;
	struct rv_turn_out o = {0};
	if (rv_http_json_body(req, resp, &body) != 0)
		return;
	const char *text, *tz, *now_s, *dtmf;
	if (only(body, allowed, resp) || opt_str(body, "text", MAX_UTTERANCE, &text, resp) ||
	    opt_str(body, "timezone", 64, &tz, resp) || opt_str(body, "now", 64, &now_s, resp) ||
	    opt_str(body, "dtmf", 1, &dtmf, resp))
		goto out;
	json_t *lead = json_object_get(body, "lead"), *camp = json_object_get(body, "campaign");
	json_t *conv = json_object_get(body, "conversation");
	if ((lead && !json_is_object(lead)) || (camp && !json_is_object(camp)) ||
	    (conv && !json_is_object(conv))) {
		rv_http_reply_error(resp, 400, "invalid_field",
		                    field(lead && !json_is_object(lead)   ? "lead"
		                          : camp && !json_is_object(camp) ? "campaign"
		                                                          : "conversation"),
		                    "\"lead\", \"campaign\" and \"conversation\" are objects");
		goto out;
	}
	if (dtmf && !strchr("0123456789*#ABCD", dtmf[0])) {
		rv_http_reply_error(resp, 400, "invalid_field", field("dtmf"),
		                    "\"dtmf\" is one key: 0-9, *, #, A-D");
		goto out;
	}
	int64_t now_ms = 0;
	if (now_s && rv_time_parse_iso(now_s, &now_ms) != 0) {
		rv_http_reply_error(resp, 400, "invalid_field", field("now"),
		                    "\"now\" must be an ISO 8601 date-time with an offset");
		goto out;
	}
	if (resolve_flow(app, body, resp, &flow) != 0)
		goto out;
	struct rv_convo_ctx ctx = {.lead = lead,
	                           .campaign = camp,
	                           .timezone = tz,
	                           .now_ms = now_ms,
	                           .outbound = json_is_true(json_object_get(body, "outbound"))};
	bool silence = json_is_true(json_object_get(body, "silence"));
	bool has_input = text || silence || dtmf;
	int err;
	if (rv_llm_flow_has_section(flow)) {
		struct rv_turn_in lin = {
		    .text = text, .silence = silence, .dtmf = dtmf ? dtmf[0] : 0};
		run_llm_turn(app, flow, &ctx, conv, has_input ? &lin : NULL, full, resp);
		goto out;
	}
	if (!conv) {
		/* No conversation yet: start it, then (generate-response) answer the text. */
		err = rv_convo_start(flow, &ctx, &c, &o);
		if (!err && has_input) {
			rv_turn_out_clear(&o);
			struct rv_turn_in in = {
			    .text = text, .silence = silence, .dtmf = dtmf ? dtmf[0] : 0};
			err = rv_convo_turn(c, &in, &o);
		}
	} else {
		err = rv_convo_resume(flow, &ctx, conv, &c);
		if (err) {
			rv_http_reply_error(resp, 422, "unprocessable", field("conversation"),
			                    "the conversation does not belong to this flow");
			goto out;
		}
		if (!has_input) {
			rv_http_reply_error(
			    resp, 400, "invalid_field", field("text"),
			    "give the caller's \"text\", \"silence\": true or a \"dtmf\" key");
			goto out;
		}
		struct rv_turn_in in = {
		    .text = text, .silence = silence, .dtmf = dtmf ? dtmf[0] : 0};
		err = rv_convo_turn(c, &in, &o);
		if (err == -EALREADY) {
			rv_http_reply_error(resp, 409, "conflict", field("conversation"),
			                    "the conversation has ended");
			goto out;
		}
	}
	if (err) {
		rv_http_reply_error(resp, 500, "internal", NULL, "the conversation could not run");
		goto out;
	}
	json_t *r = turn_json(&o);
	if (full) {
		json_object_set_new(r, "conversation", rv_convo_snapshot(c));
	} else {
		json_object_set(r, "response", json_object_get(r, "say"));
	}
	rv_http_reply_json(resp, 200, r);
out:
	rv_turn_out_clear(&o);
	rv_convo_free(c);
	rv_flow_free(flow);
	json_decref(body);
}

static void manage_conversation(struct rv_app *app, struct rv_http_req *req,
                                struct rv_http_resp *resp)
{
	run_turn(app, req, resp, true);
}

static void generate_response(struct rv_app *app, struct rv_http_req *req,
                              struct rv_http_resp *resp)
{
	run_turn(app, req, resp, false);
}

const struct rv_route rv_api_voice_routes[] = {
    {"POST", "/api/voice-ai/manage-conversation", RV_ROLE_VIEWER, 0, manage_conversation},
    {"POST", "/api/voice-ai/generate-response", RV_ROLE_VIEWER, 0, generate_response},
    {"POST", "/api/voice-ai/understand", RV_ROLE_VIEWER, 0, understand},
    {"POST", "/api/voice-ai/analyze-emotion", RV_ROLE_VIEWER, 0, analyze_emotion},
};
const size_t rv_api_voice_routes_len = sizeof(rv_api_voice_routes) / sizeof(rv_api_voice_routes[0]);
