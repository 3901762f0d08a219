#!/usr/bin/env python3
"""A local stand-in for OpenAI's transcription endpoint (and whisper.cpp's server in its
OpenAI-compatible mode), for tests.

Speaks the wire protocol RevoVoice's client uses:

    POST /v1/audio/transcriptions
    Authorization: Bearer KEY
    Content-Type: multipart/form-data; boundary=...
      file=<WAV>, model=..., response_format=verbose_json, timestamp_granularities[]=word,
      optional language=..., prompt=...

and answers 200 with verbose_json: {"task", "language", "duration", "text", "segments": [...],
"words": [{"word", "start", "end"}]}. The WAV is checked (RIFF/WAVE, PCM 16-bit mono) and its
duration is what the reply reports; the words of the transcript are spread over that duration.
A wrong key gets 401 {"error": {"message", "type": "invalid_request_error", "code":
"invalid_api_key"}}, a bad form 400 in the same shape.

The transcript is the `--text` given at start, unless the key selects a fault:
    KEY "malformed"  200 with a body that is not JSON;
    KEY "hangup"     the connection is closed half-way through the reply;
    KEY "notext"     200 with a JSON object lacking "text".

Run:  fake_openai_stt.py [--port 0] [--key KEY] [--text "..."]   (prints "port N", then serves;
every request is appended as one JSON line to --log when given).
"""
import argparse
import email.parser
import email.policy
import json
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 32 * 1024 * 1024


def wav_duration(data):
    if len(data) < 44 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[20:36])
    if fmt != 1 or channels != 1 or bits != 16:
        raise ValueError("not 16-bit mono PCM")
    size = struct.unpack("<I", data[40:44])[0]
    if data[36:40] != b"data" or size > len(data) - 44:
        raise ValueError("bad data chunk")
    return size / 2 / rate


def parse_form(ctype, body):
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise ValueError("not multipart/form-data")
    form = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            form[name] = part.get_payload(decode=True)
    return form


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        self.reply(status, {"error": {"message": message, "type": "invalid_request_error",
                                      "param": None, "code": code}})

    def do_POST(self):
        cfg = self.server.cfg
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            return self.error(400, None, "body missing or too large")
        body = self.rfile.read(length)
        if self.path != "/v1/audio/transcriptions":
            return self.error(404, None, "Invalid URL (POST %s)" % self.path)
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if key not in (cfg.key, "malformed", "hangup", "notext"):
            return self.error(401, "invalid_api_key", "Incorrect API key provided.")
        try:
            form = parse_form(self.headers.get("Content-Type", ""), body)
            if "model" not in form:
                raise ValueError("you must provide a model parameter")
            duration = wav_duration(form.get("file") or b"")
        except ValueError as e:
            return self.error(400, None, str(e))
        if cfg.log:
            with open(cfg.log, "a") as f:
                f.write(json.dumps({k: (v.decode("utf-8", "replace") if k != "file" else len(v))
                                    for k, v in form.items()}) + "\n")
        if key == "malformed":
            return self.reply(200, raw=b'{"text": "yes", "words": [')
        if key == "notext":
            return self.reply(200, {"task": "transcribe", "duration": duration})
        words = cfg.text.split()
        step = duration / max(len(words), 1)
        text = cfg.text[0].upper() + cfg.text[1:] + "." if cfg.text else ""
        reply = {
            "task": "transcribe", "language": "english", "duration": round(duration, 3),
            "text": text,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": round(duration, 3),
                          "text": text, "avg_logprob": -0.15, "no_speech_prob": 0.01}],
            "words": [{"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
                      for i, w in enumerate(words)],
        }
        if key == "hangup":
            raw = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw[: len(raw) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.reply(200, reply)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default="test-key")
    ap.add_argument("--text", default="yes call me tomorrow")
    ap.add_argument("--log")
    cfg = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.cfg = cfg
    sys.stdout.write("port %d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
