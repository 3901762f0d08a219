/*
 * The telephony service inside `revovoice serve`: it owns the media loop, the SIP user agent,
 * the trunks (selection, failover, REGISTER), inbound routing, the call rows in the store,
 * recordings, and the conversation runner attached to each answered call. Calls arrive over
 * SIP or over Twilio Media Streams (src/twilio) and look the same from here up.
 *
 * Threads: the rv_tel_* control functions (dial, hangup, transfer, dtmf, record) may be called
 * from any control-plane thread; they queue a command to the media loop and never wait on it.
 * The rv_tel_call_* functions and the conversation runner's hooks run on the loop thread only
 * and must not block. Store writes happen on the service's own writer thread, in event order.
 */
#ifndef RV_TEL_H
#define RV_TEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rv_app;
struct rv_audio;
struct rv_media_loop;
struct rv_tel;
struct rv_tel_call;

enum rv_tel_channel {
	RV_TEL_SIP,
	RV_TEL_TWILIO,
};

/* What the conversation runner knows of a call when it starts. Strings borrowed for the call. */
struct rv_tel_call_info {
	int64_t call_id;     /* calls.id */
	int64_t campaign_id; /* 0: none (e.g. an inbound number with no route) */
	int64_t lead_id;     /* 0: none */
	int64_t flow_id;     /* the campaign's flow, 0: none */
	bool outbound;
	enum rv_tel_channel channel;
	const char *from; /* caller: E.164 number or SIP URI */
	const char *to;   /* called */
};

/*
 * The conversation runner: issue 4's agent, or the default play-a-prompt-and-record runner.
 * One per service, given to rv_tel_start. Every hook runs on the loop thread.
 */
struct rv_call_app {
	const char *name;
	/* The call is answered and its media runs: start talking. Store per-call state in
	 * *state. A non-zero return hangs the call up (disposition "failed"). */
	int (*start)(struct rv_tel_call *call, struct rv_audio *audio,
	             const struct rv_tel_call_info *info, void *arg, void **state);
	/* A DTMF digit from the caller (RFC 4733, in-band or Twilio); may be NULL. */
	void (*dtmf)(void *state, char digit);
	/* The call is over: release state. The audio interface is gone after this returns. */
	void (*end)(void *state);
	void *arg;
};

/*
 * Start the service: the media loop, SIP on cfg->sip_listen (not when it is "" or "off"),
 * REGISTER for trunks that ask for it, and the store writer. `capp` NULL selects the default
 * runner (plays calls.default_prompt, if set, and waits for the caller to hang up or
 * sip.max_call_seconds). Calls left "live" in the store by a crash are closed as failed.
 * Returns 0 and sets *out, or a negative errno with a sentence in err.
 */
int rv_tel_start(struct rv_app *app, const struct rv_call_app *capp, struct rv_tel **out, char *err,
                 size_t errlen);

/* Hang up every live call (their rows get ended_at and a cause), stop REGISTER, stop the
 * loop, flush the store writer. Blocks until done (bounded: a few seconds at most). */
void rv_tel_stop(struct rv_tel *tel);

/* The media loop the service runs (for src/twilio's WebSocket listener). */
struct rv_media_loop *rv_tel_loop(struct rv_tel *tel);

struct rv_tel_dial {
	const char *to;      /* E.164 number (via a trunk) or a SIP URI "sip:user@host[:port]" */
	const char *trunk;   /* trunk name, NULL: by priority (numbers) / direct (SIP URIs) */
	const char *from;    /* caller ID override, NULL: the campaign's, then the trunk's */
	int64_t campaign_id; /* 0: none */
	int64_t lead_id;     /* 0: none */
};

/*
 * Place an outbound call: inserts the calls row (state "queued", direction outbound) on the
 * calling thread, then queues the dial to the loop. Returns 0 and sets *call_id, or -EINVAL
 * (bad number/URI, unknown trunk), -EBUSY (at sip.max_calls or every trunk full), -ENOTCONN
 * (SIP is off), or a store error.
 */
int rv_tel_dial(struct rv_tel *tel, const struct rv_tel_dial *d, int64_t *call_id);

/* Control-plane commands on a live call by its calls.id. Each returns 0 once queued, or
 * -ENOENT when the call is not live on this node. The outcome shows in the call row. */
int rv_tel_hangup(struct rv_tel *tel, int64_t call_id);
int rv_tel_send_dtmf(struct rv_tel *tel, int64_t call_id, const char *digits);
int rv_tel_record(struct rv_tel *tel, int64_t call_id, bool on); /* on_demand recording */

enum rv_tel_transfer_mode {
	RV_TEL_TRANSFER_BLIND,   /* SIP REFER; we leave the call when the far end accepts it */
	RV_TEL_TRANSFER_BRIDGED, /* we call the agent, whisper, then connect the two legs */
};

