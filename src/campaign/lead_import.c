/*
 * Lead import: the parsed CSV (lead_csv.c) written into a campaign in one transaction, with one
 * audit row, metrics and a report; and the `revovoice import-leads` command.
 *
 * Numbers on the DNC list are imported, not refused: the lead row records that the file listed
 * them (status 'dnc', so the scheduler never dials them) and the report counts them in "dnc".
 * Refusing them would make the same file look different every time the DNC list changes.
 */
#include "campaign/lead_import.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/audit.h"
#include "campaign/lead_csv.h"
#include "core/app.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "store/store.h"

#define COMP "import"

/*
 * The DNC lookup rides in the insert so each lead costs one statement; ON CONFLICT DO NOTHING
 * with RETURNING yields no row for a phone the campaign already has (a skipped duplicate).
 */
static const char insert_sql[] =
    "INSERT INTO leads (campaign_id, phone, first_name, last_name, email, timezone, "
    "custom_fields, status, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "CASE WHEN EXISTS (SELECT 1 FROM dnc WHERE phone = $2) THEN 'dnc' ELSE 'new' END, $8, $8) "
    "ON CONFLICT (campaign_id, phone) DO NOTHING RETURNING status";

static void register_metrics(void)
{
	/* Registering again is a no-op, and doing it here survives rv_metrics_reset(). */
	rv_metrics_register("rv_leads_imported_total", RV_METRIC_COUNTER,
	                    "Leads inserted by CSV imports.", NULL, NULL, 0);
	rv_metrics_register("rv_lead_import_errors_total", RV_METRIC_COUNTER,
	                    "CSV import problems: refused rows and refused files, by reason.",
	                    "reason", NULL, 0);
}

/* The campaign's default region for phone numbers; -ENOENT when there is no such campaign. */
static int campaign_region(struct rv_db *db, int64_t id, char *region, size_t len)
{
	struct rv_val p[] = {RV_VINT(id)};
	struct rv_rows *rows = NULL;
	int ret = rv_db_exec(db, "SELECT default_country FROM campaigns WHERE id = $1", p, 1, &rows,
	                     NULL);
	if (ret)
		goto out;
	if (rows->nrows == 0) {
		ret = -ENOENT;
		goto out;
	}
	const struct rv_val *v = rv_rows_at(rows, 0, 0);
	rv_strlcpy(region, v->type == RV_VAL_TEXT ? v->s : "", len);
out:
	rv_rows_free(rows);
	return ret;
}

static void store_err(char *err, size_t errlen, const char *what, int ret)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, rv_store_strerror(ret));
}

/* Inserts every parsed lead; counts what happened to each. */
static int insert_leads(struct rv_db *db, int64_t campaign_id, const struct rv_lead_csv *csv,
                        size_t *imported, size_t *dups, size_t *dnc)
{
	char now[40];
	int ret = 0;

	rv_time_iso_now(now, sizeof(now));
	for (size_t i = 0; i < csv->nleads; i++) {
		const struct rv_lead_csv_lead *l = &csv->leads[i];
		struct rv_val p[] = {
		    RV_VINT(campaign_id),       RV_VTEXT(l->phone), RV_VTEXT(l->first_name),
		    RV_VTEXT(l->last_name),     RV_VTEXT(l->email), RV_VTEXT(l->timezone),
		    RV_VTEXT(l->custom_fields), RV_VTEXT(now),
		};
		struct rv_rows *rows = NULL;
		ret = rv_db_exec(db, insert_sql, p, RV_ARRAY_LEN(p), &rows, NULL);
		if (ret) {
			rv_logf(RV_LOG_ERROR, COMP, "inserting the lead of row %zu failed: %s (%s)",
			        l->row, rv_store_strerror(ret), rv_db_errmsg(db));
			rv_rows_free(rows);
			return ret;
		}
		if (rows->nrows == 0) {
			(*dups)++;
		} else {
			const struct rv_val *st = rv_rows_at(rows, 0, 0);
			(*imported)++;
			if (st->type == RV_VAL_TEXT && strcmp(st->s, "dnc") == 0)
				(*dnc)++;
		}
		rv_rows_free(rows);
	}
	return 0;
}

