#!/usr/bin/env python3
"""A local stand-in for ElevenLabs' streaming text-to-speech endpoint, for tests.

Speaks the wire protocol RevoVoice's client uses:

    POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000
    xi-api-key: KEY
    Content-Type: application/json
    {"text": "...", "model_id": "...", "voice_settings": {"speed": 1.1}}

and answers 200 with raw 16 kHz mono 16-bit little-endian PCM in chunked transfer encoding,
sent in 100 ms pieces as they are "synthesized". Errors are JSON bodies in ElevenLabs' shapes:
401 {"detail": {"status": "invalid_api_key", "message": ...}}, 404 voice_not_found, 422 with a
list of {"loc", "msg", "type"}.

Test controls (not part of ElevenLabs' API):
    POST /__fake__/mode {"mode": "normal" | "cut" | "stall" | "error500", "after": BYTES}
        cut: close the connection mid-stream after BYTES of audio (no final chunk);
        stall: send BYTES of audio, then nothing until the client gives up.
    GET  /__fake__/requests   every request received: path, query, headers, JSON body.

Run standalone:  fake_elevenlabs.py [--port 0] [--key KEY] [--voices a,b]  (prints "port N"),
or from Python:  with FakeElevenLabs(key="k") as fake: fake.url ...
"""
import argparse
import json
import math
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RATE = 16000
CHUNK_SAMPLES = RATE // 10  # 100 ms per chunk
DEFAULT_VOICES = ("21m00Tcm4TlvDq8ikWAM", "testvoice01")


def speech_like(text, speed=1.0):
    """Audio whose length follows the text (about 65 ms per character at speed 1): a
    voiced 140 Hz tone with a syllable-rate envelope, loud enough to pass an RMS check."""
    n = int(RATE * max(0.3, 0.065 * len(text)) / speed)
    out = bytearray()
    for i in range(n):
        t = i / RATE
        env = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
        v = 0.3 * env * (math.sin(2 * math.pi * 140 * t) + 0.5 * math.sin(2 * math.pi * 280 * t))
        out += struct.pack("<h", int(max(-1.0, min(1.0, v)) * 32767))
    return bytes(out)


class _State:
    def __init__(self, key, voices):
        self.key = key
        self.voices = set(voices)
        self.mode = "normal"
        self.after = 0
        self.requests = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-elevenlabs/1"

    def log_message(self, fmt, *args):  # quiet: tests print their own failures
        pass

    @property
    def st(self):
        return self.server.state

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/__fake__/requests":
            with self.st.lock:
                return self._json(200, list(self.st.requests))
        self._json(404, {"detail": "Not Found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        if url.path == "/__fake__/mode":
            ctl = json.loads(raw or b"{}")
            with self.st.lock:
                self.st.mode = ctl.get("mode", "normal")
                self.st.after = int(ctl.get("after", 0))
            return self._json(200, {"mode": self.st.mode})
        parts = url.path.strip("/").split("/")
        query = urllib.parse.parse_qs(url.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self.st.lock:
            self.st.requests.append({"path": url.path, "query": query,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body})
            mode, after = self.st.mode, self.st.after
        if len(parts) != 4 or parts[:2] != ["v1", "text-to-speech"] or parts[3] != "stream":
            return self._json(404, {"detail": "Not Found"})
        voice = parts[2]
        if self.headers.get("xi-api-key") != self.st.key:
            return self._json(401, {"detail": {"status": "invalid_api_key",
                                               "message": "Invalid API key"}})
        if query.get("output_format") != ["pcm_16000"]:
            return self._json(422, {"detail": [{"loc": ["query", "output_format"],
                                                "msg": "this fake only speaks pcm_16000",
                                                "type": "value_error"}]})
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return self._json(422, {"detail": [{"loc": ["body", "text"],
                                                "msg": "field required", "type": "missing"}]})
        speed = ((body.get("voice_settings") or {}).get("speed")) or 1.0
        if not 0.7 <= speed <= 1.2:
            return self._json(422, {"detail": [{"loc": ["body", "voice_settings", "speed"],
                                                "msg": "speed must be between 0.7 and 1.2",
                                                "type": "value_error"}]})
        if voice not in self.st.voices:
            return self._json(404, {"detail": {"status": "voice_not_found",
                                               "message": "A voice with voice_id %s does not exist." % voice}})
        if mode == "error500":
            return self._json(500, {"detail": {"status": "internal_error",
                                               "message": "fake internal error"}})
        audio = speech_like(body["text"], speed)
        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        step = CHUNK_SAMPLES * 2
        try:
            while sent < len(audio):
                piece = audio[sent:sent + step]
                if mode in ("cut", "stall") and sent + len(piece) > after:
                    piece = piece[:max(0, after - sent)]
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    sent += len(piece)
                if mode == "cut" and sent >= after:
                    # Drop the connection without the terminating zero-length chunk.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "stall" and sent >= after:
                    time.sleep(30)
                    self.close_connection = True
                    return
                time.sleep(0.005)  # a synthesizer that is faster than real time, not instant
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class FakeElevenLabs:
    """The fake on a free loopback port, served from a background thread."""

    def __init__(self, key="test-key", voices=DEFAULT_VOICES, port=0):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.state = _State(key, voices)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def set_mode(self, mode, after=0):
        with self.server.state.lock:
            self.server.state.mode = mode
            self.server.state.after = after

    @property
    def requests(self):
        with self.server.state.lock:
            return list(self.server.state.requests)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default="test-key")
    ap.add_argument("--voices", default=",".join(DEFAULT_VOICES))
    a = ap.parse_args()
    fake = FakeElevenLabs(a.key, a.voices.split(","), a.port)
    print("port %d" % fake.port, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
