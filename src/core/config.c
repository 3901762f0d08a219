#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/util.h"

enum field_type { F_STR, F_INT, F_SIZE };

/* Every key of the config, once. The environment name is derived: http.max_body ->
 * REVOVOICE_HTTP_MAX_BODY. */
struct field {
	const char *key;
	enum field_type type;
	size_t off;
	int64_t min, max; /* for numbers */
	int secret;       /* masked in dumps */
};

/* clang-format off */
#define S(k, m) {k, F_STR, offsetof(struct rv_config, m), 0, 0, 0}
#define SECRET(k, m) {k, F_STR, offsetof(struct rv_config, m), 0, 0, 1}
#define I(k, m, lo, hi) {k, F_INT, offsetof(struct rv_config, m), lo, hi, 0}
#define Z(k, m, lo, hi) {k, F_SIZE, offsetof(struct rv_config, m), lo, hi, 0}

static const struct field fields[] = {
	S("data.dir", data_dir),
	S("log.level", log_level),
	S("http.listen", http_listen),
	I("http.threads", http_threads, 1, 256),
	Z("http.max_body", http_max_body, 256, 64ll << 20),
	Z("http.max_upload", http_max_upload, 1024, 1ll << 30),
	S("http.cors_origins", http_cors_origins),
	I("rate_limit.rps", rate_limit_rps, 0, 1000000),
	I("rate_limit.burst", rate_limit_burst, 1, 1000000),
	S("store.driver", store_driver),
	SECRET("store.url", store_url),
	I("store.pool", store_pool, 1, 64),
	SECRET("auth.jwt_secret", auth_jwt_secret),
	I("auth.token_ttl", auth_token_ttl, 60, 30 * 24 * 3600),
	S("leads.default_country", default_country),
	S("web.root", web_root),
	S("sip.listen", sip_listen),
	S("sip.public_addr", sip_public_addr),
	S("sip.rtp_ports", sip_rtp_ports),
	I("sip.max_calls", sip_max_calls, 1, 100000),
	I("sip.no_answer_timeout", sip_no_answer, 1, 600),
	I("sip.ring_ms", sip_ring_ms, 0, 60000),
	I("sip.max_call_seconds", sip_max_call_s, 10, 86400),
	S("calls.default_prompt", calls_prompt),
	S("recording.dir", rec_dir),
	S("recording.default", rec_default),
	S("twilio.account_sid", twilio_sid),
	SECRET("twilio.auth_token", twilio_token),
	S("twilio.api_base", twilio_api_base),
	S("twilio.public_url", twilio_public),
	S("twilio.stream_listen", twilio_stream),
	I("twilio.validate_signature", twilio_validate, 0, 1),
	I("speech.workers", speech_workers, 1, 64),
	S("speech.voice", speech_voice),
	S("speech.stt", speech_stt),
	S("speech.stt_url", speech_stt_url),
	SECRET("speech.stt_key", speech_stt_key),
	I("speech.end_silence_ms", speech_end_ms, 100, 10000),
	I("speech.agent", speech_agent, 0, 1),
	I("demo.seed", demo_seed, 0, 1),
	S("llm.base_url", llm_base_url),
	SECRET("llm.api_key", llm_api_key),
	S("llm.model", llm_model),
	I("llm.timeout_ms", llm_timeout_ms, 200, 120000),
	I("llm.max_tokens", llm_max_tokens, 16, 8192),
	I("webhooks.max_attempts", webhooks_max_attempts, 1, 100),
	I("webhooks.timeout_ms", webhooks_timeout_ms, 100, 120000),
	I("webhooks.backoff_base_ms", webhooks_backoff_base_ms, 10, 3600000),
	I("webhooks.backoff_max_ms", webhooks_backoff_max_ms, 10, 86400000),
	I("webhooks.concurrency", webhooks_concurrency, 1, 64),
	I("webhooks.poll_ms", webhooks_poll_ms, 20, 60000),
	I("webhooks.postcall_delay_ms", webhooks_postcall_delay_ms, 0, 60000),
	I("webhooks.retention_hours", webhooks_retention_hours, 0, 87600),
};

