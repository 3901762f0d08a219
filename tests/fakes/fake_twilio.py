#!/usr/bin/env python3
"""A local stand-in for Twilio, speaking its real wire protocols (standard library only).

- REST: POST /2010-04-01/Accounts/{AccountSid}/Calls.json with HTTP Basic auth (sid:token) and a
  form body. Checks the credentials (401 with Twilio's error document, code 20003), the
  required fields (To, From, Url; Twilio's codes 21201, 21603, 21205, 21211) and answers 201
  with a call resource {"sid": "CA...", "status": "queued", ...}.
- As Twilio calling us back: signs webhooks (X-Twilio-Signature: HMAC-SHA1 over the URL and the
  sorted POST parameters, base64), POSTs the voice webhook and status callbacks, reads the TwiML
  and opens the Media Streams WebSocket (a minimal RFC 6455 client, masked frames).

Used in-process by tests/integration/test_twilio.py:

    fake = FakeTwilio(sid, token).start()      # fake.port, fake.calls (what it received)
    ...
    fake.stop()

or standalone: fake_twilio.py --sid AC... --token T [--port N] (serves the REST API only).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


# ---- Twilio's request signature -------------------------------------------------------------

def signature(token, url, params):
    """X-Twilio-Signature for a POST to url with params (dict or list of pairs)."""
    items = params.items() if isinstance(params, dict) else params
    data = url + "".join(k + v for k, v in sorted(items))
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def post_form(url, params, token=None, sign_url=None, extra_headers=None, timeout=10):
    """POST a form; signs it as Twilio would when token is given. Returns (status, body, headers)."""
    body = urllib.parse.urlencode(params).encode()
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        h["X-Twilio-Signature"] = signature(token, sign_url or url, params)
    h.update(extra_headers or {})
    req = urllib.request.Request(url, data=body, method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


# ---- G.711 μ-law ------------------------------------------------------------------------------

def ulaw_encode(sample):
    """One 16-bit sample to a μ-law byte (ITU-T G.711)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, clip) + bias
    exp = 7
    mask = 0x4000
    while exp > 0 and not (sample & mask):
        exp -= 1
        mask >>= 1
    mant = (sample >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def ulaw_decode(byte):
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exp = (byte >> 4) & 0x07
    mant = byte & 0x0F
    sample = (((mant << 3) + 0x84) << exp) - 0x84
    return -sample if sign else sample


# ---- a minimal WebSocket client (RFC 6455) --------------------------------------------------

class WebSocket:
    """Client side: masked frames out, unmasked in. recv() returns (opcode, payload bytes)."""

    def __init__(self, host, port, path="/twilio/stream", timeout=10, headers=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake: %r" % resp)
            resp += chunk
        head, self.buf = resp.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status:
            raise ConnectionError("handshake refused: %r" % status)
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if want not in head:
            raise ConnectionError("bad Sec-WebSocket-Accept")
        self.lock = threading.Lock()
        self.closed = False

    def send_frame(self, opcode, payload, fin=True, length=None):
        """length: lie about the payload length in the header (for bad-input tests)."""
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(head + mask + body)

    def send_text(self, text):
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """Next frame as (opcode, payload); (None, b"") once the peer has closed."""
        try:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            if b1 & 0x80:
                raise ConnectionError("the server masked a frame")
            payload = self._read(n)
        except (ConnectionError, OSError):
            self.closed = True
            return None, b""
        op = b0 & 0x0F
        if op == 0x8:
            self.closed = True
            try:
                self.send_frame(0x8, payload[:2])
            except OSError:
                pass
        elif op == 0x9:
            self.send_frame(0xA, payload)
        return op, payload

    def close(self, code=1000):
        try:
            self.send_frame(0x8, struct.pack(">H", code))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class MediaStream:
    """Twilio's side of a Media Stream: sends connected/start/media/dtmf/mark/stop, and collects
    what comes back in a reader thread (self.received: (monotonic time, dict or raw))."""

    def __init__(self, host, port, path="/twilio/stream", account_sid="AC", call_sid=None,
                 params=None):
        self.ws = WebSocket(host, port, path)
        self.account_sid = account_sid
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.params = params or {}
        self.seq = 0
        self.chunk = 0
        self.t0 = None
        self.received = []
        self.close_code = None
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    def _read_loop(self):
        while True:
            op, payload = self.ws.recv()
            with self.cv:
                if op is None or op == 0x8:
                    if op == 0x8 and len(payload) >= 2:
                        self.close_code = struct.unpack(">H", payload[:2])[0]
                    self.received.append((time.monotonic(), {"_closed": self.close_code}))
                    self.cv.notify_all()
                    return
                if op == 0x1:
                    try:
                        msg = json.loads(payload)
                    except ValueError:
                        msg = {"_raw": payload}
                    self.received.append((time.monotonic(), msg))
                    self.cv.notify_all()

    def _next_seq(self):
        self.seq += 1
        return str(self.seq)

    def connected(self):
        self.ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, encoding="audio/x-mulaw", rate=8000):
        self.t0 = time.monotonic()
        self.ws.send_json({
            "event": "start", "sequenceNumber": self._next_seq(), "streamSid": self.stream_sid,
            "start": {"accountSid": self.account_sid, "streamSid": self.stream_sid,
                      "callSid": self.call_sid, "tracks": ["inbound"],
                      "mediaFormat": {"encoding": encoding, "sampleRate": rate, "channels": 1},
                      "customParameters": self.params}})

    def media(self, ulaw):
        self.chunk += 1
        ts = int((time.monotonic() - (self.t0 or time.monotonic())) * 1000)
        self.ws.send_json({
            "event": "media", "sequenceNumber": self._next_seq(), "streamSid": self.stream_sid,
            "media": {"track": "inbound", "chunk": str(self.chunk), "timestamp": str(ts),
                      "payload": base64.b64encode(bytes(ulaw)).decode()}})

    def dtmf(self, digit):
        self.ws.send_json({"event": "dtmf", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid,
                           "dtmf": {"track": "inbound_track", "digit": digit}})

    def mark(self, name):
        self.ws.send_json({"event": "mark", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid, "mark": {"name": name}})

    def stop(self):
        self.ws.send_json({"event": "stop", "sequenceNumber": self._next_seq(),
                           "streamSid": self.stream_sid,
                           "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})

    def stream_audio(self, pcm8k, realtime=True, on_frame=None):
        """Send 8 kHz 16-bit samples as 20 ms μ-law media messages, paced in real time."""
        start = time.monotonic()
        for i in range(0, len(pcm8k), 160):
            frame = pcm8k[i:i + 160]
            frame = list(frame) + [0] * (160 - len(frame))
            self.media([ulaw_encode(s) for s in frame])
            if on_frame:
                on_frame(i // 160)
            if realtime:
                delay = start + (i // 160 + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def messages(self, event=None):
        with self.cv:
            return [(t, m) for t, m in self.received if event is None or m.get("event") == event]

    def wait_for(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for t, m in self.received:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)

    def wait_closed(self, timeout=10):
        return self.wait_for(lambda m: "_closed" in m, timeout)

    def close(self):
        self.ws.close()


# ---- the REST API ---------------------------------------------------------------------------

def twilio_error(code, message, status):
    return {"code": code, "message": message,
            "more_info": "https://www.twilio.com/docs/errors/%d" % code, "status": status}


class FakeTwilio:
    """The REST API on a free loopback port. Every accepted call is appended to self.calls as
    {"sid", "form" (dict of lists), "auth"}; on_call(call) (optional) runs in a thread after the
    201 went out, to play Twilio's part (webhooks, the stream)."""

    def __init__(self, account_sid, auth_token, on_call=None, port=0):
        self.sid = account_sid
        self.token = auth_token
        self.on_call = on_call
        self.calls = []
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n).decode()
                form = urllib.parse.parse_qs(raw, keep_blank_values=True)
                fake.requests.append({"path": self.path, "form": form,
                                      "auth": self.headers.get("Authorization"),
                                      "content_type": self.headers.get("Content-Type")})
                m = re.match(r"^/2010-04-01/Accounts/([^/]+)/Calls\.json$", self.path)
                if not m:
                    return self.reply(404, twilio_error(20404, "The requested resource %s was "
                                                        "not found" % self.path, 404))
                auth = self.headers.get("Authorization") or ""
                good = "Basic " + base64.b64encode(
                    ("%s:%s" % (fake.sid, fake.token)).encode()).decode()
                if not hmac.compare_digest(auth, good):
                    return self.reply(401, twilio_error(20003, "Authenticate", 401))
                if m.group(1) != fake.sid:
                    return self.reply(404, twilio_error(20404, "The requested resource was "
                                                        "not found", 404))
                if not (self.headers.get("Content-Type") or "").startswith(
                        "application/x-www-form-urlencoded"):
                    return self.reply(400, twilio_error(20001, "Unsupported content", 400))
                one = {k: v[0] for k, v in form.items()}
                if not one.get("To"):
                    return self.reply(400, twilio_error(21201, "No 'To' number is specified",
                                                        400))
                if not one.get("From"):
                    return self.reply(400, twilio_error(21603, "A 'From' phone number is "
                                                        "required.", 400))
                if not one.get("Url"):
                    return self.reply(400, twilio_error(21205, "Url parameter is required.",
                                                        400))
                if not E164.match(one["To"]) and not one["To"].startswith(("sip:", "client:")):
                    return self.reply(400, twilio_error(21211, "Invalid 'To' Phone Number: %s"
                                                        % one["To"], 400))
                for key in ("Url", "StatusCallback"):
                    if key in one and not one[key].startswith(("http://", "https://")):
                        return self.reply(400, twilio_error(21205, "Url is not a valid URL",
                                                            400))
                call = {"sid": "CA" + uuid.uuid4().hex, "form": form, "auth": auth}
                fake.calls.append(call)
                self.reply(201, {
                    "sid": call["sid"], "account_sid": fake.sid, "status": "queued",
                    "to": one["To"], "from": one["From"], "direction": "outbound-api",
                    "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                    "uri": "/2010-04-01/Accounts/%s/Calls/%s.json" % (fake.sid, call["sid"])})
                if fake.on_call:
                    threading.Thread(target=fake.on_call, args=(call,), daemon=True).start()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sid", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    fake = FakeTwilio(a.sid, a.token, port=a.port)
    print("fake twilio on %s" % fake.base, flush=True)
    fake.httpd.serve_forever()


if __name__ == "__main__":
    main()
