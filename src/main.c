/*
 * revovoice: the command line. Parses arguments and wires the subsystems together; the work
 * is done in the modules.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/http.h"
#include "campaign/lead_import.h"
#include "agent/agent.h"
#include "campaign/demo.h"
#include "core/app.h"
#include "core/config.h"
#include "core/log.h"
#include "integrations/outbox.h"
#include "sip/sip_cli.h"
#include "speech/tts_cli.h"
#include "store/store.h"
#include "tel/tel.h"
#include "twilio/twilio.h"

static const char usage[] =
    "usage: revovoice COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  serve                        run the daemon (API, dashboard, telephony)\n"
    "  migrate                      apply database migrations and exit\n"
    "  user add --email E --role R [--password P | --password-stdin] [--name N]\n"
    "                               create a user (roles: viewer supervisor manager admin)\n"
    "  import-leads --campaign ID FILE.csv\n"
    "                               import leads from a CSV file into a campaign\n"
    "  routes                       list the HTTP routes and the role each needs\n"
    "  answer --sip HOST:PORT --play FILE.wav [--record-dir DIR]\n"
    "                               answer SIP calls: play a WAV, record both sides\n"
    "  config                       print the effective configuration\n"
    "  version                      print the version\n"
    "\n"
    "options (every command):\n"
    "  --config FILE      YAML config file (see docs/CONFIG.md)\n"
    "  --data-dir DIR     data directory (database, recordings, caches, secrets)\n"
    "  --http HOST:PORT   HTTP listen address (default 127.0.0.1:8080)\n"
    "  --sip HOST:PORT    SIP listen address (default 0.0.0.0:5060)\n"
    "  --log-level L      debug, info, warn or error\n"
    "Environment variables REVOVOICE_<SECTION>_<KEY> override the file (e.g. "
    "REVOVOICE_HTTP_LISTEN).\n";

/* Global options may appear anywhere; they are removed from argv, which keeps the command's
 * own arguments in order. */
struct opts {
	const char *config, *data_dir, *http, *sip, *log_level;
};

static int take_global_opts(int *argc, char **argv, struct opts *o)
{
	int w = 0;
	for (int i = 0; i < *argc; i++) {
		const char **slot = NULL;
		if (strcmp(argv[i], "--config") == 0)
			slot = &o->config;
		else if (strcmp(argv[i], "--data-dir") == 0)
			slot = &o->data_dir;
		else if (strcmp(argv[i], "--http") == 0)
			slot = &o->http;
		else if (strcmp(argv[i], "--sip") == 0)
			slot = &o->sip;
		else if (strcmp(argv[i], "--log-level") == 0)
			slot = &o->log_level;
		if (!slot) {
			argv[w++] = argv[i];
			continue;
		}
		if (i + 1 >= *argc) {
			fprintf(stderr, "revovoice: %s needs a value\n", argv[i]);
			return -EINVAL;
		}
		*slot = argv[++i];
	}
	*argc = w;
	argv[w] = NULL;
	return 0;
}

/* Fill cfg from every source; on failure prints why, frees cfg and returns an error. */
static int load_config(struct rv_config *cfg, const struct opts *o)
{
	char err[1024] = "";
	int e = 0;

	rv_config_defaults(cfg);
	const char *file = o->config ? o->config : getenv("REVOVOICE_CONFIG");
	if (file)
		e = rv_config_load_file(cfg, file, err, sizeof(err));
	if (!e)
		e = rv_config_apply_env(cfg, err, sizeof(err));
	if (!e && o->data_dir)
		e = rv_config_set(cfg, "data.dir", o->data_dir, err, sizeof(err));
	if (!e && o->http)
		e = rv_config_set(cfg, "http.listen", o->http, err, sizeof(err));
	if (!e && o->sip)
		e = rv_config_set(cfg, "sip.listen", o->sip, err, sizeof(err));
	if (!e && o->log_level)
		e = rv_config_set(cfg, "log.level", o->log_level, err, sizeof(err));
	if (!e)
		e = rv_config_finish(cfg, err, sizeof(err));
	enum rv_log_level level;
	if (!e && rv_log_level_parse(cfg->log_level, &level) != 0) {
		snprintf(err, sizeof(err),
		         "log.level must be debug, info, warn or error, not \"%s\"",
		         cfg->log_level);
		e = -EINVAL;
	}
	if (e) {
		fprintf(stderr, "revovoice: config: %s\n", err);
		rv_logf(RV_LOG_ERROR, "config", "%s", err);
		rv_config_free(cfg);
		return e;
	}
	rv_log_set_level(level);
	return 0;
}

