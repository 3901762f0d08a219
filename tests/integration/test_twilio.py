"""The Twilio channel against the real daemon (issue 3): the signed voice webhook and its TwiML,
the Media Streams WebSocket driven by a client speaking Twilio's protocol (μ-law in real time,
dtmf, marks, stop), garbage on the socket, and outbound calls through the REST API against
tests/fakes/fake_twilio.py playing Twilio (webhooks, status callbacks, the stream).
"""
import array
import base64
import math
import os
import re
import sqlite3
import sys
import tempfile
import time
import urllib.parse
import wave
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))

import fake_twilio as ft  # noqa: E402
from harness import Daemon, check, eq, free_port  # noqa: E402

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token-7f3a"
PUBLIC = "https://rv.example.test"
PROMPT_S = 1.0


def write_tone(path, seconds, freq, rate=16000, amp=12000):
    n = int(seconds * rate)
    s = array.array("h", (int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(s.tobytes())


def tone8k(seconds, freq, amp=8000):
    return [int(amp * math.sin(2 * math.pi * freq * i / 8000)) for i in range(int(seconds * 8000))]


def config(stream_port, prompt=None, api_base="http://127.0.0.1:9", token=TOKEN, validate=1):
    c = ("rate_limit:\n  rps: 0\n"
         "twilio:\n  account_sid: %s\n  auth_token: %s\n  public_url: %s\n"
         "  stream_listen: 127.0.0.1:%d\n  api_base: %s\n  validate_signature: %d\n"
         % (SID, token, PUBLIC, stream_port, api_base, validate))
    if prompt:
        c += "calls:\n  default_prompt: %s\n" % prompt
    return c


def voice(d, params, query=None, token=TOKEN, sign=True, headers=None):
    path = "/twilio/voice" + ("?" + query if query else "")
    return ft.post_form(d.url(path), params, token=token if sign else None,
                        sign_url=PUBLIC + path, extra_headers=headers)


def inbound_params(call_sid, frm="+14155550111", to="+14155550199"):
    return {"CallSid": call_sid, "AccountSid": SID, "From": frm, "To": to,
            "Direction": "inbound", "CallStatus": "ringing", "ApiVersion": "2010-04-01"}


def twiml_stream(body):
    root = ET.fromstring(body)
    eq(root.tag, "Response", "TwiML root")
    stream = root.find("./Connect/Stream")
    check(stream is not None, "no <Connect><Stream> in %r" % body)
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    return stream.get("url"), params


def metric(d, name, **labels):
    st, text, _ = d.request("GET", "/metrics")
    eq(st, 200, "metrics")
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def call_row(d, call_sid=None, call_id=None, want_ended=True, timeout=10):
    """The calls row, once the service's writer has ended it (when want_ended)."""
    db = os.path.join(d.data_dir, "revovoice.db")
    deadline = time.time() + timeout
    row = None
    while time.time() < deadline:
        con = sqlite3.connect(db, timeout=5)
        con.row_factory = sqlite3.Row
        if call_sid:
            cur = con.execute("SELECT * FROM calls WHERE twilio_call_sid = ?", (call_sid,))
        else:
            cur = con.execute("SELECT * FROM calls WHERE id = ?", (call_id,))
        r = cur.fetchone()
        row = dict(r) if r else None
        con.close()
        if row and (not want_ended or row["ended_at"]):
            return row
        time.sleep(0.1)
    raise AssertionError("call row not %s: %r" % ("ended" if want_ended else "found", row))


def rms(samples):
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def decode_media(msg):
    raw = base64.b64decode(msg["media"]["payload"], validate=True)
    return raw, [ft.ulaw_decode(b) for b in raw]


def zero_cross_hz(samples, rate=8000):
    z = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return z * rate / 2 / max(1, len(samples))


def open_stream(d, stream_port, call_sid, params=None):
    st, body, hdrs = voice(d, params or inbound_params(call_sid))
    eq(st, 200, "voice webhook: %s" % body)
    url, tparams = twiml_stream(body)
    path = urllib.parse.urlparse(url).path
    ms = ft.MediaStream("127.0.0.1", stream_port, path, account_sid=SID, call_sid=call_sid,
                        params=tparams)
    return ms, tparams


# ---- the voice webhook ------------------------------------------------------------------------

def test_twilio_voice_webhook_twiml_and_signature():
    sp = free_port()
    with Daemon(config=config(sp)) as d:
        sid = "CA" + "1" * 32
        nasty = "client:a&b<c>\"d'e"
        st, body, hdrs = voice(d, inbound_params(sid, frm=nasty))
        eq(st, 200, "signed webhook: %s" % body)
        check(hdrs.get("Content-Type", "").startswith("text/xml"), "TwiML content type %r" % hdrs)
        check("&amp;" in body and "&lt;" in body and "&quot;" in body and "&apos;" in body,
              "values are XML-escaped: %s" % body)
        url, params = twiml_stream(body)
        eq(url, "wss://rv.example.test/twilio/stream", "stream URL from twilio.public_url")
        eq(params.get("from"), nasty, "From round-trips through the XML")
        eq(params.get("to"), "+14155550199", "To parameter")
        eq(params.get("call_sid"), sid, "call_sid parameter")
        eq(params.get("direction"), "inbound", "direction parameter")

        # A forged signature, a missing one, one made with another token, another account.
        st, body, _ = voice(d, inbound_params(sid), headers={"X-Twilio-Signature": "A" * 27 + "="})
        eq(st, 403, "forged signature: %s" % body)
        st, body, _ = voice(d, inbound_params(sid), sign=False)
        eq(st, 403, "missing signature")
        st, _, _ = voice(d, inbound_params(sid), token="not-the-token")
        eq(st, 403, "signature with the wrong token")
        # The signature covers the query: the same body under another URL does not pass.
        p = inbound_params(sid)
        st, _, _ = ft.post_form(d.url("/twilio/voice?x=1"), p, token=TOKEN,
                                sign_url=PUBLIC + "/twilio/voice")
        eq(st, 403, "signature over another URL")
        p = dict(inbound_params(sid), AccountSid="AC" + "f" * 32)
        st, _, _ = voice(d, p)
        eq(st, 403, "another account")
        st, _, _ = d.request("POST", "/twilio/voice", body={"CallSid": sid})
        eq(st, 415, "a JSON body")
        st, _, _ = voice(d, dict(inbound_params(sid), CallSid="CA bad sid"))
        eq(st, 400, "a malformed CallSid")
        st, _, _ = voice(d, inbound_params(sid), query="call_id=abc")
        eq(st, 400, "a malformed call_id")
        st, body, _ = voice(d, inbound_params(sid), query="call_id=999999")
        eq(st, 200, "an outbound call we do not know")
        check("<Hangup/>" in body, "is hung up cleanly: %s" % body)
        check(metric(d, "rv_twilio_webhooks_total", route="voice", result="bad_signature") >= 3,
              "bad signatures counted")
        check(metric(d, "rv_twilio_webhooks_total", route="voice", result="missing_signature")
              >= 1, "missing signature counted")
        check(metric(d, "rv_twilio_webhooks_total", route="voice", result="account_mismatch")
              >= 1, "account mismatch counted")
        refused = [l for l in d.log_lines() if l.get("msg") == "webhook refused"]
        reasons = {l.get("reason") for l in refused}
        check({"bad_signature", "missing_signature", "account_mismatch"} <= reasons,
              "refusals logged with their reason: %s" % reasons)


# ---- the stream -------------------------------------------------------------------------------

def test_twilio_stream_inbound_call_audio_marks_dtmf():
    sp = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        write_tone(prompt, PROMPT_S, 440)
        with Daemon(config=config(sp, prompt=prompt)) as d:
            sid = "CA" + "2" * 32
            ms, tparams = open_stream(d, sp, sid)
            ms.connected()
            ms.start()
            sent_digits = []

            def on_frame(i):
                if i in (60, 80):
                    digit = "4" if i == 60 else "#"
                    ms.dtmf(digit)
                    sent_digits.append(digit)

            # 2.5 s of a 1 kHz tone as the caller, 20 ms frames in real time.
            ms.stream_audio(tone8k(2.5, 1000), on_frame=on_frame)
            mark = ms.wait_for(lambda m: m.get("event") == "mark", timeout=5)
            check(mark is not None, "a mark after the prompt finished")
            check(re.match(r"^item-\d+$", mark["mark"]["name"]), "mark named after the item")
            eq(mark["streamSid"], ms.stream_sid, "mark streamSid")
            ms.mark(mark["mark"]["name"])  # Twilio echoes it once the caller heard it
            time.sleep(0.3)
            media = ms.messages("media")
            ms.stop()
            closed = ms.wait_closed()
            check(closed is not None, "the socket closes after stop")
            eq(ms.close_code, 1000, "normal close after stop")

            check(len(media) >= 100, "media came back: %d messages" % len(media))
            for _, m in media:
                eq(m["streamSid"], ms.stream_sid, "media streamSid")
                raw, _ = decode_media(m)
                eq(len(raw), 160, "20 ms of μ-law per message")
            t0, t1 = media[0][0], media[-1][0]
            rate = (len(media) - 1) / (t1 - t0)
            check(40 <= rate <= 60, "about 50 media messages a second: %.1f" % rate)
            # The first second is the 440 Hz prompt, then comfort silence.
            # The prompt starts once the service has written the row, a few frames in.
            frames = [decode_media(m)[1] for _, m in media]
            loud = [i for i, f in enumerate(frames) if rms(f) > 2000]
            check(loud, "the prompt's audio came back")
            span = len(loud) * 0.02
            check(abs(span - PROMPT_S) <= 0.1 and loud[-1] - loud[0] + 1 == len(loud),
                  "one second of prompt, unbroken: %d loud frames from %d" % (len(loud),
                                                                            loud[0]))
            first = [s for i in loud[1:-1] for s in frames[i]]
            later = [s for f in frames[-30:] for s in f]
            hz = zero_cross_hz(first)
            check(380 <= hz <= 500, "the prompt is the 440 Hz tone (%.0f Hz)" % hz)
            check(rms(later) < 200, "silence after the prompt (rms %.0f)" % rms(later))
            mark_t = [t for t, m in ms.messages("mark")][0]
            check(mark_t - t0 >= PROMPT_S * 0.8, "the mark follows the item's audio")

            row = call_row(d, call_sid=sid)
            eq(row["channel"], "twilio", "channel")
            eq(row["direction"], "inbound", "direction")
            eq(row["twilio_call_sid"], sid, "Call SID")
            eq(row["dtmf"], "".join(sent_digits), "digits")
            eq(row["from_uri"], "+14155550111", "from")
            eq(row["to_uri"], "+14155550199", "to")
            eq(row["hangup_by"], "remote", "the caller hung up")
            check(row["answered_at"] and row["ended_at"], "answered and ended: %r" % row)
            check(metric(d, "rv_twilio_mark_delay_seconds_count") >= 1, "playout delay measured")


def test_twilio_stream_bad_input():
    sp = free_port()
    with Daemon(config=config(sp)) as d:
        # Garbage before and instead of a start: each message is refused and counted, then a
        # start for a call no webhook announced ends the socket with a policy violation.
        bad = ft.MediaStream("127.0.0.1", sp, account_sid=SID, call_sid="CA" + "3" * 32)
        bad.ws.send_text("not json at all")
        bad.ws.send_json({"event": "bogus"})
        bad.ws.send_json([1, 2, 3])
        bad.media([0xff] * 160)
        bad.ws.send_frame(0x2, b"\x00\x01binary")
        bad.start()
        check(bad.wait_closed() is not None, "unknown call closed")
        eq(bad.close_code, 1008, "policy violation for an unannounced call")

        # A good call runs while others misbehave.
        good_sid = "CA" + "4" * 32
        good, _ = open_stream(d, sp, good_sid)
        good.connected()
        good.start()
        good.stream_audio(tone8k(0.3, 500))
        good.ws.send_json({"event": "media", "streamSid": good.stream_sid,
                           "media": {"payload": "***not base64***"}})
        good.ws.send_json({"event": "media", "streamSid": good.stream_sid,
                           "media": {"payload": base64.b64encode(b"\xff" * 9000).decode()}})
        good.ws.send_json({"event": "dtmf", "streamSid": good.stream_sid,
                           "dtmf": {"digit": "xyz"}})

        # A frame whose header announces 2^63 bytes (libre 1.1.0 would overflow on it).
        huge = ft.WebSocket("127.0.0.1", sp)
        huge.sock.sendall(bytes([0x81, 0x80 | 127]) + (1 << 63).to_bytes(8, "big") + b"\0" * 8)
        op, payload = huge.recv()
        check(op in (None, 0x8), "the huge frame ends the socket")
        # A real 70 KiB message.
        big = ft.MediaStream("127.0.0.1", sp, account_sid=SID)
        big.ws.send_text("x" * (70 * 1024))
        check(big.wait_closed() is not None, "oversized message closed")
        eq(big.close_code, 1009, "message too big")
        # Not a WebSocket at all, and a wrong path.
        st, _, _ = d.request("GET", "/healthz")
        eq(st, 200, "daemon alive")
        import urllib.request
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/elsewhere" % sp, timeout=5)
            check(False, "a plain GET is refused")
        except urllib.error.HTTPError as e:
            eq(e.code, 404, "wrong path")

        # The good stream is unaffected: audio keeps coming.
        n = len(good.messages("media"))
        good.stream_audio(tone8k(0.5, 500))
        time.sleep(0.2)
        check(len(good.messages("media")) >= n + 15, "the good stream still gets audio")
        good.stop()
        check(good.wait_closed() is not None, "good stream closed after stop")
        eq(good.close_code, 1000, "normal close")

        for reason in ("json", "unknown_event", "not_object", "media_before_start",
                       "binary_frame", "unknown_call", "bad_base64", "payload_too_large",
                       "bad_dtmf", "oversized"):
            check(metric(d, "rv_twilio_stream_errors_total", reason=reason) >= 1,
                  "stream error %s counted" % reason)
        logged = {l.get("reason") for l in d.log_lines() if l.get("msg") ==
                  "bad input on a Media Stream"}
        check({"json", "unknown_call", "oversized"} <= logged, "bad input logged: %s" % logged)
        row = call_row(d, call_sid=good_sid)
        eq(row["dtmf"], "", "the bad digit was not recorded")


# ---- outbound through the REST API -----------------------------------------------------------

def play_twilio(fake, d_holder, stream_port, result):
    """on_call for FakeTwilio: ringing, the voice webhook, a short stream, stop."""
    def on_call(call):
        try:
            form = {k: v[0] for k, v in call["form"].items()}
            d = d_holder[0]
            status_url = form["StatusCallback"]
            q = urllib.parse.urlparse(status_url).query
            common = {"CallSid": call["sid"], "AccountSid": SID, "From": form["From"],
                      "To": form["To"], "Direction": "outbound-api", "ApiVersion": "2010-04-01"}
            st, body, _ = ft.post_form(d.url("/twilio/status?" + q),
                                       dict(common, CallStatus="ringing"), token=TOKEN,
                                       sign_url=status_url)
            result["ringing"] = st
            vq = urllib.parse.urlparse(form["Url"]).query
            st, body, _ = ft.post_form(d.url("/twilio/voice?" + vq),
                                       dict(common, CallStatus="in-progress"), token=TOKEN,
                                       sign_url=form["Url"])
            result["voice"] = (st, body)
            url, params = twiml_stream(body)
            ms = ft.MediaStream("127.0.0.1", stream_port, urllib.parse.urlparse(url).path,
                                account_sid=SID, call_sid=call["sid"], params=params)
            ms.connected()
            ms.start()
            ms.stream_audio(tone8k(1.0, 700))
            result["media_back"] = len(ms.messages("media"))
            ms.stop()
            ms.wait_closed()
            result["params"] = params
        except Exception as e:  # reported by the test
            result["error"] = repr(e)
        finally:
            result["done"] = True
    return on_call


def test_twilio_outbound_call_through_rest_api():
    sp = free_port()
    result, holder = {}, [None]
    fake = ft.FakeTwilio(SID, TOKEN)
    fake.on_call = play_twilio(fake, holder, sp, result)
    fake.start()
    try:
        with Daemon(config=config(sp, api_base=fake.base)) as d:
            holder[0] = d
            tok = d.admin()
            st, body, _ = d.request("POST", "/api/calls", token=tok,
                                    body={"to": "+14155550123", "trunk": "twilio",
                                          "from": "+14155550100"})
            check(st in (200, 201, 202), "dial accepted: %s %s" % (st, body))
            call_id = body["id"]
            deadline = time.time() + 20
            while not result.get("done") and time.time() < deadline:
                time.sleep(0.1)
            check(result.get("done") and "error" not in result, "Twilio's part: %r" % result)
            eq(len(fake.calls), 1, "one REST request")
            req = fake.requests[0]
            eq(req["path"], "/2010-04-01/Accounts/%s/Calls.json" % SID, "REST path")
            creds = base64.b64encode(("%s:%s" % (SID, TOKEN)).encode()).decode()
            eq(req["auth"], "Basic " + creds, "HTTP Basic auth")
            form = req["form"]
            eq(form["To"], ["+14155550123"], "To")
            eq(form["From"], ["+14155550100"], "From")
            eq(form["Url"], ["%s/twilio/voice?call_id=%d" % (PUBLIC, call_id)], "Url")
            eq(form["StatusCallback"], ["%s/twilio/status?call_id=%d" % (PUBLIC, call_id)],
               "StatusCallback")
            eq(result["ringing"], 204, "status callback accepted")
            eq(result["voice"][0], 200, "voice webhook")
            eq(result["params"].get("call_id"), str(call_id), "call_id in the TwiML")
            eq(result["params"].get("direction"), "outbound", "direction in the TwiML")
            check(result["media_back"] >= 30, "audio came back: %r" % result)
            row = call_row(d, call_id=call_id)
            eq(row["twilio_call_sid"], fake.calls[0]["sid"], "the Call SID from Twilio")
            eq(row["channel"], "twilio", "channel")
            eq(row["direction"], "outbound", "direction")
            check(row["ringing_at"] and row["answered_at"], "ringing and answered: %r" % row)
            eq(row["hangup_by"], "remote", "Twilio's stop ended it")
    finally:
        fake.stop()


def test_twilio_status_callback_busy():
    sp = free_port()
    result = {}
    holder = [None]

    def on_call(call):
        form = {k: v[0] for k, v in call["form"].items()}
        url = form["StatusCallback"]
        q = urllib.parse.urlparse(url).query
        p = {"CallSid": call["sid"], "AccountSid": SID, "CallStatus": "busy",
             "From": form["From"], "To": form["To"], "Direction": "outbound-api"}
        # First forged, then signed.
        result["forged"] = ft.post_form(holder[0].url("/twilio/status?" + q), p, token="x",
                                        sign_url=url)[0]
        result["signed"] = ft.post_form(holder[0].url("/twilio/status?" + q), p, token=TOKEN,
                                        sign_url=url)[0]
        result["done"] = True

    fake = ft.FakeTwilio(SID, TOKEN, on_call=on_call).start()
    try:
        with Daemon(config=config(sp, api_base=fake.base)) as d:
            holder[0] = d
            st, body, _ = d.request("POST", "/api/calls", token=d.admin(),
                                    body={"to": "+14155550124", "trunk": "twilio",
                                          "from": "+14155550100"})
            check(st in (200, 201, 202), "dial accepted: %s %s" % (st, body))
            deadline = time.time() + 10
            while not result.get("done") and time.time() < deadline:
                time.sleep(0.05)
            eq(result.get("forged"), 403, "forged status callback refused")
            eq(result.get("signed"), 204, "signed status callback accepted")
            row = call_row(d, call_id=body["id"])
            eq(row["disposition"], "busy", "disposition from CallStatus")
            eq(row["twilio_call_sid"], fake.calls[0]["sid"], "Call SID")
    finally:
        fake.stop()


def test_twilio_rest_wrong_token_is_a_clear_error():
    sp = free_port()
    fake = ft.FakeTwilio(SID, TOKEN).start()
    try:
        with Daemon(config=config(sp, api_base=fake.base, token="wrong-token")) as d:
            # Through the API the dial fails and the log carries Twilio's answer.
            st, body, _ = d.request("POST", "/api/calls", token=d.admin(),
                                    body={"to": "+14155550126", "trunk": "twilio",
                                          "from": "+14155550100"})
            check(st >= 400, "dial refused: %s %s" % (st, body))
            lines = [l for l in d.log_lines() if l.get("msg") == "Twilio did not place the call"]
            check(lines, "the refusal is logged")
            err = lines[-1].get("error", "")
            check("HTTP 401, code 20003): Authenticate" in err and
                  "https://www.twilio.com/docs/errors/20003" in err,
                  "Twilio's code, message and more_info: %s" % err)
            row = call_row(d, call_id=int(lines[-1]["call"]))
            eq(row["disposition"], "failed", "the row is ended as failed")
            eq(row["channel"], "twilio", "channel")
            eq(len(fake.calls), 0, "no call was created")
            check(metric(d, "rv_twilio_rest_requests_total", result="refused") >= 1,
                  "refusal counted")
    finally:
        fake.stop()


def test_twilio_shutdown_with_live_stream():
    sp = free_port()
    with Daemon(config=config(sp)) as d:
        sid = "CA" + "5" * 32
        ms, _ = open_stream(d, sp, sid)
        ms.connected()
        ms.start()
        ms.stream_audio(tone8k(0.4, 600))
        check(len(ms.messages("media")) >= 10, "the stream runs")
        rc = d.stop()
        eq(rc, 0, "clean exit with a live stream (and no leak under ASan)")
        check(ms.wait_closed(5) is not None, "the socket is closed at shutdown")
        eq(ms.close_code, 1001, "going away")
        row = call_row(d, call_sid=sid)
        eq(row["hangup_cause"], "shutdown", "the call ended with the service: %r" % row)
        check(row["ended_at"], "ended")


def test_twilio_barge_in_sends_clear():
    """The voice agent on a Twilio call: caller speech during a long prompt stops it, and the
    daemon tells Twilio to drop what it has buffered with a `clear` on the stream."""
    import subprocess
    sp = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "talk.wav")
        subprocess.run(["flite", "-voice", "rms", "-t", "I want to speak to a real person "
                        "please.", "-o", raw], check=True, timeout=60)
        with wave.open(raw) as w:
            rate = w.getframerate()
            pcm = array.array("h", w.readframes(w.getnframes()))
        speech = [pcm[int(i * rate / 8000)] for i in range(int(len(pcm) * 8000 / rate))]
        c = config(sp) + "speech:\n  workers: 1\n"
        with Daemon(config=c, agent=True) as d:
            tok = d.admin()
            flow = {"start": "talk", "states": {"talk": {
                "say": "Thank you for calling. I am going to tell you about our opening hours, "
                       "our prices, our three locations in the city and the parking next to each "
                       "of them, and the many ways you can reach us during the week.",
                "on": {"talk_to_human": {"say": "One moment.", "end": "transferred"}},
                "fallback": {"say": "Goodbye.", "end": "completed"}}}}
            st, f, _ = d.request("POST", "/api/flows", {"name": "long", "definition": flow},
                                 token=tok)
            eq(st, 201, "flow")
            st, camp, _ = d.request("POST", "/api/campaigns", {
                "name": "tw", "status": "active", "flow_id": f["id"],
                "inbound_numbers": "+14155550199"}, token=tok)
            eq(st, 201, "campaign: %r" % (camp,))
            sid = "CA" + "7" * 32
            ms, _ = open_stream(d, sp, sid)
            ms.connected()
            ms.start()
            # 3 s of silence while the prompt plays, then the caller talks over it. The flow
            # answers the request for a person and ends the call, which closes the stream
            # while we may still be sending.
            try:
                ms.stream_audio([0] * 8000 * 3 + speech + [0] * 8000 * 3)
            except (BrokenPipeError, ConnectionResetError):
                pass
            clear = ms.wait_for(lambda m: m.get("event") == "clear", timeout=10)
            check(clear is not None, "a clear came after the caller spoke: %r" %
                  [m.get("event") for _, m in ms.messages()][-20:])
            eq(clear["streamSid"], ms.stream_sid, "clear streamSid")
            try:
                ms.stop()
            except (BrokenPipeError, ConnectionResetError):
                pass
            ms.wait_closed()
            row = call_row(d, call_sid=sid, timeout=20)
            st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
            first = turns["items"][0]
            eq(first["barge_in"], True, "the prompt's turn records the interruption: %r" % first)
