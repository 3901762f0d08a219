/*
 * The voice agent: the conversation runner attached to every answered call (issue 4). It takes
 * the call's audio interface from the media layer and, per call on one speech worker, runs
 * the voice activity detector and turn-taking, streams the caller's speech to the STT engine,
 * asks the dialog engine what to say, synthesizes it and plays it — and stops talking the
 * moment the caller interrupts. Outbound calls first go through answering-machine detection.
 * Each turn is stored (call_turns) with its latency marks, which also feed Prometheus.
 *
 * Threads: the runner's hooks run on the media loop and never block; everything heavy runs on
 * the call's speech worker; results go back to the loop with rv_media_loop_exec().
 */
#ifndef RV_AGENT_H
#define RV_AGENT_H

#include <stddef.h>

struct rv_app;
struct rv_agent;
struct rv_call_app;

/*
 * Start the agent service: speech workers, the STT engine, TTS engines and the prompt cache.
 * Calls reach the media loop through app->tel, read when each call starts. Returns 0 and sets
 * *out, or a negative errno with a sentence in err.
 */
int rv_agent_start(struct rv_app *app, struct rv_agent **out, char *err, size_t errlen);

/* The runner to hand to the telephony service (valid while the agent lives). */
const struct rv_call_app *rv_agent_call_app(struct rv_agent *ag);

/*
 * Campaigns changed: synthesize into the prompt cache, in the background, the fixed prompts
 * (sentences without templates: disclosures, greetings, re-prompts) of every active campaign's
 * flow with its voice, so they start playing with no synthesis delay. Any thread; ag NULL is a
 * no-op. Also done once when the agent starts.
 */
void rv_agent_campaigns_changed(struct rv_agent *ag);

/* Stop: waits for the workers to finish what is queued. Calls must be over (rv_tel_stop first). */
void rv_agent_stop(struct rv_agent *ag);

#endif