/* The keys of one `trunks:` entry. */
#define T_S(k, m) {k, F_STR, offsetof(struct rv_trunk_cfg, m), 0, 0, 0}
#define T_I(k, m, lo, hi) {k, F_INT, offsetof(struct rv_trunk_cfg, m), lo, hi, 0}
static const struct field trunk_fields[] = {
	T_S("name", name),
	T_S("host", host),
	T_I("port", port, 0, 65535),
	T_S("transport", transport),
	T_S("username", username),
	{"password", F_STR, offsetof(struct rv_trunk_cfg, password), 0, 0, 1},
	T_S("caller_id", caller_id),
	T_S("domain", domain),
	T_S("prefix", prefix),
	T_I("max_calls", max_calls, 0, 100000),
	T_I("priority", priority, 0, 1000),
	T_I("register", register_, 0, 1),
	T_I("expires", expires, 60, 86400),
};
/* clang-format on */

static void set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = v ? rv_xstrdup(v) : NULL;
}

void rv_config_defaults(struct rv_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	set_str(&cfg->data_dir, "data");
	set_str(&cfg->log_level, "info");
	set_str(&cfg->http_listen, "127.0.0.1:8080");
	cfg->http_threads = 4;
	cfg->http_max_body = 1 << 20;
	cfg->http_max_upload = 20 << 20;
	set_str(&cfg->http_cors_origins, "");
	cfg->rate_limit_rps = 50;
	cfg->rate_limit_burst = 100;
	set_str(&cfg->store_driver, "sqlite");
	set_str(&cfg->store_url, "");
	cfg->store_pool = 4;
	set_str(&cfg->auth_jwt_secret, "");
	cfg->auth_token_ttl = 12 * 3600;
	set_str(&cfg->default_country, "US");
	set_str(&cfg->web_root, "web/dist");
	set_str(&cfg->sip_listen, "0.0.0.0:5060");
	set_str(&cfg->sip_public_addr, "");
	set_str(&cfg->sip_rtp_ports, "20000-29999");
	cfg->sip_max_calls = 200;
	cfg->sip_no_answer = 30;
	cfg->sip_ring_ms = 500;
	cfg->sip_max_call_s = 3600;
	set_str(&cfg->calls_prompt, "");
	set_str(&cfg->rec_dir, "");
	set_str(&cfg->rec_default, "never");
	set_str(&cfg->twilio_sid, "");
	set_str(&cfg->twilio_token, "");
	set_str(&cfg->twilio_api_base, "https://api.twilio.com");
	set_str(&cfg->twilio_public, "");
	set_str(&cfg->twilio_stream, "127.0.0.1:8081");
	cfg->twilio_validate = 1;
	cfg->speech_workers = 2;
	set_str(&cfg->speech_voice, "flite:rms");
	set_str(&cfg->speech_stt, "sphinx");
	set_str(&cfg->speech_stt_url, "");
	set_str(&cfg->speech_stt_key, "");
	cfg->speech_end_ms = 700;
	cfg->speech_agent = 1;
	set_str(&cfg->llm_base_url, "");
	set_str(&cfg->llm_api_key, "");
	set_str(&cfg->llm_model, "gpt-4o-mini");
	cfg->llm_timeout_ms = 8000;
	cfg->llm_max_tokens = 300;
	cfg->webhooks_max_attempts = 12;
	cfg->webhooks_timeout_ms = 10000;
	cfg->webhooks_backoff_base_ms = 5000;
	cfg->webhooks_backoff_max_ms = 3600000;
	cfg->webhooks_concurrency = 4;
	cfg->webhooks_poll_ms = 1000;
	cfg->webhooks_postcall_delay_ms = 1500;
	cfg->webhooks_retention_hours = 168;
}

static void trunk_defaults(struct rv_trunk_cfg *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < RV_ARRAY_LEN(trunk_fields); i++)
		if (trunk_fields[i].type == F_STR)
			set_str((char **)((char *)t + trunk_fields[i].off), "");
	set_str(&t->transport, "udp");
	t->priority = 10;
	t->expires = 3600;
}

