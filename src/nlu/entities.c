/* Entity extraction from spoken-form text: see entities.h. */
#include "nlu/entities.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "core/phone.h"

#define MAX_TEXT 2000
#define MAX_TOK  400

struct tok {
	char w[40];
	size_t start, end;
	bool num;     /* all digits (separators of phone-style runs removed) */
	bool decimal; /* "2.5" */
	bool clock;   /* "3:30" */
	bool used;
};

struct ctx {
	const char *text;
	struct tok t[MAX_TOK];
	size_t n;
	struct rv_entity *out;
	size_t max, nout;
	const struct rv_entity_ctx *ec;
};

const char *rv_entity_type_name(enum rv_entity_type t)
{
	static const char *const names[] = {"datetime", "number", "digits", "money",
	                                    "phone",    "email",  "yesno",  "name"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* ---- Tokens ---- */

static void add_tok(struct ctx *c, const char *w, size_t len, size_t start, size_t end)
{
	if (c->n >= MAX_TOK || len == 0)
		return;
	struct tok *t = &c->t[c->n++];
	memset(t, 0, sizeof(*t));
	if (len >= sizeof(t->w))
		len = sizeof(t->w) - 1;
	memcpy(t->w, w, len);
	t->start = start;
	t->end = end;
}

/*
 * Words (lower case, apostrophes dropped: "o'clock" = "oclock"), digit runs (phone-style
 * separators inside them removed: "555-0100" = "5550100"; "3:30" and "2.5" kept whole), and
 * the symbols @ $ + and the currency signs € £ ₹ as tokens of their own.
 */
static void tokenize(struct ctx *c)
{
	const char *s = c->text;
	size_t len = strnlen(s, MAX_TEXT);
	for (size_t i = 0; i < len;) {
		unsigned char ch = (unsigned char)s[i];
		if (isalpha(ch)) {
			char w[40];
			size_t wl = 0, st = i;
			while (i < len && (isalpha((unsigned char)s[i]) || s[i] == '\'')) {
				if (s[i] != '\'' && wl < sizeof(w) - 1)
					w[wl++] = (char)tolower((unsigned char)s[i]);
				i++;
			}
			add_tok(c, w, wl, st, i);
		} else if (isdigit(ch)) {
			char w[40];
			size_t wl = 0, st = i;
			bool clock = false, decimal = false;
			while (i < len) {
				if (isdigit((unsigned char)s[i])) {
					if (wl < sizeof(w) - 1)
						w[wl++] = s[i];
					i++;
				} else if (s[i] == ':' && !clock && !decimal && wl <= 2 &&
				           i + 2 < len + 1 && isdigit((unsigned char)s[i + 1]) &&
				           isdigit((unsigned char)s[i + 2])) {
					w[wl++] = ':';
					clock = true;
					i++;
				} else if (s[i] == '.' && !clock && !decimal && i + 1 < len &&
				           isdigit((unsigned char)s[i + 1]) &&
				           (i + 2 >= len || !isdigit((unsigned char)s[i + 2]) ||
				            i + 3 >= len || !isdigit((unsigned char)s[i + 3]))) {
					w[wl++] = '.';
					decimal = true;
					i++;
				} else if ((s[i] == '-' || s[i] == '.' || s[i] == ' ') && !clock &&
				           !decimal && i + 1 < len &&
				           isdigit((unsigned char)s[i + 1]) && wl >= 3) {
					/* "555-0100", "415 555 0100": one phone-style run. */
					size_t k = i + 1;
					while (k < len && isdigit((unsigned char)s[k]))
						k++;
					if (k - (i + 1) < 3)
						break;
					i++;
				} else {
					break;
				}
			}
			add_tok(c, w, wl, st, i);
			struct tok *t = &c->t[c->n - 1];
			t->clock = clock;
			t->decimal = decimal;
			t->num = !clock && !decimal;
		} else if (ch == '@' || ch == '$' || ch == '+') {
			add_tok(c, (const char *)&s[i], 1, i, i + 1);
			i++;
		} else if (ch == 0xE2 && i + 2 < len && (unsigned char)s[i + 1] == 0x82 &&
		           (unsigned char)s[i + 2] == 0xAC) {
			add_tok(c, "eur", 3, i, i + 3);
			i += 3;
		} else if (ch == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] == 0xA3) {
			add_tok(c, "gbp", 3, i, i + 2);
			i += 2;
		} else if (ch == 0xE2 && i + 2 < len && (unsigned char)s[i + 1] == 0x82 &&
		           (unsigned char)s[i + 2] == 0xB9) {
			add_tok(c, "inr", 3, i, i + 3);
			i += 3;
		} else {
			i++;
		}
	}
}

static bool is(const struct ctx *c, size_t i, const char *w)
{
	return i < c->n && strcmp(c->t[i].w, w) == 0;
}

static bool in_list(const char *w, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(w, *list) == 0)
			return true;
	return false;
}