static int open_app(struct rv_config *cfg, struct rv_app **app)
{
	char err[1024] = "";
	int e = rv_app_open(cfg, app, err, sizeof(err));
	if (e) {
		fprintf(stderr, "revovoice: %s\n", err);
		rv_logf(RV_LOG_ERROR, "app", "%s", err);
	}
	return e;
}

static int cmd_serve(struct rv_app *app)
{
	struct rv_http *http = NULL;
	struct rv_twilio *twilio = NULL;
	struct rv_agent *agent = NULL;
	sigset_t set;
	int sig = 0, ret = 1;

	/* Signals are taken synchronously on this thread; every thread created after this
	 * point inherits the mask, so none of them is interrupted by SIGTERM. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (app->cfg->demo_seed)
		rv_demo_seed(app); /* a failure is logged; the daemon runs without the demo */
	/* The operator's active intent model, before the first call needs it. */
	rv_api_models_restore(app);
	/* Telephony first, so the API never sees a half-started media plane; the voice agent
	 * before it, as the runner of its calls. */
	char terr[1024] = "";
	/* The webhook outbox before telephony, whose call rows emit its events. */
	if (rv_outbox_start(app, &app->outbox, terr, sizeof(terr)) != 0) {
		fprintf(stderr, "revovoice: %s\n", terr);
		rv_logf(RV_LOG_ERROR, "main", "%s", terr);
		goto out;
	}
	if (app->cfg->speech_agent && rv_agent_start(app, &agent, terr, sizeof(terr)) != 0) {
		fprintf(stderr, "revovoice: %s\n", terr);
		rv_logf(RV_LOG_ERROR, "main", "%s", terr);
		goto out;
	}
	if (rv_tel_start(app, agent ? rv_agent_call_app(agent) : NULL, &app->tel, terr,
	                 sizeof(terr)) != 0) {
		fprintf(stderr, "revovoice: %s\n", terr);
		rv_logf(RV_LOG_ERROR, "main", "%s", terr);
		goto out;
	}
	if (rv_twilio_start(app, app->tel, &twilio) != 0) {
		fprintf(stderr, "revovoice: cannot start the Twilio channel (see the log)\n");
		goto out;
	}
	if (rv_http_new(app, &http) != 0)
		goto out;
	rv_api_register_all(http);
	if (rv_http_start(http, app->cfg->http_listen) != 0) {
		fprintf(stderr, "revovoice: cannot listen on %s (see the log)\n",
		        app->cfg->http_listen);
		goto out;
	}
	rv_logf(RV_LOG_INFO, "main",
	        "revovoice %s serving http://127.0.0.1:%d (listen %s, data %s)", RV_VERSION,
	        rv_http_port(http), app->cfg->http_listen, app->cfg->data_dir);

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			rv_logf(RV_LOG_INFO, "main",
			        "SIGHUP ignored: restart to apply config changes");
			continue;
		}
		break;
	}
	rv_logf(RV_LOG_INFO, "main", "%s received, finishing in-flight requests",
	        sig == SIGINT ? "SIGINT" : "SIGTERM");
	rv_http_stop(http, 10000);
	ret = 0;
