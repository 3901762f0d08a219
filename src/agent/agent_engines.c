/* The voice agent's engines: the STT engine (loaded on the first call: the model is large),
 * the TTS engines and the prompt cache, and the agent's metrics. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "dialog/llm.h"
#include "obs/metrics.h"
#include "speech/stt.h"
#include "speech/tts.h"

#define CACHE_BYTES (64u << 20)

int ag_engines_open(struct rv_agent *ag, char *err, size_t errlen)
{
	pthread_mutex_init(&ag->mu, NULL);
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/tts-cache", ag->app->cfg->data_dir);
	int e = rv_llm_from_config(ag->app->cfg, &ag->llm);
	if (e && e != -ENOENT)
		rv_warn("agent",
		        "llm.* is set but the LLM client cannot be made: %s; flows run "
		        "scripted",
		        strerror(-e));
	if (rv_tts_cache_open(dir, CACHE_BYTES, &ag->cache) != 0) {
		/* Slower first prompts, nothing worse. */
		rv_warn("agent",
		        "the prompt cache at %s cannot be used; prompts are synthesized each "
		        "time",
		        dir);
		ag->cache = NULL;
	}
	return 0;
}

void ag_engines_close(struct rv_agent *ag)
{
	rv_llm_free(ag->llm);
	rv_stt_engine_free(ag->stt);
	rv_tts_close(ag->flite);
	rv_tts_close(ag->espeak);
	rv_tts_cache_close(ag->cache);
	pthread_mutex_destroy(&ag->mu);
}

struct rv_stt_engine *ag_stt(struct rv_agent *ag)
{
	pthread_mutex_lock(&ag->mu);
	if (!ag->stt && !ag->stt_failed) {
		const struct rv_config *cfg = ag->app->cfg;
		char work[4096];
		snprintf(work, sizeof(work), "%s/stt-model", cfg->data_dir);
		struct rv_stt_config sc = {
		    .provider = cfg->speech_stt,
		    .work_dir = work,
		    /* One decoder per worker, loaded now: a turn never waits for one to load. */
		    .pool_size = (unsigned)cfg->speech_workers,
		    .base_url = *cfg->speech_stt_url ? cfg->speech_stt_url : NULL,
		    .api_key = *cfg->speech_stt_key ? cfg->speech_stt_key : NULL};
		int e = rv_stt_engine_new(&sc, &ag->stt);
		if (e) {
			rv_error("agent", "the STT engine \"%s\" could not start: %s",
			         cfg->speech_stt, rv_stt_strerror(e));
			ag->stt_failed = true;
		}
	}
	struct rv_stt_engine *e = ag->stt;
	pthread_mutex_unlock(&ag->mu);
	return e;
}

struct rv_tts *ag_tts(struct rv_agent *ag, const char *engine)
{
	bool espeak = strcmp(engine, "espeak") == 0 || strcmp(engine, "espeak-ng") == 0;
	if (!espeak && strcmp(engine, "flite") != 0)
		return NULL;
	pthread_mutex_lock(&ag->mu);
	struct rv_tts **slot = espeak ? &ag->espeak : &ag->flite;
	if (!*slot) {
		char why[200] = "";
		if (rv_tts_open(espeak ? "espeak" : "flite", NULL, slot, why, sizeof(why)) != 0) {
			rv_error("agent", "TTS engine %s: %s", engine, why);
			*slot = NULL;
		}
	}
	struct rv_tts *t = *slot;
	pthread_mutex_unlock(&ag->mu);
	return t;
}

void ag_metrics_register(void)
{
	static const double lat_buckets[] = {0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
	                                     0.75, 1,   1.5,  2,   3,   5};
	rv_metrics_register("rv_turn_latency_seconds", RV_METRIC_HISTOGRAM,
	                    "Time from the end of the caller's speech to each stage of the reply "
	                    "(endpoint, stt_final, reply_ready, tts_first, audio_out)",
	                    "stage", lat_buckets, sizeof(lat_buckets) / sizeof(lat_buckets[0]));
	rv_metrics_register("rv_barge_ins_total", RV_METRIC_COUNTER,
	                    "Prompts cut off by the caller", NULL, NULL, 0);
	rv_metrics_register("rv_amd_results_total", RV_METRIC_COUNTER,
	                    "Answering-machine detection outcomes", "result", NULL, 0);
	rv_metrics_register("rv_agent_turns_total", RV_METRIC_COUNTER, "Caller turns handled", NULL,
	                    NULL, 0);
}
