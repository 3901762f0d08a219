"""The voice agent on real calls (issues 4 and 5): baresip calls RevoVoice and speaks (flite
speech through G.711); the agent greets, transcribes the answer with the embedded STT, runs the
campaign's flow and answers with synthesized speech. Checks the turns and the callback row in the
store, and the agent audio baresip recorded."""
import json
import os
import subprocess
import time
import wave

import test_sip_answer as sa
import test_tel as tt
from harness import Daemon, check, eq

FLOWS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "dialog",
                     "flows")


def flite_wav(tmp, name, text, voice="rms"):
    raw = os.path.join(tmp, name + "-raw.wav")
    out = os.path.join(tmp, name + ".wav")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", raw], check=True, timeout=60)
    subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", out],
                   check=True, timeout=60)
    return out


def script_wav(tmp, name, parts):
    """Concatenate (seconds of silence | wav path) parts into one 8 kHz caller track."""
    out = os.path.join(tmp, name + ".wav")
    frames = b""
    for p in parts:
        if isinstance(p, (int, float)):
            frames += b"\0\0" * int(8000 * p)
        else:
            with wave.open(p) as w:
                frames += w.readframes(w.getnframes())
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return out


def appointment_campaign(d, tok, flow_name="appointments", **fields):
    """The example appointment flow stored through the API, and a campaign running it with
    the given fields (inbound_numbers, timezone, amd_policy...). Returns the campaign."""
    with open(os.path.join(FLOWS, "appointment.json")) as f:
        flow = json.load(f)
    st, fl, _ = d.request("POST", "/api/flows", {"name": flow_name, "definition": flow},
                          token=tok)
    eq(st, 201, "flow: %r" % (fl,))
    return tt.campaign(d, tok, flow_id=fl["id"], **fields)


def agent_config(tmp):
    return ("rate_limit:\n  rps: 0\nsip:\n  ring_ms: 100\n  rtp_ports: %s\n"
            "speech:\n  workers: 1\n" % sa.rtp_range())


def test_agent_inbound_call_books_callback_from_speech():
    tt.need_baresip()
    with sa.Tmp() as tmp, Daemon(config=agent_config(tmp), agent=True) as d:
        tok = tt.admin(d)
        appointment_campaign(d, tok, inbound_numbers="+14155550300",
                             timezone="America/New_York")
        ask = flite_wav(tmp, "ask", "Please call me back tomorrow at three p m.")
        # The greeting plays first (about 4 s); the caller answers a little after it (well
        # inside the 5 s no-input time).
        src = script_wav(tmp, "caller", [6.5, ask, 20.0])
        a = tt.Baresip(tmp, "a", src)
        try:
            a.cmd("dial", "sip:+14155550300@127.0.0.1:%d" % d.sip_port)
            row = tt.wait_call(d, tok, lambda x: x["state"] == "answered", "the call")
            row = tt.wait_ended(d, tok, row["id"], timeout=60)
        finally:
            a.stop()
        st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
        said = [(t["speaker"], t["text"]) for t in turns["items"]]
        check(said and said[0][0] == "agent" and "appointment" in said[0][1],
              "the agent greets first: %r" % said)
        caller = [t for t in turns["items"] if t["speaker"] == "caller"]
        check(any("tomorrow" in t["text"] for t in caller), "the STT heard the caller: %r" % said)
        emo = [t["emotion"] for t in caller if "tomorrow" in t["text"]][0]
        check(emo.get("label") in ("neutral", "positive", "frustrated", "confused", "sad") and
              "voice_arousal" in emo, "the turn's emotion, words and voice: %r" % emo)
        eq(row["disposition"], "callback", "disposition: %r / turns %r" % (row, said))
        cb = tt.sql(d, "SELECT local_time, status FROM callbacks WHERE call_id = %d" % row["id"])
        check(len(cb) == 1, "one callback row: %r" % cb)
        check(cb[0][0].endswith("T15:00:00-05:00") or cb[0][0].endswith("T15:00:00-04:00"),
              "3 pm local time: %r" % cb)
        lat = [t["latency"] for t in turns["items"] if t["speaker"] == "agent" and t["latency"]]
        check(lat and "audio_out_ms" in lat[0], "latency marks stored: %r" % turns["items"])


