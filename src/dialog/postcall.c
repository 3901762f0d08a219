/* Post-call analysis: disposition, summary, fields, sentiment trend. See postcall.h. */
#include "dialog/postcall.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dialog/llm.h"

#define LOG "postcall"

#define MAX_KEY         3
#define MAX_SENTENCE    400  /* bytes of one quoted caller sentence */
#define MAX_SUMMARY     1200 /* bytes of the summary */
#define MAX_TRANSCRIPT  (12 * 1024)
#define INTENT_CONF     0.45 /* as the flow engine acts on an intent */
#define TREND_THRESHOLD 0.15

/* Intents that say nothing about the call's content. */
static const char *const BLAND[] = {"affirm",       "deny",        "greeting", "goodbye", "repeat",
                                    "out_of_scope", "who_is_this", "is_robot", NULL};
static const char *const STOP[] = {
    "the",  "a",    "an",  "and",   "or",     "but",    "i",     "im",   "you", "it",   "its",
    "is",   "am",   "are", "was",   "to",     "of",     "in",    "on",   "at",  "for",  "me",
    "my",   "we",   "so",  "that",  "this",   "be",     "do",    "dont", "yes", "no",   "yeah",
    "ok",   "okay", "um",  "uh",    "well",   "just",   "oh",    "sure", "can", "will", "have",
    "with", "what", "hi",  "hello", "please", "thanks", "thank", NULL};

