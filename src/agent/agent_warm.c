/* Warming the prompt cache with the fixed prompts of active campaigns: see agent.h. */
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/agent_int.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "speech/tts.h"
#include "store/store.h"

#define MAX_TEXTS 256

struct texts {
	char *v[MAX_TEXTS];
	size_t n;
};

/* Every template-free sentence of a prompt, split exactly as the agent splits what it says,
 * so the cache keys match. */
static void add_prompt(struct texts *t, const char *say)
{
	char sentence[AG_SENTENCE_MAX];
	for (const char *p = say; p && *p && t->n < MAX_TEXTS;) {
		p += ag_next_sentence(p, sentence, sizeof(sentence));
		if (!sentence[0] || strstr(sentence, "{{"))
			continue;
		bool dup = false;
		for (size_t i = 0; i < t->n && !dup; i++)
			dup = strcmp(t->v[i], sentence) == 0;
		if (!dup)
			t->v[t->n++] = strdup(sentence);
	}
}

static void add_transition(struct texts *t, const json_t *tr)
{
	if (json_is_object(tr))
		add_prompt(t, json_string_value(json_object_get(tr, "say")));
}

static void collect(struct texts *t, const json_t *flow)
{
	add_prompt(t, json_string_value(json_object_get(flow, "disclosure")));
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)json_object_get(flow, "globals"), k, v) add_transition(t, v);
	json_object_foreach((json_t *)json_object_get(flow, "states"), k, v)
	{
		add_prompt(t, json_string_value(json_object_get(v, "say")));
		const json_t *slot = json_object_get(v, "slot");
		add_prompt(t, json_string_value(json_object_get(slot, "reprompt")));
		add_transition(t, json_object_get(v, "fallback"));
		add_transition(t, json_object_get(v, "next"));
		const char *i;
		const json_t *tr;
		json_object_foreach((json_t *)json_object_get(v, "on"), i, tr)
		    add_transition(t, tr);
	}
}

static void warm_once(struct rv_agent *ag)
{
	struct rv_rows *rows = NULL;
	int err = rv_store_exec(ag->app->store,
	                        "SELECT c.voice, f.definition FROM campaigns c JOIN flows f ON "
	                        "f.id = c.flow_id WHERE c.status = 'active'",
	                        NULL, 0, &rows, NULL);
	if (err || !ag->cache) {
		rv_rows_free(rows);
		return;
	}
	size_t total = 0, made = 0, failed = 0;
	for (size_t r = 0; r < rows->nrows; r++) {
		const struct rv_val *voice = rv_rows_at(rows, r, 0), *def = rv_rows_at(rows, r, 1);
		if (def->type != RV_VAL_TEXT)
			continue;
		json_error_t je;
		json_t *flow = json_loads(def->s, 0, &je);
		struct texts t = {0};
		collect(&t, flow);
		json_decref(flow);
		char engine[16], name[48];
		ag_split_voice(voice->type == RV_VAL_TEXT && voice->len
		                   ? voice->s
		                   : ag->app->cfg->speech_voice,
		               engine, sizeof(engine), name, sizeof(name));
		struct rv_tts *tts = ag_tts(ag, engine);
		if (tts && t.n) {
			size_t m = 0;
			failed += rv_tts_cache_warm(ag->cache, tts, (const char *const *)t.v, t.n,
			                            name, 0, 0, &m);
			made += m;
			total += t.n;
		}
		for (size_t i = 0; i < t.n; i++)
			free(t.v[i]);
	}
	rv_rows_free(rows);
	if (total)
		rv_info("agent",
		        "prompt cache: %zu fixed prompts of active campaigns, %zu synthesized now, "
		        "%zu failed",
		        total, made, failed);
}

/*
 * Warming runs on a thread of its own, not on a speech worker: a call answered meanwhile must
 * not wait behind a campaign's prompts. It also loads the STT engine, so the first call does
 * not pay for the model.
 */
static void *warm_main(void *arg)
{
	struct rv_agent *ag = arg;
	ag_stt(ag);
	pthread_mutex_lock(&ag->mu);
	while (ag->warm_again && !ag->warm_stop) {
		ag->warm_again = false;
		pthread_mutex_unlock(&ag->mu);
		warm_once(ag);
		pthread_mutex_lock(&ag->mu);
	}
	ag->warm_running = false;
	pthread_mutex_unlock(&ag->mu);
	return NULL;
}

void rv_agent_campaigns_changed(struct rv_agent *ag)
{
	if (!ag)
		return;
	pthread_mutex_lock(&ag->mu);
	ag->warm_again = true;
	if (!ag->warm_running && !ag->warm_stop) {
		if (ag->warm_started)
			pthread_join(ag->warm_thread, NULL);
		ag->warm_started = ag->warm_running =
		    pthread_create(&ag->warm_thread, NULL, warm_main, ag) == 0;
	}
	pthread_mutex_unlock(&ag->mu);
}

void ag_warm_stop(struct rv_agent *ag)
{
	pthread_mutex_lock(&ag->mu);
	ag->warm_stop = true;
	bool started = ag->warm_started;
	ag->warm_started = false;
	pthread_mutex_unlock(&ag->mu);
	if (started)
		pthread_join(ag->warm_thread, NULL);
}