static void emit(struct ctx *c, enum rv_entity_type type, const char *value, const char *unit,
                 size_t ti, size_t tj)
{
	for (size_t k = ti; k < tj; k++)
		c->t[k].used = true;
	if (c->nout >= c->max || ti >= tj)
		return;
	struct rv_entity *e = &c->out[c->nout++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	snprintf(e->value, sizeof(e->value), "%s", value);
	snprintf(e->unit, sizeof(e->unit), "%s", unit ? unit : "");
	e->start = c->t[ti].start;
	e->end = c->t[tj - 1].end;
	size_t len = e->end - e->start;
	if (len >= sizeof(e->text))
		len = sizeof(e->text) - 1;
	memcpy(e->text, c->text + e->start, len);
	e->text[len] = '\0';
}

/* ---- Numbers ---- */

static int unit_of(const char *w)
{
	static const char *const u[] = {"zero", "one",   "two",   "three", "four", "five",
	                                "six",  "seven", "eight", "nine",  NULL};
	for (int i = 0; u[i]; i++)
		if (strcmp(w, u[i]) == 0)
			return i;
	return -1;
}

static int teen_of(const char *w)
{
	static const char *const t[] = {"ten",      "eleven",   "twelve",  "thirteen",
	                                "fourteen", "fifteen",  "sixteen", "seventeen",
	                                "eighteen", "nineteen", NULL};
	for (int i = 0; t[i]; i++)
		if (strcmp(w, t[i]) == 0)
			return 10 + i;
	return -1;
}

static int tens_of(const char *w)
{
	static const char *const t[] = {"twenty",  "thirty", "forty",  "fifty", "sixty",
	                                "seventy", "eighty", "ninety", NULL};
	for (int i = 0; t[i]; i++)
		if (strcmp(w, t[i]) == 0)
			return 20 + 10 * i;
	return -1;
}

/* "first".."thirty first": the day number, or -1. Sets *used to the tokens taken. */
static int ordinal_at(const struct ctx *c, size_t i, size_t *used)
{
	static const char *const o[] = {
	    "first",      "second",     "third",     "fourth",    "fifth",       "sixth",
	    "seventh",    "eighth",     "ninth",     "tenth",     "eleventh",    "twelfth",
	    "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
	    "nineteenth", "twentieth",  NULL};
	if (i >= c->n)
		return -1;
	const char *w = c->t[i].w;
	if (c->t[i].num && i + 1 < c->n &&
	    in_list(c->t[i + 1].w, (const char *const[]){"st", "nd", "rd", "th", NULL})) {
		*used = 2;
		return atoi(w);
	}
	for (int k = 0; o[k]; k++) {
		if (strcmp(w, o[k]) == 0) {
			*used = 1;
			return k + 1;
		}
	}
	if (strcmp(w, "thirtieth") == 0) {
		*used = 1;
		return 30;
	}
	int tens = tens_of(w);
	if ((tens == 20 || tens == 30) && i + 1 < c->n) {
		size_t u2 = 0;
		int d = ordinal_at(c, i + 1, &u2);
		if (d >= 1 && d <= 9 && u2 == 1) {
			*used = 2;
			return tens + d;
		}
	}
	return -1;
}

/* Is token i a number word or digits? */
static bool numberish(const struct ctx *c, size_t i)
{
	if (i >= c->n)
		return false;
	const char *w = c->t[i].w;
	return c->t[i].num || c->t[i].decimal || unit_of(w) >= 0 || teen_of(w) >= 0 ||
	       tens_of(w) >= 0 || strcmp(w, "hundred") == 0 || strcmp(w, "thousand") == 0 ||
	       strcmp(w, "million") == 0 || strcmp(w, "oh") == 0 || strcmp(w, "double") == 0 ||
	       strcmp(w, "triple") == 0;
}

/*
 * Digits read one by one: "seven six two nine", "oh", "double five", literal digit runs next
 * to each other. Writes the digit string; returns the tokens taken (0 unless at least two
 * spoken digits or one literal run of two or more).
 */
static size_t digit_seq(const struct ctx *c, size_t i, char *out, size_t outlen)
{
	size_t j = i, n = 0, spoken = 0, literal_runs = 0;
	out[0] = '\0';
	while (j < c->n && n + 12 < outlen) {
		const char *w = c->t[j].w;
		int rep = 1;
		if ((strcmp(w, "double") == 0 || strcmp(w, "triple") == 0) && j + 1 < c->n &&
		    (unit_of(c->t[j + 1].w) >= 0 || strcmp(c->t[j + 1].w, "oh") == 0)) {
			rep = w[0] == 'd' ? 2 : 3;
			j++;
			w = c->t[j].w;
		}
		int u = strcmp(w, "oh") == 0 ? 0 : unit_of(w);
		if (u >= 0) {
			for (int r = 0; r < rep; r++)
				out[n++] = (char)('0' + u);
			spoken++;
			j++;
		} else if (c->t[j].num && rep == 1) {
			size_t l = strlen(w);
			if (n + l + 1 >= outlen)
				break;
			memcpy(out + n, w, l);
			n += l;
			literal_runs++;
			j++;
		} else {
			break;
		}
	}
	out[n] = '\0';
	/* Digits said one by one, or a literal run that reads as a code rather than a quantity
	 * (five digits or more, or a leading zero); "42" alone is a number. */
	bool code = spoken + literal_runs >= 2 || (literal_runs == 1 && (n >= 5 || out[0] == '0'));
	return (spoken >= 2 || code) && n >= 2 ? j - i : 0;
}

/* A cardinal: "one hundred and twenty", "five thousand", "twenty one", "250", "2.5". Writes
 * the value as text; returns the tokens taken, 0 when there is no number at i. */
static size_t cardinal(const struct ctx *c, size_t i, char *out, size_t outlen, double *val)
{
	if (i >= c->n)
		return 0;
	if (c->t[i].num || c->t[i].decimal) {
		double v = strtod(c->t[i].w, NULL);
		size_t j = i + 1;
		if (is(c, j, "thousand") || is(c, j, "million")) {
			v *= c->t[j].w[0] == 't' ? 1e3 : 1e6;
			j++;
		}
		*val = v;
		snprintf(out, outlen, "%.15g", v);
		return j - i;
	}
	/* Years said in pairs: "nineteen eighty five", "twenty twenty six", "two thousand ..." is
	 * an ordinary cardinal below. */
	int hi = teen_of(c->t[i].w);
	if (hi < 0 && strcmp(c->t[i].w, "twenty") == 0)
		hi = 20;
	if (hi >= 11 && i + 1 < c->n) {
		int lo_t = tens_of(c->t[i + 1].w), lo = -1;
		size_t take = 0;
		if (lo_t >= 20) {
			int u = i + 2 < c->n ? unit_of(c->t[i + 2].w) : -1;
			lo = lo_t + (u > 0 ? u : 0);
			take = u > 0 ? 3 : 2;
		} else if (teen_of(c->t[i + 1].w) >= 10) {
			lo = teen_of(c->t[i + 1].w);
			take = 2;
		} else if (strcmp(c->t[i + 1].w, "oh") == 0 && i + 2 < c->n &&
		           unit_of(c->t[i + 2].w) > 0) {
			lo = unit_of(c->t[i + 2].w);
			take = 3;
		}
		if (lo >= 0) {
			*val = hi * 100 + lo;
			snprintf(out, outlen, "%d", hi * 100 + lo);
			return take;
		}
	}
	long total = 0, cur = 0;
	size_t j = i;
	int last = 0; /* 1 unit, 2 teen, 3 tens, 4 scale */
	bool any = false;
	while (j < c->n) {
		const char *w = c->t[j].w;
		int u = unit_of(w), tn = teen_of(w), ts = tens_of(w);
		if (strcmp(w, "a") == 0 && !any &&
		    (is(c, j + 1, "hundred") || is(c, j + 1, "thousand"))) {
			cur = 1;
			any = true;
			last = 1;
		} else if (u >= 0 && (last == 0 || last == 3 || last == 4)) {
			cur += u;
			last = 1;
		} else if (tn >= 0 && (last == 0 || last == 4) && cur % 100 == 0) {
			cur += tn;
			last = 2;
		} else if (ts >= 0 && (last == 0 || last == 4) && cur % 100 == 0) {
			cur += ts;
			last = 3;
		} else if (strcmp(w, "hundred") == 0 && any && cur > 0 && cur < 100) {
			cur *= 100;
			last = 4;
		} else if ((strcmp(w, "thousand") == 0 || strcmp(w, "million") == 0) && any) {
			total += (cur ? cur : 1) * (w[0] == 't' ? 1000 : 1000000);
			cur = 0;
			last = 4;
		} else if (strcmp(w, "and") == 0 && any && last == 4 && j + 1 < c->n &&
		           (unit_of(c->t[j + 1].w) >= 0 || teen_of(c->t[j + 1].w) >= 0 ||
		            tens_of(c->t[j + 1].w) >= 0)) {
			j++;
			continue;
		} else {
			break;
		}
		any = true;
		j++;
	}
	if (!any)
		return 0;
	*val = (double)(total + cur);
	snprintf(out, outlen, "%ld", total + cur);
	return j - i;
}

/* ---- Email ---- */

static const char *const TLDS[] = {"com", "org", "net", "io", "co", "uk",   "edu", "gov", "us",
                                   "in",  "de",  "fr",  "ca", "au", "info", "biz", NULL};
static const char *const EMAIL_STOP[] = {"is",   "email", "address", "at",  "my",   "its",   "to",
                                         "send", "me",    "use",     "the", "mail", "reach", "it",
                                         "and",  "or",    "you",     "can", "e",    NULL};

/* Append one spoken email token to buf: "dot" ".", "underscore" "_", "dash" "-", digits. */
static bool email_piece(const struct ctx *c, size_t k, char *buf, size_t *bl, size_t cap)
{
	const char *w = c->t[k].w;
	const char *add = w;
	char d[2] = {0};
	if (strcmp(w, "dot") == 0 || strcmp(w, "period") == 0 || strcmp(w, "point") == 0)
		add = ".";
	else if (strcmp(w, "underscore") == 0)
		add = "_";
	else if (strcmp(w, "dash") == 0 || strcmp(w, "hyphen") == 0)
		add = "-";
	else if (unit_of(w) >= 0 && !c->t[k].num) {
		d[0] = (char)('0' + unit_of(w));
		add = d;
	} else if (!isalnum((unsigned char)w[0]))
		return false;
	size_t l = strlen(add);
	if (*bl + l + 1 >= cap)
		return false;
	memcpy(buf + *bl, add, l);
	*bl += l;
	buf[*bl] = '\0';
	return true;
}

static void find_emails(struct ctx *c)
{
	for (size_t i = 1; i + 1 < c->n; i++) {
		if (!(is(c, i, "at") || is(c, i, "@")))
			continue;
		/* Domain: pieces up to a known top-level domain after a "dot". */
		char dom[96] = "";
		size_t dl = 0, j = i + 1, end = 0;
		while (j < c->n && j < i + 12) {
			if (!email_piece(c, j, dom, &dl, sizeof(dom)))
				break;
			j++;
			if (dl > 1 && j >= i + 3 &&
			    (is(c, j - 2, "dot") || is(c, j - 2, "period")) &&
			    in_list(c->t[j - 1].w, TLDS) && !is(c, j, "dot"))
				end = j;
		}
		if (!end)
			continue;
		/* Recompute the domain up to end. */
		dl = 0;
		dom[0] = '\0';
		for (size_t k = i + 1; k < end; k++)
			email_piece(c, k, dom, &dl, sizeof(dom));
		/* Local part: back from "at" to a stop word. */
		size_t s = i;
		while (s > 0 && i - s < 10 && !c->t[s - 1].used &&
		       !in_list(c->t[s - 1].w, EMAIL_STOP))
			s--;
		if (s == i)
			continue;
		char loc[96] = "";
		size_t ll = 0;
		bool ok = true;
		for (size_t k = s; k < i && ok; k++)
			ok = email_piece(c, k, loc, &ll, sizeof(loc));
		if (!ok || loc[0] == '.' || loc[ll - 1] == '.')
			continue;
		char v[200];
		snprintf(v, sizeof(v), "%s@%s", loc, dom);
		for (char *p = v; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		emit(c, RV_ENT_EMAIL, v, NULL, s, end);
		i = end;
	}
}

/* ---- Money ---- */

static const char *currency_of(const char *w)
{
	static const struct {
		const char *w, *iso;
	} cur[] = {{"dollar", "USD"}, {"dollars", "USD"}, {"bucks", "USD"}, {"buck", "USD"},
	           {"usd", "USD"},    {"euro", "EUR"},    {"euros", "EUR"}, {"eur", "EUR"},
	           {"pound", "GBP"},  {"pounds", "GBP"},  {"gbp", "GBP"},   {"quid", "GBP"},
	           {"rupee", "INR"},  {"rupees", "INR"},  {"inr", "INR"}};
	for (size_t i = 0; i < sizeof(cur) / sizeof(cur[0]); i++)
		if (strcmp(w, cur[i].w) == 0)
			return cur[i].iso;
	return NULL;
}

static void find_money(struct ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->t[i].used)
			continue;
		const char *iso = NULL;
		size_t s = i, j = i;
		if (is(c, i, "$") || is(c, i, "eur") || is(c, i, "gbp") || is(c, i, "inr")) {
			iso = c->t[i].w[0] == '$'   ? "USD"
			      : c->t[i].w[0] == 'e' ? "EUR"
			      : c->t[i].w[0] == 'g' ? "GBP"
			                            : "INR";
			j = i + 1;
		}
		char num[48];
		double v = 0;
		size_t used = cardinal(c, j, num, sizeof(num), &v);
		if (!used)
			continue;
		j += used;
		if (!iso) {
			if (j >= c->n || !(iso = currency_of(c->t[j].w)))
				continue;
			j++;
		}
		/* "... and fifty cents" */
		if (is(c, j, "and") && j + 2 < c->n + 1) {
			char cn[48];
			double cv = 0;
			size_t cu = cardinal(c, j + 1, cn, sizeof(cn), &cv);
			if (cu && (is(c, j + 1 + cu, "cents") || is(c, j + 1 + cu, "cent")) &&
			    cv < 100) {
				v += cv / 100.0;
				j += 2 + cu;
			}
		}
		char val[48];
		snprintf(val, sizeof(val), "%.2f", v);
		emit(c, RV_ENT_MONEY, val, iso, s, j);
		i = j - 1;
	}
}

