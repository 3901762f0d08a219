/* Inside the voice agent: the per-call state shared by agent.c (loop side) and
 * agent_worker.c (speech worker side), and the engines (agent_engines.c). */
#ifndef RV_AGENT_INT_H
#define RV_AGENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "media/media_pcm.h"
#include "nlu/emotion.h"
#include "tel/tel.h"

struct json_t;
struct rv_app;
struct rv_workers;
struct rv_stt_engine;
struct rv_stt_session;
struct rv_tts;
struct rv_tts_cache;
struct rv_vad;
struct rv_turn;
struct rv_amd;
struct rv_flow;
struct rv_llm;
struct rv_llm_convo;

#define AG_PREROLL   20 /* frames of audio kept from before speech was declared (400 ms) */
#define AG_VOICE_MAX (RV_MEDIA_RATE * 20) /* voiced audio kept per turn for emotion: 20 s */

struct rv_agent {
	struct rv_app *app;
	struct rv_call_app capp;
	struct rv_workers *workers;
	pthread_mutex_t mu; /* lazy engine loading, the warming thread */
	bool engines_open;
	struct rv_stt_engine *stt;
	bool stt_failed;
	struct rv_tts *flite, *espeak;
	struct rv_tts_cache *cache;
	struct rv_llm *llm; /* llm.* configured: flows with an "llm" section use it; else NULL */
	/* The warming thread (agent_warm.c), under mu. */
	pthread_t warm_thread;
	bool warm_started, warm_running, warm_again, warm_stop;
};

/* One caller frame as the worker gets it. */
struct ag_frame {
	int16_t mic[RV_MEDIA_FRAME];
	int16_t ref[RV_MEDIA_FRAME]; /* what we played in the tick before: the echo reference */
	bool ref_active;             /* anything queued to play */
	uint64_t ts_ms;              /* media time */
	uint64_t at_ns;              /* monotonic clock when the loop handled the tick */
};

struct loop_id {
	uint32_t id, tag;
};

enum ag_amd_state { AG_AMD_OFF, AG_AMD_LISTEN, AG_AMD_WAIT_BEEP, AG_AMD_DONE };

/* Latency marks of one turn, monotonic ns (0 = not reached). */
struct ag_lat {
	uint64_t speech_end, endpoint, stt_final, reply_ready, tts_first, audio_out;
	int seq; /* the agent turn row they belong to */
};

struct call_ag {
	atomic_int refs;
	atomic_bool ended;
	struct rv_agent *ag;
	unsigned worker;

	/* Loop thread only. */
	struct rv_tel_call *call;
	struct rv_audio *audio;
	struct rv_media_loop *loop;
	bool loop_over;
	struct loop_id loop_ids[64];
	uint32_t loop_id_next;
	uint64_t frames_dropped;

	/* Fixed at start. */
	int64_t call_id, campaign_id, lead_id, flow_id;
	bool outbound;
	char from[96], to[96];

	/* Worker thread only. */
	bool ready;
	struct rv_vad *vad;
	struct rv_turn *turn;
	struct rv_stt_session *stt;
	struct rv_amd *amd;
	enum ag_amd_state amd_state;
	char amd_policy[16];
	char voicemail[512];
	uint64_t amd_deadline_ms;
	struct rv_flow *flow;
	struct rv_llm_convo *convo;
	bool streaming; /* an LLM reply is being spoken as it streams */
	struct json_t *lead, *campaign;
	struct rv_tts *tts;
	char voice[48];
	char tz[64];
	struct {
		int16_t s[RV_MEDIA_FRAME];
		uint64_t ts_ms;
	} pre[AG_PREROLL];
	unsigned pre_n, pre_head;
	bool utt_open;
	unsigned quiet_frames; /* unvoiced frames since the last voiced one */
	uint64_t utt_start_ms;
	uint64_t last_ts_ms, last_at_ns;
	/* The prompt now playing. */
	uint32_t next_tag;
	uint32_t first_tag, barge_tag, last_tag;
	unsigned items_out;
	bool posting; /* items of the prompt are still being posted */
	bool prompt_active, prompt_barge, barged;
	size_t heard, total;
	int prompt_seq; /* the agent turn row of the prompt */
	bool hangup_after;
	char hangup_disp[48];
	int seq;
	struct ag_lat lat;
	struct rv_emotion_baseline emo_base;
	int16_t *voice_buf; /* this turn's voiced audio (AG_VOICE_MAX samples at most) */
	size_t voice_n;
	struct rv_voice_feat
	    voice_feat; /* measured at the end of the turn, used by the dialog turn */
	unsigned turns;
};

/* Sentences as the agent speaks them (agent_worker.c): copies the next one of p into out and
 * returns how far it read. */
#define AG_SENTENCE_MAX 600
size_t ag_next_sentence(const char *p, char *out, size_t cap);
/* "engine:voice" (or a bare flite voice) into its parts. */
void ag_split_voice(const char *spec, char *engine, size_t elen, char *voice, size_t vlen);

/* Join the warming thread (agent_warm.c). */
void ag_warm_stop(struct rv_agent *ag);

/* Engines (agent_engines.c). */
int ag_engines_open(struct rv_agent *ag, char *err, size_t errlen);
void ag_engines_close(struct rv_agent *ag);
struct rv_stt_engine *ag_stt(struct rv_agent *ag);
struct rv_tts *ag_tts(struct rv_agent *ag, const char *engine);
void ag_metrics_register(void);

/* Worker side (agent_worker.c). */
void ag_worker_start(struct call_ag *c);
void ag_worker_frame(struct call_ag *c, const struct ag_frame *f);
void ag_worker_dtmf(struct call_ag *c, char digit);
void ag_worker_played(struct call_ag *c, uint32_t tag, bool flushed, size_t played, size_t total);
void ag_worker_started(struct call_ag *c, uint32_t tag, uint64_t at_ns);
void ag_worker_end(struct call_ag *c);
void ag_worker_release(struct call_ag *c); /* frees what the worker still holds */

/* Release a PCM buffer that was never handed to the loop (agent.c; keeps re.h out of the
 * files that use jansson). */
void ag_pcm_release(struct rv_pcm *pcm);

/* Loop side requests, callable from the worker (agent.c). pcm is handed over. */
void ag_loop_play(struct call_ag *c, struct rv_pcm *pcm, uint32_t tag);
void ag_loop_flush(struct call_ag *c);
void ag_loop_hangup(struct call_ag *c, const char *disposition);
void ag_loop_transfer(struct call_ag *c, const char *to, bool bridged, const char *whisper);
void ag_loop_dtmf(struct call_ag *c, const char *digits);

/* Store writes (agent_store.c), worker thread. */
int ag_store_load(struct call_ag *c, struct json_t **campaign, struct json_t **lead,
                  struct json_t **flow_doc);
void ag_store_turn(struct call_ag *c, int seq, const char *speaker, const char *text,
                   const char *intent, double conf, const struct json_t *entities,
                   const struct json_t *emotion, uint64_t started_ns, uint64_t ended_ns);
void ag_store_turn_heard(struct call_ag *c, int seq, bool barge_in, size_t heard_ms);
void ag_store_turn_latency(struct call_ag *c, int seq, const struct json_t *latency);
void ag_store_amd(struct call_ag *c, const char *result);
void ag_store_dnc(struct call_ag *c, const char *reason);
void ag_store_callback(struct call_ag *c, const char *at);
void ag_store_set_field(struct call_ag *c, const char *field, const struct json_t *value);

#endif
