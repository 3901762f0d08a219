/* The scripted conversation engine: see flow.h and docs/FLOWS.md. */
#include "dialog/flow.h"
#include "dialog/flow_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "dialog/llm.h"
#include "nlu/emotion.h"
#include "nlu/entities.h"
#include "nlu/entities_json.h"
#include "nlu/intent.h"
#include "nlu/model_registry.h"

#define DEFAULT_RETRIES 2
#define DEFAULT_SILENCE 2
/* How sure the intent must be before the flow acts on it; acting wrongly on "talk to a human"
 * or "do not call" costs more than asking again, so those need more. */
#define ACT_CONF    0.45
#define ALWAYS_CONF 0.6

struct rv_flow {
	json_t *doc;                    /* the validated document (one reference) */
	struct rv_intent_model *custom; /* per-flow intents trained from "intents", or NULL */
};

struct rv_convo {
	const struct rv_flow *flow;
	json_t *lead, *campaign; /* references */
	char tz[64];
	int64_t now_ms;
	bool outbound;
	int (*webhook)(const char *, const char *, const json_t *, json_t **, void *);
	void *webhook_arg;
	char state[64];
	json_t *slots, *vars;
	int retries;    /* fallback/reprompt count in the current state */
	int silences;   /* silent turns in a row */
	int frustrated; /* frustrated turns in a row */
	unsigned turns;
	char *last_say;
	char intent_buf[RV_INTENT_MAX_LABEL]; /* the last turn's intent, when from a shared model */
	const json_t *turn_ents;              /* this turn's entities while it runs (borrowed) */
	int depth; /* nested state entries this turn (slot prefill chains) */
	bool ended;
	char disposition[48];
};

static const char *const ACTION_TYPES[] = {
    "transfer", "schedule_callback", "send_dtmf", "webhook", "set_field", "dnc", NULL};
static const char *const ENTITY_TYPES[] = {"datetime", "number", "digits", "money", "phone",
                                           "email",    "yesno",  "name",   "text",  NULL};
/* Handlers beyond intents that "globals" may carry. */
static const char *const SPECIAL_GLOBALS[] = {"silence", "frustrated", NULL};

static int index_of(const char *s, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return i;
	return -1;
}

/* ---- Validation ---- */