/* ---- Date and time ---- */

struct civil {
	int y, m, d, h, mi;
};

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
static long days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, int *y, int *m, int *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = yoe + era * 400;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

static const char *const WEEKDAYS[] = {"monday", "tuesday",  "wednesday", "thursday",
                                       "friday", "saturday", "sunday",    NULL};
static const char *const MONTHS[] = {"january",  "february", "march",  "april",     "may",
                                     "june",     "july",     "august", "september", "october",
                                     "november", "december", NULL};

static int index_in(const char *w, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(w, list[i]) == 0)
			return i;
	return -1;
}

struct dt {
	bool have_date, have_time, rel_time;
	bool time_default; /* the time comes from "morning"/"evening" alone, not a clock */
	long day;          /* days since epoch, local */
	int h, mi;         /* 24 h */
	int period;        /* 0 none, 1 am, 2 pm */
	bool hour_ambiguous;
	int64_t delta_min;  /* "in N hours/minutes" */
	size_t first, last; /* token span */
	bool any;
};

static void span(struct dt *d, size_t i, size_t j)
{
	if (!d->any || i < d->first)
		d->first = i;
	if (!d->any || j > d->last)
		d->last = j;
	d->any = true;
}

/* A clock time at i: "3", "3:30", "three", "three thirty", "ten fifteen", "noon". Returns
 * tokens taken; sets hour (0-23 or 1-12 ambiguous) and minutes. */
