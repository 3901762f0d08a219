/* Unit tests for phone normalisation, the pure CSV lead parser and the store-backed import. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "campaign/lead_csv.h"
#include "campaign/lead_import.h"
#include "core/app.h"
#include "core/phone.h"
#include "core/util.h"
#include "store/store.h"

/* ---- phone numbers ------------------------------------------------------------------------ */

static int e164(const char *in, const char *region, char *out, const char **why)
{
	*why = NULL;
	out[0] = '\0';
	return rv_phone_e164(in, region, out, 32, why);
}

RV_TEST(import_phone_us_formats)
{
	char out[32];
	const char *why;
	static const char *const ok[] = {"(415) 555-2671",  "415.555.2671",     "415-555-2671",
	                                 "+1 415 555 2671", "1 (415) 555 2671", "  4155552671 "};
	for (size_t i = 0; i < RV_ARRAY_LEN(ok); i++) {
		ASSERT_MSG(e164(ok[i], "US", out, &why) == 0, "%s: %s", ok[i], why);
		ASSERT_EQ_STR(out, "+14155552671");
	}
	/* A lower-case region works; vanity letters are dialpad digits. */
	ASSERT_OK(e164("202-555-0100", "us", out, &why));
	ASSERT_EQ_STR(out, "+12025550100");
	ASSERT_OK(e164("1-800-FLOWERS", "US", out, &why));
	ASSERT_EQ_STR(out, "+18003569377");
}

RV_TEST(import_phone_gb_and_in)
{
	char out[32];
	const char *why;
	ASSERT_OK(e164("020 7946 0958", "GB", out, &why));
	ASSERT_EQ_STR(out, "+442079460958");
	/* International format needs no region, whatever the default is. */
	ASSERT_OK(e164("+44 20 7946 0958", "US", out, &why));
	ASSERT_EQ_STR(out, "+442079460958");
	ASSERT_OK(e164("011 44 20 7946 0958", "US", out, &why));
	ASSERT_EQ_STR(out, "+442079460958");
	ASSERT_OK(e164("098765 43210", "IN", out, &why));
	ASSERT_EQ_STR(out, "+919876543210");
	ASSERT_OK(e164("9876543210", "IN", out, &why));
	ASSERT_EQ_STR(out, "+919876543210");
	ASSERT_OK(e164("+91 98765 43210", "GB", out, &why));
	ASSERT_EQ_STR(out, "+919876543210");
	/* A GB national number read as US is not valid there. */
	ASSERT_EQ_INT(e164("020 7946 0958", "US", out, &why), -EINVAL);
}

