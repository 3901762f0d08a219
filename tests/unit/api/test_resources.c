/* Unit tests for the pure validators of the REST resource engine (src/api/resource_check.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/resource.h"
#include "../test.h"

RV_TEST(res_parse_id)
{
	int64_t v = -1;
	ASSERT_OK(rv_res_parse_id("1", &v));
	ASSERT_EQ_INT(v, 1);
	ASSERT_OK(rv_res_parse_id("9223372036854775807", &v));
	ASSERT_EQ_INT(v, INT64_MAX);
	v = 77;
	ASSERT_EQ_INT(rv_res_parse_id("0", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id("-3", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id("+3", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id(" 3", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id("3x", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id("abc", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id("", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id(NULL, &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_id("9223372036854775808", &v), -EINVAL);
	ASSERT_EQ_INT(v, 77); /* untouched on failure */
}

RV_TEST(res_parse_limit)
{
	int64_t v = 0;
	ASSERT_OK(rv_res_parse_limit(NULL, &v));
	ASSERT_EQ_INT(v, RV_RES_LIMIT_DEFAULT);
	ASSERT_OK(rv_res_parse_limit("1", &v));
	ASSERT_EQ_INT(v, 1);
	ASSERT_OK(rv_res_parse_limit("500", &v));
	ASSERT_EQ_INT(v, 500);
	ASSERT_EQ_INT(rv_res_parse_limit("501", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_limit("0", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_limit("-1", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_limit("", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_limit("10abc", &v), -EINVAL);
}

RV_TEST(res_parse_cursor)
{
	int64_t v = -1;
	ASSERT_OK(rv_res_parse_cursor(NULL, &v));
	ASSERT_EQ_INT(v, 0);
	v = -1;
	ASSERT_OK(rv_res_parse_cursor("", &v));
	ASSERT_EQ_INT(v, 0);
	ASSERT_OK(rv_res_parse_cursor("42", &v));
	ASSERT_EQ_INT(v, 42);
	ASSERT_EQ_INT(rv_res_parse_cursor("0", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_cursor("-5", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_cursor("4 2", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_cursor("99999999999999999999", &v), -EINVAL);
	ASSERT_EQ_INT(rv_res_parse_cursor("' OR 1=1 --", &v), -EINVAL);
}

RV_TEST(res_hhmm)
{
	int m = -1;
	ASSERT_OK(rv_res_hhmm_parse("00:00", &m));
	ASSERT_EQ_INT(m, 0);
	ASSERT_OK(rv_res_hhmm_parse("09:30", &m));
	ASSERT_EQ_INT(m, 570);
	ASSERT_OK(rv_res_hhmm_parse("23:59", &m));
	ASSERT_EQ_INT(m, 23 * 60 + 59);
	ASSERT_OK(rv_res_hhmm_parse("12:00", NULL));
	ASSERT_EQ_INT(rv_res_hhmm_parse("24:00", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("12:60", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("9:30", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("09:3", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("09-30", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("09:30:00", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("0a:30", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse("", &m), -EINVAL);
	ASSERT_EQ_INT(rv_res_hhmm_parse(NULL, &m), -EINVAL);
}

RV_TEST(res_days)
{
	ASSERT_OK(rv_res_days_valid("mon"));
	ASSERT_OK(rv_res_days_valid("mon,tue,wed,thu,fri"));
	ASSERT_OK(rv_res_days_valid("sun,sat"));
	ASSERT_OK(rv_res_days_valid("mon,tue,wed,thu,fri,sat,sun"));
	ASSERT_EQ_INT(rv_res_days_valid(""), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("mon,"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid(",mon"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("mon,,tue"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("mon,mon"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("Mon"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("monday"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("mo"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid("mon, tue"), -EINVAL);
	ASSERT_EQ_INT(rv_res_days_valid(NULL), -EINVAL);
}

RV_TEST(res_csv_allow_empty)
{
	static const char *const words[] = {"busy", "no_answer", NULL};
	ASSERT_OK(rv_res_csv_valid("", words, 1));
	ASSERT_EQ_INT(rv_res_csv_valid("", words, 0), -EINVAL);
	ASSERT_OK(rv_res_csv_valid("no_answer,busy", words, 0));
	ASSERT_EQ_INT(rv_res_csv_valid("busy,failed", words, 1), -EINVAL);
}

RV_TEST(res_timezone_names)
{
	/* The real zoneinfo (tzdata is a dependency of the daemon). */
	ASSERT_OK(rv_res_timezone_valid("America/New_York", NULL));
	ASSERT_OK(rv_res_timezone_valid("Europe/London", NULL));
	ASSERT_OK(rv_res_timezone_valid("UTC", NULL));
	ASSERT_OK(rv_res_timezone_valid("Etc/GMT+5", NULL));
	ASSERT_OK(rv_res_timezone_valid("America/Argentina/Buenos_Aires", NULL));
	ASSERT_EQ_INT(rv_res_timezone_valid("America/Nowhere", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("America", NULL), -EINVAL); /* a directory */
	ASSERT_EQ_INT(rv_res_timezone_valid("", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid(NULL, NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("localtime", NULL), -EINVAL);
}

RV_TEST(res_timezone_path_tricks)
{
	/* A fake zoneinfo with a TZif file outside it: no name may reach that file. */
	char dir[] = "/tmp/rv-tz-XXXXXX";
	char path[256];
	FILE *f;

	ASSERT(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/zi", dir);
	ASSERT_OK(mkdir(path, 0700));
	snprintf(path, sizeof(path), "%s/zi/Good_Zone", dir);
	f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs("TZif2 fake", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/Outside", dir);
	f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs("TZif2 fake", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/zi/NotTz", dir);
	f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs("hello", f);
	fclose(f);

	char zi[128];
	snprintf(zi, sizeof(zi), "%s/zi", dir);
	int good = rv_res_timezone_valid("Good_Zone", zi);
	int up = rv_res_timezone_valid("../Outside", zi);
	int notz = rv_res_timezone_valid("NotTz", zi);
	int abs = rv_res_timezone_valid(path, zi);

	snprintf(path, sizeof(path), "%s/zi/Good_Zone", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/zi/NotTz", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/Outside", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/zi", dir);
	rmdir(path);
	rmdir(dir);

	ASSERT_OK(good);
	ASSERT_EQ_INT(up, -EINVAL);
	ASSERT_EQ_INT(notz, -EINVAL);
	ASSERT_EQ_INT(abs, -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("../../etc/passwd", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("/etc/passwd", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("America/../../../etc/passwd", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("./UTC", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("America//New_York", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("America/New_York/", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("UTC\n", NULL), -EINVAL);
	ASSERT_EQ_INT(rv_res_timezone_valid("America/New York", NULL), -EINVAL);
}

RV_TEST(res_url)
{
	const char *why = NULL;
	ASSERT_OK(rv_res_url_valid("http://example.com", &why));
	ASSERT_OK(rv_res_url_valid("https://example.com/hook?x=1#f", &why));
	ASSERT_OK(rv_res_url_valid("HTTPS://Example.COM:8443/a/b", &why));
	ASSERT_OK(rv_res_url_valid("http://127.0.0.1:9000/hook", &why));
	ASSERT_OK(rv_res_url_valid("http://[::1]:8080/hook", &why));
	ASSERT_EQ_INT(rv_res_url_valid("https://user:pw@example.com/", &why), -EINVAL);
	ASSERT(strstr(why, "credentials"));
	ASSERT_OK(rv_res_url_valid("https://example.com/a@b", &why)); /* @ in the path is fine */
	ASSERT(why == NULL);
	ASSERT_EQ_INT(rv_res_url_valid("ftp://example.com/", &why), -EINVAL);
	ASSERT(why != NULL);
	ASSERT_EQ_INT(rv_res_url_valid("example.com/hook", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http:///path", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://:80/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://example.com:0/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://example.com:65536/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://example.com:8x/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://example.com:/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://exa mple.com/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://example.com/\r\nX: y", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("http://[::1/", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("javascript:alert(1)", &why), -EINVAL);
	ASSERT_EQ_INT(rv_res_url_valid("", &why), -EINVAL);

	/* 2048 bytes pass, 2049 do not. */
	char *u = malloc(2050);
	ASSERT(u != NULL);
	memcpy(u, "http://example.com/", 19);
	memset(u + 19, 'a', 2048 - 19);
	u[2048] = '\0';
	int ok2048 = rv_res_url_valid(u, &why);
	u[2048] = 'a';
	u[2049] = '\0';
	int bad2049 = rv_res_url_valid(u, &why);
	free(u);
	ASSERT_OK(ok2048);
	ASSERT_EQ_INT(bad2049, -EINVAL);
}

RV_TEST(res_email)
{
	ASSERT_OK(rv_res_email_valid("a@b.co"));
	ASSERT_OK(rv_res_email_valid("first.last+tag@sub.example.com"));
	ASSERT_EQ_INT(rv_res_email_valid("nobody"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("@example.com"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a@"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a@b"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a@@b.com"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a b@c.com"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a@b..com"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a@.b.com"), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid("a@b.com."), -EINVAL);
	ASSERT_EQ_INT(rv_res_email_valid(NULL), -EINVAL);
}
