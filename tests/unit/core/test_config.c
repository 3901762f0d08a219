#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../test.h"
#include "core/config.h"
#include "core/util.h"

static char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/rv-config-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? NULL : path;
}

RV_TEST(config_defaults)
{
	struct rv_config c;
	rv_config_defaults(&c);
	ASSERT_EQ_STR(c.http_listen, "127.0.0.1:8080");
	ASSERT_EQ_STR(c.store_driver, "sqlite");
	ASSERT_EQ_INT(c.http_max_body, 1 << 20);
	rv_config_free(&c);
}

RV_TEST(config_yaml_file)
{
	struct rv_config c;
	char err[256] = "";
	rv_config_defaults(&c);
	char *p = write_tmp("# comment\nhttp:\n  listen: 0.0.0.0:9090\n  max_body: 64k\n"
	                    "  threads: 8\nleads:\n  default_country: GB\n");
	ASSERT(p);
	int e = rv_config_load_file(&c, p, err, sizeof(err));
	unlink(p);
	ASSERT_MSG(e == 0, "%s", err);
	ASSERT_EQ_STR(c.http_listen, "0.0.0.0:9090");
	ASSERT_EQ_INT(c.http_max_body, 65536);
	ASSERT_EQ_INT(c.http_threads, 8);
	ASSERT_EQ_STR(c.default_country, "GB");
	rv_config_free(&c);
}

RV_TEST(config_yaml_errors_name_line_and_key)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"http:\n  listne: x\n", "unknown config key \"http.listne\""},
	    {"http:\n  threads: many\n", "http.threads must be a whole number"},
	    {"http:\n  threads: 100000\n", "from 1 to 256"},
	    {"http: 5\n", "must be a section"},
	    {"http:\n  listen: [a, b]\n", "lists and aliases"},
	    {"http:\n  deep:\n    x: 1\n", "nesting too deep"},
	    {"http:\n  listen: \"unterminated\n", "YAML error"},
	    {"http:\n  max_body: 12q\n", "http.max_body must be a size"},
	};
	for (size_t i = 0; i < RV_ARRAY_LEN(cases); i++) {
		struct rv_config c;
		char err[256] = "";
		rv_config_defaults(&c);
		char *p = write_tmp(cases[i].text);
		ASSERT(p);
		int e = rv_config_load_file(&c, p, err, sizeof(err));
		unlink(p);
		rv_config_free(&c);
		ASSERT_MSG(e == -EINVAL, "case %zu: returned %d", i, e);
		ASSERT_MSG(strstr(err, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, err,
		           cases[i].want);
		ASSERT_MSG(strstr(err, ":2") || strstr(err, ":1") || strstr(err, ":3"),
		           "case %zu: no line number in \"%s\"", i, err);
	}
}

RV_TEST(config_missing_file)
{
	struct rv_config c;
	char err[256] = "";
	rv_config_defaults(&c);
	int e = rv_config_load_file(&c, "/nonexistent/rv.yaml", err, sizeof(err));
	rv_config_free(&c);
	ASSERT_EQ_INT(e, -ENOENT);
	ASSERT(strstr(err, "/nonexistent/rv.yaml"));
}

RV_TEST(config_env_overrides)
{
	struct rv_config c;
	char err[256] = "";
	rv_config_defaults(&c);
	setenv("REVOVOICE_HTTP_LISTEN", "127.0.0.1:7070", 1);
	setenv("REVOVOICE_RATE_LIMIT_RPS", "0", 1);
	int e = rv_config_apply_env(&c, err, sizeof(err));
	unsetenv("REVOVOICE_HTTP_LISTEN");
	unsetenv("REVOVOICE_RATE_LIMIT_RPS");
	ASSERT_MSG(e == 0, "%s", err);
	ASSERT_EQ_STR(c.http_listen, "127.0.0.1:7070");
	ASSERT_EQ_INT(c.rate_limit_rps, 0);

	setenv("REVOVOICE_STORE_POOL", "-3", 1);
	e = rv_config_apply_env(&c, err, sizeof(err));
	unsetenv("REVOVOICE_STORE_POOL");
	rv_config_free(&c);
	ASSERT_EQ_INT(e, -EINVAL);
	ASSERT(strstr(err, "REVOVOICE_STORE_POOL"));
}