static void trunk_free(struct rv_trunk_cfg *t)
{
	for (size_t i = 0; i < RV_ARRAY_LEN(trunk_fields); i++) {
		if (trunk_fields[i].type == F_STR) {
			char **slot = (char **)((char *)t + trunk_fields[i].off);
			free(*slot);
			*slot = NULL;
		}
	}
}

void rv_config_free(struct rv_config *cfg)
{
	for (size_t i = 0; i < RV_ARRAY_LEN(fields); i++) {
		if (fields[i].type == F_STR) {
			char **slot = (char **)((char *)cfg + fields[i].off);
			free(*slot);
			*slot = NULL;
		}
	}
	for (size_t i = 0; i < cfg->ntrunks; i++)
		trunk_free(&cfg->trunks[i]);
	free(cfg->trunks);
	cfg->trunks = NULL;
	cfg->ntrunks = 0;
}

static const struct field *find_in(const struct field *tab, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tab[i].key, key) == 0)
			return &tab[i];
	return NULL;
}

static const struct field *find_field(const char *key)
{
	return find_in(fields, RV_ARRAY_LEN(fields), key);
}

/* Sizes accept a k/m/g suffix (powers of 1024): "20m". */
static int parse_size(const char *s, int64_t *out)
{
	char buf[64];
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n + 1);
	int64_t mul = 1;
	char last = (char)tolower((unsigned char)buf[n - 1]);
	if (last == 'k' || last == 'm' || last == 'g') {
		mul = last == 'k' ? 1024 : last == 'm' ? 1024 * 1024 : 1024 * 1024 * 1024;
		buf[n - 1] = '\0';
	}
	int64_t v;
	int err = rv_parse_int64(buf, 0, INT64_MAX / (1024 * 1024 * 1024), &v);
	if (err)
		return err;
	*out = v * mul;
	return 0;
}

static int apply_at(void *base, const struct field *f, const char *value, const char *src,
                    char *err, size_t errlen)
{
	void *slot = (char *)base + f->off;
	int64_t v;
	int e;

	switch (f->type) {
	case F_STR:
		set_str((char **)slot, value);
		return 0;
	case F_INT:
		e = rv_parse_int64(value, f->min, f->max, &v);
		if (e) {
			snprintf(err, errlen,
			         "%s: %s must be a whole number from %lld to %lld, not \"%s\"", src,
			         f->key, (long long)f->min, (long long)f->max, value);
			return -EINVAL;
		}
		*(int *)slot = (int)v;
		return 0;
	case F_SIZE:
		e = parse_size(value, &v);
		if (e || v < f->min || v > f->max) {
			snprintf(err, errlen,
			         "%s: %s must be a size from %lld to %lld bytes (k/m/g suffixes "
			         "allowed), not \"%s\"",
			         src, f->key, (long long)f->min, (long long)f->max, value);
			return -EINVAL;
		}
		*(int64_t *)slot = v;
		return 0;
	}
	return -EINVAL;
}

static int apply(struct rv_config *cfg, const struct field *f, const char *value, const char *src,
                 char *err, size_t errlen)
{
	return apply_at(cfg, f, value, src, err, errlen);
}

int rv_config_set(struct rv_config *cfg, const char *key, const char *value, char *err,
                  size_t errlen)
{
	const struct field *f = find_field(key);
	if (!f) {
		snprintf(err, errlen, "unknown config key \"%s\"", key);
		return -EINVAL;
	}
	return apply(cfg, f, value, "flag", err, errlen);
}

int rv_config_apply_env(struct rv_config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < RV_ARRAY_LEN(fields); i++) {
		char name[96] = "REVOVOICE_";
		size_t n = strlen(name);
		for (const char *k = fields[i].key; *k && n < sizeof(name) - 1; k++)
			name[n++] = *k == '.' ? '_' : (char)toupper((unsigned char)*k);
		name[n] = '\0';
		const char *v = getenv(name);
		if (!v)
			continue;
		int e = apply(cfg, &fields[i], v, name, err, errlen);
		if (e)
			return e;
	}
	return 0;
}