struct vctx {
	const json_t *states;
	json_t *errors;
	const struct rv_intent_model *custom;
};

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verr(struct vctx *v, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(v->errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

static bool known_intent(const struct vctx *v, const char *name)
{
	const struct rv_intent_model *b = rv_intent_builtin();
	const char *const *labels;
	if (strncmp(name, "dtmf:", 5) == 0)
		return strlen(name) == 6 && strchr("0123456789*#ABCD", name[5]);
	if (b) {
		unsigned n = rv_intent_labels(b, &labels);
		for (unsigned i = 0; i < n; i++)
			if (strcmp(labels[i], name) == 0)
				return true;
	}
	if (v->custom) {
		unsigned n = rv_intent_labels(v->custom, &labels);
		for (unsigned i = 0; i < n; i++)
			if (strcmp(labels[i], name) == 0)
				return true;
	}
	return false;
}

static void check_str(struct vctx *v, const json_t *obj, const char *key, const char *path,
                      bool required)
{
	const json_t *s = json_object_get(obj, key);
	char p[160];
	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (!s) {
		if (required)
			verr(v, p, "missing \"%s\"", key);
	} else if (!json_is_string(s) || json_string_length(s) > RV_FLOW_MAX_SAY) {
		verr(v, p, "\"%s\" must be a string of at most %d bytes", key, RV_FLOW_MAX_SAY);
	} else if (required && json_string_length(s) == 0) {
		verr(v, p, "\"%s\" must not be empty", key);
	}
}

static void check_actions(struct vctx *v, const json_t *acts, const char *path)
{
	if (!acts)
		return;
	if (!json_is_array(acts) || json_array_size(acts) > RV_FLOW_MAX_ACTIONS) {
		verr(v, path, "\"actions\" must be a list of at most %d actions",
		     RV_FLOW_MAX_ACTIONS);
		return;
	}
	size_t i;
	const json_t *a;
	json_array_foreach(acts, i, a)
	{
		char p[192];
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		const char *type = json_string_value(json_object_get(a, "type"));
		if (!json_is_object(a) || !type || index_of(type, ACTION_TYPES) < 0) {
			verr(
			    v, p,
			    "each action needs a \"type\": transfer, schedule_callback, send_dtmf, "
			    "webhook, set_field or dnc");
			continue;
		}
		if (strcmp(type, "transfer") == 0)
			check_str(v, a, "to", p, true);
		else if (strcmp(type, "webhook") == 0)
			check_str(v, a, "url", p, true);
		else if (strcmp(type, "set_field") == 0)
			check_str(v, a, "field", p, true);
		else if (strcmp(type, "send_dtmf") == 0)
			check_str(v, a, "digits", p, true);
	}
}

/* A transition: a state name, or {"say","goto","end","actions","barge_in"}. */
static void check_transition(struct vctx *v, const json_t *t, const char *path)
{
	if (json_is_string(t)) {
		if (!json_object_get(v->states, json_string_value(t)))
			verr(v, path, "unknown state \"%s\"", json_string_value(t));
		return;
	}
	if (!json_is_object(t)) {
		verr(v, path, "must be a state name or an object with say/goto/end/actions");
		return;
	}
	const json_t *g = json_object_get(t, "goto");
	if (g && (!json_is_string(g) || !json_object_get(v->states, json_string_value(g))))
		verr(v, path, "\"goto\" names an unknown state \"%s\"",
		     json_is_string(g) ? json_string_value(g) : "?");
	check_str(v, t, "say", path, false);
	const json_t *e = json_object_get(t, "end");
	if (e && !json_is_string(e))
		verr(v, path, "\"end\" must be a disposition name");
	char p[192];
	snprintf(p, sizeof(p), "%s.actions", path);
	check_actions(v, json_object_get(t, "actions"), p);
}

/* Every state a transition can lead to, for the reachability walk. */
static void targets(const json_t *t, const char **out, size_t *n, size_t max)
{
	const char *name = json_is_string(t) ? json_string_value(t)
	                                     : json_string_value(json_object_get(t, "goto"));
	if (name && *n < max)
		out[(*n)++] = name;
}

static void state_targets(const json_t *st, const char **out, size_t *n, size_t max)
{
	const char *k;
	const json_t *t;
	json_object_foreach((json_t *)json_object_get(st, "on"), k, t) targets(t, out, n, max);
	if (json_object_get(st, "next"))
		targets(json_object_get(st, "next"), out, n, max);
	if (json_object_get(st, "fallback"))
		targets(json_object_get(st, "fallback"), out, n, max);
}

int rv_flow_parse(const json_t *doc, struct rv_flow **out, json_t **errors)
{
	struct vctx v = {.errors = json_array()};
	struct rv_flow *f = NULL;
	if (!v.errors)
		return -ENOMEM;
	if (!json_is_object(doc)) {
		verr(&v, "$", "a flow is a JSON object");
		goto done;
	}
	v.states = json_object_get(doc, "states");
	if (!json_is_object(v.states) || json_object_size(v.states) == 0 ||
	    json_object_size(v.states) > RV_FLOW_MAX_STATES) {
		verr(&v, "$.states", "\"states\" must be an object of 1 to %d states",
		     RV_FLOW_MAX_STATES);
		goto done;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		json_decref(v.errors);
		return -ENOMEM;
	}
	/* Custom intents: {"name": ["example", ...]} trained here, mixed with the built-in
	 * examples so the model still knows the standard intents' boundaries. */
	const json_t *ci = json_object_get(doc, "intents");
	if (ci) {
		if (!json_is_object(ci) || json_object_size(ci) > 32) {
			verr(&v, "$.intents",
			     "\"intents\" maps up to 32 names to lists of examples");
		} else {
			size_t cap = 64, n = 0;
			struct rv_intent_example *ex = malloc(cap * sizeof(*ex));
			const char *name;
			const json_t *list;
			bool ok = ex != NULL;
			json_object_foreach((json_t *)ci, name, list)
			{
				size_t i;
				const json_t *e;
				if (!json_is_array(list) || json_array_size(list) < 2 ||
				    json_array_size(list) > 200) {
					char p[128];
					snprintf(p, sizeof(p), "$.intents.%s", name);
					verr(&v, p, "give 2 to 200 example phrases");
					ok = false;
					continue;
				}
				json_array_foreach(list, i, e)
				{
					if (!json_is_string(e) || !ok)
						continue;
					if (n == cap) {
						cap *= 2;
						struct rv_intent_example *nx =
						    realloc(ex, cap * sizeof(*ex));
						if (!nx) {
							ok = false;
							break;
						}
						ex = nx;
					}
					ex[n++] =
					    (struct rv_intent_example){name, json_string_value(e)};
				}
			}
			if (ok && n) {
				struct rv_intent_train_cfg cfg;
				rv_intent_train_defaults(&cfg);
				cfg.holdout = 0;
				/* An out-of-scope class keeps custom intents from claiming
				 * everything. */
				static const char *const oos[] = {"yes",
				                                  "no",
				                                  "what is the weather",
				                                  "i am not interested",
				                                  "call me later",
				                                  "who is this",
				                                  "goodbye",
				                                  "hello"};
				for (size_t k = 0; k < sizeof(oos) / sizeof(oos[0]) && ok; k++) {
					if (n == cap) {
						cap *= 2;
						struct rv_intent_example *nx =
						    realloc(ex, cap * sizeof(*ex));
						if (!nx) {
							ok = false;
							break;
						}
						ex = nx;
					}
					ex[n++] = (struct rv_intent_example){RV_INTENT_OOS, oos[k]};
				}
				char why[128];
				if (ok && rv_intent_train(ex, n, &cfg, &f->custom, NULL, why,
				                          sizeof(why)) != 0)
					verr(&v, "$.intents", "cannot train the flow's intents: %s",
					     why);
			}
			free(ex);
		}
	}
	v.custom = f->custom;

	const char *start = json_string_value(json_object_get(doc, "start"));
	if (!start || !json_object_get(v.states, start))
		verr(&v, "$.start", "\"start\" must name one of the states");
	check_str(&v, doc, "disclosure", "$", false);

	const char *name;
	const json_t *st;
	json_object_foreach((json_t *)v.states, name, st)
	{
		char p[128];
		snprintf(p, sizeof(p), "$.states.%s", name);
		if (!json_is_object(st) || strlen(name) >= 64) {
			verr(&v, p, "a state is an object, named in under 64 bytes");
			continue;
		}
		check_str(&v, st, "say", p, true);
		const json_t *on = json_object_get(st, "on");
		if (on && !json_is_object(on)) {
			verr(&v, p, "\"on\" maps intents to transitions");
		} else if (on) {
			const char *intent;
			const json_t *t;
			json_object_foreach((json_t *)on, intent, t)
			{
				char q[192];
				snprintf(q, sizeof(q), "%s.on.%s", p, intent);
				if (!known_intent(&v, intent))
					verr(&v, q, "unknown intent \"%s\"", intent);
				check_transition(&v, t, q);
			}
		}
		const json_t *slot = json_object_get(st, "slot");
		if (slot) {
			char q[160];
			snprintf(q, sizeof(q), "%s.slot", p);
			const char *ent = json_string_value(json_object_get(slot, "entity"));
			if (!json_is_object(slot) || !json_is_string(json_object_get(slot, "name")))
				verr(&v, q, "a slot needs a \"name\"");
			if (!ent || index_of(ent, ENTITY_TYPES) < 0)
				verr(&v, q,
				     "\"entity\" must be one of datetime, number, digits, money, "
				     "phone, "
				     "email, yesno, name, text");
			if (!json_object_get(st, "next") && !json_object_get(st, "end"))
				verr(
				    &v, p,
				    "a state with a slot needs \"next\" (where to go once filled)");
		}
		if (json_object_get(st, "next")) {
			char q[160];
			snprintf(q, sizeof(q), "%s.next", p);
			check_transition(&v, json_object_get(st, "next"), q);
		}
		if (json_object_get(st, "fallback")) {
			char q[160];
			snprintf(q, sizeof(q), "%s.fallback", p);
			check_transition(&v, json_object_get(st, "fallback"), q);
		}
		const json_t *e = json_object_get(st, "end");
		if (e && !json_is_string(e))
			verr(&v, p, "\"end\" must be a disposition name");
		const json_t *ex = json_object_get(st, "expect");
		if (ex && !json_is_array(ex))
			verr(&v, p, "\"expect\" must be a list of phrases");
		char q[160];
		snprintf(q, sizeof(q), "%s.actions", p);
		check_actions(&v, json_object_get(st, "actions"), q);
		/* A dead end: no way on and no end. */
		if (!on && !slot && !json_object_get(st, "next") && !e &&
		    !json_object_get(st, "fallback"))
			verr(&v, p, "the state leads nowhere: give \"on\", \"next\" or \"end\"");
	}

	const json_t *globals = json_object_get(doc, "globals");
	if (globals && !json_is_object(globals)) {
		verr(&v, "$.globals",
		     "\"globals\" maps intents (or silence, frustrated) to handlers");
	} else if (globals) {
		const char *g;
		const json_t *t;
		json_object_foreach((json_t *)globals, g, t)
		{
			char p[128];
			snprintf(p, sizeof(p), "$.globals.%s", g);
			if (!known_intent(&v, g) && index_of(g, SPECIAL_GLOBALS) < 0)
				verr(&v, p, "unknown intent or event \"%s\"", g);
			check_transition(&v, t, p);
		}
	}

	/* Reachability from the start state (and from global handlers). */
	if (start && json_object_get(v.states, start) && json_array_size(v.errors) == 0) {
		size_t nstates = json_object_size(v.states);
		const char **queue = calloc(nstates * 64 + 64, sizeof(char *));
		const char **seen = calloc(nstates + 1, sizeof(char *));
		size_t qh = 0, qt = 0, nseen = 0;
		if (!queue || !seen) {
			free(queue);
			free(seen);
			goto done;
		}
		queue[qt++] = start;
		const char *g;
		const json_t *t;
		json_object_foreach((json_t *)globals, g, t) targets(t, queue, &qt, nstates * 64);
		while (qh < qt) {
			const char *s = queue[qh++];
			bool dup = false;
			for (size_t i = 0; i < nseen; i++)
				dup |= strcmp(seen[i], s) == 0;
			if (dup || nseen >= nstates)
				continue;
			seen[nseen++] = s;
			state_targets(json_object_get(v.states, s), queue, &qt, nstates * 64);
		}
		json_object_foreach((json_t *)v.states, name, st)
		{
			bool found = false;
			for (size_t i = 0; i < nseen; i++)
				found |= strcmp(seen[i], name) == 0;
			if (!found) {
				char p[128];
				snprintf(p, sizeof(p), "$.states.%s", name);
				verr(&v, p, "state \"%s\" cannot be reached from \"%s\"", name,
				     start);
			}
		}
		free(queue);
		free(seen);
	}
	rv_llm_check_section(doc, v.errors); /* "kind" and the "llm" section (llm.c) */

done:
	if (json_array_size(v.errors) > 0 || !f) {
		if (f)
			rv_intent_free(f->custom);
		free(f);
		*errors = v.errors;
		return -EINVAL;
	}
	json_decref(v.errors);
	f->doc = json_deep_copy(doc);
	if (!f->doc) {
		rv_intent_free(f->custom);
		free(f);
		return -ENOMEM;
	}
	*out = f;
	return 0;
}

void rv_flow_free(struct rv_flow *f)
{
	if (!f)
		return;
	json_decref(f->doc);
	rv_intent_free(f->custom);
	free(f);
}

/* ---- Templates ---- */

/* "2026-11-23T15:00:00-05:00" -> "Monday, November 23 at 3 PM"; "2026-11-23" -> "Monday,
 * November 23". Returns false when s is not such a value. */
static bool spoken_datetime(const char *s, char *out, size_t len)
{
	static const char *const months[] = {"January",   "February", "March",    "April",
	                                     "May",       "June",     "July",     "August",
	                                     "September", "October",  "November", "December"};
	static const char *const days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
	                                   "Friday", "Saturday", "Sunday"};
	int y, m, d, h = -1, mi = 0;
	size_t n = strlen(s);
	if (n == 10 && sscanf(s, "%4d-%2d-%2d", &y, &m, &d) == 3) {
	} else if (n >= 16 && s[10] == 'T' &&
	           sscanf(s, "%4d-%2d-%2dT%2d:%2d", &y, &m, &d, &h, &mi) == 5) {
	} else {
		return false;
	}
	if (m < 1 || m > 12 || d < 1 || d > 31)
		return false;
	/* Day of week (Monday = 0) by Sakamoto's method. */
	static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
	int yy = m < 3 ? y - 1 : y;
	int dow = (yy + yy / 4 - yy / 100 + yy / 400 + t[m - 1] + d) % 7; /* Sunday = 0 */
	dow = (dow + 6) % 7;
	if (h < 0) {
		snprintf(out, len, "%s, %s %d", days[dow], months[m - 1], d);
	} else {
		int h12 = h % 12 ? h % 12 : 12;
		const char *ap = h < 12 ? "AM" : "PM";
		if (mi)
			snprintf(out, len, "%s, %s %d at %d:%02d %s", days[dow], months[m - 1], d,
			         h12, mi, ap);
		else
			snprintf(out, len, "%s, %s %d at %d %s", days[dow], months[m - 1], d, h12,
			         ap);
	}
	return true;
}

static const json_t *lookup(const struct rv_convo *c, const char *path)
{
	char head[32];
	const char *dot = strchr(path, '.');
	if (!dot || (size_t)(dot - path) >= sizeof(head))
		return NULL;
	memcpy(head, path, (size_t)(dot - path));
	head[dot - path] = '\0';
	const json_t *root = strcmp(head, "lead") == 0       ? c->lead
	                     : strcmp(head, "campaign") == 0 ? c->campaign
	                     : strcmp(head, "slots") == 0    ? c->slots
	                     : strcmp(head, "vars") == 0     ? c->vars
	                     : strcmp(head, "persona") == 0
	                         ? json_object_get(c->flow->doc, "persona")
	                         : NULL;
	/* Walk a.b.c through objects. */
	const char *p = dot + 1;
	while (root && *p) {
		const char *e = strchr(p, '.');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		char key[64];
		if (l == 0 || l >= sizeof(key))
			return NULL;
		memcpy(key, p, l);
		key[l] = '\0';
		root = json_object_get(root, key);
		p = e ? e + 1 : p + l;
	}
	return root;
}

/* Render {{path}} and {{path|raw}} into a new string (at most RV_FLOW_MAX_SAY bytes). */
static char *render(const struct rv_convo *c, const char *tpl)
{
	char out[RV_FLOW_MAX_SAY + 1];
	size_t n = 0;
	for (const char *p = tpl ? tpl : ""; *p && n < RV_FLOW_MAX_SAY;) {
		const char *close;
		if (p[0] == '{' && p[1] == '{' && (close = strstr(p + 2, "}}")) != NULL &&
		    close - p < 128) {
			char path[128];
			size_t l = (size_t)(close - p - 2);
			memcpy(path, p + 2, l);
			path[l] = '\0';
			/* Trim and split the filter. */
			char *s = path;
			while (isspace((unsigned char)*s))
				s++;
			char *bar = strchr(s, '|');
			bool raw = false;
			if (bar) {
				*bar = '\0';
				raw = strstr(bar + 1, "raw") != NULL;
			}
			for (char *e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
				e[-1] = '\0';
			const json_t *v = lookup(c, s);
			char buf[256] = "";
			if (json_is_string(v)) {
				if (raw || !spoken_datetime(json_string_value(v), buf, sizeof(buf)))
					snprintf(buf, sizeof(buf), "%s", json_string_value(v));
			} else if (json_is_integer(v)) {
				snprintf(buf, sizeof(buf), "%lld",
				         (long long)json_integer_value(v));
			} else if (json_is_real(v)) {
				snprintf(buf, sizeof(buf), "%g", json_real_value(v));
			} else if (json_is_object(v) &&
			           json_is_string(json_object_get(v, "amount"))) {
				snprintf(buf, sizeof(buf), "%s %s",
				         json_string_value(json_object_get(v, "amount")),
				         json_string_value(json_object_get(v, "currency"))
				             ? json_string_value(json_object_get(v, "currency"))
				             : "");
			}
			size_t bl = strlen(buf);
			if (n + bl > RV_FLOW_MAX_SAY)
				bl = RV_FLOW_MAX_SAY - n;
			memcpy(out + n, buf, bl);
			n += bl;
			p = close + 2;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	return strdup(out);
}

const json_t *rv_flow_doc(const struct rv_flow *flow)
{
	return flow->doc;
}

char *rv_convo_render(const struct rv_convo *c, const char *tpl)
{
	return render(c, tpl);
}

/* ---- Running ---- */

void rv_turn_out_clear(struct rv_turn_out *o)
{
	free(o->preamble);
	free(o->say);
	free(o->disposition);
	free(o->state);
	json_decref(o->entities);
	json_decref(o->expect);
	for (size_t i = 0; i < o->nactions; i++)
		json_decref(o->actions[i].args);
	memset(o, 0, sizeof(*o));
}

static void append_say(struct rv_turn_out *o, const char *text)
{
	if (!text || !*text)
		return;
	size_t a = o->say ? strlen(o->say) : 0, b = strlen(text);
	char *s = malloc(a + b + 2);
	if (!s)
		return;
	if (a) {
		memcpy(s, o->say, a);
		s[a++] = ' ';
	}
	memcpy(s + a, text, b + 1);
	free(o->say);
	o->say = s;
}

static void set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v ? v : "");
}

/* Render every string member of an action's arguments. */
static json_t *render_args(const struct rv_convo *c, const json_t *a)
{
	json_t *out = json_object();
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)a, k, v)
	{
		if (strcmp(k, "type") == 0)
			continue;
		if (json_is_string(v)) {
			/* Arguments keep machine forms (ISO dates), not spoken ones. */
			const char *s = json_string_value(v);
			if (strncmp(s, "{{", 2) == 0 && strstr(s, "}}") && !strchr(s, '|')) {
				char tpl[160];
				snprintf(tpl, sizeof(tpl), "%.*s|raw}}", (int)(strstr(s, "}}") - s),
				         s);
				char *r = render(c, tpl);
				json_object_set_new(out, k, json_string(r ? r : ""));
				free(r);
			} else {
				char *r = render(c, s);
				json_object_set_new(out, k, json_string(r ? r : ""));
				free(r);
			}
		} else {
			json_object_set(out, k, (json_t *)v);
		}
	}
	return out;
}