RV_TEST(import_phone_rejects)
{
	char out[32];
	const char *why;
	ASSERT_EQ_INT(e164("", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "empty phone number");
	ASSERT_EQ_INT(e164("call me maybe", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "not a phone number");
	ASSERT_EQ_INT(e164("abc", "US", out, &why), -EINVAL);
	ASSERT_EQ_INT(e164("555", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "too short for its region");
	ASSERT_EQ_INT(e164("+1 415 555 267", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "too short for its region");
	ASSERT_EQ_INT(e164("+1 415 555 26711", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "too long for its region");
	ASSERT_EQ_INT(e164("+1 123 456 7890", "US", out, &why), -EINVAL); /* no area code 123 */
	ASSERT_EQ_INT(e164("+999 1234 5678", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "unknown country code");
	/* libphonenumber calls this German number valid, but it has 17 digits (fuzzer find). */
	ASSERT_EQ_INT(e164("+494 09209V4609VC58", "ZZ", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "too long for E.164 (more than 15 digits)");
	ASSERT_EQ_INT(e164("415 555 2671 ext. 12", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "extensions are not supported");
	ASSERT_EQ_INT(e164("\xff\xfe\x34\x31", "US", out, &why), -EINVAL);
	ASSERT_EQ_STR(why, "not valid UTF-8");
	char lng[300];
	memset(lng, '5', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	ASSERT_EQ_INT(e164(lng, "US", out, &why), -EINVAL);
	/* National numbers need a region; an unknown one cannot help. */
	ASSERT_EQ_INT(e164("(415) 555-2671", "XX", out, &why), -EINVAL);
	ASSERT_EQ_INT(e164("(415) 555-2671", NULL, out, &why), -EINVAL);
	ASSERT_OK(e164("+14155552671", NULL, out, &why));
	/* A too-small output buffer is refused rather than truncated. */
	why = NULL;
	ASSERT_EQ_INT(rv_phone_e164("+14155552671", "US", out, 8, &why), -EINVAL);
	ASSERT(why != NULL);
	ASSERT_EQ_INT(rv_phone_e164(NULL, "US", out, 32, &why), -EINVAL);
}

RV_TEST(import_phone_region_valid)
{
	ASSERT_EQ_INT(rv_phone_region_valid("US"), 1);
	ASSERT_EQ_INT(rv_phone_region_valid("GB"), 1);
	ASSERT_EQ_INT(rv_phone_region_valid("IN"), 1);
	ASSERT_EQ_INT(rv_phone_region_valid("XX"), 0);
	ASSERT_EQ_INT(rv_phone_region_valid("ZZ"), 0);
	ASSERT_EQ_INT(rv_phone_region_valid("USA"), 0);
	ASSERT_EQ_INT(rv_phone_region_valid(""), 0);
	ASSERT_EQ_INT(rv_phone_region_valid(NULL), 0);
}

/* ---- the CSV parser -------------------------------------------------------------------------- */

static struct rv_lead_csv *parse_ok(const char *csv, const char *region)
{
	struct rv_lead_csv *res = NULL;
	char err[256];
	const char *reason = NULL;
	int rc = rv_lead_csv_parse(csv, strlen(csv), region, &res, err, sizeof(err), &reason);
	if (rc != 0) {
		fprintf(stderr, "  parse failed (%d): %s\n", rc, err);
		return NULL;
	}
	return res;
}

/* Expects a whole-file refusal whose message contains `needle` and whose reason is `reason`. */
static int parse_refused(const char *csv, size_t len, const char *want_reason, const char *needle)
{
	struct rv_lead_csv *res = NULL;
	char err[256] = "";
	const char *reason = NULL;
	int rc = rv_lead_csv_parse(csv, len, "US", &res, err, sizeof(err), &reason);
	if (rc != -EINVAL || res != NULL || !reason || strcmp(reason, want_reason) != 0 ||
	    !strstr(err, needle)) {
		fprintf(stderr, "  got rc=%d reason=%s err=\"%s\" (wanted %s, \"%s\")\n", rc,
		        reason ? reason : "(null)", err, want_reason, needle);
		rv_lead_csv_free(res);
		return 0;
	}
	return 1;
}

static const char *err_field(const struct rv_lead_csv *r, size_t i, const char *key)
{
	json_t *e = json_array_get(r->errors, i);
	json_t *v = json_object_get(e, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long err_row(const struct rv_lead_csv *r, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(r->errors, i), "row"));
}

RV_TEST(import_csv_good_file)
{
	/* BOM, CRLF, quoted fields holding commas, quotes and a newline, two custom columns. */
	const char *csv = "\xEF\xBB\xBFphone,first_name,last_name,email,timezone,Company,Notes\r\n"
	                  "(415) 555-2671,Ada,Lovelace,ada@example.com,America/Los_Angeles,"
	                  "\"Analytical Engines, Ltd\",\"said \"\"hi\"\"\"\r\n"
	                  "+44 20 7946 0958,Alan,Turing,,Europe/London,Bletchley,\"line one\r\n"
	                  "line two\"\r\n"
	                  "202-555-0100,  Grace ,Hopper,grace@navy.example.org,,,\r\n";
	struct rv_lead_csv *r = parse_ok(csv, "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->rows, 3);
	ASSERT_EQ_INT(r->nleads, 3);
	ASSERT_EQ_INT(r->nerrors, 0);
	ASSERT_EQ_INT(json_array_size(r->errors), 0);
	ASSERT_EQ_INT(r->skipped_duplicates, 0);

	struct rv_lead_csv_lead *l = &r->leads[0];
	ASSERT_EQ_INT(l->row, 2);
	ASSERT_EQ_STR(l->phone, "+14155552671");
	ASSERT_EQ_STR(l->first_name, "Ada");
	ASSERT_EQ_STR(l->last_name, "Lovelace");
	ASSERT_EQ_STR(l->email, "ada@example.com");
	ASSERT_EQ_STR(l->timezone, "America/Los_Angeles");
	ASSERT_EQ_STR(l->custom_fields,
	              "{\"Company\":\"Analytical Engines, Ltd\",\"Notes\":\"said \\\"hi\\\"\"}");

	l = &r->leads[1];
	ASSERT_EQ_INT(l->row, 3);
	ASSERT_EQ_STR(l->phone, "+442079460958");
	ASSERT_EQ_STR(l->email, "");
	ASSERT_EQ_STR(l->custom_fields,
	              "{\"Company\":\"Bletchley\",\"Notes\":\"line one\\r\\nline two\"}");

	l = &r->leads[2];
	ASSERT_EQ_INT(l->row, 5); /* the record before spans lines 3 and 4 */
	ASSERT_EQ_STR(l->phone, "+12025550100");
	ASSERT_EQ_STR(l->first_name, "Grace");
	ASSERT_EQ_STR(l->timezone, "");
	ASSERT_EQ_STR(l->custom_fields, "{\"Company\":\"\",\"Notes\":\"\"}");
	rv_lead_csv_free(r);
}

RV_TEST(import_csv_header_aliases)
{
	const char *csv = " Mobile , First Name,SURNAME,E-Mail,TZ,given\n"
	                  "4155552671,Ada,Lovelace,ADA@EXAMPLE.COM,UTC,x\n";
	struct rv_lead_csv *r = parse_ok(csv, "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->nleads, 1);
	ASSERT_EQ_STR(r->leads[0].phone, "+14155552671");
	ASSERT_EQ_STR(r->leads[0].first_name, "Ada");
	ASSERT_EQ_STR(r->leads[0].last_name, "Lovelace");
	ASSERT_EQ_STR(r->leads[0].email, "ADA@EXAMPLE.COM");
	ASSERT_EQ_STR(r->leads[0].timezone, "UTC");
	ASSERT_EQ_STR(r->leads[0].custom_fields, "{\"given\":\"x\"}");
	rv_lead_csv_free(r);

	static const char *const phones[] = {"phone", "PHONE_NUMBER", "phone number", "number",
	                                     "Telephone"};
	for (size_t i = 0; i < RV_ARRAY_LEN(phones); i++) {
		char buf[128];
		snprintf(buf, sizeof(buf),
		         "%s,family_name,given_name,time_zone\n"
		         "+14155552671,L,F,Asia/Kolkata\n",
		         phones[i]);
		r = parse_ok(buf, "US");
		ASSERT_MSG(r && r->nleads == 1, "%s", phones[i]);
		ASSERT_EQ_STR(r->leads[0].last_name, "L");
		ASSERT_EQ_STR(r->leads[0].first_name, "F");
		ASSERT_EQ_STR(r->leads[0].timezone, "Asia/Kolkata");
		rv_lead_csv_free(r);
	}
}

RV_TEST(import_csv_row_errors)
{
	const char *csv =
	    "phone,email,timezone,extra\n"                  /* line 1 */
	    "4155552671,a@example.com,UTC,1\n"              /* 2 ok */
	    "4155552672,b@example.com,UTC\n"                /* 3 too few fields */
	    "4155552673,c@example.com,UTC,1,2\n"            /* 4 too many */
	    "not a number,d@example.com,UTC,1\n"            /* 5 bad phone */
	    "4155552674,nope,UTC,1\n"                       /* 6 bad email */
	    "4155552675,e@example.com,Mars/Olympus,1\n"     /* 7 bad tz */
	    "\n"                                            /* 8 blank */
	    "4155552676,f@example.com,../../etc/passwd,1\n" /* 9 tz escape */
	    "4155552677,g@example.com,/etc/localtime,1\n"   /* 10 absolute tz */
	    ",x@example.com,UTC,1\n"                        /* 11 missing phone */
	    "555,bad,,1\n"                                  /* 12 phone and email */
	    "\"4155552678\",h@example.com,America/New_York,\"multi\nline\"\n" /* 13-14 */
	    "123,i@example.com,UTC,1\n"; /* 15 bad phone after a multi-line */
	struct rv_lead_csv *r = parse_ok(csv, "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->rows, 12);
	ASSERT_EQ_INT(r->nleads, 2);
	ASSERT_EQ_INT(r->failed_rows, 10);
	ASSERT_EQ_INT(r->nerrors, 11);
	ASSERT_EQ_INT(json_array_size(r->errors), 11);
	ASSERT_EQ_INT(r->leads[1].row, 13);
	ASSERT_EQ_STR(r->leads[1].custom_fields, "{\"extra\":\"multi\\nline\"}");

	static const struct {
		long long row;
		const char *column; /* NULL: the JSON null */
		const char *msg_part;
	} want[] = {
	    {3, NULL, "expected 4 fields"},
	    {4, NULL, "found 5"},
	    {5, "phone", "not a phone number"},
	    {6, "email", "e-mail"},
	    {7, "timezone", "time zone"},
	    {9, "timezone", "time zone"},
	    {10, "timezone", "time zone"},
	    {11, "phone", "missing phone number"},
	    {12, "phone", "too short"},
	    {12, "email", "e-mail"},
	    {15, "phone", "invalid phone number"},
	};
	size_t k = 0;
	for (size_t i = 0; i < RV_ARRAY_LEN(want); i++, k++) {
		ASSERT_MSG(err_row(r, k) == want[i].row, "error %zu: row %lld, wanted %lld", k,
		           err_row(r, k), want[i].row);
		json_t *col = json_object_get(json_array_get(r->errors, k), "column");
		if (want[i].column)
			ASSERT_EQ_STR(json_string_value(col), want[i].column);
		else
			ASSERT_MSG(json_is_null(col), "error %zu: column is not null", k);
		const char *m = err_field(r, k, "message");
		ASSERT_MSG(m && strstr(m, want[i].msg_part), "error %zu: \"%s\"", k, m);
	}
	ASSERT_EQ_INT(r->reason_counts[RV_LEAD_CSV_R_COLUMNS], 2);
	ASSERT_EQ_INT(r->reason_counts[RV_LEAD_CSV_R_PHONE], 4);
	ASSERT_EQ_INT(r->reason_counts[RV_LEAD_CSV_R_EMAIL], 2);
	ASSERT_EQ_INT(r->reason_counts[RV_LEAD_CSV_R_TIMEZONE], 3);
	ASSERT_EQ_INT(k, json_array_size(r->errors));
	rv_lead_csv_free(r);
}

RV_TEST(import_csv_duplicates_and_empty_rows)
{
	const char *csv = "phone,name\n"
	                  "(415) 555-2671,a\n"
	                  ",\n"
	                  "   \n"
	                  "\n\n"
	                  "+1 415 555 2671,b\n" /* the same number, another format */
	                  "415.555.2671,c\n"
	                  "4155552672,d\n";
	struct rv_lead_csv *r = parse_ok(csv, "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->rows, 4);
	ASSERT_EQ_INT(r->nleads, 2);
	ASSERT_EQ_INT(r->skipped_duplicates, 2);
	ASSERT_EQ_INT(r->nerrors, 0);
	ASSERT_EQ_STR(r->leads[0].custom_fields, "{\"name\":\"a\"}");
	ASSERT_EQ_INT(r->leads[1].row, 9);
	rv_lead_csv_free(r);

	/* A header-only file is a valid file with nothing in it; blank lines before it too. */
	r = parse_ok("\n\nphone\r\n", "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->rows, 0);
	ASSERT_EQ_INT(r->nleads, 0);
	rv_lead_csv_free(r);

	/* No final newline. */
	r = parse_ok("phone\n4155552671", "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->nleads, 1);
	ASSERT_EQ_INT(r->leads[0].row, 2);
	rv_lead_csv_free(r);
}

RV_TEST(import_csv_whole_file_errors)
{
	ASSERT(parse_refused("", 0, "no_header", "empty"));
	ASSERT(parse_refused("\xEF\xBB\xBF", 3, "no_header", "header row"));
	ASSERT(parse_refused("\n\r\n  \n", 6, "no_header", "header row"));
	const char *latin1 = "phone,name\n4155552671,Jos\xe9\n";
	ASSERT(parse_refused(latin1, strlen(latin1), "not_utf8", "line 2 is not valid UTF-8"));
	const char utf16[] = "\xff\xfep\0h\0o\0n\0e\0";
	ASSERT(parse_refused(utf16, sizeof(utf16) - 1, "not_text", "NUL"));
	const char nul[] = "phone\n415\0"
	                   "5552671\n";
	ASSERT(parse_refused(nul, sizeof(nul) - 1, "not_text", "line 2"));
	const char *s = "name,email\nAda,a@example.com\n";
	ASSERT(parse_refused(s, strlen(s), "no_phone_column", "no phone column"));
	s = "phone,mobile\n1,2\n";
	ASSERT(parse_refused(s, strlen(s), "duplicate_header", "both name the phone field"));
	s = "phone,Notes,notes\n1,2,3\n";
	ASSERT(parse_refused(s, strlen(s), "duplicate_header", "more than once"));
	s = "phone,,name\n1,2,3\n";
	ASSERT(parse_refused(s, strlen(s), "bad_header", "header column 2 is empty"));
	s = "phone,name\n4155552671,ok\n4155552672,bro\"ken\n4155552673,x\n";
	ASSERT(parse_refused(s, strlen(s), "malformed_csv", "line 3"));
	s = "phone,name\n4155552671,\"closed\"junk\n";
	ASSERT(parse_refused(s, strlen(s), "malformed_csv", "line 2"));
	s = "phone,name\n4155552671,ok\n4155552672,\"never closed\n4155552673,x\n";
	ASSERT(parse_refused(s, strlen(s), "malformed_csv", "after line 2 is never closed"));
	s = "\"phone,name\n";
	ASSERT(parse_refused(s, strlen(s), "malformed_csv", "header"));
}

RV_TEST(import_csv_caps)
{
	/* 257 columns. */
	size_t cap = 257 * 8 + 64;
	char *buf = malloc(cap);
	size_t n = (size_t)snprintf(buf, cap, "phone");
	for (int i = 1; i < 257; i++)
		n += (size_t)snprintf(buf + n, cap - n, ",c%d", i);
	n += (size_t)snprintf(buf + n, cap - n, "\n");
	ASSERT(parse_refused(buf, n, "too_many_columns", "257 columns"));
	free(buf);

	/* A field over 64 KiB: a row error in a data row, a file error in the header. */
	size_t big = RV_LEAD_CSV_MAX_FIELD + 1;
	buf = malloc(big + 128);
	n = (size_t)snprintf(buf, big + 128, "phone,notes\n4155552671,");
	memset(buf + n, 'x', big);
	n += big;
	n += (size_t)snprintf(buf + n, 64, "\n4155552672,short\n");
	struct rv_lead_csv *r = NULL;
	char err[256];
	ASSERT_OK(rv_lead_csv_parse(buf, n, "US", &r, err, sizeof(err), NULL));
	ASSERT_EQ_INT(r->nleads, 1);
	ASSERT_EQ_INT(r->nerrors, 1);
	ASSERT_EQ_STR(err_field(r, 0, "column"), "notes");
	ASSERT(strstr(err_field(r, 0, "message"), "longer than 65536 bytes") != NULL);
	ASSERT_EQ_INT(r->reason_counts[RV_LEAD_CSV_R_TOO_LONG], 1);
	rv_lead_csv_free(r);
	memset(buf, 'h', big);
	memcpy(buf + big, "\n1\n", 3);
	ASSERT(parse_refused(buf, big + 3, "bad_header", "longer than 65536"));
	free(buf);

	/* Names and the custom fields as a whole keep to the leads API's limits. */
	buf = malloc(2 * 40000 + 512);
	n = (size_t)snprintf(buf, 512, "phone,first_name,a,b\n4155552671,");
	memset(buf + n, 'n', 201);
	n += 201;
	n += (size_t)snprintf(buf + n, 64, ",x,y\n4155552672,ok,");
	memset(buf + n, 'a', 40000);
	n += 40000;
	buf[n++] = ',';
	memset(buf + n, 'b', 40000);
	n += 40000;
	n += (size_t)snprintf(buf + n, 64, "\n4155552673,ok,x,y\n");
	ASSERT_OK(rv_lead_csv_parse(buf, n, "US", &r, err, sizeof(err), NULL));
	ASSERT_EQ_INT(r->nleads, 1);
	ASSERT_EQ_INT(r->nerrors, 2);
	ASSERT_EQ_STR(err_field(r, 0, "column"), "first_name");
	ASSERT(strstr(err_field(r, 0, "message"), "longer than 200 bytes") != NULL);
	ASSERT(err_field(r, 1, "column") == NULL);
	ASSERT_EQ_INT(err_row(r, 1), 3);
	ASSERT(strstr(err_field(r, 1, "message"), "custom fields") != NULL);
	rv_lead_csv_free(r);
	free(buf);

	/* 100,001 data rows are refused; 100,000 are fine. Rows of bad phones keep this quick. */
	size_t rows = RV_LEAD_CSV_MAX_ROWS + 1;
	buf = malloc(rows * 4 + 16);
	n = (size_t)snprintf(buf, 16, "phone,x\n");
	for (size_t i = 0; i < rows; i++) {
		memcpy(buf + n, "1,a\n", 4);
		n += 4;
	}
	ASSERT(parse_refused(buf, n, "too_many_rows", "more than 100000 data rows"));
	ASSERT_OK(rv_lead_csv_parse(buf, n - 4, "US", &r, err, sizeof(err), NULL));
	ASSERT_EQ_INT(r->rows, RV_LEAD_CSV_MAX_ROWS);
	ASSERT_EQ_INT(r->failed_rows, RV_LEAD_CSV_MAX_ROWS);
	/* Every error counted, the first thousand listed. */
	ASSERT_EQ_INT(r->nerrors, RV_LEAD_CSV_MAX_ROWS);
	ASSERT_EQ_INT(json_array_size(r->errors), RV_LEAD_CSV_MAX_ERRORS);
	ASSERT_EQ_INT(err_row(r, RV_LEAD_CSV_MAX_ERRORS - 1), RV_LEAD_CSV_MAX_ERRORS + 1);
	rv_lead_csv_free(r);
	free(buf);
}

RV_TEST(import_csv_validators)
{
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("America/New_York"), 1);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("UTC"), 1);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("Etc/GMT+5"), 1);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("America"), 0);  /* a directory */
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("zone.tab"), 0); /* not a zone */
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("america/new_york"), 0);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("../zoneinfo/UTC"), 0);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("/usr/share/zoneinfo/UTC"), 0);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid("America//New_York"), 0);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid(""), 0);
	ASSERT_EQ_INT(rv_lead_csv_timezone_valid(NULL), 0);

	ASSERT_EQ_INT(rv_lead_csv_email_valid("a@example.com"), 1);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("first.last+tag@mail.example.co.uk"), 1);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("j\xc3\xb6rg@b\xc3\xbc"
	                                      "cher.de"),
	              1);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a@localhost"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a@@example.com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a b@example.com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid(".a@example.com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a..b@example.com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a@example..com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a@-example.com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("@example.com"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("a@"), 0);
	ASSERT_EQ_INT(rv_lead_csv_email_valid("nope"), 0);
}

/* ---- the store-backed import ------------------------------------------------------------ */

struct db_env {
	char path[128];
	struct rv_config cfg;
	struct rv_app app;
};

static int db_env_open(struct db_env *e)
{
	char err[256];
	static int seq;
	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "/tmp/rv-import-test-%d-%d.db", (int)getpid(), ++seq);
	remove(e->path);
	e->cfg.http_max_upload = 1 << 20;
	e->cfg.default_country = "US";
	e->app.cfg = &e->cfg;
	int rc = rv_store_open("sqlite", e->path, 2, &e->app.store, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  store: %s\n", err);
	return rc;
}

static void db_env_close(struct db_env *e)
{
	char p[160];
	rv_store_close(e->app.store);
	remove(e->path);
	snprintf(p, sizeof(p), "%s-wal", e->path);
	remove(p);
	snprintf(p, sizeof(p), "%s-shm", e->path);
	remove(p);
}

static int64_t db_int(struct db_env *e, const char *sql)
{
	struct rv_rows *rows = NULL;
	int64_t v = -1;
	if (rv_store_exec(e->app.store, sql, NULL, 0, &rows, NULL) == 0 && rows->nrows == 1 &&
	    rv_rows_at(rows, 0, 0)->type == RV_VAL_INT)
		v = rv_rows_at(rows, 0, 0)->i;
	rv_rows_free(rows);
	return v;
}

static int db_run(struct db_env *e, const char *sql)
{
	return rv_store_exec(e->app.store, sql, NULL, 0, NULL, NULL);
}

static int64_t rep_int(json_t *rep, const char *key)
{
	json_t *v = json_object_get(rep, key);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

RV_TEST(import_db_transaction_and_report)
{
	struct db_env e;
	json_t *rep = NULL;
	char err[256];
	ASSERT_OK(db_env_open(&e));
	ASSERT_OK(db_run(&e,
	                 "INSERT INTO campaigns (name, default_country, created_at, updated_at) "
	                 "VALUES ('gb', 'GB', 'now', 'now')"));
	ASSERT_OK(
	    db_run(&e, "INSERT INTO dnc (phone, created_at) VALUES ('+442079460959', 'now')"));
	ASSERT_OK(db_run(&e, "INSERT INTO leads (campaign_id, phone, created_at, updated_at) "
	                     "VALUES (1, '+442079460958', 'now', 'now')"));

	const char *csv = "phone,first_name,team\n"
	                  "020 7946 0958,existing,a\n" /* already in the campaign */
	                  "020 7946 0959,on dnc,b\n"
	                  "020 7946 0960,new,c\n"
	                  "+44 20 7946 0960,again,d\n" /* repeated in the file */
	                  "12,bad,e\n";
	int rc = rv_lead_import_csv(&e.app, NULL, 1, csv, strlen(csv), &rep, err, sizeof(err));
	ASSERT_MSG(rc == 0, "%d %s", rc, err);
	ASSERT_EQ_INT(rep_int(rep, "rows"), 5);
	ASSERT_EQ_INT(rep_int(rep, "imported"), 2);
	ASSERT_EQ_INT(rep_int(rep, "dnc"), 1);
	ASSERT_EQ_INT(rep_int(rep, "skipped_duplicates"), 2);
	ASSERT_EQ_INT(rep_int(rep, "failed"), 1);
	ASSERT_EQ_INT(json_array_size(json_object_get(rep, "errors")), 1);
	json_decref(rep);
	rep = NULL;
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM leads WHERE campaign_id = 1"), 3);
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM leads WHERE phone = '+442079460959' AND "
	                         "status = 'dnc'"),
	              1);
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM leads WHERE phone = '+442079460960' AND "
	                         "status = 'new' AND first_name = 'new' AND "
	                         "custom_fields = '{\"team\":\"c\"}'"),
	              1);
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM audit_log WHERE action = 'import' AND "
	                         "resource = 'campaigns' AND resource_id = 1 AND actor = 'cli'"),
	              1);

	/* A missing campaign; a file that cannot be read: nothing written, no audit row. */
	rc = rv_lead_import_csv(&e.app, NULL, 99, csv, strlen(csv), &rep, err, sizeof(err));
	ASSERT_EQ_INT(rc, -ENOENT);
	ASSERT(strstr(err, "campaign 99 does not exist") != NULL);
	rc = rv_lead_import_csv(&e.app, NULL, 1, "name\nx\n", 7, &rep, err, sizeof(err));
	ASSERT_EQ_INT(rc, -EINVAL);
	ASSERT(strstr(err, "no phone column") != NULL);
	ASSERT(rep == NULL);

	/* A store failure mid-import rolls everything back, audit row included. */
	ASSERT_OK(db_run(&e, "CREATE TRIGGER no_second BEFORE INSERT ON leads "
	                     "WHEN NEW.phone = '+442079460962' "
	                     "BEGIN SELECT RAISE(ABORT, 'refused'); END"));
	csv = "phone\n020 7946 0961\n020 7946 0962\n";
	rc = rv_lead_import_csv(&e.app, NULL, 1, csv, strlen(csv), &rep, err, sizeof(err));
	ASSERT(rc != 0);
	ASSERT(rep == NULL);
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM leads WHERE phone = '+442079460961'"), 0);
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM audit_log WHERE action = 'import'"), 1);
	db_env_close(&e);
}