int rv_lead_import_csv(struct rv_app *app, const struct rv_http_req *req, int64_t campaign_id,
                       const char *data, size_t len, json_t **report, char *err, size_t errlen)
{
	struct rv_db *db = NULL;
	struct rv_lead_csv *csv = NULL;
	json_t *details = NULL, *rep = NULL;
	const char *reason = NULL;
	char region[16];
	size_t imported = 0, dups = 0, dnc = 0;
	int in_tx = 0;
	uint64_t t0 = rv_time_mono_ns();
	int ret;

	register_metrics();
	if (err && errlen)
		err[0] = '\0';

	ret = rv_store_acquire(app->store, &db);
	if (ret) {
		store_err(err, errlen, "the store is unavailable", ret);
		goto out;
	}
	ret = campaign_region(db, campaign_id, region, sizeof(region));
	/* The connection goes back to the pool while the file is parsed. */
	rv_store_release(app->store, db);
	db = NULL;
	if (ret == -ENOENT) {
		if (err && errlen)
			snprintf(err, errlen, "campaign %" PRId64 " does not exist", campaign_id);
		goto out;
	} else if (ret) {
		store_err(err, errlen, "reading the campaign failed", ret);
		goto out;
	}
	if (!rv_phone_region_valid(region)) {
		const char *fallback =
		    app->cfg && app->cfg->default_country ? app->cfg->default_country : "US";
		rv_logf(RV_LOG_WARN, COMP,
		        "campaign %" PRId64 " has an unknown default_country \"%.8s\"; using %s",
		        campaign_id, region, fallback);
		rv_strlcpy(region, fallback, sizeof(region));
	}

	ret = rv_lead_csv_parse(data, len, region, &csv, err, errlen, &reason);
	if (ret) {
		rv_metrics_inc("rv_lead_import_errors_total", 1, reason ? reason : "unknown", NULL);
		rv_logf(RV_LOG_WARN, COMP, "campaign %" PRId64 ": file refused: %s", campaign_id,
		        err && errlen ? err : "");
		goto out;
	}

	ret = rv_store_acquire(app->store, &db);
	if (ret) {
		store_err(err, errlen, "the store is unavailable", ret);
		goto out;
	}
	ret = rv_db_begin(db);
	if (ret) {
		store_err(err, errlen, "starting the import transaction failed", ret);
		goto out;
	}
	in_tx = 1;
	/* Again inside the transaction: the campaign may have been deleted meanwhile. */
	ret = campaign_region(db, campaign_id, region, sizeof(region));
	if (ret == -ENOENT) {
		if (err && errlen)
			snprintf(err, errlen, "campaign %" PRId64 " does not exist", campaign_id);
		goto out;
	} else if (ret) {
		store_err(err, errlen, "reading the campaign failed", ret);
		goto out;
	}
	ret = insert_leads(db, campaign_id, csv, &imported, &dups, &dnc);
	if (ret) {
		store_err(err, errlen, "inserting leads failed", ret);
		goto out;
	}
	dups += csv->skipped_duplicates;
	details =
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "campaign_id", (json_int_t)campaign_id,
	              "rows", (json_int_t)csv->rows, "imported", (json_int_t)imported,
	              "skipped_duplicates", (json_int_t)dups, "dnc", (json_int_t)dnc, "failed",
	              (json_int_t)csv->failed_rows, "error_count", (json_int_t)csv->nerrors);
	if (!details) {
		ret = -ENOMEM;
		goto out;
	}
	ret = rv_audit(db, req, "import", "campaigns", campaign_id, details);
	if (ret) {
		store_err(err, errlen, "writing the audit row failed", ret);
		goto out;
	}
	/* The report is built before the commit so nothing can fail after it. */
	rep = json_deep_copy(details);
	if (!rep || json_object_set(rep, "errors", csv->errors) ||
	    json_object_set_new(rep, "errors_truncated",
	                        json_boolean(csv->nerrors > json_array_size(csv->errors)))) {
		ret = -ENOMEM;
		goto out;
	}
	ret = rv_db_commit(db);
	if (ret) {
		store_err(err, errlen, "committing the import failed", ret);
		goto out;
	}
	in_tx = 0;
	if (imported)
		rv_metrics_inc("rv_leads_imported_total", (double)imported, NULL);
	for (int r = 0; r < RV_LEAD_CSV_NREASONS; r++)
		if (csv->reason_counts[r])
			rv_metrics_inc("rv_lead_import_errors_total", (double)csv->reason_counts[r],
			               rv_lead_csv_reason_name(r), NULL);
	rv_logf(RV_LOG_INFO, COMP,
	        "campaign %" PRId64 ": %zu rows, %zu imported (%zu dnc), %zu duplicates skipped, "
	        "%zu rows refused, %.1f ms",
	        campaign_id, csv->rows, imported, dnc, dups, csv->failed_rows,
	        (double)(rv_time_mono_ns() - t0) / 1e6);
	*report = rep;
	rep = NULL;