static int trunk_add(struct rv_config *cfg, struct rv_trunk_cfg *t)
{
	struct rv_trunk_cfg *n = realloc(cfg->trunks, (cfg->ntrunks + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	cfg->trunks = n;
	cfg->trunks[cfg->ntrunks++] = *t;
	return 0;
}

/*
 * The `trunks:` section: a sequence of mappings of scalar keys. Called after its
 * SEQUENCE_START; consumes events through the matching SEQUENCE_END. Trunks given in a file
 * replace any earlier list.
 */
static int parse_trunks(yaml_parser_t *parser, struct rv_config *cfg, const char *path, char *err,
                        size_t errlen)
{
	struct rv_trunk_cfg t;
	int in_map = 0, have_key = 0, ret = 0;
	char key[64] = "";

	for (size_t i = 0; i < cfg->ntrunks; i++)
		trunk_free(&cfg->trunks[i]);
	cfg->ntrunks = 0;
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(parser, &ev)) {
			snprintf(err, errlen, "%s:%zu: YAML error: %s", path,
			         parser->problem_mark.line + 1,
			         parser->problem ? parser->problem : "unknown");
			ret = -EINVAL;
			break;
		}
		size_t line = ev.start_mark.line + 1;
		int end = 0;
		if (ev.type == YAML_SEQUENCE_END_EVENT && !in_map) {
			end = 1;
		} else if (ev.type == YAML_MAPPING_START_EVENT && !in_map) {
			trunk_defaults(&t);
			in_map = 1;
		} else if (ev.type == YAML_MAPPING_END_EVENT && in_map) {
			in_map = 0;
			if (trunk_add(cfg, &t) != 0) {
				trunk_free(&t);
				snprintf(err, errlen, "out of memory");
				ret = -ENOMEM;
			}
		} else if (ev.type == YAML_SCALAR_EVENT && in_map && !have_key) {
			rv_strlcpy(key, (const char *)ev.data.scalar.value, sizeof(key));
			have_key = 1;
		} else if (ev.type == YAML_SCALAR_EVENT && in_map) {
			have_key = 0;
			char src[512];
			snprintf(src, sizeof(src), "%s:%zu", path, line);
			const struct field *f =
			    find_in(trunk_fields, RV_ARRAY_LEN(trunk_fields), key);
			if (!f) {
				snprintf(err, errlen, "%s: unknown trunk key \"%s\"", src, key);
				ret = -EINVAL;
			} else {
				ret = apply_at(&t, f, (const char *)ev.data.scalar.value, src, err,
				               errlen);
			}
		} else {
			snprintf(err, errlen,
			         "%s:%zu: \"trunks\" must be a list of mappings of scalar keys",
			         path, line);
			ret = -EINVAL;
		}
		yaml_event_delete(&ev);
		if (ret) {
			if (in_map)
				trunk_free(&t);
			break;
		}
		if (end)
			break;
	}
	return ret;
}

/*
 * YAML reading: the config is a mapping of sections, each a mapping of scalar keys, e.g.
 *   http:
 *     listen: 127.0.0.1:8080
 * libyaml's event stream is walked with a two-level path; anything deeper, sequences or
 * aliases are rejected with the line number, so typos and misplaced keys never pass silently.
 * The one list is `trunks:`, a sequence of mappings (parse_trunks).
 */
