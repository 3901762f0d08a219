"""The voice agent with the Deepgram-shaped streaming STT (issue 4): the daemon runs with
speech.stt deepgram against tests/fakes/fake_deepgram.py, a local server speaking Deepgram's live
WebSocket protocol. baresip calls and speaks; the fake "transcribes" with its scripted text, so
the test checks the client's side of the protocol (what audio went up, with which token and
keywords) and that the agent acted on what came back. A rejected key must be logged and counted
while the call goes on."""
import json
import os
import re
import subprocess
import sys
import tempfile
import wave

import test_agent as ta
import test_sip_answer as sa
import test_tel as tt
from harness import Daemon, check, eq

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes", "fake_deepgram.py")


class Fake:
    def __init__(self, text, key="dg-key"):
        self.log = tempfile.mktemp(prefix="rv-dg-", suffix=".jsonl")
        self.p = subprocess.Popen([sys.executable, FAKE, "--key", key, "--text", text,
                                   "--log", self.log], stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline().split()[1])

    def events(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=10)
        self.p.stdout.close()
        if os.path.exists(self.log):
            os.unlink(self.log)


def config(fake_port, key):
    return ta.agent_config(None) + ("  stt: deepgram\n  stt_url: http://127.0.0.1:%d\n"
                                    "  stt_key: %s\n" % (fake_port, key))


def _call(tmp, d, tok, parts, number):
    ta.appointment_campaign(d, tok, inbound_numbers=number, timezone="America/New_York")
    a = tt.Baresip(tmp, "a", ta.script_wav(tmp, "caller", parts))
    try:
        a.cmd("dial", "sip:%s@127.0.0.1:%d" % (number, d.sip_port))
        row = tt.wait_call(d, tok, lambda x: x["state"] == "answered", "the call")
        row = tt.wait_ended(d, tok, row["id"], timeout=60)
    finally:
        a.stop()
    return row


def test_deepgram_stt_drives_the_agent_on_a_real_call():
    tt.need_baresip()
    fake = Fake("Please call me back tomorrow at three p m.")
    try:
        with sa.Tmp() as tmp, Daemon(config=config(fake.port, "dg-key"), agent=True) as d:
            tok = tt.admin(d)
            ask = ta.flite_wav(tmp, "ask", "Please call me back tomorrow at three p m.")
            with wave.open(ask) as w:
                spoken = w.getnframes() / w.getframerate()
            row = _call(tmp, d, tok, [6.5, ask, 20.0], "+14155550310")
            st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
            said = [(t["speaker"], t["text"]) for t in turns["items"]]
            caller = [t["text"] for t in turns["items"] if t["speaker"] == "caller"]
            check(any("call me back tomorrow at three" in t for t in caller),
                  "the caller turn is the server's transcript: %r" % said)
            eq(row["disposition"], "callback", "the agent booked it: %r" % said)
            cb = tt.sql(d, "SELECT local_time FROM callbacks WHERE call_id = %d" % row["id"])
            check(len(cb) == 1 and "T15:00:00" in cb[0][0], "3 pm callback row: %r" % cb)
        ev = fake.events()
        conns = [e for e in ev if e["event"] == "connect"]
        check(conns, "the daemon connected: %r" % ev)
        q = conns[0]["query"]
        eq(conns[0]["auth"], "Token dg-key", "the token header")
        eq((q["encoding"], q["sample_rate"], q["channels"]), (["linear16"], ["16000"], ["1"]),
           "raw 16 kHz mono")
        eq(q["interim_results"], ["true"], "interim results asked for")
        kw = {k.split(":")[0] for k in q.get("keywords", [])}
        check({"tomorrow", "yes"} & kw, "the flow's expected phrases as keywords: %r" % kw)
        utts = [e for e in ev if e["event"] == "utterance"]
        check(utts, "an utterance was finalized: %r" % ev)
        # Only voiced audio goes up: about the spoken length (the VAD trims silence and adds a
        # little pre-roll and hangover), 2 bytes per 16 kHz sample.
        sent = max(u["seconds"] for u in utts)
        check(0.6 * spoken <= sent <= spoken + 1.5,
              "audio sent %.2f s for %.2f s of speech" % (sent, spoken))
        check(all(u["audio_bytes"] == round(u["seconds"] * 32000) for u in utts),
              "linear16 byte counts: %r" % utts)
    finally:
        fake.stop()


def test_deepgram_stt_rejected_key_is_logged_counted_and_the_call_goes_on():
    tt.need_baresip()
    fake = Fake("yes")
    try:
        with sa.Tmp() as tmp, Daemon(config=config(fake.port, "wrong-key"), agent=True) as d:
            tok = tt.admin(d)
            ask = ta.flite_wav(tmp, "ask", "Yes, that works for me.")
            row = _call(tmp, d, tok, [6.5, ask, 14.0], "+14155550311")
            check(row["state"] == "ended" and row["disposition"] not in (None, "failed"),
                  "the call ended normally: %r" % row)
            _, metrics, _ = d.request("GET", "/metrics")
            check(re.search(r'rv_stt_errors_total\{provider="deepgram",error="13"\} [1-9]',
                            metrics), "rv_stt_errors_total counts EACCES (13)")
            logs = d.read_log()
            check("rejected the credentials (HTTP 401)" in logs,
                  "the 401 is logged")
            eq(d.request("GET", "/healthz")[0], 200, "the daemon is still up")
        check(not [e for e in fake.events() if e["event"] == "utterance"],
              "no audio was accepted with a wrong key")
    finally:
        fake.stop()