out:
	if (http)
		rv_http_free(http);
	/* After the API has stopped (no handler can reach it), before the store closes: live
	 * calls are hung up and their rows written. */
	rv_twilio_stop(twilio); /* needs the media loop: before rv_tel_stop */
	rv_tel_stop(app->tel);
	app->tel = NULL;
	rv_agent_stop(agent);        /* after the calls: their workers drain here */
	rv_outbox_stop(app->outbox); /* after telephony: the last call.ended rows are written */
	app->outbox = NULL;
	rv_logf(RV_LOG_INFO, "main", "stopped");
	return ret;
}

static int cmd_routes(struct rv_app *app)
{
	struct rv_http *http = NULL;
	const struct rv_route *routes[512];
	if (rv_http_new(app, &http) != 0)
		return 1;
	rv_api_register_all(http);
	size_t n = rv_http_routes(http, routes, 512);
	for (size_t i = 0; i < n; i++)
		printf("%s %s %s\n", routes[i]->method, routes[i]->pattern,
		       routes[i]->min_role == RV_ROLE_NONE ? "public"
		                                           : rv_role_name(routes[i]->min_role));
	rv_http_free(http);
	return 0;
}

static int cmd_migrate(struct rv_app *app)
{
	int64_t v = 0;
	if (rv_store_schema_version(app->store, &v) != 0) {
		fprintf(stderr, "revovoice: cannot read the schema version\n");
		return 1;
	}
	printf("schema version %lld (%s)\n", (long long)v, app->cfg->store_driver);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct rv_config cfg;
	struct rv_app *app = NULL;
	int ret = 1;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1];
	argc -= 2;
	argv += 2;
	/* The SIP commands parse their own flags (including --sip) and needs no store. */
	if (strcmp(cmd, "answer") == 0)
		return rv_sip_cli_answer(argc, argv);
	if (strcmp(cmd, "call") == 0)
		return rv_sip_cli_call(argc, argv);
	if (strcmp(cmd, "say") == 0)
		return rv_tts_cli_say(argc, argv);
	if (take_global_opts(&argc, argv, &o) != 0)
		return 2;

	if (strcmp(cmd, "version") == 0) {
		printf("revovoice %s (%s)\n", RV_VERSION, RV_GIT_COMMIT);
		return 0;
	}
	int known = !strcmp(cmd, "serve") || !strcmp(cmd, "migrate") || !strcmp(cmd, "user") ||
	            !strcmp(cmd, "import-leads") || !strcmp(cmd, "routes") ||
	            !strcmp(cmd, "config");
	if (!known) {
		fprintf(stderr, "revovoice: unknown command \"%s\"\n\n%s", cmd, usage);
		return 2;
	}
	if (load_config(&cfg, &o) != 0)
		return 1;
	if (strcmp(cmd, "config") == 0) {
		rv_config_dump(&cfg, 1);
		rv_config_free(&cfg);
		return 0;
	}
	if ((strcmp(cmd, "serve") == 0 || strcmp(cmd, "migrate") == 0 ||
	     strcmp(cmd, "routes") == 0) &&
	    argc > 0) {
		fprintf(stderr, "revovoice %s: unexpected argument \"%s\"\n", cmd, argv[0]);
		ret = 2;
		goto out;
	}
	if (strcmp(cmd, "user") == 0 && (argc < 1 || strcmp(argv[0], "add") != 0)) {
		fprintf(stderr,
		        "revovoice: usage: revovoice user add --email E --role R --password P\n");
		ret = 2;
		goto out;
	}
	if (open_app(&cfg, &app) != 0)
		goto out;

	if (strcmp(cmd, "serve") == 0)
		ret = cmd_serve(app);
	else if (strcmp(cmd, "migrate") == 0)
		ret = cmd_migrate(app);
	else if (strcmp(cmd, "routes") == 0)
		ret = cmd_routes(app);
	else if (strcmp(cmd, "user") == 0)
		ret = rv_auth_cli_user_add(app, argc - 1, argv + 1);
	else if (strcmp(cmd, "import-leads") == 0)
		ret = rv_lead_import_cli(app, argc, argv);
out:
	rv_app_close(app);
	rv_config_free(&cfg);
	return ret;
}