static bool in_list(const char *s, const char *const *list)
{
	for (int i = 0; s && list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool is_caller(const struct rv_postcall_turn *t)
{
	return t->speaker && strcmp(t->speaker, "caller") == 0;
}

static bool has_text(const char *s)
{
	for (; s && *s; s++)
		if (isalnum((unsigned char)*s))
			return true;
	return false;
}

static bool decided(const struct rv_postcall_turn *t, const char *intent)
{
	return t->intent && strcmp(t->intent, intent) == 0 && t->intent_conf >= INTENT_CONF;
}

static const char *infer_disposition(const struct rv_postcall_turn *t, size_t n,
                                     const struct rv_postcall_outcome *oc)
{
	if (oc->amd && strcmp(oc->amd, "machine") == 0)
		return "voicemail";
	const struct rv_postcall_turn *first = NULL;
	for (size_t i = 0; i < n && !first; i++)
		if (is_caller(&t[i]) && has_text(t[i].text))
			first = &t[i];
	if (!first)
		return "no_answer";
	if (decided(first, "voicemail_greeting"))
		return "voicemail";
	for (size_t i = 0; i < n; i++)
		if (is_caller(&t[i]) && decided(&t[i], "do_not_call"))
			return "dnc_request";
	for (size_t i = 0; i < n; i++)
		if (is_caller(&t[i]) && decided(&t[i], "wrong_number"))
			return "wrong_number";
	static const struct {
		const char *intent, *disp;
	} last[] = {{"callback_later", "callback"},
	            {"busy_now", "callback"},
	            {"talk_to_human", "transfer_requested"},
	            {"not_interested", "not_interested"},
	            {"interested", "interested"}};
	for (size_t i = n; i-- > 0;) {
		if (!is_caller(&t[i]))
			continue;
		for (size_t k = 0; k < sizeof(last) / sizeof(last[0]); k++)
			if (decided(&t[i], last[k].intent))
				return last[k].disp;
	}
	return "completed";
}

/* ---- Key sentences ---- */

struct cand {
	char text[MAX_SENTENCE + 1];
	double score;
	size_t order;
};

static int content_words(const char *s)
{
	int n = 0;
	char w[32];
	size_t wl = 0;
	for (const char *p = s;; p++) {
		if (*p && (isalnum((unsigned char)*p) || *p == '\'')) {
			if (*p != '\'' && wl + 1 < sizeof(w))
				w[wl++] = (char)tolower((unsigned char)*p);
			continue;
		}
		if (wl) {
			w[wl] = '\0';
			if (wl > 2 && !in_list(w, STOP))
				n++;
			wl = 0;
		}
		if (!*p)
			break;
	}
	return n;
}

static int words(const char *s)
{
	int n = 0;
	for (const char *p = s; *p; p++)
		if (!isspace((unsigned char)*p) && (p == s || isspace((unsigned char)p[-1])))
			n++;
	return n;
}

/* Entities whose words fall in this sentence. */
static int entities_in(const json_t *ents, const char *sentence)
{
	int k = 0;
	size_t i;
	const json_t *e;
	json_array_foreach(ents, i, e)
	{
		const char *w = json_string_value(json_object_get(e, "text"));
		if (w && *w && strstr(sentence, w))
			k++;
	}
	return k;
}

static void add_candidates(const struct rv_postcall_turn *t, size_t order0, struct cand *c,
                           size_t *nc, size_t max)
{
	const char *p = t->text;
	/* STT text has no punctuation: then the turn is one sentence. */
	while (p && *p && *nc < max) {
		while (isspace((unsigned char)*p))
			p++;
		size_t len = rv_llm_sentence_end(p, strlen(p), true);
		if (len == 0)
			len = strlen(p);
		if (len == 0)
			break;
		struct cand *x = &c[*nc];
		snprintf(x->text, sizeof(x->text), "%.*s", (int)len, p);
		p += len;
		int nw = words(x->text);
		if (nw < 3)
			continue;
		double s = 0.4 * fmin(content_words(x->text), 8);
		s += 2.0 * entities_in(t->entities, x->text);
		if (t->intent && !in_list(t->intent, BLAND) && t->intent_conf >= INTENT_CONF)
			s += 1.5;
		if (t->emotion)
			s += fabs(t->valence);
		x->score = s;
		x->order = order0 + *nc;
		(*nc)++;
	}
}

static int by_score(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->order < y->order ? -1 : 1;
}

static int by_order(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* ---- Summary text ---- */

static void outcome_sentence(const char *disp, const json_t *fields, char *out, size_t len)
{
	const char *at = json_string_value(json_object_get(fields, "callback_at"));
	const char *appt = json_string_value(json_object_get(fields, "appointment"));
	if (strcmp(disp, "callback") == 0 && at)
		snprintf(out, len, "Outcome: callback requested for %s.", at);
	else if (strcmp(disp, "callback") == 0)
		snprintf(out, len, "Outcome: the caller asked to be called back later.");
	else if (strcmp(disp, "converted") == 0 && appt)
		snprintf(out, len, "Outcome: converted (appointment %s).", appt);
	else if (strcmp(disp, "converted") == 0)
		snprintf(out, len, "Outcome: converted.");
	else if (strcmp(disp, "dnc_request") == 0)
		snprintf(out, len, "Outcome: the caller asked not to be called again.");
	else if (strcmp(disp, "not_interested") == 0)
		snprintf(out, len, "Outcome: the caller was not interested.");
	else if (strcmp(disp, "voicemail") == 0)
		snprintf(out, len, "Outcome: reached voicemail.");
	else if (strcmp(disp, "no_answer") == 0)
		snprintf(out, len, "Outcome: no one spoke on the call.");
	else if (strcmp(disp, "wrong_number") == 0)
		snprintf(out, len, "Outcome: wrong number.");
	else if (strcmp(disp, "transferred") == 0 || strcmp(disp, "transfer_requested") == 0)
		snprintf(out, len, "Outcome: the caller %s a human agent.",
		         disp[8] == 'r' ? "was transferred to" : "asked for");
	else
		snprintf(out, len, "Outcome: %s.", disp);
}

/* ---- Sentiment ---- */

static json_t *sentiment(const struct rv_postcall_turn *t, size_t n)
{
	json_t *series = json_array(), *labels = json_object();
	double *v = malloc((n + 1) * sizeof(double));
	size_t k = 0;
	const char *final = NULL;
	for (size_t i = 0; v && i < n; i++) {
		if (!is_caller(&t[i]) || !t[i].emotion)
			continue;
		double x = t[i].valence < -1 ? -1 : t[i].valence > 1 ? 1 : t[i].valence;
		v[k++] = x;
		json_array_append_new(series, json_real(round(x * 1000) / 1000));
		json_int_t c = json_integer_value(json_object_get(labels, t[i].emotion));
		json_object_set_new(labels, t[i].emotion, json_integer(c + 1));
		final = t[i].emotion;
	}
	double start = 0, end = 0, avg = 0;
	const char *trend = "unknown";
	if (k > 0) {
		/* Thirds smooth out one odd turn; short calls compare first and last turns. */
		size_t w = k >= 6 ? k / 3 : 1;
		for (size_t i = 0; i < w; i++) {
			start += v[i];
			end += v[k - 1 - i];
		}
		start /= (double)w;
		end /= (double)w;
		for (size_t i = 0; i < k; i++)
			avg += v[i];
		avg /= (double)k;
		trend = k < 2                           ? "flat"
		        : end - start > TREND_THRESHOLD ? "improving"
		        : start - end > TREND_THRESHOLD ? "worsening"
		                                        : "flat";
	}
	free(v);
	return json_pack("{s:o, s:f, s:f, s:f, s:s, s:o, s:s?}", "series", series, "start",
	                 round(start * 1000) / 1000, "end", round(end * 1000) / 1000, "average",
	                 round(avg * 1000) / 1000, "trend", trend, "labels", labels, "final_label",
	                 final);
}

/* ---- Fields ---- */

static const char *field_for(const char *type, const char *disp)
{
	if (strcmp(type, "datetime") == 0)
		return strcmp(disp, "callback") == 0 ? "callback_at" : "datetime";
	if (strcmp(type, "money") == 0)
		return "amount";
	return type; /* email, phone, name, number, digits, yesno */
}

static json_t *fields_and_entities(const struct rv_postcall_turn *t, size_t n,
                                   const struct rv_postcall_outcome *oc, const char *disp,
                                   json_t **ents_out)
{
	json_t *fields = json_object(), *ents = json_array();
	for (size_t i = 0; i < n; i++) {
		if (!is_caller(&t[i]))
			continue;
		size_t k;
		const json_t *e;
		json_array_foreach(t[i].entities, k, e)
		{
			const char *type = json_string_value(json_object_get(e, "type"));
			const json_t *val = json_object_get(e, "value");
			if (!type || !val || strcmp(type, "yesno") == 0)
				continue;
			json_t *row =
			    json_pack("{s:s, s:O, s:s, s:I}", "type", type, "value", val, "text",
			              json_string_value(json_object_get(e, "text")) ?: "", "turn",
			              (json_int_t)i);
			if (row)
				json_array_append_new(ents, row);
			/* The last mention wins: callers correct themselves. */
			json_object_set(fields, field_for(type, disp), (json_t *)val);
		}
	}
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)oc->vars, k, v)
	{
		if (!json_is_object(v) && !json_is_array(v) && !json_is_null(v))
			json_object_set(fields, k, (json_t *)v);
	}
	json_object_foreach((json_t *)oc->slots, k, v)
	{
		json_object_set(fields, k, (json_t *)v);
		/* A callback slot under the flow's own name is also the callback time. */
		if (strcmp(disp, "callback") == 0 && json_is_string(v) && strstr(k, "callback"))
			json_object_set(fields, "callback_at", (json_t *)v);
	}
	*ents_out = ents;
	return fields;
}

/* ---- The model's summary ---- */

struct collect {
	char buf[MAX_SUMMARY + 1];
	size_t n;
};

static void collect_cb(const char *s, void *arg)
{
	struct collect *c = arg;
	int w = snprintf(c->buf + c->n, sizeof(c->buf) - c->n, "%s%s", c->n ? " " : "", s);
	if (w > 0)
		c->n = c->n + (size_t)w >= sizeof(c->buf) ? sizeof(c->buf) - 1 : c->n + (size_t)w;
}

static int llm_summary(struct rv_llm *llm, const struct rv_postcall_turn *t, size_t n,
                       const char *disp, char *out, size_t len)
{
	char *tr = malloc(MAX_TRANSCRIPT + 1);
	if (!tr)
		return -ENOMEM;
	size_t k = 0;
	tr[0] = '\0';
	for (size_t i = 0; i < n && k < MAX_TRANSCRIPT; i++) {
		if (!t[i].speaker || strcmp(t[i].speaker, "system") == 0 || !has_text(t[i].text))
			continue;
		int w = snprintf(tr + k, MAX_TRANSCRIPT + 1 - k, "%s: %s\n",
		                 is_caller(&t[i]) ? "Caller" : "Agent", t[i].text);
		if (w > 0)
			k = k + (size_t)w > MAX_TRANSCRIPT ? MAX_TRANSCRIPT : k + (size_t)w;
	}
	char sys[512];
	snprintf(sys, sizeof(sys),
	         "You write call summaries for a CRM. Summarise the phone call below in two or "
	         "three plain sentences: what the caller wanted, what was agreed, and the outcome "
	         "(recorded as \"%s\"). Use only facts from the transcript.",
	         disp);
	json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", sys,
	                         "role", "user", "content", tr);
	free(tr);
	if (!msgs)
		return -ENOMEM;
	struct collect c = {.n = 0};
	struct rv_llm_reply r = {0};
	int err = rv_llm_chat(llm, msgs, NULL, 0, collect_cb, &c, &r);
	json_decref(msgs);
	if (err)
		return err;
	rv_llm_reply_clear(&r);
	if (c.n == 0)
		return -ENODATA;
	snprintf(out, len, "%s", c.buf);
	return 0;
}

