/*
 * The demo `make run` starts with: the shipped example flows and a campaign that answers calls
 * to sip:demo@<host> with the appointment flow, so a softphone can talk to the agent at once.
 */
#ifndef RV_CAMPAIGN_DEMO_H
#define RV_CAMPAIGN_DEMO_H

struct rv_app;

/*
 * Seed the demo when the store has no flows yet (a fresh data directory); otherwise do
 * nothing. Returns 0 (also when there was nothing to do) or a store error, logged.
 */
int rv_demo_seed(struct rv_app *app);

#endif