LONG_FLOW = {
    "start": "talk",
    "states": {
        "talk": {"say": "Thank you for calling. I am going to tell you about our opening hours, "
                        "our prices, our three locations in the city, the parking next to each "
                        "of them, and the many ways you can reach us by phone, by email or in "
                        "person during the week and on Saturday mornings.",
                 "on": {"talk_to_human": {"say": "One moment.", "end": "transferred"}},
                 "fallback": {"say": "I heard you. Goodbye.", "end": "completed"}}},
    "globals": {"silence": {"max": 0, "end": "no_response"}}}


def noise_wav(tmp, name, seconds, amp=6000):
    import random
    rnd = random.Random(5)
    out = os.path.join(tmp, name + ".wav")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(int(rnd.uniform(-amp, amp)).to_bytes(2, "little", signed=True)
                               for _ in range(int(8000 * seconds))))
    return out


def _inbound(tmp, d, tok, flow, parts, number):
    st, fl, _ = d.request("POST", "/api/flows", {"name": "f-%s" % number, "definition": flow},
                          token=tok)
    eq(st, 201, "flow: %r" % (fl,))
    tt.campaign(d, tok, flow_id=fl["id"], inbound_numbers=number, recording_policy="always")
    a = tt.Baresip(tmp, "a" + number[-3:], script_wav(tmp, "in" + number[-3:], parts))
    try:
        a.cmd("dial", "sip:%s@127.0.0.1:%d" % (number, d.sip_port))
        row = tt.wait_call(d, tok, lambda x: x["state"] == "answered", "the call")
        row = tt.wait_ended(d, tok, row["id"], timeout=60)
    finally:
        a.stop()
    st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
    return row, turns["items"]


def agent_track(path):
    """The agent's side (right channel) of a call recording: 20 ms RMS windows."""
    import array
    import math
    with wave.open(path) as w:
        rate = w.getframerate()
        data = array.array("h", w.readframes(w.getnframes()))[1::2]
    win = rate // 50
    return [math.sqrt(sum(x * x for x in data[i:i + win]) / win)
            for i in range(0, len(data) - win + 1, win)]


def first_gap(env, start_s, min_gap_s, floor=100.0):
    """Start (s) of the first run of >= min_gap_s quiet windows after start_s (counted from
    the agent's first audio), or None."""
    need = int(min_gap_s * 50)
    run = 0
    first = next((i for i, v in enumerate(env) if v >= floor), 0)
    for i in range(first + int(start_s * 50), len(env)):
        run = run + 1 if env[i] < floor else 0
        if run >= need:
            return (i - need + 1) / 50.0
    return None


def test_agent_barge_in_stops_the_prompt_but_a_cough_does_not():
    tt.need_baresip()
    with sa.Tmp() as tmp, Daemon(config=agent_config(tmp), agent=True) as d:
        tok = tt.admin(d)
        # A cough-length burst 3 s into the 15 s prompt, then nothing: the prompt plays on.
        row, turns = _inbound(tmp, d, tok, LONG_FLOW,
                              [3.0, noise_wav(tmp, "cough", 0.15), 25.0], "+14155550301")
        first = turns[0]
        eq(first["speaker"], "agent", "the agent spoke first")
        eq(first["barge_in"], False, "a cough does not interrupt: %r" % first)
        check(first["heard_ms"] > 12000, "the whole prompt was heard: %r" % first)
        env = agent_track(row["recording_path"])
        gap = first_gap(env, 0.5, 0.6)
        check(gap is None or gap > 12.0, "the agent kept talking through the cough: gap at %r" % gap)
        check(first["heard_ms"] > 12000, "and the turn says the prompt was heard to the end")

        # Real speech 3 s in: the prompt stops, and the turn says how much was heard.
        talk = flite_wav(tmp, "talk", "I want to speak to a real person please.")
        row, turns = _inbound(tmp, d, tok, LONG_FLOW, [3.0, talk, 15.0], "+14155550302")
        first = turns[0]
        eq(first["barge_in"], True, "speech interrupts: %r" % first)
        check(2500 < first["heard_ms"] < 6000,
              "stopped soon after the caller began at 3 s: heard %r ms" % first["heard_ms"])
        eq(row["disposition"], "transferred", "then the flow answered what was said")
        # On the recording the agent's voice stops soon after the caller starts at 3 s.
        env = agent_track(row["recording_path"])
        gap = first_gap(env, 2.0, 0.6)
        check(gap is not None and 3.0 < gap < 4.2, "agent audio stopped at %r s" % gap)


def tone_wav(tmp, name, hz, seconds, amp=8000):
    import math
    out = os.path.join(tmp, name + ".wav")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(int(amp * math.sin(2 * math.pi * hz * i / 8000)).to_bytes(
            2, "little", signed=True) for i in range(int(8000 * seconds))))
    return out