static size_t clock_at(const struct ctx *c, size_t i, int *h, int *mi)
{
	if (i >= c->n)
		return 0;
	const struct tok *t = &c->t[i];
	if (t->clock) {
		int hh = atoi(t->w), mm = atoi(strchr(t->w, ':') + 1);
		if (hh > 23 || mm > 59)
			return 0;
		*h = hh;
		*mi = mm;
		return 1;
	}
	int hh = -1;
	if (t->num && strlen(t->w) <= 2)
		hh = atoi(t->w);
	else if (t->num && strlen(t->w) <= 4) {
		/* "1530" */
		int v = atoi(t->w);
		if (v / 100 <= 23 && v % 100 <= 59) {
			*h = v / 100;
			*mi = v % 100;
			return 1;
		}
		return 0;
	} else if (unit_of(t->w) > 0)
		hh = unit_of(t->w);
	else if (teen_of(t->w) >= 10 && teen_of(t->w) <= 12)
		hh = teen_of(t->w);
	if (hh < 0 || hh > 23)
		return 0;
	*h = hh;
	*mi = 0;
	size_t used = 1;
	/* Minutes: "thirty", "fifteen", "forty five", "oh five", "45" */
	if (i + 1 < c->n) {
		const char *w = c->t[i + 1].w;
		int ts = tens_of(w), tn = teen_of(w);
		if (ts >= 20 && ts <= 50) {
			int u = i + 2 < c->n ? unit_of(c->t[i + 2].w) : -1;
			*mi = ts + (u > 0 ? u : 0);
			used = u > 0 ? 3 : 2;
		} else if (tn >= 10) {
			*mi = tn;
			used = 2;
		} else if (strcmp(w, "oh") == 0 && i + 2 < c->n && unit_of(c->t[i + 2].w) > 0) {
			*mi = unit_of(c->t[i + 2].w);
			used = 3;
		} else if (c->t[i + 1].num && strlen(w) == 2 && atoi(w) < 60 && !t->num) {
			*mi = atoi(w);
			used = 2;
		}
	}
	return used;
}

