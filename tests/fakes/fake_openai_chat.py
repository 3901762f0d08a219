#!/usr/bin/env python3
"""A local stand-in for OpenAI's streaming chat-completions endpoint, for tests of LLM mode.

Speaks the wire protocol RevoVoice's client uses:

    POST /v1/chat/completions
    Authorization: Bearer KEY
    {"model", "messages": [{"role": "system", ...}, ...], "stream": true, "tools": [...]}

and answers 200 text/event-stream, chunked, one `data: {chat.completion.chunk}` event per
delta followed by a blank line, the first delta carrying the role, content in small pieces,
tool calls split across events (index/id/function.name first, function.arguments in
fragments), a last event with finish_reason, then `data: [DONE]`.

Every request is checked the way the real service would and more: a wrong key gets 401
{"error": {"message", "type", "code": "invalid_api_key"}}; a wrong model 404 (model_not_found);
no "stream": true, a first message that is not the system prompt, a system prompt missing one of
the --expect strings (lead data, campaign name...), or a tools list missing end_call, transfer,
schedule_callback or set_field gets 400 in the same shape.

A system prompt starting "You write call summaries" (post-call analysis) needs no tools and
gets a two-sentence summary (--mode slow/malformed apply to it too).

What the model "says" depends on the last message (as a scripted model would):
    a tool result            "Great, you're all set. We'll call you then."
    "tomorrow"               a schedule_callback tool call only, "at" = the day after the
                             date-time in the system prompt, 15:00 at its UTC offset
    "politics"               a reply about the election (a banned topic in the tests)
    "tell me everything"     a long reply of many sentences
    "goodbye"                "Thanks for your time. Goodbye!" and end_call(completed)
    "person"                 a transfer tool call
    "rocket"                 a call to an unknown tool, then a sentence
    "slow"                   nothing for --slow seconds (a timeout)
    "malformed"              a stream with an event that is not JSON
    anything else            "Sure, Dr. Smith can see you. The fee is 3.5 dollars less than
                             last time! Does that work for you?" with --delay seconds between
                             sentences
--mode forces one fault for every request: slow, 401, malformed, banned.

Run:  fake_openai_chat.py [--port 0] [--key KEY] [--model M] [--mode MODE] [--delay S]
      [--slow S] [--expect TEXT ...] [--log FILE]   (prints "port N", then serves; each
request body is appended to --log as one JSON line).
"""
import argparse
import datetime
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 4 * 1024 * 1024
TOOLS = {"end_call", "transfer", "schedule_callback", "set_field"}

NORMAL = ["Sure, Dr. Smith can see you. ", "The fee is 3.5 dollars less than last time! ",
          "Does that work for you?"]
BANNED = ["Honestly, the election was a mess and politics is wild. ",
          "Anyway, let's get back to your appointment."]
LONG = ["I can tell you all about it. ", "We have been serving the community for many years. ",
        "Our clinic opens at eight in the morning and closes at six in the evening. ",
        "We offer checkups, cleanings, and a range of other services for the whole family. ",
        "Parking is free and there is a bus stop right outside the front door. ",
        "Most visits take about thirty minutes from start to finish. ",
        "Would you like to book a time?"]