static void run_actions(struct rv_convo *c, const json_t *acts, struct rv_turn_out *o)
{
	size_t i;
	const json_t *a;
	json_array_foreach(acts, i, a)
	{
		const char *type = json_string_value(json_object_get(a, "type"));
		int t = type ? index_of(type, ACTION_TYPES) : -1;
		if (t < 0 || o->nactions >= RV_FLOW_MAX_ACTIONS)
			continue;
		json_t *args = render_args(c, a);
		if (t == RV_ACT_WEBHOOK) {
			/* The answer is used right away ({{vars.<save_as>.x}} in the next prompt).
			 */
			json_t *ans = NULL;
			const char *method = json_string_value(json_object_get(args, "method"));
			int (*hook)(const char *, const char *, const json_t *, json_t **, void *) =
			    c->webhook ? c->webhook : rv_flow_webhook_http;
			int err = hook(method ? method : "POST",
			               json_string_value(json_object_get(args, "url")),
			               json_object_get(args, "body"), &ans, c->webhook_arg);
			const char *save = json_string_value(json_object_get(args, "save_as"));
			json_object_set_new(c->vars, save ? save : "webhook",
			                    err ? json_pack("{s:i}", "error", err)
			                        : (ans ? ans : json_null()));
			if (err)
				json_decref(ans);
		} else if (t == RV_ACT_SET_FIELD) {
			json_object_set(c->vars, json_string_value(json_object_get(args, "field")),
			                json_object_get(args, "value")
			                    ? json_object_get(args, "value")
			                    : json_null());
		}
		o->actions[o->nactions].type = (enum rv_action_type)t;
		o->actions[o->nactions++].args = args;
	}
}