/* am/pm markers after a time: "pm", "p m", "in the afternoon", "oclock". */
static size_t period_at(const struct ctx *c, size_t i, int *period)
{
	if (is(c, i, "am") || (is(c, i, "a") && is(c, i + 1, "m"))) {
		*period = 1;
		return is(c, i, "am") ? 1 : 2;
	}
	if (is(c, i, "pm") || (is(c, i, "p") && is(c, i + 1, "m"))) {
		*period = 2;
		return is(c, i, "pm") ? 1 : 2;
	}
	if (is(c, i, "oclock"))
		return 1;
	return 0;
}

static void parse_datetime(struct ctx *c, long today, int wday /* 0 = Monday */, int cy, int cm,
                           int cd, struct dt *d)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->t[i].used)
			continue;
		const char *w = c->t[i].w;
		int k;
		size_t used = 0;
		if (strcmp(w, "today") == 0 || strcmp(w, "tonight") == 0) {
			d->have_date = true;
			d->day = today;
			if (w[2] == 'n' && !d->period)
				d->period = 2; /* tonight */
			span(d, i, i + 1);
		} else if (strcmp(w, "tomorrow") == 0) {
			d->have_date = true;
			d->day = today + 1;
			size_t s = i;
			if (i >= 3 && is(c, i - 3, "the") && is(c, i - 2, "day") &&
			    is(c, i - 1, "after")) {
				d->day = today + 2;
				s = i - 3;
			} else if (i >= 2 && is(c, i - 2, "day") && is(c, i - 1, "after")) {
				d->day = today + 2;
				s = i - 2;
			}
			span(d, s, i + 1);
		} else if ((k = index_in(w, WEEKDAYS)) >= 0) {
			bool next = i > 0 && is(c, i - 1, "next");
			long delta = (k - wday + 7) % 7;
			if (delta == 0)
				delta = 7;
			if (next && delta < 7) {
				/* "next X": X in the following Monday-to-Sunday week. */
				long monday_next = today - wday + 7;
				delta = monday_next + k - today;
			}
			d->have_date = true;
			d->day = today + delta;
			span(d, next ? i - 1 : i, i + 1);
		} else if (strcmp(w, "week") == 0 && i > 0 && is(c, i - 1, "next")) {
			d->have_date = true;
			d->day = today - wday + 7;
			span(d, i - 1, i + 1);
		} else if (strcmp(w, "weekend") == 0) {
			d->have_date = true;
			d->day = today + ((5 - wday + 7) % 7);
			span(d, i > 0 && (is(c, i - 1, "this") || is(c, i - 1, "the")) ? i - 1 : i,
			     i + 1);
		} else if ((k = index_in(w, MONTHS)) >= 0 &&
		           !(k == 4 && i > 0 && !numberish(c, i + 1) &&
		             ordinal_at(c, i + 1, &used) < 0)) {
			/* "march third", "march 3", "third of march", "3 march" */
			int day = -1;
			size_t s = i, e = i + 1;
			if ((day = ordinal_at(c, i + 1, &used)) > 0) {
				e = i + 1 + used;
			} else if (i + 1 < c->n && c->t[i + 1].num && atoi(c->t[i + 1].w) <= 31) {
				day = atoi(c->t[i + 1].w);
				e = i + 2;
			} else if (i >= 2 && is(c, i - 1, "of")) {
				for (size_t b = 1; b <= 3 && b + 1 <= i; b++) {
					size_t u2 = 0;
					int dd = ordinal_at(c, i - 1 - b, &u2);
					if (dd > 0 && i - 1 - b + u2 == i - 1) {
						day = dd;
						s = i - 1 - b;
						break;
					}
				}
			} else if (i >= 1 && c->t[i - 1].num && atoi(c->t[i - 1].w) <= 31) {
				day = atoi(c->t[i - 1].w);
				s = i - 1;
			}
			if (day < 1)
				day = 1;
			int y = cy;
			if (k + 1 < cm || (k + 1 == cm && day < cd))
				y++;
			if (day > days_in_month(y, k + 1))
				continue;
			d->have_date = true;
			d->day = days_from_civil(y, k + 1, day);
			if (s > 0 && is(c, s - 1, "the"))
				s--;
			if (s > 0 && is(c, s - 1, "on"))
				s--;
			span(d, s, e);
			i = e - 1;
		} else if ((is(c, i, "the") || is(c, i, "on")) && !d->have_date) {
			size_t j = is(c, i, "on") && is(c, i + 1, "the") ? i + 2 : i + 1;
			int day = ordinal_at(c, j, &used);
			if (day < 1 || day > 31 ||
			    index_in(j + used < c->n ? c->t[j + used].w : "", MONTHS) >= 0 ||
			    is(c, j + used, "of"))
				continue;
			int y = cy, m = cm;
			if (day < cd) {
				if (++m > 12) {
					m = 1;
					y++;
				}
			}
			if (day > days_in_month(y, m))
				continue;
			d->have_date = true;
			d->day = days_from_civil(y, m, day);
			span(d, i, j + used);
			i = j + used - 1;
		} else if (strcmp(w, "in") == 0 && i + 2 < c->n + 1) {
			char num[32];
			double v = 0;
			size_t j = i + 1;
			size_t cu = 0;
			if (is(c, j, "an") || is(c, j, "a")) {
				v = 1;
				cu = 1;
			} else if (is(c, j, "half") && is(c, j + 1, "an") && is(c, j + 2, "hour")) {
				d->delta_min = 30;
				d->rel_time = true;
				span(d, i, j + 3);
				continue;
			} else {
				cu = cardinal(c, j, num, sizeof(num), &v);
			}
			if (!cu || v <= 0 || v > 1000)
				continue;
			j += cu;
			const char *u = j < c->n ? c->t[j].w : "";
			if (strncmp(u, "minute", 6) == 0) {
				d->delta_min = (int64_t)v;
				d->rel_time = true;
			} else if (strncmp(u, "hour", 4) == 0) {
				d->delta_min = (int64_t)(v * 60);
				d->rel_time = true;
			} else if (strncmp(u, "day", 3) == 0) {
				d->have_date = true;
				d->day = today + (long)v;
			} else if (strncmp(u, "week", 4) == 0) {
				d->have_date = true;
				d->day = today + 7 * (long)v;
			} else {
				continue;
			}
			span(d, i, j + 1);
			i = j;
		} else if (strcmp(w, "noon") == 0 || strcmp(w, "midday") == 0 ||
		           strcmp(w, "midnight") == 0) {
			d->have_time = true;
			d->time_default = false;
			d->h = w[1] == 'i' && w[3] == 'n' ? 0 : 12;
			d->mi = 0;
			d->hour_ambiguous = false;
			span(d, i > 0 && is(c, i - 1, "at") ? i - 1 : i, i + 1);
		} else if ((strcmp(w, "half") == 0 || strcmp(w, "quarter") == 0) &&
		           (is(c, i + 1, "past") || is(c, i + 1, "after") || is(c, i + 1, "to"))) {
			int h = 0, mi = 0;
			size_t cu = clock_at(c, i + 2, &h, &mi);
			if (!cu || h < 1 || h > 12)
				continue;
			bool to = is(c, i + 1, "to");
			d->have_time = true;
			d->time_default = false;
			d->h = to ? h - 1 : h;
			d->mi = w[0] == 'h' ? 30 : (to ? 45 : 15);
			if (d->h == 0)
				d->h = 12;
			d->hour_ambiguous = true;
			size_t e = i + 2 + cu;
			e += period_at(c, e, &d->period);
			span(d, i > 0 && is(c, i - 1, "at") ? i - 1 : i, e);
			i = e - 1;
		} else if (strcmp(w, "morning") == 0 || strcmp(w, "afternoon") == 0 ||
		           strcmp(w, "evening") == 0 || strcmp(w, "night") == 0 ||
		           strcmp(w, "lunch") == 0 || strcmp(w, "lunchtime") == 0) {
			/* "good morning", "have a nice evening": a greeting, not a time. */
			static const char *const praise[] = {"good",     "nice",      "great",
			                                     "lovely",   "wonderful", "fine",
			                                     "pleasant", NULL};
			if (i > 0 && in_list(c->t[i - 1].w, praise))
				continue;
			if (w[0] == 'm')
				d->period = 1;
			else if (w[0] != 'l')
				d->period = 2;
			if (!d->have_time) {
				/* A part of the day alone names a time of its own. */
				d->h = w[0] == 'm' ? 9 : w[0] == 'a' ? 14 : w[0] == 'l' ? 12 : 18;
				d->mi = 0;
				if (w[0] == 'l' && i > 0 && is(c, i - 1, "after"))
					d->h = 13;
			}
			size_t s = i;
			while (s > 0 &&
			       (is(c, s - 1, "the") || is(c, s - 1, "in") || is(c, s - 1, "this") ||
			        is(c, s - 1, "after") || is(c, s - 1, "at")))
				s--;
			span(d, s, i + 1);
			if (!d->have_time) {
				d->have_time = true;
				d->time_default = true;
				d->hour_ambiguous = false;
			}
		} else if (strcmp(w, "at") == 0 || strcmp(w, "around") == 0 ||
		           strcmp(w, "by") == 0 || c->t[i].clock ||
		           (numberish(c, i) && (period_at(c, i + 1, &k) > 0))) {
			size_t j = c->t[i].clock || numberish(c, i) ? i : i + 1;
			if (is(c, j, "about") || is(c, j, "around"))
				j++;
			int h = 0, mi = 0;
			size_t cu = j < c->n && !c->t[j].used ? clock_at(c, j, &h, &mi) : 0;
			if (!cu)
				continue;
			char dg[48];
			if (!c->t[j].clock && digit_seq(c, j, dg, sizeof(dg)) && strlen(dg) >= 4)
				continue; /* "reach me at four one five ...": a number, not a time
				           */
			int per = 0;
			size_t pu = period_at(c, j + cu, &per);
			if (h > 12 && per)
				continue;
			/* A bare number after "at" that is not followed by a time word could be an
			 * address ("at 42 oak street"): accept 1-12 and clock forms only. */
			if (!c->t[j].clock && h > 12 && !pu)
				continue;
			d->have_time = true;
			d->time_default = false;
			d->h = h;
			d->mi = mi;
			if (per)
				d->period = per;
			d->hour_ambiguous = h >= 1 && h <= 12;
			span(d, i, j + cu + pu);
			i = j + cu + pu - 1;
		}
	}
}

