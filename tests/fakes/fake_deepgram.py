#!/usr/bin/env python3
"""A local stand-in for Deepgram's live transcription WebSocket, for tests.

Speaks the wire protocol RevoVoice's client uses (RFC 6455 server side written here with the
standard library):

    GET /v1/listen?model=..&encoding=linear16&sample_rate=16000&channels=1&interim_results=true
        [&keywords=word:2 ...][&keyterm=phrase ...]
    Authorization: Token KEY
    Upgrade: websocket ...

A wrong key gets HTTP 401 with Deepgram's JSON error body. After the upgrade the client sends
binary messages of linear16 audio and text messages {"type": "KeepAlive" | "Finalize" |
"CloseStream"}. The server answers:
  - every 0.5 s of audio of the current utterance: an interim "Results" (is_final false) with
    the first words of the transcript, in proportion to the audio so far;
  - on Finalize: the transcript as final "Results" segments over the utterance's audio (two
    segments when it has two words or more; the last one from_finalize true), word timings
    spread over the audio, in connection time (seconds of audio since the stream began);
  - on CloseStream: a "Metadata" message, then a close frame (1000).
Right after the upgrade it sends a ping and logs whether the pong came back.

The transcripts are --text, several separated by "|", one per utterance in turn. Keys that
select a fault (any of them also counts as a valid key):
    "garbage"   answer Finalize with a text message that is not JSON;
    "hangup"    drop the TCP connection on Finalize, no close frame;
    "close1011" answer Finalize with a close frame 1011 (Deepgram's NET-0001 shape);
    "stall"     never answer Finalize;
    "oversize"  answer Finalize with a 2 MiB text message;
    "once"      behave, but refuse (401) any connection after the first one.

Run:  fake_deepgram.py [--port 0] [--key KEY] [--text "..."] [--log FILE]
Prints "port N", then serves. Every connection and utterance is appended to --log as one JSON
line: {"event": "connect", "path", "query": {...}, "auth"}, {"event": "utterance",
"audio_bytes", "seconds", "transcript"}, {"event": "pong", "ok"}, {"event": "closed"}.
"""
import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 4 * 1024 * 1024


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock, cfg, counter):
        self.s = sock
        self.cfg = cfg
        self.counter = counter
        self.buf = b""

    def log(self, obj):
        if self.cfg.log:
            with self.cfg.lock, open(self.cfg.log, "a") as f:
                f.write(json.dumps(obj) + "\n")

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise Closed()
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        b0, b1 = self.read_exact(2)
        fin, op, masked, ln = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        if ln == 126:
            ln = struct.unpack(">H", self.read_exact(2))[0]
        elif ln == 127:
            ln = struct.unpack(">Q", self.read_exact(8))[0]
        if not masked or ln > MAX_FRAME:
            raise Closed()  # clients must mask (RFC 6455 5.1)
        mask = self.read_exact(4)
        data = bytearray(self.read_exact(ln))
        for i in range(ln):
            data[i] ^= mask[i & 3]
        return bool(fin), op, bytes(data)

    def read_message(self):
        parts, first = [], None
        while True:
            fin, op, data = self.read_frame()
            if op >= 8:  # control frames may come between fragments
                return op, data
            if first is None:
                first = op
            parts.append(data)
            if fin:
                return first, b"".join(parts)

    def send_frame(self, op, data):
        n = len(data)
        if n < 126:
            hdr = struct.pack(">BB", 0x80 | op, n)
        elif n < 65536:
            hdr = struct.pack(">BBH", 0x80 | op, 126, n)
        else:
            hdr = struct.pack(">BBQ", 0x80 | op, 127, n)
        self.s.sendall(hdr + data)

    def send_json(self, obj):
        self.send_frame(1, json.dumps(obj).encode())

    def handshake(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk or len(head) > 65536:
                raise Closed()
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        auth = hdrs.get("authorization", "")
        key = auth[6:] if auth.startswith("Token ") else ""
        self.log({"event": "connect", "path": url.path, "query": query, "auth": auth})
        refused = key not in (self.cfg.key, "garbage", "hangup", "close1011", "stall",
                              "oversize", "once")
        if key == "once" and self.counter > 0:
            refused = True
        if refused:
            body = json.dumps({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                               "request_id": "00000000-0000-0000-0000-000000000000"}).encode()
            self.s.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            raise Closed()
        if (method != "GET" or url.path != "/v1/listen"
                or hdrs.get("upgrade", "").lower() != "websocket"
                or hdrs.get("sec-websocket-version") != "13"
                or query.get("encoding") != ["linear16"]
                or query.get("sample_rate") != ["16000"]):
            self.s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
            raise Closed()
        accept = base64.b64encode(hashlib.sha1(
            hdrs["sec-websocket-key"].encode() + GUID).digest())
        self.s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
                       b"dg-request-id: 11111111-2222-3333-4444-555555555555\r\n\r\n")
        return key

    def results(self, words, start, dur, is_final, from_finalize):
        step = dur / max(len(words), 1)
        return {
            "type": "Results", "channel_index": [0, 1], "duration": round(dur, 3),
            "start": round(start, 3), "is_final": is_final, "speech_final": False,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": " ".join(words), "confidence": 0.97,
                "words": [{"word": w.lower().strip(".,?!"), "start": round(start + i * step, 3),
                           "end": round(start + (i + 1) * step, 3), "confidence": 0.97,
                           "punctuated_word": w} for i, w in enumerate(words)]}]},
            "metadata": {"request_id": "11111111-2222-3333-4444-555555555555",
                         "model_info": {"name": "general-nova-2", "version": "fake",
                                        "arch": "nova-2"}},
        }

    def serve(self):
        key = self.handshake()
        self.send_frame(9, b"are-you-there")
        texts = self.cfg.text.split("|")
        total = 0.0      # seconds of audio on this connection
        utt_start = 0.0
        utt_bytes = 0
        next_interim = 0.5
        n_utt = 0
        while True:
            op, data = self.read_message()
            if op == 8:
                self.send_frame(8, data[:2] if len(data) >= 2 else b"")
                return
            if op == 9:
                self.send_frame(10, data)
                continue
            if op == 10:
                self.log({"event": "pong", "ok": data == b"are-you-there"})
                continue
            if op == 2:
                utt_bytes += len(data)
                total += len(data) / 2 / 16000
                words = texts[n_utt % len(texts)].split()
                got = total - utt_start
                if got >= next_interim and words:
                    k = max(1, min(len(words), int(len(words) * got / max(got + 0.5, 1.0))))
                    self.send_json(self.results(words[:k], utt_start, got, False, False))
                    next_interim += 0.5
                continue
            if op != 1:
                raise Closed()
            msg = json.loads(data)
            kind = msg.get("type")
            if kind == "KeepAlive":
                continue
            if kind == "CloseStream":
                self.send_json({"type": "Metadata", "transaction_key": "deprecated",
                                "request_id": "11111111-2222-3333-4444-555555555555",
                                "duration": round(total, 3), "channels": 1})
                self.send_frame(8, struct.pack(">H", 1000))
                return
            if kind != "Finalize":
                continue
            text = texts[n_utt % len(texts)]
            dur = total - utt_start
            self.log({"event": "utterance", "audio_bytes": utt_bytes,
                      "seconds": round(dur, 3), "transcript": text})
            if key == "garbage":
                self.send_frame(1, b"{not json")
            elif key == "hangup":
                self.s.shutdown(socket.SHUT_RDWR)
                raise Closed()
            elif key == "close1011":
                self.send_frame(8, struct.pack(">H", 1011) + b"NET-0001")
                return
            elif key == "stall":
                pass
            elif key == "oversize":
                self.send_frame(1, b"[" + b" " * (2 * 1024 * 1024) + b"]")
            elif utt_bytes:
                words = text.split()
                if len(words) >= 2:
                    half = len(words) // 2
                    cut = dur * half / len(words)
                    self.send_json(self.results(words[:half], utt_start, cut, True, False))
                    self.send_json(self.results(words[half:], utt_start + cut, dur - cut,
                                                True, True))
                else:
                    self.send_json(self.results(words, utt_start, dur, True, True))
            n_utt += 1
            utt_start = total
            utt_bytes = 0
            next_interim = 0.5


def handle(sock, cfg, n):
    c = Conn(sock, cfg, n)
    try:
        c.serve()
    except (Closed, OSError, ValueError):
        pass
    finally:
        c.log({"event": "closed"})
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default="test-key")
    ap.add_argument("--text", default="yes")
    ap.add_argument("--log")
    cfg = ap.parse_args()
    cfg.lock = threading.Lock()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", cfg.port))
    srv.listen(16)
    print("port %d" % srv.getsockname()[1], flush=True)
    n = 0
    while True:
        s, _ = srv.accept()
        threading.Thread(target=handle, args=(s, cfg, n), daemon=True).start()
        n += 1


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
