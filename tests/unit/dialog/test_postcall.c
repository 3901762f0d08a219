/* Post-call analysis (src/dialog/postcall.h) on realistic calls, and the model's summary against
 * tests/fakes/fake_openai_chat.py. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test.h"
#include "core/util.h"
#include "dialog/llm.h"
#include "dialog/postcall.h"

static const char *str_at(const json_t *o, const char *path1, const char *path2)
{
	const json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	return json_string_value(v);
}

static json_t *ents(const char *type, const char *value, const char *text)
{
	return json_pack("[{s:s, s:s, s:s}]", "type", type, "value", value, "text", text);
}

RV_TEST(postcall_busy_caller_gets_a_callback)
{
	json_t *e1 = ents("datetime", "2026-11-23T15:00:00-05:00", "tomorrow at 3 pm");
	struct rv_postcall_turn t[] = {
	    {.speaker = "agent",
	     .text = "This is an automated call from Acme Dental. Hi Jane, is now a good time?"},
	    {"caller", "hello yes this is jane", "greeting", 0.8, NULL, "neutral", 0.0},
	    {.speaker = "agent", .text = "Great. What day and time work best for you?"},
	    {"caller",
	     "oh I'm really busy at work right now, can you call me back tomorrow at 3 "
	     "pm",
	     "callback_later", 0.91, e1, "neutral", -0.1},
	    {.speaker = "agent",
	     .text = "No problem, I'll call you back on Monday, November 23 at 3 PM."},
	    {"caller", "perfect, thanks so much, that's great", "affirm", 0.7, NULL, "positive",
	     0.7},
	    {.speaker = "agent", .text = "Thank you, goodbye."},
	};
	json_t *o = NULL;
	ASSERT_OK(rv_postcall_analyze(t, RV_ARRAY_LEN(t), NULL, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "callback");
	ASSERT_EQ_STR(str_at(o, "disposition_source", NULL), "inferred");
	ASSERT_EQ_STR(str_at(o, "fields", "callback_at"), "2026-11-23T15:00:00-05:00");
	ASSERT_EQ_STR(str_at(o, "summary_source", NULL), "extractive");
	const char *sum = str_at(o, "summary", NULL);
	ASSERT_MSG(strstr(sum, "Outcome: callback requested for 2026-11-23T15:00:00-05:00.") ==
	                   sum &&
	               strstr(sum, "\"oh I'm really busy at work right now, can you call me back "
	                           "tomorrow at 3 pm\"") &&
	               strstr(sum, "mood improved"),
	           "%s", sum);
	/* The most informative sentence leads; the bland greeting is not quoted. */
	const json_t *key = json_object_get(o, "key_sentences");
	ASSERT(json_array_size(key) >= 1 && json_array_size(key) <= 3);
	for (size_t i = 0; i < json_array_size(key); i++)
		ASSERT(strcmp(json_string_value(json_array_get(key, i)), "hello yes this is jane"));
	const json_t *s = json_object_get(o, "sentiment");
	ASSERT_EQ_STR(str_at(s, "trend", NULL), "improving");
	ASSERT_EQ_INT(json_array_size(json_object_get(s, "series")), 3);
	ASSERT(json_real_value(json_object_get(s, "end")) > 0.6);
	ASSERT_EQ_STR(str_at(s, "final_label", NULL), "positive");
	ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "turns"), "caller")),
	              3);
	ASSERT_EQ_INT(
	    json_integer_value(json_object_get(json_object_get(o, "intents"), "callback_later")),
	    1);
	const json_t *e = json_array_get(json_object_get(o, "entities"), 0);
	ASSERT_EQ_INT(json_integer_value(json_object_get(e, "turn")), 3);
	json_decref(o);
	json_decref(e1);
}

