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
}

static const struct field *find_field(const char *key)
{
	for (size_t i = 0; i < RV_ARRAY_LEN(fields); i++)
		if (strcmp(fields[i].key, key) == 0)
			return &fields[i];
	return NULL;
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

static int apply(struct rv_config *cfg, const struct field *f, const char *value, const char *src,
                 char *err, size_t errlen)
{
	void *slot = (char *)cfg + f->off;
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

/*
 * YAML reading: the config is a mapping of sections, each a mapping of scalar keys, e.g.
 *   http:
 *     listen: 127.0.0.1:8080
 * libyaml's event stream is walked with a two-level path; anything deeper, sequences or
 * aliases are rejected with the line number, so typos and misplaced keys never pass silently.
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
	fclose(fp);
}