static const char *llm_error_name(int err)
{
	switch (err) {
	case -ETIMEDOUT:
		return "timeout";
	case -EACCES:
		return "http_401";
	case -ECONNREFUSED:
		return "unreachable";
	case -EPROTO:
		return "malformed_stream";
	case -ENODATA:
		return "empty_reply";
	default:
		return "error";
	}
}

int rv_postcall_analyze(const struct rv_postcall_turn *t, size_t n,
                        const struct rv_postcall_outcome *oc, struct rv_llm *llm, json_t **out)
{
	static const struct rv_postcall_outcome none = {0};
	if (!oc)
		oc = &none;
	if (n > RV_POSTCALL_MAX_TURNS || (n && !t))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!t[i].speaker)
			return -EINVAL;
	bool from_flow = oc->disposition && *oc->disposition;
	const char *disp = from_flow ? oc->disposition : infer_disposition(t, n, oc);

	json_t *ents = NULL;
	json_t *fields = fields_and_entities(t, n, oc, disp, &ents);
	json_t *intents = json_object();
	size_t ncaller = 0, nagent = 0;
	for (size_t i = 0; i < n; i++) {
		if (is_caller(&t[i])) {
			ncaller++;
			if (t[i].intent) {
				json_int_t c =
				    json_integer_value(json_object_get(intents, t[i].intent));
				json_object_set_new(intents, t[i].intent, json_integer(c + 1));
			}
		} else if (strcmp(t[i].speaker, "agent") == 0) {
			nagent++;
		}
	}

	/* Key sentences: the most informative caller sentences, quoted in call order. */
	size_t maxc = 64, nc = 0;
	struct cand *c = calloc(maxc, sizeof(*c));
	json_t *key = json_array();
	char summary[MAX_SUMMARY + 1], outcome[300];
	if (!c || !fields || !ents || !intents || !key) {
		free(c);
		json_decref(fields);
		json_decref(ents);
		json_decref(intents);
		json_decref(key);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && nc < maxc; i++)
		if (is_caller(&t[i]))
			add_candidates(&t[i], nc, c, &nc, maxc);
	qsort(c, nc, sizeof(*c), by_score);
	size_t nk = 0;
	while (nk < nc && nk < MAX_KEY && c[nk].score >= 1.0)
		nk++;
	if (nk == 0 && nc > 0)
		nk = 1; /* a short call still quotes its caller */
	qsort(c, nk, sizeof(*c), by_order);
	outcome_sentence(disp, fields, outcome, sizeof(outcome));
	size_t sl = (size_t)snprintf(summary, sizeof(summary), "%s", outcome);
	for (size_t i = 0; i < nk; i++) {
		json_array_append_new(key, json_string(c[i].text));
		if (sl < sizeof(summary))
			sl += (size_t)snprintf(summary + sl, sizeof(summary) - sl, "%s\"%s\"",
			                       i ? " " : " Caller: ", c[i].text);
	}
	free(c);
	json_t *sent = sentiment(t, n);
	const char *trend = json_string_value(json_object_get(sent, "trend"));
	if (trend && sl < sizeof(summary) &&
	    (!strcmp(trend, "improving") || !strcmp(trend, "worsening")))
		snprintf(summary + sl, sizeof(summary) - sl,
		         " The caller's mood %s during the call.",
		         strcmp(trend, "improving") == 0 ? "improved" : "worsened");

	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:{s:I, s:I}}", "disposition",
	              disp, "disposition_source", from_flow ? "flow" : "inferred", "summary_source",
	              "extractive", "extractive_summary", summary, "key_sentences", key, "fields",
	              fields, "entities", ents, "intents", intents, "sentiment", sent, "turns",
	              "caller", (json_int_t)ncaller, "agent", (json_int_t)nagent);
	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "summary", json_string(summary));
	if (llm && ncaller > 0) {
		char abs[MAX_SUMMARY + 1];
		int err = llm_summary(llm, t, n, disp, abs, sizeof(abs));
		if (err) {
			rv_warn(LOG, "the model's summary failed (%s); the extractive one is used",
			        llm_error_name(err));
			json_object_set_new(o, "llm_error", json_string(llm_error_name(err)));
		} else {
			json_object_set_new(o, "summary", json_string(abs));
			json_object_set_new(o, "summary_source", json_string("llm"));
		}
	}
	*out = o;
	return 0;
}

int rv_postcall_turns_from_json(const json_t *rows, struct rv_postcall_turn **out, size_t *n)
{
	if (!json_is_array(rows) || json_array_size(rows) > RV_POSTCALL_MAX_TURNS)
		return -EINVAL;
	size_t cnt = json_array_size(rows);
	struct rv_postcall_turn *t = calloc(cnt ? cnt : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	size_t i;
	const json_t *r;
	json_array_foreach(rows, i, r)
	{
		const char *sp = json_string_value(json_object_get(r, "speaker"));
		if (!sp) {
			free(t);
			return -EINVAL;
		}
		const json_t *emo = json_object_get(r, "emotion");
		const json_t *ents = json_object_get(r, "entities");
		t[i] = (struct rv_postcall_turn){
		    .speaker = sp,
		    .text = json_string_value(json_object_get(r, "text")),
		    .intent = json_string_value(json_object_get(r, "intent")),
		    .intent_conf = json_number_value(json_object_get(r, "confidence")),
		    .entities = json_is_array(ents) ? ents : NULL,
		    .emotion = json_string_value(json_object_get(emo, "label")),
		    .valence = json_number_value(json_object_get(emo, "valence"))};
	}
	*out = t;
	*n = cnt;
	return 0;
}
