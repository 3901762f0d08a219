/* The conversation engine: validation errors, the shipped flows, whole conversations on text. */
#include <errno.h>
#include <string.h>

#include "../test.h"
#include "dialog/flow.h"

#define NOW_MS 1795359600000LL /* Sunday 2026-11-22 10:00 New York */

static struct rv_flow *load(const char *json, json_t **errors)
{
	json_error_t je;
	json_t *doc = json_loads(json, 0, &je);
	struct rv_flow *f = NULL;
	*errors = NULL;
	if (!doc)
		return NULL;
	if (rv_flow_parse(doc, &f, errors) != 0)
		f = NULL;
	json_decref(doc);
	return f;
}

static bool has_error(const json_t *errors, const char *path, const char *needle)
{
	size_t i;
	const json_t *e;
	json_array_foreach(errors, i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0 &&
		    strstr(json_string_value(json_object_get(e, "message")), needle))
			return true;
	}
	return false;
}

RV_TEST(dialog_flow_validation_names_every_problem)
{
	json_t *errors = NULL;
	struct rv_flow *f =
	    load("{\"start\":\"a\",\"states\":{"
	         "\"a\":{\"say\":\"hi\",\"on\":{\"affirm\":\"b\",\"flying\":\"a\",\"deny\":"
	         "\"nowhere\"}},"
	         "\"b\":{\"end\":\"done\"},"
	         "\"c\":{\"say\":\"never\",\"end\":\"x\",\"actions\":[{\"type\":\"explode\"}]}}}",
	         &errors);
	ASSERT(f == NULL);
	ASSERT(errors);
	ASSERT(has_error(errors, "$.states.a.on.flying", "unknown intent"));
	ASSERT(has_error(errors, "$.states.a.on.deny", "unknown state \"nowhere\""));
	ASSERT(has_error(errors, "$.states.b.say", "missing \"say\""));
	ASSERT(has_error(errors, "$.states.c.actions[0]", "type"));
	json_decref(errors);

	/* Only reachability wrong: reported once the rest is right. */
	f = load("{\"start\":\"a\",\"states\":{\"a\":{\"say\":\"hi\",\"end\":\"done\"},"
	         "\"lost\":{\"say\":\"x\",\"end\":\"done\"}}}",
	         &errors);
	ASSERT(f == NULL);
	ASSERT(has_error(errors, "$.states.lost", "cannot be reached"));
	json_decref(errors);

	f = load("[1,2]", &errors);
	ASSERT(f == NULL && has_error(errors, "$", "object"));
	json_decref(errors);
}

RV_TEST(dialog_shipped_flows_are_valid)
{
	static const char *const names[] = {"default", "appointment", "support"};
	for (size_t i = 0; i < 3; i++) {
		json_t *errors = NULL;
		struct rv_flow *f = load(rv_flow_builtin_json(names[i]), &errors);
		char *e = errors ? json_dumps(errors, 0) : NULL;
		ASSERT_MSG(f, "%s: %s", names[i], e ? e : "not JSON");
		free(e);
		json_decref(errors);
		rv_flow_free(f);
	}
	ASSERT(rv_flow_builtin_json("nope") == NULL);
}

/* Run a shipped flow over caller lines; returns the last turn (caller clears it). */
static void converse(const char *flow, const char *const *lines, size_t n, struct rv_turn_out *last,
                     struct rv_convo **cp, struct rv_flow **fp)
{
	json_t *errors = NULL;
	struct rv_flow *f = load(rv_flow_builtin_json(flow), &errors);
	json_t *lead =
	    json_pack("{s:s, s:s}", "first_name", "Maria", "timezone", "America/New_York");
	json_t *camp = json_pack("{s:s, s:s}", "name", "Acme Dental", "transfer_to", "sip:desk@x");
	struct rv_convo_ctx ctx = {
	    .lead = lead, .campaign = camp, .now_ms = NOW_MS, .outbound = true};
	struct rv_convo *c = NULL;
	rv_convo_start(f, &ctx, &c, last);
	for (size_t i = 0; i < n; i++) {
		rv_turn_out_clear(last);
		struct rv_turn_in in = {.text = lines[i]};
		rv_convo_turn(c, &in, last);
	}
	json_decref(lead);
	json_decref(camp);
	*cp = c;
	*fp = f; /* the flow must outlive the conversation */
}