def _outbound(tmp, d, tok, camp, parts, name, stop=None):
    b = tt.Baresip(tmp, name, script_wav(tmp, "out-" + name, parts))
    try:
        st, row, _ = d.request("POST", "/api/calls", {"to": b.uri, "campaign_id": camp["id"]},
                               token=tok)
        eq(st, 202, "dial: %r" % (row,))
        if stop:
            stop(row)
        row = tt.wait_ended(d, tok, row["id"], timeout=60)
    finally:
        b.stop()
    st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
    return row, turns["items"]


def test_agent_outbound_machine_leaves_voicemail_after_the_beep():
    tt.need_baresip()
    with sa.Tmp() as tmp, Daemon(config=agent_config(tmp), agent=True) as d:
        tok = tt.admin(d)
        camp = tt.campaign(d, tok, amd_policy="voicemail",
                           voicemail_message="Hi, this is Acme Dental. Please call us back.")
        greeting = flite_wav(tmp, "vm", "Hi, you have reached the voicemail of John Smith. I "
                                        "can't take your call right now. Please leave a "
                                        "message after the tone.", voice="slt")
        row, turns = _outbound(tmp, d, tok, camp,
                               [0.5, greeting, 0.4, tone_wav(tmp, "beep", 1000, 0.5), 15.0],
                               "vm")
        eq(row["amd_result"], "machine", "AMD: %r" % row)
        eq(row["disposition"], "voicemail", "disposition")
        check(any("Acme Dental" in t["text"] for t in turns if t["speaker"] == "agent"),
              "the voicemail message was left: %r" % turns)


def test_agent_outbound_human_hears_the_greeting():
    tt.need_baresip()
    with sa.Tmp() as tmp, Daemon(config=agent_config(tmp), agent=True) as d:
        tok = tt.admin(d)
        camp = tt.campaign(d, tok, amd_policy="hangup")
        hello = flite_wav(tmp, "hello", "Hello?")

        def hang_up_later(row):
            tt.wait_for("the greeting", lambda: len(d.request(
                "GET", "/api/calls/%d/turns" % row["id"], token=tok)[1]["items"]) >= 1, 30, 0.2)
            time.sleep(1.0)
            d.request("POST", "/api/calls/%d/hangup" % row["id"], {}, token=tok)

        row, turns = _outbound(tmp, d, tok, camp, [0.7, hello, 20.0], "human", hang_up_later)
        eq(row["amd_result"], "human", "AMD: %r" % row)
        check(turns and turns[0]["speaker"] == "agent", "the agent greeted the person: %r" % turns)
        check("automated assistant" in turns[0]["text"], "with the disclosure: %r" % turns[0])


def test_agent_do_not_call_request_lands_in_the_dnc_list():
    tt.need_baresip()
    with sa.Tmp() as tmp, Daemon(config=agent_config(tmp), agent=True) as d:
        tok = tt.admin(d)
        camp = appointment_campaign(d, tok, name="Acme Dental", amd_policy="hangup")
        st, lead, _ = d.request("POST", "/api/leads", {"campaign_id": camp["id"],
                                "phone": "+14155550377", "first_name": "Dana"}, token=tok)
        eq(st, 201, "lead")
        hello = flite_wav(tmp, "hello", "Hello?")
        stop = flite_wav(tmp, "stop", "Please stop calling me and take me off your list.")
        # Hello, then (after the disclosure and the greeting, about 11 s) the request.
        b = tt.Baresip(tmp, "dnc", script_wav(tmp, "dnc", [0.6, hello, 15.0, stop, 15.0]))
        try:
            st, row, _ = d.request("POST", "/api/calls", {"to": b.uri, "campaign_id": camp["id"],
                                   "lead_id": lead["id"]}, token=tok)
            eq(st, 202, "dial: %r" % (row,))
            row = tt.wait_ended(d, tok, row["id"], timeout=60)
        finally:
            b.stop()
        st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
        said = [(t["speaker"], t["text"], t["intent"]) for t in turns["items"]]
        eq(row["disposition"], "dnc_request", "disposition; turns %r" % said)
        dnc = tt.sql(d, "SELECT phone, source FROM dnc")
        eq(dnc, [["+14155550377", "call"]], "the number is on the do-not-call list")
        st, lead, _ = d.request("GET", "/api/leads/%d" % lead["id"], token=tok)
        eq(lead["status"], "dnc", "the lead is no longer dialable")