RV_TEST(postcall_angry_dnc_request_worsens)
{
	struct rv_postcall_turn t[] = {
	    {.speaker = "agent", .text = "Hi, this is Ava from Acme Dental. Is now a good time?"},
	    {"caller", "who is this", "who_is_this", 0.9, NULL, "neutral", 0.0},
	    {.speaker = "agent", .text = "I'm Ava, calling about your appointment."},
	    {"caller", "I told you people last week, this is ridiculous", "not_interested", 0.5,
	     NULL, "frustrated", -0.7},
	    {"caller", "stop calling me and take me off your list", "do_not_call", 0.95, NULL,
	     "frustrated", -0.8},
	    {.speaker = "agent",
	     .text = "I'm sorry for the trouble. I've removed your number. Goodbye."},
	};
	json_t *o = NULL;
	ASSERT_OK(rv_postcall_analyze(t, RV_ARRAY_LEN(t), NULL, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "dnc_request");
	ASSERT_EQ_STR(str_at(o, "sentiment", "trend"), "worsening");
	ASSERT_EQ_INT(
	    json_integer_value(json_object_get(
	        json_object_get(json_object_get(o, "sentiment"), "labels"), "frustrated")),
	    2);
	const char *sum = str_at(o, "summary", NULL);
	ASSERT_MSG(strstr(sum, "asked not to be called again") &&
	               strstr(sum, "stop calling me and take me off your list") &&
	               strstr(sum, "mood worsened"),
	           "%s", sum);
	json_decref(o);
}

RV_TEST(postcall_flow_outcome_slots_and_entities)
{
	json_t *e1 = ents("email", "jane.doe@example.org", "jane dot doe at example dot org");
	json_t *e2 = ents("phone", "+14155550100", "four one five five five five oh one oh oh");
	json_t *slots = json_pack("{s:s}", "appointment", "2026-11-24T10:00:00-05:00");
	json_t *vars = json_pack("{s:s, s:{s:i}}", "insurance", "Delta", "webhook", "status", 200);
	struct rv_postcall_turn t[] = {
	    {.speaker = "agent", .text = "What day and time work best?"},
	    {"caller", "tuesday at ten works", "provide_info", 0.8, NULL, "neutral", 0.1},
	    {.speaker = "agent", .text = "And your email?"},
	    {"caller", "it's jane dot doe at example dot org", "provide_info", 0.9, e1, "neutral",
	     0.0},
	    {"caller", "or call four one five five five five oh one oh oh", "provide_info", 0.9, e2,
	     NULL, 0},
	};
	struct rv_postcall_outcome oc = {.disposition = "converted", .slots = slots, .vars = vars};
	json_t *o = NULL;
	ASSERT_OK(rv_postcall_analyze(t, RV_ARRAY_LEN(t), &oc, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "converted");
	ASSERT_EQ_STR(str_at(o, "disposition_source", NULL), "flow");
	ASSERT_EQ_STR(str_at(o, "fields", "email"), "jane.doe@example.org");
	ASSERT_EQ_STR(str_at(o, "fields", "phone"), "+14155550100");
	ASSERT_EQ_STR(str_at(o, "fields", "appointment"), "2026-11-24T10:00:00-05:00");
	ASSERT_EQ_STR(str_at(o, "fields", "insurance"), "Delta");
	ASSERT(!json_object_get(json_object_get(o, "fields"), "webhook")); /* objects stay out */
	ASSERT(strstr(str_at(o, "summary", NULL),
	              "Outcome: converted (appointment 2026-11-24T10:00:00-05:00).") != NULL);
	/* Two emotion readings, both near neutral: flat. */
	ASSERT_EQ_STR(str_at(o, "sentiment", "trend"), "flat");
	json_decref(o);
	json_decref(e1);
	json_decref(e2);
	json_decref(slots);
	json_decref(vars);
}

RV_TEST(postcall_no_speech_voicemail_and_bad_input)
{
	struct rv_postcall_turn t[] = {
	    {.speaker = "agent", .text = "Hi, this is Ava from Acme Dental."},
	    {"caller", "", NULL, 0, NULL, NULL, 0},
	    {.speaker = "system", .text = "silence"},
	};
	struct rv_postcall_outcome oc = {.amd = "human"};
	json_t *o = NULL;
	ASSERT_OK(rv_postcall_analyze(t, RV_ARRAY_LEN(t), &oc, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "no_answer");
	ASSERT_EQ_STR(str_at(o, "sentiment", "trend"), "unknown");
	ASSERT_EQ_INT(json_array_size(json_object_get(o, "key_sentences")), 0);
	ASSERT_EQ_STR(str_at(o, "summary", NULL), "Outcome: no one spoke on the call.");
	json_decref(o);
	oc.amd = "machine";
	ASSERT_OK(rv_postcall_analyze(t, RV_ARRAY_LEN(t), &oc, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "voicemail");
	json_decref(o);
	struct rv_postcall_turn vm[] = {
	    {"caller",
	     "you have reached the voicemail of john please leave a message after the tone",
	     "voicemail_greeting", 0.93, NULL, "neutral", 0}};
	ASSERT_OK(rv_postcall_analyze(vm, 1, NULL, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "voicemail");
	json_decref(o);
	struct rv_postcall_turn bad[] = {{.speaker = NULL, .text = "who"}};
	ASSERT_EQ_INT(rv_postcall_analyze(bad, 1, NULL, NULL, &o), -EINVAL);
}

RV_TEST(postcall_turns_from_store_rows)
{
	json_error_t je;
	json_t *rows = json_loads(
	    "[{\"speaker\": \"agent\", \"text\": \"Is now a good time?\"},"
	    " {\"speaker\": \"caller\", \"text\": \"no I am not interested at all thanks\","
	    "  \"intent\": \"not_interested\", \"confidence\": 0.88, \"entities\": [],"
	    "  \"emotion\": {\"label\": \"neutral\", \"valence\": -0.2}}]",
	    0, &je);
	struct rv_postcall_turn *t = NULL;
	size_t n = 0;
	ASSERT_OK(rv_postcall_turns_from_json(rows, &t, &n));
	ASSERT_EQ_INT(n, 2);
	json_t *o = NULL;
	ASSERT_OK(rv_postcall_analyze(t, n, NULL, NULL, &o));
	ASSERT_EQ_STR(str_at(o, "disposition", NULL), "not_interested");
	ASSERT_EQ_STR(str_at(o, "summary", NULL),
	              "Outcome: the caller was not interested. Caller: \"no I am not interested at "
	              "all thanks\"");
	json_decref(o);
	free(t);
	json_t *bad = json_loads("[{\"text\": \"hi\"}]", 0, &je);
	ASSERT_EQ_INT(rv_postcall_turns_from_json(bad, &t, &n), -EINVAL);
	json_decref(bad);
	json_decref(rows);
}

/* The fake chat server, started with extra arguments (NULL-terminated). */
static pid_t start_fake(int *port, int *outfd, const char *mode)
{
	int fds[2];
	char buf[64] = {0};
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		if (mode)
			execlp("python3", "python3", "tests/fakes/fake_openai_chat.py", "--key",
			       "sk-good", "--model", "gpt-test", "--slow", "3", "--mode", mode,
			       (char *)NULL);
		else
			execlp("python3", "python3", "tests/fakes/fake_openai_chat.py", "--key",
			       "sk-good", "--model", "gpt-test", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	*outfd = fds[0];
	if (read(fds[0], buf, sizeof(buf) - 1) <= 0 || sscanf(buf, "port %d", port) != 1)
		return -1;
	return pid;
}

static void stop_fake(pid_t pid, int outfd)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	close(outfd);
}

RV_TEST(postcall_llm_summary_and_its_fallback)
{
	json_t *e1 = ents("datetime", "2026-11-23T15:00:00-05:00", "tomorrow at 3 pm");
	struct rv_postcall_turn t[] = {
	    {.speaker = "agent", .text = "Is now a good time?"},
	    {"caller", "I'm busy, call me back tomorrow at 3 pm", "callback_later", 0.9, e1,
	     "neutral", 0},
	};
	for (int round = 0; round < 2; round++) {
		int port = 0, outfd = -1;
		pid_t pid = start_fake(&port, &outfd, round ? "slow" : NULL);
		ASSERT(pid > 0);
		char url[64];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
		struct rv_llm_config cfg = {
		    .base_url = url, .api_key = "sk-good", .model = "gpt-test", .timeout_ms = 1000};
		struct rv_llm *llm = NULL;
		ASSERT_OK(rv_llm_new(&cfg, &llm));
		json_t *o = NULL;
		ASSERT_OK(rv_postcall_analyze(t, RV_ARRAY_LEN(t), NULL, llm, &o));
		if (round == 0) {
			ASSERT_EQ_STR(str_at(o, "summary_source", NULL), "llm");
			ASSERT_EQ_STR(str_at(o, "summary", NULL),
			              "The caller was busy and asked to be called back tomorrow "
			              "afternoon. A callback was booked for 3 PM.");
			ASSERT(strstr(str_at(o, "extractive_summary", NULL), "Outcome: callback"));
		} else {
			ASSERT_EQ_STR(str_at(o, "summary_source", NULL), "extractive");
			ASSERT_EQ_STR(str_at(o, "llm_error", NULL), "timeout");
			ASSERT_EQ_STR(str_at(o, "summary", NULL),
			              str_at(o, "extractive_summary", NULL));
		}
		json_decref(o);
		rv_llm_free(llm);
		stop_fake(pid, outfd);
	}
	json_decref(e1);
}
