/* Lead import from CSV (libcsv): header row, normalised phones, duplicates skipped, a report. */
#ifndef RV_LEAD_IMPORT_H
#define RV_LEAD_IMPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct rv_app;
struct rv_http_req;

/*
 * Import CSV bytes into a campaign. Columns phone (required), first_name, last_name, email,
 * timezone (header names matched case-insensitively, common aliases accepted); every other column
 * goes into the lead's custom_fields. Phones are normalised to E.164 with the campaign's
 * default_country. Rows with errors are reported and not imported; valid rows are; numbers
 * already in the campaign or repeated in the file are counted as skipped duplicates.
 * All inserts and one audit row run in one transaction.
 *
 * Returns 0 and *report = {"imported", "skipped_duplicates", "errors":
 * [{"row","column","message"}]} (caller owns it); the report also carries "campaign_id", "rows"
 * (non-empty data rows), "dnc" (imported leads whose number is on the DNC list: stored with status
 * 'dnc'), "failed" (rows refused), "error_count" (all errors; "errors" lists the first 1000) and
 * "errors_truncated". rows = imported + skipped_duplicates + failed. "row" is the line of the
 * file where the record starts, the header being line 1 (see campaign/lead_csv.h); "column" is
 * the header name as written, or null for a wrong number of fields.
 * -ENOENT when the campaign does not exist; -EINVAL when the file cannot be
 * read as CSV at all (empty, not UTF-8, no phone column, unbalanced quotes at end of file...)
 * with a sentence in err; or a store error. `req` is the API request for the audit row (NULL
 * for the CLI).
 */
int rv_lead_import_csv(struct rv_app *app, const struct rv_http_req *req, int64_t campaign_id,
                       const char *data, size_t len, json_t **report, char *err, size_t errlen);

/*
 * `revovoice import-leads --campaign ID FILE.csv`: argv holds the arguments after the command
 * name (argc of them). Reads FILE (at most cfg->http_max_upload bytes), imports it as above,
 * prints the report JSON on stdout. Returns the exit status: 0 when the file was processed
 * (even with row errors), 1 when the file could not be read or imported or the campaign does
 * not exist, 2 for a usage error; each failure has a sentence on stderr.
 */
int rv_lead_import_cli(struct rv_app *app, int argc, char **argv);

#endif
