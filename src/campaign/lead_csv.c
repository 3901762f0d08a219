/*
 * CSV lead files -> validated leads (libcsv). See lead_csv.h for the contract and the row
 * numbering convention.
 *
 * libcsv runs in strict mode (CSV_STRICT | CSV_STRICT_FINI): a stray quote inside an unquoted
 * field, text after a closing quote, or a quote still open at the end of the file stops the
 * parse. After such an error the field boundaries of the rest of the file are guesswork, so the
 * whole file is refused with the line where it happened rather than importing garbled leads.
 * CSV_APPEND_NULL is not used: fields are copied by length into our own buffers, and NUL bytes
 * are refused up front, so every copied field is a proper C string.
 *
 * Lines (ended by LF, CRLF or a lone CR) are fed to libcsv one at a time so the line number is
 * known when a record ends; the line where it started is that minus the line breaks inside its
 * quoted fields.
 */
#include "campaign/lead_csv.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/phone.h"
#include "core/util.h"

enum col_kind { K_CUSTOM = 0, K_PHONE, K_FIRST, K_LAST, K_EMAIL, K_TZ, K_NKINDS };

static const char *const kind_names[K_NKINDS] = {"custom",    "phone", "first_name",
                                                 "last_name", "email", "timezone"};

/* Header aliases, compared after trimming, lower-casing and turning ' ' and '-' into '_'. */
static const struct {
	const char *name;
	enum col_kind kind;
} aliases[] = {
    {"phone", K_PHONE},     {"phone_number", K_PHONE},
    {"mobile", K_PHONE},    {"number", K_PHONE},
    {"telephone", K_PHONE}, {"first_name", K_FIRST},
    {"firstname", K_FIRST}, {"given_name", K_FIRST},
    {"last_name", K_LAST},  {"lastname", K_LAST},
    {"surname", K_LAST},    {"family_name", K_LAST},
    {"email", K_EMAIL},     {"e_mail", K_EMAIL},
    {"timezone", K_TZ},     {"time_zone", K_TZ},
    {"tz", K_TZ},
};

static const char *const reason_names[RV_LEAD_CSV_NREASONS] = {
    "columns", "phone", "email", "timezone", "field_too_long",
};

const char *rv_lead_csv_reason_name(enum rv_lead_csv_reason r)
{
	return (unsigned)r < RV_LEAD_CSV_NREASONS ? reason_names[r] : "unknown";
}

struct field {
	char *buf; /* NUL-terminated copy of the field */
	size_t cap;
	size_t len;
	int too_long;
};

struct ctx {
	const char *region;
	struct field *f; /* RV_LEAD_CSV_MAX_COLS reusable slots */
	size_t nf;       /* fields in the current record (may pass the cap) */
	size_t rec_nl;   /* newlines inside the current record's fields */
	size_t line;     /* line being fed, 1-based */
	size_t last_end_line;

	int have_header;
	size_t ncols;
	char **names; /* header names as written (trimmed) */
	enum col_kind *kind;

	struct rv_lead_csv *res;
	size_t leads_cap;
	json_t *seen;  /* phones already taken in this file */
	json_t *zones; /* time zone name -> true/false, so each is checked on disk once */

	int fatal; /* -EINVAL or -ENOMEM once the file is refused */
	char *err;
	size_t errlen;
	const char *reason;
};

/* The longest prefix of s, at most max bytes, that ends on a UTF-8 character boundary. */
static int clip(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return (int)n;
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return (int)max;
}

/* snprintf may cut a multi-byte character at the end of a short buffer; drop the remnant. */
static void fix_utf8_tail(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && !rv_utf8_valid(s, n))
		s[--n] = '\0';
}

__attribute__((format(printf, 3, 4))) static void fail(struct ctx *c, const char *reason,
                                                       const char *fmt, ...)
{
	if (c->fatal)
		return;
	c->fatal = -EINVAL;
	c->reason = reason;
	if (c->err && c->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
}

static void fail_nomem(struct ctx *c)
{
	if (c->fatal)
		return;
	c->fatal = -ENOMEM;
	c->reason = "out_of_memory";
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "out of memory while reading the file");
}

static int is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Trims ASCII white space in place; returns the start inside buf and the new length. */
static char *trim(char *buf, size_t *len)
{
	size_t n = *len;
	while (n > 0 && is_ws(buf[n - 1]))
		n--;
	buf[n] = '\0';
	while (*buf && is_ws(*buf)) {
		buf++;
		n--;
	}
	*len = n;
	return buf;
}