int rv_config_load_file(struct rv_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(e));
		return -e;
	}

	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0; /* mapping depth: 1 = top level, 2 = inside a section */
	char section[64] = "", key[64] = "";
	int have_key = 0, done = 0, ret = 0;

	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);

	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			snprintf(err, errlen, "%s:%zu: YAML error: %s", path,
			         parser.problem_mark.line + 1,
			         parser.problem ? parser.problem : "unknown");
			ret = -EINVAL;
			break;
		}
		size_t line = ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_MAPPING_START_EVENT:
			if (depth == 0) {
				depth = 1;
			} else if (depth == 1 && have_key) {
				rv_strlcpy(section, key, sizeof(section));
				have_key = 0;
				depth = 2;
			} else {
				snprintf(err, errlen, "%s:%zu: nesting too deep under \"%s\"", path,
				         line, section);
				ret = -EINVAL;
			}
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			section[0] = '\0';
			break;
		case YAML_SCALAR_EVENT: {
			const char *val = (const char *)ev.data.scalar.value;
			if (depth == 0) {
				/* An empty file or a bare scalar document. */
				if (ev.data.scalar.length) {
					snprintf(err, errlen,
					         "%s:%zu: expected a mapping of sections", path,
					         line);
					ret = -EINVAL;
				}
			} else if (!have_key) {
				if (ev.data.scalar.length >= sizeof(key)) {
					snprintf(err, errlen, "%s:%zu: key too long", path, line);
					ret = -EINVAL;
					break;
				}
				rv_strlcpy(key, val, sizeof(key));
				have_key = 1;
			} else if (depth == 1) {
				snprintf(err, errlen,
				         "%s:%zu: \"%s\" must be a section (a mapping of keys)",
				         path, line, key);
				ret = -EINVAL;
			} else {
				char full[160];
				snprintf(full, sizeof(full), "%s.%s", section, key);
				const struct field *f = find_field(full);
				char src[512];
				snprintf(src, sizeof(src), "%s:%zu", path, line);
				if (!f) {
					snprintf(err, errlen, "%s: unknown config key \"%s\"", src,
					         full);
					ret = -EINVAL;
				} else {
					ret = apply(cfg, f, val, src, err, errlen);
				}
				have_key = 0;
			}
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
			if (depth == 1 && have_key && strcmp(key, "trunks") == 0) {
				have_key = 0;
				ret = parse_trunks(&parser, cfg, path, err, errlen);
				break;
			}
			/* fall through */
		case YAML_ALIAS_EVENT:
		default:
			snprintf(err, errlen,
			         "%s:%zu: lists and aliases are not config values (key \"%s\")",
			         path, line, key);
			ret = -EINVAL;
			break;
		}
		yaml_event_delete(&ev);
		if (ret)
			break;
	}
	yaml_parser_delete(&parser);
	fclose(fp);
	return ret;
}