out:
	if (in_tx && rv_db_rollback(db) != 0)
		rv_logf(RV_LOG_ERROR, COMP, "rolling back the import failed: %s", rv_db_errmsg(db));
	if (db)
		rv_store_release(app->store, db);
	if (ret == -ENOMEM && err && errlen && !err[0])
		snprintf(err, errlen, "out of memory");
	json_decref(rep);
	json_decref(details);
	rv_lead_csv_free(csv);
	return ret;
}

/* Reads a whole file (or stdin for "-") of at most cap bytes into a malloc'd buffer. */
static int read_capped(const char *path, int64_t cap, char **out, size_t *outlen, char *err,
                       size_t errlen)
{
	int own = strcmp(path, "-") != 0;
	int fd = own ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	char *buf = NULL;
	size_t len = 0, size = 0;
	int ret = 0;
	struct stat st;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > cap) {
		snprintf(err, errlen, "%s is %lld bytes; the upload cap (http.max_upload) is %lld",
		         path, (long long)st.st_size, (long long)cap);
		ret = -EFBIG;
		goto out;
	}
	while (1) {
		if (len == size) {
			size_t nsize = size ? size * 2 : 65536;
			if (nsize > (size_t)cap + 1)
				nsize = (size_t)cap + 1;
			if (nsize <= size) {
				snprintf(
				    err, errlen,
				    "%s is larger than the upload cap (http.max_upload) of %lld "
				    "bytes",
				    path, (long long)cap);
				ret = -EFBIG;
				goto out;
			}
			char *nb = realloc(buf, nsize + 1);
			if (!nb) {
				snprintf(err, errlen, "%s: out of memory", path);
				ret = -ENOMEM;
				goto out;
			}
			buf = nb;
			size = nsize;
		}
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if ((int64_t)len > cap) {
		snprintf(err, errlen,
		         "%s is larger than the upload cap (http.max_upload) of %lld bytes", path,
		         (long long)cap);
		ret = -EFBIG;
		goto out;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	if (own)
		close(fd);
	free(buf);
	return ret;
}

int rv_lead_import_cli(struct rv_app *app, int argc, char **argv)
{
	static const char usage[] = "usage: revovoice import-leads --campaign ID FILE.csv\n";
	const char *campaign = NULL, *file = NULL;
	char err[512], *data = NULL;
	size_t len = 0;
	int64_t id;
	json_t *report = NULL;
	int status = 1, ret;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--campaign") == 0 && i + 1 < argc) {
			campaign = argv[++i];
		} else if (strncmp(argv[i], "--campaign=", 11) == 0) {
			campaign = argv[i] + 11;
		} else if ((argv[i][0] == '-' && argv[i][1] != '\0') || file) {
			fprintf(stderr, "revovoice import-leads: unexpected argument \"%s\"\n%s",
			        argv[i], usage);
			return 2;
		} else {
			file = argv[i];
		}
	}
	if (!campaign || !file) {
		fprintf(stderr, "revovoice import-leads: %s\n%s",
		        !campaign ? "--campaign ID is required" : "the CSV file is required",
		        usage);
		return 2;
	}
	if (rv_parse_int64(campaign, 1, INT64_MAX, &id) != 0) {
		fprintf(stderr, "revovoice import-leads: \"%s\" is not a campaign id\n", campaign);
		return 2;
	}
	int64_t cap = app->cfg ? app->cfg->http_max_upload : 0;
	if (cap <= 0)
		cap = 20 << 20;
	if (read_capped(file, cap, &data, &len, err, sizeof(err)) != 0) {
		fprintf(stderr, "revovoice import-leads: %s\n", err);
		goto out;
	}
	ret = rv_lead_import_csv(app, NULL, id, data, len, &report, err, sizeof(err));
	if (ret == -ENOENT) {
		fprintf(stderr, "revovoice import-leads: %s\n", err);
		goto out;
	} else if (ret == -EINVAL) {
		fprintf(stderr, "revovoice import-leads: %s: %s\n", file, err);
		goto out;
	} else if (ret) {
		fprintf(stderr, "revovoice import-leads: %s\n", err[0] ? err : strerror(-ret));
		goto out;
	}
	if (json_dumpf(report, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
	    fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "revovoice import-leads: writing the report failed\n");
		goto out;
	}
	status = 0;
out:
	json_decref(report);
	free(data);
	return status;
}