static void end_convo(struct rv_convo *c, struct rv_turn_out *o, const char *disp)
{
	c->ended = true;
	snprintf(c->disposition, sizeof(c->disposition), "%s", disp && *disp ? disp : "completed");
	o->end = true;
	set_str(&o->disposition, c->disposition);
}

static json_t *slot_value(const json_t *slot, const json_t *ents, const char *text);
static void follow(struct rv_convo *c, const json_t *t, struct rv_turn_out *o, bool stay_prompt);

/* Enter a state: its actions, its prompt, its end. A slot the caller already filled in this
 * turn ("call me back tomorrow at three" before being asked when) is taken without asking. */
static void enter(struct rv_convo *c, const char *name, struct rv_turn_out *o)
{
	const json_t *st = json_object_get(json_object_get(c->flow->doc, "states"), name);
	if (!st)
		return;
	if (strcmp(c->state, name) != 0)
		c->retries = 0;
	snprintf(c->state, sizeof(c->state), "%s", name);
	const json_t *slot = json_object_get(st, "slot");
	const char *ent = json_string_value(json_object_get(slot, "entity"));
	if (slot && c->turn_ents && ent && strcmp(ent, "text") != 0 && c->depth < 8) {
		json_t *v = slot_value(slot, c->turn_ents, NULL);
		if (v) {
			c->depth++;
			json_object_set_new(c->slots,
			                    json_string_value(json_object_get(slot, "name")), v);
			run_actions(c, json_object_get(st, "actions"), o);
			const json_t *next = json_object_get(st, "next");
			if (next)
				follow(c, next, o, false);
			else
				end_convo(c, o, json_string_value(json_object_get(st, "end")));
			return;
		}
	}
	run_actions(c, json_object_get(st, "actions"), o);
	char *say = render(c, json_string_value(json_object_get(st, "say")));
	append_say(o, say);
	free(say);
	json_decref(o->expect);
	o->expect = json_is_array(json_object_get(st, "expect"))
	                ? json_deep_copy(json_object_get(st, "expect"))
	                : json_array();
	const json_t *bi = json_object_get(st, "barge_in");
	o->barge_in = !bi || json_is_true(bi);
	if (json_is_string(json_object_get(st, "end")))
		end_convo(c, o, json_string_value(json_object_get(st, "end")));
}