/* Local civil time -> epoch ms and UTC offset, with the zone's rules. */
static int zone_resolve(UCalendar *cal, const struct civil *t, int64_t *ms, int *off_min)
{
	UErrorCode st = U_ZERO_ERROR;
	ucal_clear(cal);
	ucal_setDateTime(cal, t->y, t->m - 1, t->d, t->h, t->mi, 0, &st);
	UDate u = ucal_getMillis(cal, &st);
	int32_t zo = ucal_get(cal, UCAL_ZONE_OFFSET, &st);
	int32_t dst = ucal_get(cal, UCAL_DST_OFFSET, &st);
	if (U_FAILURE(st))
		return -EINVAL;
	*ms = (int64_t)u;
	*off_min = (zo + dst) / 60000;
	return 0;
}

static void find_datetime(struct ctx *c, UCalendar *cal)
{
	UErrorCode st = U_ZERO_ERROR;
	ucal_setMillis(cal, (UDate)c->ec->now_ms, &st);
	int cy = ucal_get(cal, UCAL_YEAR, &st), cm = ucal_get(cal, UCAL_MONTH, &st) + 1;
	int cd = ucal_get(cal, UCAL_DATE, &st), ch = ucal_get(cal, UCAL_HOUR_OF_DAY, &st);
	int cmi = ucal_get(cal, UCAL_MINUTE, &st);
	if (U_FAILURE(st))
		return;
	long today = days_from_civil(cy, cm, cd);
	int wday = (int)(((today % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday (3) */

	struct dt d = {0};
	parse_datetime(c, today, wday, cy, cm, cd, &d);
	if (!d.any)
		return;

	struct civil t = {0};
	bool with_time = d.have_time || d.rel_time;
	if (d.rel_time) {
		int64_t ms = c->ec->now_ms + d.delta_min * 60000;
		ucal_setMillis(cal, (UDate)ms, &st);
		t.y = ucal_get(cal, UCAL_YEAR, &st);
		t.m = ucal_get(cal, UCAL_MONTH, &st) + 1;
		t.d = ucal_get(cal, UCAL_DATE, &st);
		t.h = ucal_get(cal, UCAL_HOUR_OF_DAY, &st);
		t.mi = ucal_get(cal, UCAL_MINUTE, &st);
	} else {
		int h = d.h;
		int period = d.period;
		if (d.have_time && !d.time_default && d.hour_ambiguous) {
			if (period == 2 && h < 12)
				h += 12;
			else if (period == 1 && h == 12)
				h = 0;
			else if (period == 0 && h >= 1 && h <= 7)
				h += 12; /* "at three" on a business call means 3 pm */
		}
		long day = d.have_date ? d.day : today;
		if (!d.have_date && d.have_time && (h < ch || (h == ch && d.mi <= cmi)))
			day++; /* a time already past today means tomorrow */
		civil_from_days(day, &t.y, &t.m, &t.d);
		t.h = h;
		t.mi = d.mi;
	}
	char v[64];
	if (with_time) {
		int64_t ms;
		int off;
		if (zone_resolve(cal, &t, &ms, &off) != 0)
			return;
		int ao = off < 0 ? -off : off;
		snprintf(v, sizeof(v), "%04d-%02d-%02dT%02d:%02d:00%c%02d:%02d", t.y, t.m, t.d, t.h,
		         t.mi, off < 0 ? '-' : '+', ao / 60, ao % 60);
	} else {
		snprintf(v, sizeof(v), "%04d-%02d-%02d", t.y, t.m, t.d);
	}
	emit(c, RV_ENT_DATETIME, v, NULL, d.first, d.last);
}

/* ---- Phones, digit strings and plain numbers ---- */

static void find_numbers(struct ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->t[i].used || !(numberish(c, i) || is(c, i, "+") || is(c, i, "plus")))
			continue;
		size_t s = i, j = i;
		bool plus = false;
		if (is(c, i, "+") || is(c, i, "plus")) {
			plus = true;
			j++;
		}
		char digits[48];
		size_t used = digit_seq(c, j, digits, sizeof(digits));
		/* Digit groups spoken as numbers: "four one five, five five five, zero one
		 * hundred" are rare; literal and one-by-one digits are what STT writes. */
		if (used) {
			size_t nd = strlen(digits);
			char e164[24];
			const char *why = NULL;
			char in[56];
			snprintf(in, sizeof(in), "%s%s", plus ? "+" : "", digits);
			if (nd >= 7 && nd <= 15 &&
			    rv_phone_e164(in, c->ec->region ? c->ec->region : "US", e164,
			                  sizeof(e164), &why) == 0) {
				emit(c, RV_ENT_PHONE, e164, NULL, s, j + used);
			} else {
				emit(c, RV_ENT_DIGITS, digits, NULL, plus ? s + 1 : s, j + used);
			}
			i = j + used - 1;
			continue;
		}
		if (plus)
			continue;
		char num[48];
		double v = 0;
		used = cardinal(c, i, num, sizeof(num), &v);
		if (!used)
			continue;
		/* "no one", "that one": a pronoun. "the last four digits": a count of what follows,
		 * not a value the caller gave. */
		static const char *const det[] = {"no",    "that", "this",    "which",
		                                  "any",   "some", "every",   "each",
		                                  "other", "the",  "another", NULL};
		static const char *const counted[] = {"digits", "digit", "letters", "numbers",
		                                      NULL};
		bool pronoun = used == 1 && strcmp(c->t[i].w, "one") == 0 && i > 0 &&
		               in_list(c->t[i - 1].w, det);
		bool count = i + used < c->n && in_list(c->t[i + used].w, counted);
		if (!pronoun && !count)
			emit(c, RV_ENT_NUMBER, num, NULL, i, i + used);
		i += used - 1;
	}
}

/* ---- Yes/no and names ---- */

static void find_yesno(struct ctx *c)
{
	static const char *const fill[] = {"uh", "um", "well", "oh", "ah", "er", NULL};
	static const char *const yes[] = {
	    "yes",        "yeah",      "yep",         "yup", "sure", "correct", "absolutely",
	    "definitely", "certainly", "affirmative", "ok",  "okay", NULL};
	static const char *const no[] = {"no", "nope", "nah", "negative", NULL};
	size_t i = 0;
	while (i < c->n && in_list(c->t[i].w, fill))
		i++;
	if (i >= c->n || c->t[i].used)
		return;
	if (in_list(c->t[i].w, yes) ||
	    (is(c, i, "that") && is(c, i + 1, "s") && is(c, i + 2, "right")))
		emit(c, RV_ENT_YESNO, "yes", NULL, i, i + 1);
	else if (in_list(c->t[i].w, no) || (is(c, i, "not") && is(c, i + 1, "really")))
		emit(c, RV_ENT_YESNO, "no", NULL, i, i + 1);
}

static void find_name(struct ctx *c)
{
	static const char *const stop[] = {"my",   "name", "is",   "its", "this", "im",
	                                   "i",    "am",   "call", "me",  "the",  "it",
	                                   "uh",   "um",   "well", "yes", "yeah", "speaking",
	                                   "here", "a",    "and",  "of",  NULL};
	size_t s = 0;
	for (size_t i = 0; i + 1 < c->n; i++) {
		if ((is(c, i, "name") && is(c, i + 1, "is")) ||
		    (is(c, i, "this") && is(c, i + 1, "is")) || is(c, i, "im") || is(c, i, "its")) {
			s = is(c, i, "im") || is(c, i, "its") ? i + 1 : i + 2;
			break;
		}
	}
	while (s < c->n && in_list(c->t[s].w, stop))
		s++;
	size_t e = s;
	while (e < c->n && e < s + 3 && !c->t[e].used && isalpha((unsigned char)c->t[e].w[0]) &&
	       !in_list(c->t[e].w, stop) && strcmp(c->t[e].w, "speaking") != 0)
		e++;
	if (e == s)
		return;
	char v[96] = "";
	size_t vl = 0;
	for (size_t k = s; k < e; k++) {
		int wrote = snprintf(v + vl, sizeof(v) - vl, "%s%c%s", vl ? " " : "",
		                     toupper((unsigned char)c->t[k].w[0]), c->t[k].w + 1);
		if (wrote < 0 || (size_t)wrote >= sizeof(v) - vl)
			break;
		vl += (size_t)wrote;
	}
	emit(c, RV_ENT_NAME, v, NULL, s, e);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct rv_entity *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

int rv_entities_extract(const char *text, const struct rv_entity_ctx *ec, struct rv_entity *out,
                        size_t max, size_t *n)
{
	*n = 0;
	UErrorCode st = U_ZERO_ERROR;
	UChar zone[64];
	const char *tz = ec->timezone && *ec->timezone ? ec->timezone : "UTC";
	if (strlen(tz) >= sizeof(zone))
		return -EINVAL;
	u_uastrcpy(zone, tz);
	/* ICU falls back to GMT for names it does not know; refuse those instead. */
	UChar canon[64];
	UBool system = false;
	ucal_getCanonicalTimeZoneID(zone, -1, canon, 64, &system, &st);
	if (U_FAILURE(st) || !system)
		return -EINVAL;
	UCalendar *cal = ucal_open(zone, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
	if (U_FAILURE(st) || !cal)
		return -EINVAL;
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		ucal_close(cal);
		return -ENOMEM;
	}
	c->text = text ? text : "";
	c->out = out;
	c->max = max;
	c->ec = ec;
	tokenize(c);
	/* Most specific first: each claims its tokens so later passes skip them. */
	find_emails(c);
	find_money(c);
	find_datetime(c, cal);
	find_numbers(c);
	find_yesno(c);
	if (ec->expect_name)
		find_name(c);
	qsort(out, c->nout, sizeof(*out), cmp_ent);
	*n = c->nout;
	free(c);
	ucal_close(cal);
	return 0;
}