/*
 * The end of the line starting at pos: just past its LF, CRLF or lone CR (old Mac exports),
 * or len. *brk says whether a line break ended it.
 */
static size_t line_end(const char *data, size_t len, size_t pos, int *brk)
{
	size_t end = pos;
	while (end < len && data[end] != '\n' && data[end] != '\r')
		end++;
	*brk = end < len;
	if (!*brk)
		return end;
	if (data[end] == '\r' && end + 1 < len && data[end + 1] == '\n')
		end++;
	return end + 1;
}

/* Line breaks inside a field, counted the way line_end() counts them. */
static size_t count_breaks(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\n' || (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n')))
			n++;
	return n;
}

static enum col_kind header_kind(const char *name)
{
	char key[32];
	size_t n = strlen(name);
	if (n >= sizeof(key))
		return K_CUSTOM;
	for (size_t i = 0; i <= n; i++) {
		char ch = name[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		else if (ch == ' ' || ch == '-')
			ch = '_';
		key[i] = ch;
	}
	for (size_t i = 0; i < RV_ARRAY_LEN(aliases); i++)
		if (strcmp(key, aliases[i].name) == 0)
			return aliases[i].kind;
	return K_CUSTOM;
}

int rv_lead_csv_timezone_valid(const char *tz)
{
	char path[256], magic[4];
	size_t n = tz ? strlen(tz) : 0;
	int fd, ok = 0;
	struct stat st;

	if (n == 0 || n > RV_LEAD_CSV_MAX_TZ || tz[0] == '/' || tz[n - 1] == '/' ||
	    strstr(tz, "..") || strstr(tz, "//"))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = tz[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '/' || ch == '_' || ch == '+' || ch == '-'))
			return 0;
	}
	snprintf(path, sizeof(path), "%s/%s", RV_LEAD_CSV_ZONEINFO, tz);
	/* O_NONBLOCK: a FIFO planted in the tree must not hang the import. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	/* Only compiled zone files count; zone.tab, tzdata.zi and friends live there too. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 &&
	    memcmp(magic, "TZif", 4) == 0)
		ok = 1;
	close(fd);
	return ok;
}

static int email_local_char(unsigned char ch)
{
	if (ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return 1;
	return ch && strchr("!#$%&'*+/=?^_`{|}~.-", ch) != NULL;
}

static int email_domain_char(unsigned char ch)
{
	return ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-';
}

int rv_lead_csv_email_valid(const char *e)
{
	size_t n = e ? strlen(e) : 0;
	if (n < 3 || n > 254)
		return 0;
	const char *at = strchr(e, '@');
	if (!at || strchr(at + 1, '@'))
		return 0;
	size_t ll = (size_t)(at - e);
	if (ll == 0 || ll > 64 || e[0] == '.' || at[-1] == '.')
		return 0;
	for (size_t i = 0; i < ll; i++) {
		if (!email_local_char((unsigned char)e[i]))
			return 0;
		if (e[i] == '.' && e[i + 1] == '.')
			return 0;
	}
	/* The domain: two or more dot-separated labels of 1..63 characters, no edge hyphens. */
	const char *d = at + 1;
	size_t labels = 0;
	while (1) {
		size_t k = 0;
		while (d[k] && d[k] != '.') {
			if (!email_domain_char((unsigned char)d[k]))
				return 0;
			k++;
		}
		if (k == 0 || k > 63 || d[0] == '-' || d[k - 1] == '-')
			return 0;
		labels++;
		if (!d[k])
			break;
		d += k + 1;
	}
	return labels >= 2;
}

/* Records a row error; every error is counted, the first RV_LEAD_CSV_MAX_ERRORS are listed. */
static void row_error(struct ctx *c, size_t row, const char *column, enum rv_lead_csv_reason r,
                      const char *msg)
{
	struct rv_lead_csv *res = c->res;
	res->nerrors++;
	res->reason_counts[r]++;
	if (json_array_size(res->errors) >= RV_LEAD_CSV_MAX_ERRORS)
		return;
	json_t *e =
	    json_pack("{s:I, s:s?, s:s}", "row", (json_int_t)row, "column", column, "message", msg);
	if (!e || json_array_append_new(res->errors, e) != 0)
		fail_nomem(c);
}

