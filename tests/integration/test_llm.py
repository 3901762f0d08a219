"""LLM mode over the text endpoints: the daemon talks to tests/fakes/fake_openai_chat.py (OpenAI's
streaming wire format), with the scripted flow as the fallback."""
import json
import os
import subprocess
import sys
import time

from harness import Daemon, check, eq

NOW = "2026-11-22T10:00:00-05:00"  # a Sunday morning in New York
FAKE = os.path.join(os.path.dirname(__file__), "..", "fakes", "fake_openai_chat.py")

FLOW = {
    "kind": "llm", "start": "greet",
    "disclosure": "This is an automated call from {{campaign.name}}.",
    "persona": {"name": "Ava"},
    "llm": {"system": "You book dental visits for {{campaign.name}}.",
            "goal": "Book a visit for {{lead.first_name}}.",
            "banned_topics": ["politics", "election"], "max_turn_words": 20,
            "timeout_ms": 1500,
            "deflection": "I'd rather not get into that. Shall we find a time for your visit?"},
    "globals": {"do_not_call": {"say": "Sorry, I've removed your number. Goodbye.",
                                "actions": [{"type": "dnc"}], "end": "dnc_request"}},
    "states": {
        "greet": {"say": "Hi {{lead.first_name}}, is now a good time?",
                  "on": {"affirm": "book", "deny": "bye"}, "fallback": {"goto": "bye"}},
        "book": {"say": "When works for you?",
                 "slot": {"name": "when", "entity": "datetime"}, "next": "done"},
        "done": {"say": "Booked for {{slots.when}}.", "end": "converted"},
        "bye": {"say": "Okay, goodbye.", "end": "not_interested"}}}


class Fake:
    def __init__(self, *args):
        self.log = os.path.join("/tmp", "rv-it-llm-%d.log" % os.getpid())
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--key", "sk-good", "--model", "gpt-test", "--expect", "Jane",
             "--expect", "Acme Dental", "--slow", "4", "--log", self.log] + list(args),
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.split()[1])

    def requests(self):
        try:
            with open(self.log) as f:
                return [json.loads(x) for x in f if x.strip()]
        except OSError:
            return []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        if os.path.exists(self.log):
            os.unlink(self.log)


def daemon(port, key="sk-good"):
    return Daemon(env={"REVOVOICE_LLM_BASE_URL": "http://127.0.0.1:%d" % port,
                       "REVOVOICE_LLM_API_KEY": key, "REVOVOICE_LLM_MODEL": "gpt-test"})


BASE = {"flow": FLOW, "timezone": "America/New_York", "now": NOW, "outbound": True,
        "lead": {"first_name": "Jane", "phone": "+14155550100"},
        "campaign": {"name": "Acme Dental", "transfer_to": "+14155550199"}}


def turn(d, tok, conv, text):
    st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                         dict(BASE, conversation=conv, text=text), token=tok)
    eq(st, 200, "turn %r: %r" % (text, r))
    return r