/* Follow a transition; `stay_prompt` re-says the current state's prompt when the transition
 * neither moves nor ends (e.g. "are you a robot" answered, then back to the question). */
static void follow(struct rv_convo *c, const json_t *t, struct rv_turn_out *o, bool stay_prompt)
{
	if (json_is_string(t)) {
		enter(c, json_string_value(t), o);
		return;
	}
	char *say = render(c, json_string_value(json_object_get(t, "say")));
	append_say(o, say);
	free(say);
	run_actions(c, json_object_get(t, "actions"), o);
	const json_t *bi = json_object_get(t, "barge_in");
	if (bi)
		o->barge_in = json_is_true(bi);
	if (json_is_string(json_object_get(t, "end"))) {
		end_convo(c, o, json_string_value(json_object_get(t, "end")));
		return;
	}
	const char *g = json_string_value(json_object_get(t, "goto"));
	if (g) {
		enter(c, g, o);
	} else if (stay_prompt) {
		char cur[64];
		snprintf(cur, sizeof(cur), "%s", c->state);
		enter(c, cur, o);
	}
}

static int64_t now_ms(const struct rv_convo *c)
{
	if (c->now_ms)
		return c->now_ms;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *entities_json(const struct rv_convo *c, const char *text, bool expect_name)
{
	struct rv_entity_ctx ctx = {
	    .timezone = c->tz, .now_ms = now_ms(c), .region = "US", .expect_name = expect_name};
	const char *reg = json_string_value(json_object_get(c->campaign, "default_country"));
	if (reg)
		ctx.region = reg;
	return rv_entities_json(text ? text : "", &ctx);
}

int rv_convo_start(const struct rv_flow *flow, const struct rv_convo_ctx *ctx,
                   struct rv_convo **out, struct rv_turn_out *first)
{
	struct rv_convo *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memset(first, 0, sizeof(*first));
	c->flow = flow;
	c->lead = ctx->lead ? json_deep_copy(ctx->lead) : json_object();
	c->campaign = ctx->campaign ? json_deep_copy(ctx->campaign) : json_object();
	c->slots = json_object();
	c->vars = json_object();
	const char *tz =
	    ctx->timezone ? ctx->timezone : json_string_value(json_object_get(c->lead, "timezone"));
	snprintf(c->tz, sizeof(c->tz), "%s", tz && *tz ? tz : "UTC");
	c->now_ms = ctx->now_ms;
	c->outbound = ctx->outbound;
	c->webhook = ctx->webhook;
	c->webhook_arg = ctx->webhook_arg;
	first->preamble = strdup("");
	if (c->outbound) {
		char *d = render(c, json_string_value(json_object_get(flow->doc, "disclosure")));
		free(first->preamble);
		first->preamble = d;
	}
	enter(c, json_string_value(json_object_get(flow->doc, "start")), first);
	set_str(&first->state, c->state);
	first->entities = json_array();
	set_str(&c->last_say, first->say);
	if (!first->disposition)
		first->disposition = strdup("");
	*out = c;
	return 0;
}

/* The slot's value from this turn, or NULL. */
static json_t *slot_value(const json_t *slot, const json_t *ents, const char *text)
{
	const char *want = json_string_value(json_object_get(slot, "entity"));
	if (strcmp(want, "text") == 0)
		return text && *text ? json_string(text) : NULL;
	size_t i;
	const json_t *e;
	json_array_foreach(ents, i, e)
	{
		const char *type = json_string_value(json_object_get(e, "type"));
		/* A phone number can fill a digits slot and the other way round. */
		if (type && (strcmp(type, want) == 0 ||
		             (strcmp(want, "digits") == 0 && strcmp(type, "phone") == 0) ||
		             (strcmp(want, "number") == 0 && strcmp(type, "digits") == 0)))
			return json_incref(json_object_get(e, "value"));
	}
	return NULL;
}

int rv_convo_turn(struct rv_convo *c, const struct rv_turn_in *in, struct rv_turn_out *o)
{
	memset(o, 0, sizeof(*o));
	if (c->ended)
		return -EALREADY;
	if (!in->silence && !in->dtmf && !in->text)
		return -EINVAL;
	const json_t *doc = c->flow->doc;
	const json_t *globals = json_object_get(doc, "globals");
	const json_t *st = json_object_get(json_object_get(doc, "states"), c->state);
	c->turns++;
	o->barge_in = true;

	if (in->silence) {
		c->silences++;
		const json_t *g = json_object_get(globals, "silence");
		const json_t *mx = json_object_get(g, "max");
		int max = json_is_integer(mx) ? (int)json_integer_value(mx) : DEFAULT_SILENCE;
		o->intent = "silence";
		o->entities = json_array();
		if (c->silences > max) {
			const json_t *e = json_object_get(g, "end");
			append_say(o, "I can't hear anything, so I'll end the call now. Goodbye.");
			end_convo(c, o, json_is_string(e) ? json_string_value(e) : "no_response");
		} else {
			/* Ask again: the handler's words (or a default), then the question. */
			const char *gs = json_string_value(json_object_get(g, "say"));
			char *r = render(c, gs ? gs : "Are you still there?");
			char *say = render(c, json_string_value(json_object_get(st, "say")));
			append_say(o, r);
			append_say(o, say);
			free(r);
			free(say);
			o->expect = json_is_array(json_object_get(st, "expect"))
			                ? json_deep_copy(json_object_get(st, "expect"))
			                : json_array();
		}
		goto done;
	}
	c->silences = 0;

	/* Understand: the flow's own intents first when confident, then the built-in ones. */
	char dtmf_key[8] = "";
	struct rv_intent_result ir = {0};
	const char *text = in->text ? in->text : "";
	if (in->dtmf) {
		snprintf(dtmf_key, sizeof(dtmf_key), "dtmf:%c", in->dtmf);
		o->intent = json_object_get(json_object_get(st, "on"), dtmf_key) ? dtmf_key
		                                                                 : "provide_info";
		o->intent_conf = 1;
	} else if (in->intent) {
		o->intent = in->intent;
		o->intent_conf = in->intent_conf;
	} else {
		if (c->flow->custom) {
			rv_intent_classify(c->flow->custom, text, &ir);
			if (strcmp(ir.intent, RV_INTENT_OOS) != 0 && ir.confidence >= 0.6) {
				o->intent = ir.intent;
				o->intent_conf = ir.confidence;
			}
		}
		if (!o->intent) {
			/* The operator's active model (POST /api/voice-ai/train-model), else the
			 * built-in one. Its label is copied: a model swapped while the turn's
			 * result is still in use must not take the string with it. */
			struct rv_intent_ref *ref = NULL;
			const struct rv_intent_model *m = rv_intent_registry_acquire(&ref);
			if (m) {
				rv_intent_classify(m, text, &ir);
				rv_strlcpy(c->intent_buf, ir.intent, sizeof(c->intent_buf));
				o->intent = c->intent_buf;
				o->intent_conf = ir.confidence;
			}
			rv_intent_registry_release(ref);
		}
		if (!o->intent)
			o->intent = RV_INTENT_OOS;
	}
	const json_t *slot = json_object_get(st, "slot");
	bool want_name =
	    slot && strcmp(json_string_value(json_object_get(slot, "entity")) ?: "", "name") == 0;
	o->entities = in->entities ? json_deep_copy(in->entities)
	                           : entities_json(c, in->dtmf ? "" : text, want_name);
	if (in->dtmf && slot) {
		json_array_append_new(o->entities,
		                      json_pack("{s:s, s:s%, s:s}", "type", "digits", "value",
		                                &in->dtmf, (size_t)1, "text", ""));
	}

	/* Emotion: frustration several turns running triggers the flow's escalation. */
	const char *emo = in->emotion;
	struct rv_emotion_text et;
	struct rv_emotion ee;
	if (!emo) {
		rv_emotion_text(text, &et);
		rv_emotion_fuse(&et, NULL, NULL, &ee);
		emo = ee.label;
	}
	c->frustrated = strcmp(emo, "frustrated") == 0 ? c->frustrated + 1 : 0;
	c->turn_ents = o->entities;
	c->depth = 0;
	const json_t *fr = json_object_get(globals, "frustrated");
	if (fr) {
		const json_t *after = json_object_get(fr, "after");
		int n = json_is_integer(after) ? (int)json_integer_value(after) : 2;
		if (c->frustrated >= n) {
			c->frustrated = 0;
			follow(c, fr, o, true);
			goto done;
		}
	}

	/* Requests that win wherever the conversation is. */
	static const char *const always[] = {"do_not_call", "talk_to_human", NULL};
	const json_t *on = json_object_get(st, "on");
	const json_t *g = json_object_get(globals, o->intent);
	bool sure = o->intent_conf >= ACT_CONF;
	if (g && index_of(o->intent, always) >= 0 && o->intent_conf >= ALWAYS_CONF) {
		follow(c, g, o, true);
		goto done;
	}
	/* The state's slot, when this turn filled it, whatever the intent. */
	if (slot) {
		json_t *v = slot_value(slot, o->entities, text);
		if (v) {
			json_object_set_new(c->slots,
			                    json_string_value(json_object_get(slot, "name")), v);
			const json_t *next = json_object_get(st, "next");
			if (next)
				follow(c, next, o, false);
			else
				end_convo(c, o, json_string_value(json_object_get(st, "end")));
			goto done;
		}
	}
	const json_t *t = json_object_get(on, o->intent);
	if (t && sure) {
		follow(c, t, o, false);
		goto done;
	}
	if (g && sure && index_of(o->intent, always) < 0) {
		if (strcmp(o->intent, "repeat") == 0 && !json_object_get(g, "say") &&
		    !json_object_get(g, "goto")) {
			append_say(o, c->last_say);
		} else {
			follow(c, g, o, true);
		}
		goto done;
	}

	/* Not understood here: re-prompt, then the fallback. */
	const json_t *fb = json_object_get(st, "fallback");
	const json_t *mr = json_object_get(slot ? slot : fb, "max_retries");
	int max = json_is_integer(mr) ? (int)json_integer_value(mr) : DEFAULT_RETRIES;
	if (c->retries < max) {
		c->retries++;
		const char *re = json_string_value(json_object_get(slot, "reprompt"));
		if (!re && json_is_object(fb))
			re = NULL;
		if (re) {
			char *r = render(c, re);
			append_say(o, r);
			free(r);
		} else {
			char *say = render(c, json_string_value(json_object_get(st, "say")));
			append_say(o, "Sorry, I didn't catch that.");
			append_say(o, say);
			free(say);
		}
		json_decref(o->expect);
		o->expect = json_is_array(json_object_get(st, "expect"))
		                ? json_deep_copy(json_object_get(st, "expect"))
		                : json_array();
	} else if (fb) {
		follow(c, fb, o, false);
	} else {
		append_say(o,
		           "I'm sorry, I'm having trouble understanding. Someone will follow up. "
		           "Goodbye.");
		end_convo(c, o, "not_understood");
	}

done:
	c->turn_ents = NULL;
	set_str(&o->state, c->state);
	if (!o->disposition)
		o->disposition = strdup(c->ended ? c->disposition : "");
	if (!o->say)
		o->say = strdup("");
	if (!o->preamble)
		o->preamble = strdup("");
	if (!o->expect)
		o->expect = json_array();
	if (*o->say)
		set_str(&c->last_say, o->say);
	/* The intent string must outlive the model call: use the flow's storage. */
	if (o->intent == dtmf_key)
		o->intent = "dtmf";
	return 0;
}

json_t *rv_convo_snapshot(const struct rv_convo *c)
{
	return json_pack("{s:s, s:O, s:O, s:i, s:i, s:i, s:i, s:b, s:s, s:s}", "state", c->state,
	                 "slots", c->slots, "vars", c->vars, "turns", (int)c->turns, "retries",
	                 c->retries, "silences", c->silences, "frustrated", c->frustrated, "ended",
	                 c->ended, "disposition", c->disposition, "last_say",
	                 c->last_say ? c->last_say : "");
}

int rv_convo_resume(const struct rv_flow *flow, const struct rv_convo_ctx *ctx, const json_t *snap,
                    struct rv_convo **out)
{
	const char *state = json_string_value(json_object_get(snap, "state"));
	if (!json_is_object(snap) || !state ||
	    !json_object_get(json_object_get(flow->doc, "states"), state))
		return -EINVAL;
	struct rv_turn_out tmp;
	struct rv_convo *c = NULL;
	int err = rv_convo_start(flow, ctx, &c, &tmp);
	rv_turn_out_clear(&tmp);
	if (err)
		return err;
	/* Restore; only the types we wrote are accepted. */
	snprintf(c->state, sizeof(c->state), "%s", state);
	const json_t *v;
	if (json_is_object(v = json_object_get(snap, "slots")))
		json_object_update(c->slots, (json_t *)v);
	if (json_is_object(v = json_object_get(snap, "vars")))
		json_object_update(c->vars, (json_t *)v);
	c->turns = (unsigned)json_integer_value(json_object_get(snap, "turns"));
	c->retries = (int)json_integer_value(json_object_get(snap, "retries"));
	c->silences = (int)json_integer_value(json_object_get(snap, "silences"));
	c->frustrated = (int)json_integer_value(json_object_get(snap, "frustrated"));
	c->ended = json_is_true(json_object_get(snap, "ended"));
	snprintf(c->disposition, sizeof(c->disposition), "%s",
	         json_string_value(json_object_get(snap, "disposition")) ?: "");
	set_str(&c->last_say, json_string_value(json_object_get(snap, "last_say")));
	*out = c;
	return 0;
}

void rv_convo_free(struct rv_convo *c)
{
	if (!c)
		return;
	json_decref(c->lead);
	json_decref(c->campaign);
	json_decref(c->slots);
	json_decref(c->vars);
	free(c->last_say);
	free(c);
}