def chunk(model, delta, finish=None):
    return {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def callback_time(system):
    m = re.search(r"(\d{4}-\d\d-\d\d)T\d\d:\d\d:\d\d([+-]\d\d:\d\d)", system)
    if not m:
        raise ValueError("no local date-time with an offset in the system prompt")
    day = datetime.date.fromisoformat(m.group(1)) + datetime.timedelta(days=1)
    return "%sT15:00:00%s" % (day.isoformat(), m.group(2))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, etype, code, message):
        self.reply(status, {"error": {"message": message, "type": etype, "param": None,
                                      "code": code}})

    # -- the event stream ------------------------------------------------------------------
    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def raw(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        self.raw(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def finish_stream(self, model, reason):
        self.event(chunk(model, {}, reason))
        self.raw(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def say(self, model, pieces, delay=0.0):
        """Each piece split further into small content deltas, as tokens arrive."""
        for i, piece in enumerate(pieces):
            if i and delay:
                time.sleep(delay)
            words = re.findall(r"\S+\s*", piece)
            for k in range(0, len(words), 2):
                self.event(chunk(model, {"content": "".join(words[k:k + 2])}))

    def tool_call(self, model, index, call_id, name, args):
        """A tool call split over events: id and name first, then the arguments in pieces."""
        self.event(chunk(model, {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
        text = json.dumps(args)
        for k in range(0, len(text), 7):
            self.event(chunk(model, {"tool_calls": [{"index": index,
                                                     "function": {"arguments": text[k:k + 7]}}]}))

    # -- the request -----------------------------------------------------------------------
    def do_POST(self):
        cfg = self.server.cfg
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            return self.error(400, "invalid_request_error", None, "body missing or too large")
        raw = self.rfile.read(length)
        if self.path != "/v1/chat/completions":
            return self.error(404, "invalid_request_error", None,
                              "Invalid URL (POST %s)" % self.path)
        auth = self.headers.get("Authorization", "")
        if cfg.mode == "401" or auth != "Bearer " + cfg.key:
            return self.error(401, "invalid_request_error", "invalid_api_key",
                              "Incorrect API key provided: %s." % (auth[7:11] + "****"))
        try:
            req = json.loads(raw)
        except ValueError:
            return self.error(400, "invalid_request_error", None, "We could not parse the JSON "
                              "body of your request.")
        if cfg.log:
            with open(cfg.log, "a") as f:
                f.write(json.dumps(req) + "\n")
        model = req.get("model")
        if model != cfg.model:
            return self.error(404, "invalid_request_error", "model_not_found",
                              "The model `%s` does not exist or you do not have access to it."
                              % model)
        if req.get("stream") is not True:
            return self.error(400, "invalid_request_error", None, "this fake only streams")
        msgs = req.get("messages") or []
        if not msgs or msgs[0].get("role") != "system":
            return self.error(400, "invalid_request_error", None,
                              "the first message must be the system prompt")
        system = msgs[0].get("content") or ""
        if system.startswith("You write call summaries"):
            return self.summary(model, msgs, mode=cfg.mode)
        for want in cfg.expect:
            if want not in system:
                return self.error(400, "invalid_request_error", None,
                                  "the system prompt lacks %r" % want)
        names = {t.get("function", {}).get("name") for t in req.get("tools") or []}
        if not TOOLS <= names:
            return self.error(400, "invalid_request_error", None,
                              "tools missing: %s" % sorted(TOOLS - names))
        last = msgs[-1]
        said = (last.get("content") or "").lower() if last.get("role") == "user" else ""
        mode = cfg.mode
        for trigger in ("slow", "malformed", "politics"):
            if not mode and trigger in said:
                mode = "banned" if trigger == "politics" else trigger
        try:
            self.answer(req, model, system, last, said, mode)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout)

    def summary(self, model, msgs, mode):
        """A post-call summary request: no tools, the transcript as the user message."""
        transcript = msgs[-1].get("content") or "" if len(msgs) > 1 else ""
        if "Caller:" not in transcript:
            return self.error(400, "invalid_request_error", None, "no transcript to summarise")
        try:
            if mode == "slow":
                time.sleep(self.server.cfg.slow)
            self.start_stream()
            self.event(chunk(model, {"role": "assistant", "content": ""}))
            if mode == "malformed":
                self.raw(b"data: {not json}\n\n")
                return self.finish_stream(model, "stop")
            self.say(model, ["The caller was busy and asked to be called back tomorrow "
                             "afternoon. ", "A callback was booked for 3 PM."])
            self.finish_stream(model, "stop")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer(self, req, model, system, last, said, mode):
        cfg = self.server.cfg
        if mode == "slow":
            time.sleep(cfg.slow)
            self.start_stream()
            self.event(chunk(model, {"role": "assistant", "content": ""}))
            self.say(model, ["Sorry for the wait."])
            return self.finish_stream(model, "stop")
        self.start_stream()
        self.event(chunk(model, {"role": "assistant", "content": ""}))
        if mode == "malformed":
            self.say(model, ["Let me check that for"])
            self.raw(b'data: {"id": "chatcmpl-fake1", "choices": [{"delta": {"content": " y\n\n')
            return self.finish_stream(model, "stop")
        if mode == "banned":
            self.say(model, BANNED)
            return self.finish_stream(model, "stop")
        if last.get("role") == "tool":
            self.say(model, ["Great, you're all set. ", "We'll call you then."])
            return self.finish_stream(model, "stop")
        if "tomorrow" in said:
            try:
                at = callback_time(system)
            except ValueError as e:
                return self.finish_stream(model, "stop: " + str(e))
            self.tool_call(model, 0, "call_cb1", "schedule_callback", {"at": at})
            return self.finish_stream(model, "tool_calls")
        if "tell me everything" in said:
            self.say(model, LONG)
            return self.finish_stream(model, "stop")
        if "goodbye" in said:
            self.say(model, ["Thanks for your time. ", "Goodbye!"])
            self.tool_call(model, 0, "call_end1", "end_call", {"disposition": "completed"})
            return self.finish_stream(model, "tool_calls")
        if "person" in said:
            self.tool_call(model, 0, "call_tr1", "transfer", {"reason": "caller asked"})
            return self.finish_stream(model, "tool_calls")
        if "rocket" in said:
            self.tool_call(model, 0, "call_x1", "launch_rockets", {"count": 3})
            self.say(model, ["I can't do that, but I can book your visit."])
            return self.finish_stream(model, "tool_calls")
        self.say(model, NORMAL, cfg.delay)
        self.finish_stream(model, "stop")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default="test-key")
    ap.add_argument("--model", default="gpt-test")
    ap.add_argument("--mode", choices=["slow", "401", "malformed", "banned"])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--slow", type=float, default=5.0)
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--log")
    cfg = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    sys.stdout.write("port %d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
