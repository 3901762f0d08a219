/*
 * The pure half of the lead import: CSV bytes -> validated, normalised leads and a list of row
 * errors, with no store access (lead_import.c writes the result; the fuzzer and the unit tests
 * drive it directly).
 *
 * Row numbers: a row is identified by the line of the file on which its record starts, counting
 * the header as line 1 and every LF, CRLF or lone CR as one line break (blank lines and line
 * breaks inside quoted fields count too). Without multi-line fields this is the row number a
 * spreadsheet shows.
 */
#ifndef RV_LEAD_CSV_H
#define RV_LEAD_CSV_H

#include <jansson.h>
#include <stddef.h>

#define RV_LEAD_CSV_MAX_ROWS   100000 /* data rows per file */
#define RV_LEAD_CSV_MAX_COLS   256    /* columns per row */
#define RV_LEAD_CSV_MAX_FIELD  65536  /* bytes per field */
#define RV_LEAD_CSV_MAX_ERRORS 1000   /* row errors listed; all of them are counted */
/* Per-lead limits shared with the leads API, so an imported lead can be edited there. */
#define RV_LEAD_CSV_MAX_NAME   200   /* bytes of first_name / last_name */
#define RV_LEAD_CSV_MAX_TZ     64    /* bytes of a time zone name */
#define RV_LEAD_CSV_MAX_CUSTOM 65536 /* bytes of the custom_fields JSON */
#define RV_LEAD_CSV_ZONEINFO   "/usr/share/zoneinfo"

/* Why a row was refused, for the metric label rv_lead_import_errors_total{reason}. */
enum rv_lead_csv_reason {
	RV_LEAD_CSV_R_COLUMNS = 0, /* wrong number of fields */
	RV_LEAD_CSV_R_PHONE,
	RV_LEAD_CSV_R_EMAIL,
	RV_LEAD_CSV_R_TIMEZONE,
	RV_LEAD_CSV_R_TOO_LONG, /* a field, name or the custom fields over their cap */
	RV_LEAD_CSV_NREASONS
};

/* "columns", "phone", "email", "timezone", "field_too_long". */
const char *rv_lead_csv_reason_name(enum rv_lead_csv_reason r);

/* One valid lead. Every string is owned by the result and never NULL ("" when absent). */
struct rv_lead_csv_lead {
	size_t row;  /* line where its record starts (header = 1) */
	char *phone; /* E.164 */
	char *first_name;
	char *last_name;
	char *email;
	char *timezone;      /* an IANA name present in RV_LEAD_CSV_ZONEINFO, or "" */
	char *custom_fields; /* compact JSON object of the other columns, string values */
};

struct rv_lead_csv {
	struct rv_lead_csv_lead *leads; /* valid leads, in file order, phones unique */
	size_t nleads;
	size_t rows;               /* non-empty data rows read */
	size_t failed_rows;        /* rows refused because of errors */
	size_t skipped_duplicates; /* rows whose phone already appeared earlier in the file */
	size_t nerrors;            /* every error found (a row may have several) */
	size_t reason_counts[RV_LEAD_CSV_NREASONS];
	json_t *errors; /* array of the first RV_LEAD_CSV_MAX_ERRORS {"row","column","message"};
	                   column is the header name as written in the file, or null */
};

/*
 * Parse CSV bytes (UTF-8, optional BOM, LF, CRLF or CR line ends, RFC 4180 quoting, a header row)
 * and validate each data row: phone normalised to E.164 with `default_region` (numbers with a
 * country code need none), email and time zone checked, the remaining columns gathered as
 * custom fields. Empty rows are skipped.
 *
 * Returns 0 and *out (free with rv_lead_csv_free) when the file could be read as a lead file,
 * even if rows have errors. Returns -EINVAL when it cannot be read at all (not UTF-8, NUL
 * bytes, malformed quoting, no header, no phone column, duplicate or empty header names, over
 * the row or column caps): a sentence goes into err and a short metric label into *reason
 * (static string; may be NULL); nothing is allocated. -ENOMEM when memory runs out.
 */
int rv_lead_csv_parse(const char *data, size_t len, const char *default_region,
                      struct rv_lead_csv **out, char *err, size_t errlen, const char **reason);

void rv_lead_csv_free(struct rv_lead_csv *c);

/* Is `tz` a time zone name that exists under RV_LEAD_CSV_ZONEINFO? 1 or 0. */
int rv_lead_csv_timezone_valid(const char *tz);

/* A plausible e-mail address (one @, sane local part and dotted domain)? 1 or 0. */
int rv_lead_csv_email_valid(const char *email);

#endif