int rv_config_finish(struct rv_config *cfg, char *err, size_t errlen)
{
	if (!cfg->data_dir || !*cfg->data_dir) {
		snprintf(err, errlen, "data.dir must not be empty");
		return -EINVAL;
	}
	if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create data directory %s: %s", cfg->data_dir,
		         strerror(e));
		return -e;
	}
	if (strcmp(cfg->store_driver, "sqlite") != 0 &&
	    strcmp(cfg->store_driver, "postgres") != 0) {
		snprintf(err, errlen, "store.driver must be sqlite or postgres, not \"%s\"",
		         cfg->store_driver);
		return -EINVAL;
	}
	if (!cfg->store_url || !*cfg->store_url) {
		if (strcmp(cfg->store_driver, "postgres") == 0) {
			snprintf(err, errlen,
			         "store.url (a libpq connection string) is required for postgres");
			return -EINVAL;
		}
		char path[4096];
		snprintf(path, sizeof(path), "%s/revovoice.db", cfg->data_dir);
		set_str(&cfg->store_url, path);
	}
	if (strchr(cfg->http_listen, ':') == NULL) {
		snprintf(err, errlen, "http.listen must be HOST:PORT, not \"%s\"",
		         cfg->http_listen);
		return -EINVAL;
	}
	int64_t lo, hi;
	const char *dash = strchr(cfg->sip_rtp_ports, '-');
	char lo_s[16];
	if (!dash || (size_t)(dash - cfg->sip_rtp_ports) >= sizeof(lo_s) ||
	    (snprintf(lo_s, sizeof(lo_s), "%.*s", (int)(dash - cfg->sip_rtp_ports),
	              cfg->sip_rtp_ports),
	     rv_parse_int64(lo_s, 1024, 65534, &lo) != 0) ||
	    rv_parse_int64(dash + 1, 1025, 65535, &hi) != 0 || hi <= lo) {
		snprintf(err, errlen, "sip.rtp_ports must be LO-HI within 1024-65535, not \"%s\"",
		         cfg->sip_rtp_ports);
		return -EINVAL;
	}
	const char *pol = cfg->rec_default;
	if (strcmp(pol, "never") != 0 && strcmp(pol, "always") != 0 &&
	    strcmp(pol, "on_demand") != 0) {
		snprintf(err, errlen,
		         "recording.default must be never, always or on_demand, not \"%s\"", pol);
		return -EINVAL;
	}
	if (!*cfg->rec_dir) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/recordings", cfg->data_dir);
		set_str(&cfg->rec_dir, path);
	}
	for (size_t i = 0; i < cfg->ntrunks; i++) {
		struct rv_trunk_cfg *t = &cfg->trunks[i];
		if (!*t->name || !*t->host) {
			snprintf(err, errlen, "trunk %zu: name and host are required", i + 1);
			return -EINVAL;
		}
		if (strcmp(t->transport, "udp") != 0 && strcmp(t->transport, "tcp") != 0) {
			snprintf(err, errlen, "trunk %s: transport must be udp or tcp, not \"%s\"",
			         t->name, t->transport);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->trunks[j].name, t->name) == 0) {
				snprintf(err, errlen, "trunk name \"%s\" is used twice", t->name);
				return -EINVAL;
			}
		}
		if (t->register_ && !*t->username) {
			snprintf(err, errlen, "trunk %s: register needs a username", t->name);
			return -EINVAL;
		}
	}
	/* Stable sort by priority: the order in the file breaks ties. */
	for (size_t i = 1; i < cfg->ntrunks; i++) {
		struct rv_trunk_cfg t = cfg->trunks[i];
		size_t j = i;
		for (; j > 0 && cfg->trunks[j - 1].priority > t.priority; j--)
			cfg->trunks[j] = cfg->trunks[j - 1];
		cfg->trunks[j] = t;
	}
	return 0;
}

void rv_config_dump(const struct rv_config *cfg, int fd)
{
	char section[64] = "";
	FILE *fp = fdopen(dup(fd), "w");
	if (!fp)
		return;
	for (size_t i = 0; i < RV_ARRAY_LEN(fields); i++) {
		const struct field *f = &fields[i];
		const char *dot = strchr(f->key, '.');
		size_t slen = (size_t)(dot - f->key);
		if (strncmp(section, f->key, slen) != 0 || section[slen] != '\0') {
			snprintf(section, sizeof(section), "%.*s", (int)slen, f->key);
			fprintf(fp, "%s:\n", section);
		}
		const void *slot = (const char *)cfg + f->off;
		switch (f->type) {
		case F_STR: {
			const char *v = *(char *const *)slot;
			if (f->secret && v && *v)
				fprintf(fp, "  %s: \"********\"\n", dot + 1);
			else
				fprintf(fp, "  %s: \"%s\"\n", dot + 1, v ? v : "");
			break;
		}
		case F_INT:
			fprintf(fp, "  %s: %d\n", dot + 1, *(const int *)slot);
			break;
		case F_SIZE:
			fprintf(fp, "  %s: %lld\n", dot + 1, (long long)*(const int64_t *)slot);
			break;
		}
	}
	fprintf(fp, "trunks:%s\n", cfg->ntrunks ? "" : " []");
	for (size_t i = 0; i < cfg->ntrunks; i++) {
		for (size_t k = 0; k < RV_ARRAY_LEN(trunk_fields); k++) {
			const struct field *f = &trunk_fields[k];
			const void *slot = (const char *)&cfg->trunks[i] + f->off;
			const char *lead = k == 0 ? "  - " : "    ";
			if (f->type == F_INT) {
				fprintf(fp, "%s%s: %d\n", lead, f->key, *(const int *)slot);
			} else {
				const char *v = *(char *const *)slot;
				fprintf(fp, "%s%s: \"%s\"\n", lead, f->key,
				        f->secret && v && *v ? "********"
				        : v                  ? v
				                             : "");
			}
		}
	}
	fclose(fp);
}