RV_TEST(dialog_appointment_callback_at_the_right_local_time)
{
	static const char *const lines[] = {"can you call me back tomorrow at 3 pm"};
	struct rv_turn_out o;
	struct rv_convo *c;
	struct rv_flow *f;
	converse("appointment", lines, 1, &o, &c, &f);
	ASSERT(o.end);
	ASSERT_EQ_STR(o.disposition, "callback");
	ASSERT_EQ_INT(o.nactions, 1);
	ASSERT_EQ_INT(o.actions[0].type, RV_ACT_SCHEDULE_CALLBACK);
	ASSERT_EQ_STR(json_string_value(json_object_get(o.actions[0].args, "at")),
	              "2026-11-23T15:00:00-05:00");
	ASSERT(strstr(o.say, "Monday, November 23 at 3 PM"));
	rv_turn_out_clear(&o);
	struct rv_turn_in in = {.text = "hello?"};
	ASSERT_EQ_INT(rv_convo_turn(c, &in, &o), -EALREADY);
	rv_convo_free(c);
	rv_flow_free(f);
}

RV_TEST(dialog_dnc_request_wins_in_any_state)
{
	static const char *const lines[] = {"yes", "stop calling me and take me off your list"};
	struct rv_turn_out o;
	struct rv_convo *c;
	struct rv_flow *f;
	converse("appointment", lines, 2, &o, &c, &f);
	ASSERT(o.end);
	ASSERT_EQ_STR(o.disposition, "dnc_request");
	ASSERT_EQ_INT(o.actions[0].type, RV_ACT_DNC);
	ASSERT(!o.barge_in); /* the apology is not cut off */
	rv_turn_out_clear(&o);
	rv_convo_free(c);
	rv_flow_free(f);
}

RV_TEST(dialog_slot_reprompts_then_fills_and_snapshot_resumes)
{
	static const char *const lines[] = {"sure", "hmm let me think"};
	struct rv_turn_out o;
	struct rv_convo *c;
	struct rv_flow *f;
	converse("appointment", lines, 2, &o, &c, &f);
	ASSERT_EQ_STR(o.state, "ask_time");
	ASSERT(strstr(o.say, "day and a time"));
	rv_turn_out_clear(&o);
	/* Carry the conversation over a snapshot, as the stateless text endpoint does. */
	json_t *snap = rv_convo_snapshot(c);
	rv_convo_free(c);
	struct rv_convo_ctx ctx = {.now_ms = NOW_MS, .timezone = "America/New_York"};
	ASSERT_OK(rv_convo_resume(f, &ctx, snap, &c));
	struct rv_turn_in in = {.text = "friday at ten thirty in the morning"};
	ASSERT_OK(rv_convo_turn(c, &in, &o));
	ASSERT_EQ_STR(o.disposition, "converted");
	json_t *s2 = rv_convo_snapshot(c);
	ASSERT_EQ_STR(
	    json_string_value(json_object_get(json_object_get(s2, "slots"), "appointment")),
	    "2026-11-27T10:30:00-05:00");
	json_decref(s2);
	json_decref(snap);
	rv_turn_out_clear(&o);
	rv_convo_free(c);
	rv_flow_free(f);
}

RV_TEST(dialog_custom_intents_and_silence)
{
	static const char *const lines[] = {"i think i was charged twice this month"};
	struct rv_turn_out o;
	struct rv_convo *c;
	struct rv_flow *f;
	converse("support", lines, 1, &o, &c, &f);
	ASSERT_EQ_STR(o.intent, "billing");
	ASSERT_EQ_STR(o.state, "account");
	rv_turn_out_clear(&o);
	struct rv_turn_in quiet = {.silence = true};
	ASSERT_OK(rv_convo_turn(c, &quiet, &o));
	ASSERT(!o.end && strstr(o.say, "account number"));
	rv_turn_out_clear(&o);
	ASSERT_OK(rv_convo_turn(c, &quiet, &o));
	rv_turn_out_clear(&o);
	ASSERT_OK(rv_convo_turn(c, &quiet, &o));
	ASSERT(o.end);
	ASSERT_EQ_STR(o.disposition, "no_response");
	rv_turn_out_clear(&o);
	rv_convo_free(c);
	rv_flow_free(f);
}