static void on_header(struct ctx *c)
{
	size_t n = c->nf;

	if (n > RV_LEAD_CSV_MAX_COLS) {
		fail(c, "too_many_columns", "the header has %zu columns; at most %d are allowed", n,
		     RV_LEAD_CSV_MAX_COLS);
		return;
	}
	c->names = calloc(n, sizeof(*c->names));
	c->kind = calloc(n, sizeof(*c->kind));
	if (!c->names || !c->kind) {
		fail_nomem(c);
		return;
	}
	c->ncols = n;
	for (size_t i = 0; i < n; i++) {
		struct field *f = &c->f[i];
		if (f->too_long) {
			fail(c, "bad_header", "header column %zu is longer than %d bytes", i + 1,
			     RV_LEAD_CSV_MAX_FIELD);
			return;
		}
		size_t len = f->len;
		char *name = trim(f->buf, &len);
		if (len == 0) {
			fail(c, "bad_header",
			     "header column %zu is empty; every column needs a name", i + 1);
			return;
		}
		c->names[i] = strdup(name);
		if (!c->names[i]) {
			fail_nomem(c);
			return;
		}
		c->kind[i] = header_kind(name);
		for (size_t j = 0; j < i; j++) {
			if (c->kind[i] != K_CUSTOM && c->kind[j] == c->kind[i]) {
				fail(c, "duplicate_header",
				     "header columns \"%.*s\" and \"%.*s\" both name the %s field",
				     clip(c->names[j], 40), c->names[j], clip(name, 40), name,
				     kind_names[c->kind[i]]);
				return;
			}
			if (c->kind[i] == K_CUSTOM && c->kind[j] == K_CUSTOM &&
			    strcasecmp(c->names[j], name) == 0) {
				fail(c, "duplicate_header",
				     "header column \"%.*s\" appears more than once (columns %zu "
				     "and "
				     "%zu)",
				     clip(name, 40), name, j + 1, i + 1);
				return;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		if (c->kind[i] == K_PHONE) {
			c->have_header = 1;
			return;
		}
	fail(c, "no_phone_column",
	     "no phone column: the header needs one named phone, phone_number, mobile, number or "
	     "telephone");
}

static int record_empty(const struct ctx *c)
{
	if (c->nf > RV_LEAD_CSV_MAX_COLS)
		return 0;
	for (size_t i = 0; i < c->nf; i++) {
		const struct field *f = &c->f[i];
		if (f->too_long)
			return 0;
		for (size_t k = 0; k < f->len; k++)
			if (!is_ws(f->buf[k]))
				return 0;
	}
	return 1;
}

static int add_lead(struct ctx *c, const struct rv_lead_csv_lead *l)
{
	struct rv_lead_csv *res = c->res;
	if (res->nleads == c->leads_cap) {
		size_t cap = c->leads_cap ? c->leads_cap * 2 : 64;
		struct rv_lead_csv_lead *p = realloc(res->leads, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		res->leads = p;
		c->leads_cap = cap;
	}
	res->leads[res->nleads++] = *l;
	return 0;
}

static void lead_free(struct rv_lead_csv_lead *l)
{
	free(l->phone);
	free(l->first_name);
	free(l->last_name);
	free(l->email);
	free(l->timezone);
	free(l->custom_fields);
}

static void on_row(struct ctx *c, size_t row)
{
	struct rv_lead_csv *res = c->res;
	const char *std[K_NKINDS] = {0};
	char e164[32] = "", msg[160];
	int bad = 0;
	json_t *custom = NULL;
	char *cf = NULL;
	struct rv_lead_csv_lead lead = {0};

	if (record_empty(c))
		return;
	if (++res->rows > RV_LEAD_CSV_MAX_ROWS) {
		fail(c, "too_many_rows",
		     "the file has more than %d data rows; split it into smaller "
		     "files",
		     RV_LEAD_CSV_MAX_ROWS);
		return;
	}
	if (c->nf != c->ncols) {
		snprintf(msg, sizeof(msg), "expected %zu fields as in the header, found %zu",
		         c->ncols, c->nf);
		row_error(c, row, NULL, RV_LEAD_CSV_R_COLUMNS, msg);
		res->failed_rows++;
		return;
	}
	custom = json_object();
	if (!custom) {
		fail_nomem(c);
		return;
	}
	for (size_t i = 0; i < c->ncols; i++) {
		struct field *f = &c->f[i];
		if (f->too_long) {
			snprintf(msg, sizeof(msg), "field is longer than %d bytes",
			         RV_LEAD_CSV_MAX_FIELD);
			row_error(c, row, c->names[i], RV_LEAD_CSV_R_TOO_LONG, msg);
			bad = 1;
			continue;
		}
		if (c->kind[i] == K_CUSTOM) {
			/* Whole-file UTF-8 and NUL checks make every field a valid string. */
			if (json_object_set_new(custom, c->names[i],
			                        json_stringn(f->buf, f->len))) {
				fail_nomem(c);
				goto out;
			}
			continue;
		}
		size_t len = f->len;
		std[c->kind[i]] = trim(f->buf, &len);
	}

	const char *phone = std[K_PHONE];
	const char *why = NULL;
	const char *phone_col = NULL;
	for (size_t i = 0; i < c->ncols; i++)
		if (c->kind[i] == K_PHONE)
			phone_col = c->names[i];
	if (phone && !*phone) {
		row_error(c, row, phone_col, RV_LEAD_CSV_R_PHONE, "missing phone number");
		bad = 1;
	} else if (phone && rv_phone_e164(phone, c->region, e164, sizeof(e164), &why) != 0) {
		snprintf(msg, sizeof(msg), "invalid phone number: %s", why ? why : "unknown");
		row_error(c, row, phone_col, RV_LEAD_CSV_R_PHONE, msg);
		bad = 1;
	}
	for (size_t i = 0; i < c->ncols; i++) {
		const char *v = std[c->kind[i]];
		if (c->kind[i] == K_EMAIL && v && *v && !rv_lead_csv_email_valid(v)) {
			row_error(c, row, c->names[i], RV_LEAD_CSV_R_EMAIL,
			          "not a valid e-mail address");
			bad = 1;
		}
		if ((c->kind[i] == K_FIRST || c->kind[i] == K_LAST) && v &&
		    strlen(v) > RV_LEAD_CSV_MAX_NAME) {
			snprintf(msg, sizeof(msg), "longer than %d bytes", RV_LEAD_CSV_MAX_NAME);
			row_error(c, row, c->names[i], RV_LEAD_CSV_R_TOO_LONG, msg);
			bad = 1;
		}
		if (c->kind[i] == K_TZ && v && *v) {
			json_t *known = json_object_get(c->zones, v);
			int ok;
			if (known) {
				ok = json_is_true(known);
			} else {
				ok = rv_lead_csv_timezone_valid(v);
				if (json_object_set_new(c->zones, v, json_boolean(ok))) {
					fail_nomem(c);
					goto out;
				}
			}
			if (!ok) {
				row_error(c, row, c->names[i], RV_LEAD_CSV_R_TIMEZONE,
				          "unknown time zone: use an IANA name such as "
				          "America/New_York");
				bad = 1;
			}
		}
	}
	cf = json_dumps(custom, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!cf) {
		fail_nomem(c);
		goto out;
	}
	/* The API caps custom_fields at the same size, so an imported lead stays editable. */
	if (strlen(cf) > RV_LEAD_CSV_MAX_CUSTOM) {
		snprintf(msg, sizeof(msg),
		         "the other columns add up to more than %d bytes of custom fields",
		         RV_LEAD_CSV_MAX_CUSTOM);
		row_error(c, row, NULL, RV_LEAD_CSV_R_TOO_LONG, msg);
		bad = 1;
	}
	if (bad) {
		res->failed_rows++;
		goto out;
	}
	if (json_object_get(c->seen, e164)) {
		res->skipped_duplicates++;
		goto out;
	}
	if (json_object_set_new(c->seen, e164, json_true())) {
		fail_nomem(c);
		goto out;
	}
	lead.row = row;
	lead.phone = strdup(e164);
	lead.first_name = strdup(std[K_FIRST] ? std[K_FIRST] : "");
	lead.last_name = strdup(std[K_LAST] ? std[K_LAST] : "");
	lead.email = strdup(std[K_EMAIL] ? std[K_EMAIL] : "");
	lead.timezone = strdup(std[K_TZ] ? std[K_TZ] : "");
	lead.custom_fields = cf;
	cf = NULL;
	if (!lead.phone || !lead.first_name || !lead.last_name || !lead.email || !lead.timezone ||
	    add_lead(c, &lead) != 0) {
		lead_free(&lead);
		fail_nomem(c);
	}
out:
	free(cf);
	json_decref(custom);
}

static void field_cb(void *s, size_t len, void *data)
{
	struct ctx *c = data;
	if (c->fatal)
		return;
	size_t i = c->nf++;
	if (s)
		c->rec_nl += count_breaks(s, len);
	if (i >= RV_LEAD_CSV_MAX_COLS)
		return;
	struct field *f = &c->f[i];
	f->len = 0;
	f->too_long = len > RV_LEAD_CSV_MAX_FIELD;
	if (f->too_long)
		return;
	if (f->cap < len + 1) {
		size_t cap = f->cap ? f->cap : 64;
		while (cap < len + 1)
			cap *= 2;
		char *b = realloc(f->buf, cap);
		if (!b) {
			fail_nomem(c);
			return;
		}
		f->buf = b;
		f->cap = cap;
	}
	if (len)
		memcpy(f->buf, s, len);
	f->buf[len] = '\0';
	f->len = len;
}

static void record_cb(int term, void *data)
{
	struct ctx *c = data;
	if (!c->fatal) {
		size_t start = c->rec_nl < c->line ? c->line - c->rec_nl : 1;
		c->last_end_line = c->line;
		if (!c->have_header) {
			/* Blank-looking lines before the header are skipped like any empty row. */
			if (!record_empty(c))
				on_header(c);
		} else {
			on_row(c, start);
		}
	}
	c->nf = 0;
	c->rec_nl = 0;
}

/* Refuses text that is not UTF-8 or holds NUL bytes, naming the first bad line. */
static int check_text(struct ctx *c, const char *data, size_t len)
{
	size_t line = 1, pos = 0;
	int brk;
	while (pos < len) {
		size_t end = line_end(data, len, pos, &brk);
		size_t n = end - pos;
		if (memchr(data + pos, '\0', n)) {
			fail(
			    c, "not_text",
			    "line %zu contains NUL bytes: the file is binary or UTF-16; save it as "
			    "CSV UTF-8",
			    line);
			return -EINVAL;
		}
		if (!rv_utf8_valid(data + pos, n)) {
			fail(c, "not_utf8",
			     "line %zu is not valid UTF-8: save the file as CSV UTF-8", line);
			return -EINVAL;
		}
		pos = end;
		line++;
	}
	return 0;
}

void rv_lead_csv_free(struct rv_lead_csv *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->nleads; i++)
		lead_free(&res->leads[i]);
	free(res->leads);
	json_decref(res->errors);
	free(res);
}

int rv_lead_csv_parse(const char *data, size_t len, const char *default_region,
                      struct rv_lead_csv **out, char *err, size_t errlen, const char **reason)
{
	struct ctx c = {.region = default_region, .line = 1, .err = err, .errlen = errlen};
	struct csv_parser p;
	int parser_ready = 0;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!data)
		len = 0;
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
		data += 3;
		len -= 3;
	}
	if (check_text(&c, data, len) != 0)
		goto done;

	c.res = calloc(1, sizeof(*c.res));
	c.f = calloc(RV_LEAD_CSV_MAX_COLS, sizeof(*c.f));
	c.seen = json_object();
	c.zones = json_object();
	if (!c.res || !c.f || !c.seen || !c.zones || !(c.res->errors = json_array()) ||
	    csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
		fail_nomem(&c);
		goto done;
	}
	parser_ready = 1;

	size_t pos = 0;
	int brk = 0;
	while (pos < len && !c.fatal) {
		size_t n = line_end(data, len, pos, &brk) - pos;
		if (csv_parse(&p, data + pos, n, field_cb, record_cb, &c) != n) {
			if (csv_error(&p) == CSV_EPARSE)
				fail(&c, "malformed_csv",
				     "line %zu: malformed quoting (a quote inside an unquoted "
				     "field, "
				     "or text after a closing quote)",
				     c.line);
			else
				fail_nomem(&c);
			break;
		}
		pos += n;
		if (brk)
			c.line++;
	}
	if (!c.fatal && csv_fini(&p, field_cb, record_cb, &c) != 0) {
		if (c.last_end_line)
			fail(&c, "malformed_csv",
			     "a quoted field opened after line %zu is never closed before the end "
			     "of the file",
			     c.last_end_line);
		else
			fail(&c, "malformed_csv",
			     "a quoted field in the header is never closed before the end of the "
			     "file");
	}
	if (!c.fatal && !c.have_header)
		fail(&c, "no_header",
		     "the file is empty: a header row naming the columns is required");

done:
	ret = c.fatal;
	if (parser_ready)
		csv_free(&p);
	if (c.f) {
		for (size_t i = 0; i < RV_LEAD_CSV_MAX_COLS; i++)
			free(c.f[i].buf);
		free(c.f);
	}
	for (size_t i = 0; c.names && i < c.ncols; i++)
		free(c.names[i]);
	free(c.names);
	free(c.kind);
	json_decref(c.seen);
	json_decref(c.zones);
	if (ret) {
		rv_lead_csv_free(c.res);
		if (err && errlen)
			fix_utf8_tail(err);
		if (reason)
			*reason = c.reason;
		return ret;
	}
	*out = c.res;
	return 0;
}
