/*
 * Internals shared by the telephony service's files: tel.c (the media-loop side: calls, SIP
 * events, runners, commands), tel_store.c (the store writer thread, the routing snapshot and
 * its control-plane thread, the live-call table) and tel_dial.c (dial plans: trunks, URIs).
 * This header includes neither re.h nor jansson.h, so every file of the module can use it.
 */
#ifndef RV_TEL_INT_H
#define RV_TEL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "tel/tel.h"

struct rv_config;
struct rv_pcm;
struct tel_loop; /* loop-thread state, tel.c */
struct tel_routes;

#define TEL_COMP         "tel"
#define TEL_MAX_TRUNKS   16
#define TEL_URI_MAX      512
#define TEL_JOB_MAX_COLS 24

/* One live call as the control plane sees it (guarded by rv_tel.live_mu). */
struct tel_live {
	uint64_t key;        /* local handle, unique per process */
	int64_t id;          /* calls.id; 0 until the writer has inserted the row */
	int64_t campaign_id; /* 0: none */
	int trunk;           /* index into cfg->trunks carrying it, -1: none */
	int64_t lead_id, flow_id;
	char rec_policy[16]; /* the campaign's recording_policy, "" none */
	bool attached;       /* a channel call (Twilio) placed by rv_tel_dial has attached */
};

/* A row write for the writer thread: an INSERT (returns the id) or an UPDATE of one call. */
enum tel_job_kind { TEL_JOB_INSERT, TEL_JOB_UPDATE };

struct tel_job {
	struct tel_job *next;
	enum tel_job_kind kind;
	uint64_t key; /* the call's live key (0: none, e.g. a row-less update by id) */
	int64_t id;   /* known row id, or 0: resolved from key by the writer */
	bool final;   /* the call's last write: the writer forgets the key */
	size_t n;
	const char *cols[TEL_JOB_MAX_COLS]; /* static column names */
	struct rv_val vals[TEL_JOB_MAX_COLS];
	char *owned[TEL_JOB_MAX_COLS]; /* text copies freed with the job */
};

/* Called by the writer after an INSERT: the row's id for a live key (any thread). */
typedef void(tel_inserted_h)(struct rv_tel *tel, uint64_t key, int64_t id);

/* Hook the twilio module registers to place outbound calls through Twilio's REST API. */
struct tel_twilio_hook {
	rv_tel_twilio_dial_h *dial;
	void *arg;
};

struct rv_tel {
	struct rv_app *app;
	struct rv_config *cfg;
	struct rv_call_app capp; /* the runner (copied) */
	struct rv_media_loop *loop;
	struct tel_loop *lp; /* loop-thread only */
	bool sip_on;
	uint16_t sip_port;
	struct rv_pcm *prompt; /* default prompt; moves to the loop at start */

	/* Live calls (any thread). */
	pthread_mutex_t live_mu;
	struct tel_live *live;
	size_t nlive, live_cap;
	uint64_t next_key;

	/* Store writer. */
	pthread_t writer;
	bool writer_started;
	pthread_mutex_t wmu;
	pthread_cond_t wcv, widle;
	struct tel_job *whead, *wtail;
	bool wstop, wbusy;
	tel_inserted_h *inserted_h;
	/* Writer-private: key -> id of rows inserted by the writer and not final yet. */
	struct {
		uint64_t key;
		int64_t id;
	} * wmap;
	size_t nwmap, wmap_cap;

	/* Routing snapshot and the control-plane thread that rebuilds it. */
	pthread_t ctl;
	bool ctl_started;
	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	bool rdirty, rstop;
	struct tel_routes *routes;

	pthread_mutex_t hook_mu;
	struct tel_twilio_hook twilio;
};

/* ---- tel_store.c ---- */

/* Start/stop the writer thread; stop drains every queued job first. */
int tel_writer_start(struct rv_tel *tel);
void tel_writer_stop(struct rv_tel *tel);

/* A new job (aborts on out of memory: fixed-size). Columns added in order; text is copied. */
struct tel_job *tel_job_new(enum tel_job_kind kind, uint64_t key, int64_t id);
void tel_job_text(struct tel_job *j, const char *col, const char *s);
void tel_job_int(struct tel_job *j, const char *col, int64_t v);
/* Hand the job to the writer (consumed). */
void tel_job_push(struct rv_tel *tel, struct tel_job *j);
void tel_job_free(struct tel_job *j);

/* Close rows a crash left live (synchronous, at start). Returns the count or a store error. */
int tel_close_stale(struct rv_tel *tel, int64_t *closed);

/* Routing snapshot thread: start (after a first synchronous build), poke, stop. */
int tel_routes_start(struct rv_tel *tel);
void tel_routes_stop(struct rv_tel *tel);

/* Live table (any thread). tel_live_add returns the new key; 0 when the table is full. */
uint64_t tel_live_add(struct rv_tel *tel, int64_t id, int64_t campaign_id, int trunk);
/* Copy of the entry for `key` (or, with key 0, for row `id`); false when not live. */
bool tel_live_get(struct rv_tel *tel, uint64_t key, int64_t id, struct tel_live *out);
/* Set the extra fields of an entry (lead, flow, policy, attached). */
void tel_live_update(struct rv_tel *tel, const struct tel_live *l);
void tel_live_set_id(struct rv_tel *tel, uint64_t key, int64_t id);
void tel_live_set_trunk(struct rv_tel *tel, uint64_t key, int trunk);
void tel_live_remove(struct rv_tel *tel, uint64_t key);
/* key of the live call with this id, or 0. */
uint64_t tel_live_key(struct rv_tel *tel, int64_t id);
size_t tel_live_campaign_count(struct rv_tel *tel, int64_t campaign_id);
size_t tel_live_trunk_count(struct rv_tel *tel, int trunk);

/* Synthesize a bridged transfer's whisper (tel_whisper.c; blocking: control plane only).
 * 0 and *out (16 kHz, one reference, to hand to the loop), or a negative errno, logged. */
int tel_whisper_synth(const char *text, struct rv_pcm **out);

/* Create recording.dir/<yyyy-mm-dd> for today and tomorrow (UTC); blocking, control plane. */
void tel_rec_dirs(struct rv_tel *tel);

#endif