struct rv_tel_transfer {
	enum rv_tel_transfer_mode mode;
	const char *to;      /* SIP URI or E.164 number of the human agent */
	const char *whisper; /* bridged: text said to the agent before connecting; NULL: none */
};
int rv_tel_transfer(struct rv_tel *tel, int64_t call_id, const struct rv_tel_transfer *t);

/* Live calls on this node. */
size_t rv_tel_live_count(struct rv_tel *tel);

/* The SIP port actually bound (sip.listen may say port 0), or 0 when SIP is off. */
uint16_t rv_tel_sip_port(const struct rv_tel *tel);

/* ---- Loop thread: for the conversation runner and the Twilio channel ---- */

/* End the call with this disposition ("completed", "dnc_request", "callback", ... ; NULL:
 * "completed"). The runner's end hook follows. */
void rv_tel_call_hangup(struct rv_tel_call *call, const char *disposition);

/* Start a transfer from inside the conversation (same semantics as rv_tel_transfer). */
int rv_tel_call_transfer(struct rv_tel_call *call, const struct rv_tel_transfer *t);

/* The call's row id. */
int64_t rv_tel_call_id(const struct rv_tel_call *call);

/*
 * The Twilio channel's side (src/twilio): a call whose media arrives over a Media Streams
 * WebSocket rather than RTP. The channel gives the call's audio interface and the hooks the
 * service uses to act on it.
 */
struct rv_tel_channel_ops {
	void (*hangup)(void *arg); /* end the call (close the stream / REST "completed") */
	int (*send_dtmf)(void *arg, const char *digits);
};

struct rv_tel_attach {
	enum rv_tel_channel channel;
	const char *external_id; /* Twilio CallSid */
	const char *from, *to;
	bool outbound;
	int64_t call_id;     /* an existing row (e.g. made by rv_tel_dial_twilio / the webhook);
	                      * 0: insert one */
	int64_t campaign_id; /* 0: route by `to` */
	struct rv_audio *audio;
	const struct rv_tel_channel_ops *ops;
	void *ops_arg;
};

/* A channel call has answered and its media runs: the service writes the row and starts the
 * runner. Returns 0 and sets *out (owned by the service until rv_tel_call_ended). */
int rv_tel_call_attach(struct rv_tel *tel, const struct rv_tel_attach *a, struct rv_tel_call **out);

/* A digit from the channel. */
void rv_tel_call_dtmf(struct rv_tel_call *call, char digit);

/* The channel's call is over (remote: the far end ended it). `call` is invalid afterwards. */
void rv_tel_call_ended(struct rv_tel_call *call, bool remote, const char *cause);

/* ---- Routing (any thread; reads an in-memory snapshot, never the store) ---- */

struct rv_tel_route {
	int64_t campaign_id;
	int64_t flow_id;
	char recording_policy[16]; /* never | always | on_demand */
	int max_concurrent;        /* the campaign's cap for its live calls */
};

/* Which campaign answers calls to `called` (E.164 number, or SIP user part). 0 and *out on a
 * match, -ENOENT otherwise. The snapshot is rebuilt from the store when campaigns change
 * (rv_tel_routes_changed) and every few seconds. */
int rv_tel_route_lookup(struct rv_tel *tel, const char *called, struct rv_tel_route *out);
void rv_tel_routes_changed(struct rv_tel *tel);

/* ---- The Twilio REST channel (src/twilio registers it) ---- */

/*
 * Place an outbound call through Twilio for the calls row `call_id` (already inserted, state
 * "queued", channel "twilio", trunk "twilio"). Runs on the control-plane thread that called
 * rv_tel_dial and may block (REST request). Return 0 once Twilio accepted the call (the Media
 * Stream then arrives and rv_tel_call_attach names `call_id`), or a negative errno: the row
 * is then ended as failed and rv_tel_dial returns that error.
 */
typedef int(rv_tel_twilio_dial_h)(void *arg, int64_t call_id, const char *to, const char *from);

/* Register (h NULL: remove) the Twilio dialer; rv_tel_dial sends trunk "twilio" to it. */
void rv_tel_set_twilio_dialer(struct rv_tel *tel, rv_tel_twilio_dial_h *h, void *arg);

/*
 * A call placed through the hook ended before it ever attached (Twilio reported busy,
 * no-answer, failed or canceled): end its row with `disposition` (busy, no_answer, failed,
 * cancelled...) and `cause` (free text, e.g. the Twilio CallStatus). Any thread. Returns 0,
 * -ENOENT when no such call is waiting, -EALREADY when it has attached (then use
 * rv_tel_call_ended on the loop).
 */
int rv_tel_call_unattached_end(struct rv_tel *tel, int64_t call_id, const char *disposition,
                               const char *cause);

#endif