RV_TEST(config_finish_derives_store_url)
{
	struct rv_config c;
	char err[256] = "", dir[] = "/tmp/rv-cfgdir-XXXXXX";
	ASSERT(mkdtemp(dir));
	rv_config_defaults(&c);
	ASSERT_OK(rv_config_set(&c, "data.dir", dir, err, sizeof(err)));
	ASSERT_OK(rv_config_finish(&c, err, sizeof(err)));
	char want[128];
	snprintf(want, sizeof(want), "%s/revovoice.db", dir);
	ASSERT_EQ_STR(c.store_url, want);
	ASSERT_EQ_INT(rv_config_set(&c, "store.driver", "mysql", err, sizeof(err)), 0);
	ASSERT_EQ_INT(rv_config_finish(&c, err, sizeof(err)), -EINVAL);
	ASSERT_EQ_INT(rv_config_set(&c, "no.such", "1", err, sizeof(err)), -EINVAL);
	rv_config_free(&c);
	rmdir(dir);
}

RV_TEST(config_trunks_list_sorted_and_checked)
{
	struct rv_config c;
	char err[256] = "";
	rv_config_defaults(&c);
	char *p =
	    write_tmp("trunks:\n  - name: backup\n    host: 10.0.0.2\n    priority: 20\n"
	              "  - name: main\n    host: sip.example.com\n    transport: tcp\n"
	              "    username: u\n    password: pw\n    register: 1\n    priority: 5\n");
	ASSERT(p);
	int e = rv_config_load_file(&c, p, err, sizeof(err));
	unlink(p);
	ASSERT_MSG(e == 0, "%s", err);
	ASSERT_EQ_INT(c.ntrunks, 2);
	ASSERT_EQ_INT(rv_config_finish(&c, err, sizeof(err)), 0);
	ASSERT_EQ_STR(c.trunks[0].name, "main"); /* priority 5 before 20 */
	ASSERT_EQ_STR(c.trunks[0].transport, "tcp");
	ASSERT_EQ_INT(c.trunks[0].register_, 1);
	ASSERT_EQ_STR(c.trunks[1].transport, "udp");
	ASSERT_EQ_INT(c.trunks[1].expires, 3600);
	rv_config_free(&c);

	static const struct {
		const char *yaml, *want;
	} bad[] = {
	    {"trunks:\n  - name: a\n    hots: x\n", "unknown trunk key \"hots\""},
	    {"trunks:\n  - name: a\n    host: h\n    port: 70000\n", "port must be"},
	    {"trunks:\n  - x\n", "must be a list of mappings"},
	    {"trunks:\n  - name: a\n    host: h\n    transport: sctp\n", "udp or tcp"},
	    {"trunks:\n  - name: a\n    host: h\n  - name: a\n    host: g\n", "used twice"},
	    {"trunks:\n  - host: h\n", "name and host are required"},
	};
	for (size_t i = 0; i < RV_ARRAY_LEN(bad); i++) {
		rv_config_defaults(&c);
		free(c.data_dir);
		c.data_dir = rv_xstrdup("/tmp");
		p = write_tmp(bad[i].yaml);
		ASSERT(p);
		err[0] = '\0';
		e = rv_config_load_file(&c, p, err, sizeof(err));
		unlink(p);
		if (e == 0)
			e = rv_config_finish(&c, err, sizeof(err));
		rv_config_free(&c);
		ASSERT_MSG(e != 0 && strstr(err, bad[i].want), "case %zu: %s", i, err);
	}
}
