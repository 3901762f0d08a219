/*
 * The application context every control-plane handler receives: configuration, store,
 * secrets and shared services. Created by main.c (rv_app_open) and borrowed by everyone else.
 */
#ifndef RV_APP_H
#define RV_APP_H

#include <stdint.h>

#include "core/config.h"

struct rv_store;
struct rv_ratelimit;
struct rv_tel;
struct rv_agent;
struct rv_outbox;

struct rv_app {
	struct rv_config *cfg;     /* borrowed from main */
	struct rv_store *store;    /* owned */
	struct rv_ratelimit *rl;   /* owned; NULL when rate limiting is off */
	unsigned char jwt_key[64]; /* HS256 key bytes */
	size_t jwt_key_len;
	int64_t started_at;     /* unix seconds */
	struct rv_tel *tel;     /* telephony service (serve only; owned by main); NULL elsewhere */
	struct rv_agent *agent; /* voice agent (serve with speech.agent; owned by main) or NULL */
	struct rv_outbox *outbox; /* webhook outbox (serve only; owned by main); NULL elsewhere */
};

/*
 * Open the store, load or create DATA/secrets.json (mode 0600) with the JWT key when the
 * config has none, and set up shared services. On failure returns a negative error and writes
 * a sentence into err; nothing stays open.
 */
int rv_app_open(struct rv_config *cfg, struct rv_app **out, char *err, size_t errlen);
void rv_app_close(struct rv_app *app);

#endif