/* libphonenumber allocates heavily; under AddressSanitizer each number costs ~10x more. */
#if defined(__SANITIZE_ADDRESS__)
#define IMPORT_10K_SECONDS 60.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IMPORT_10K_SECONDS 60.0
#endif
#endif
#ifndef IMPORT_10K_SECONDS
#define IMPORT_10K_SECONDS 2.0
#endif

RV_TEST(import_db_10k_rows_fast)
{
	struct db_env e;
	json_t *rep = NULL;
	char err[256];
	ASSERT_OK(db_env_open(&e));
	ASSERT_OK(db_run(&e, "INSERT INTO campaigns (name, created_at, updated_at) "
	                     "VALUES ('big', 'now', 'now')"));
	size_t cap = 10000 * 80 + 64;
	char *csv = malloc(cap);
	size_t n = (size_t)snprintf(csv, cap, "phone,first_name,last_name,email,timezone,score\n");
	for (int i = 0; i < 10000; i++)
		n += (size_t)snprintf(csv + n, cap - n,
		                      "(212) 555-%04d,First%d,Last%d,p%d@example.com,"
		                      "America/New_York,%d\n",
		                      i, i, i, i, i);
	uint64_t t0 = rv_time_mono_ns();
	int rc = rv_lead_import_csv(&e.app, NULL, 1, csv, n, &rep, err, sizeof(err));
	double secs = (double)(rv_time_mono_ns() - t0) / 1e9;
	ASSERT_MSG(rc == 0, "%d %s", rc, err);
	ASSERT_EQ_INT(rep_int(rep, "imported"), 10000);
	ASSERT_MSG(secs < IMPORT_10K_SECONDS, "10,000 rows took %.2f s", secs);
	json_decref(rep);
	rep = NULL;
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM leads"), 10000);

	/* The same file again: every row is a duplicate of a lead the campaign has. */
	rc = rv_lead_import_csv(&e.app, NULL, 1, csv, n, &rep, err, sizeof(err));
	ASSERT_OK(rc);
	ASSERT_EQ_INT(rep_int(rep, "imported"), 0);
	ASSERT_EQ_INT(rep_int(rep, "skipped_duplicates"), 10000);
	json_decref(rep);
	free(csv);
	ASSERT_EQ_INT(db_int(&e, "SELECT count(*) FROM leads"), 10000);
	db_env_close(&e);
}

RV_TEST(import_csv_cr_line_ends)
{
	/* Old Mac exports end lines with a lone CR; rows are still numbered by visible line. */
	const char *csv = "phone,notes\r4155552671,\"a\rb\"\r\r4155552672,x\r12,y";
	struct rv_lead_csv *r = parse_ok(csv, "US");
	ASSERT(r != NULL);
	ASSERT_EQ_INT(r->nleads, 2);
	ASSERT_EQ_INT(r->leads[0].row, 2);
	ASSERT_EQ_INT(r->leads[1].row, 5);
	ASSERT_EQ_INT(r->nerrors, 1);
	ASSERT_EQ_INT(err_row(r, 0), 6);
	rv_lead_csv_free(r);
	const char *bad = "phone\r4155552671\r\xff\r";
	ASSERT(parse_refused(bad, strlen(bad), "not_utf8", "line 3"));
}