def test_llm_turns_stream_call_tools_and_guard():
    with Fake() as fake, daemon(fake.port) as d:
        tok = d.admin()
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation", BASE, token=tok)
        eq(st, 200, "start")
        eq(r["preamble"], "This is an automated call from Acme Dental.", "disclosure first")
        eq(r["mode"], "llm", "LLM mode")
        conv = r["conversation"]

        r = turn(d, tok, conv, "hello, who is calling")
        eq(r["mode"], "llm", "the model answered")
        eq([s["text"] for s in r["sentences"]],
           ["Sure, Dr. Smith can see you.", "The fee is 3.5 dollars less than last time!",
            "Does that work for you?"], "sentences one by one, abbreviations kept")
        req = fake.requests()[-1]
        eq(req["stream"], True, "streams")
        eq(req["messages"][0]["role"], "system", "system prompt first")
        check("2026-11-22T10:00:00-05:00" in req["messages"][0]["content"], "local time sent")
        eq(req["messages"][1]["content"],
           "This is an automated call from Acme Dental. Hi Jane, is now a good time?",
           "the model sees what the caller heard")

        r = turn(d, tok, r["conversation"], "I'm busy, call me tomorrow afternoon")
        cb = [a for a in r["actions"] if a["type"] == "schedule_callback"]
        eq(len(cb), 1, "one callback from the split tool call")
        eq(cb[0]["at"], "2026-11-23T15:00:00-05:00", "tomorrow 3 pm in New York")
        eq(r["say"], "Great, you're all set. We'll call you then.", "words after the tool")

        r = turn(d, tok, r["conversation"], "what about politics these days")
        eq(r["deflected"], True, "banned topic")
        eq(r["say"], FLOW["llm"]["deflection"], "deflection said instead")

        r = turn(d, tok, r["conversation"], "tell me everything")
        eq(r["truncated"], True, "max_turn_words")
        check(20 <= len(r["say"].split()) <= 35 and r["say"].endswith("."),
              "cut at a sentence past 20 words: %r" % r["say"])

        r = turn(d, tok, r["conversation"], "ok goodbye")
        eq(r["end"], True, "end_call ends")
        eq(r["disposition"], "completed", "disposition from the tool")
        eq(r["conversation"]["llm"]["modes"], ["llm"] * 6, "every turn recorded as LLM")
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             dict(BASE, conversation=r["conversation"], text="hello?"), token=tok)
        eq(st, 409, "ended")


def test_llm_timeout_and_401_fall_back_to_the_flow():
    with Fake() as fake, daemon(fake.port) as d:
        tok = d.admin()
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation", BASE, token=tok)
        t0 = time.time()
        r = turn(d, tok, r["conversation"], "yes but go slow please")
        eq(r["mode"], "scripted", "timeout falls back")
        eq(r["fallback_reason"], "timeout", "reason")
        check(time.time() - t0 < 4, "did not wait for the slow server")
        check(r["say"] != "", "the flow answered: %r" % r["say"])
        r = turn(d, tok, r["conversation"], "tomorrow at 3 pm")
        eq(r["fallback_reason"], "fallen_back", "the flow keeps the call")

    with Fake() as fake, daemon(fake.port, key="sk-wrong") as d:
        tok = d.admin()
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation", BASE, token=tok)
        r = turn(d, tok, r["conversation"], "yes go ahead")
        eq(r["mode"], "scripted", "401 falls back")
        eq(r["fallback_reason"], "http_401", "reason")
        eq(r["state"], "book", "the flow moved on from the answer")
        logs = [l for l in d.log_lines() if l.get("component") == "llm"]
        check(any("HTTP 401" in l.get("msg", l.get("message", "")) for l in logs),
              "401 logged: %r" % logs)
        st, body, _ = d.request("GET", "/metrics", token=tok)
        text = body if isinstance(body, str) else body.decode() if isinstance(body, bytes) \
            else json.dumps(body)
        check('rv_llm_fallbacks_total{reason="http_401"} 1' in text, "fallback counted")


def test_llm_flow_validation_and_no_llm_configured():
    with Daemon() as d:
        tok = d.admin()
        bad = dict(FLOW, llm={"goal": "no system", "max_turn_words": 1})
        st, r, _ = d.request("POST", "/api/flows", {"name": "bad-llm", "definition": bad},
                             token=tok)
        eq(st, 422, "invalid llm section refused on save")
        paths = {e["path"] for e in r["error"]["details"]["errors"]}
        check({"$.llm.system", "$.llm.max_turn_words"} <= paths, "errors named: %r" % paths)
        nosec = dict(FLOW)
        del nosec["llm"]
        st, r, _ = d.request("POST", "/api/flows", {"name": "no-llm", "definition": nosec},
                             token=tok)
        eq(st, 422, "kind llm needs the section")
        # No llm.base_url: the flow runs scripted and says why.
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation", BASE, token=tok)
        eq(r["mode"], "scripted", "scripted")
        eq(r["fallback_reason"], "no_llm_configured", "reason")
        eq(r["say"], "Hi Jane, is now a good time?", "the start state's prompt")
