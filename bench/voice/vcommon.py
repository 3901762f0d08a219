"""Shared pieces of the voice benchmarks (bench/voice/latency.py, bench/voice/load.py): caller
speech made with flite, caller tracks, a headless baresip peer, the daemon with the bench flow,
and energy envelopes of recordings."""
import array
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import wave

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402  (the integration tests' daemon wrapper: start, API, stop)
import test_sip_answer  # noqa: E402  (free ports)

FLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loop_flow.json")
BARESIP_MODULES = "/usr/lib/baresip/modules"

# Short, varied caller answers (what people say on a scheduling or sales call).
UTTERANCES = [
    "Yes.", "No, thank you.", "Tomorrow works for me.", "Maybe later.", "That sounds good.",
    "Not right now.", "Can you call me next week?", "I am not sure.", "What is the price?",
    "Sure, go ahead.", "I live in Boston.", "My name is John.", "Friday morning is better.",
    "How long does it take?", "Okay.", "I already have one.", "Can you repeat that?",
    "Send me an email.", "I'm at work right now.", "Three p m.", "Yes, that's right.",
    "No, that's wrong.", "Who is this?", "I'd like more information.", "Monday afternoon.",
    "I don't think so.", "That's fine.", "Is it free?", "Ten thirty.", "Please continue.",
    "Tell me about the prices.", "I need to think about it.", "Perfect, thanks.",
    "Where are you located?", "Good, what else?", "Alright.",
]
VOICES = ["slt", "rms", "kal"]


def flite_wav(tmp, name, text, voice):
    """text spoken by a flite voice, as an 8 kHz mono 16-bit WAV (what a phone sends)."""
    raw = os.path.join(tmp, name + "-raw.wav")
    out = os.path.join(tmp, name + ".wav")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", raw], check=True, timeout=60)
    subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", out],
                   check=True, timeout=60)
    return out


def read_mono(path):
    """(rate, samples) of a 16-bit WAV; the first channel when it has several."""
    with wave.open(path) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        data = array.array("h", w.readframes(w.getnframes()))
    return rate, (data[::ch] if ch > 1 else data)


def read_channel(path, ch):
    with wave.open(path) as w:
        rate, n = w.getframerate(), w.getnchannels()
        data = array.array("h", w.readframes(w.getnframes()))
    return rate, data[ch::n]


def build_track(tmp, name, items, lead_s, gap_s, tail_s):
    """A caller track: lead_s of silence, then each (text, voice) followed by gap_s of silence,
    then tail_s. Returns (path, [(start_s, end_s, text, voice)]) with the utterance spans as
    placed in the file (flite's own leading and trailing silence included)."""
    frames = bytearray(b"\0\0" * int(8000 * lead_s))
    spans = []
    for i, (text, voice) in enumerate(items):
        p = flite_wav(tmp, "%s-u%02d" % (name, i), text, voice)
        with wave.open(p) as w:
            pcm = w.readframes(w.getnframes())
        start = len(frames) / 2 / 8000.0
        frames += pcm
        spans.append((start, len(frames) / 2 / 8000.0, text, voice))
        frames += b"\0\0" * int(8000 * gap_s)
    frames += b"\0\0" * int(8000 * tail_s)
    out = os.path.join(tmp, name + ".wav")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(frames))
    return out, spans


def envelope_db(samples, rate, win_ms=10):
    """Level of each win_ms window in dBFS (-120 for digital silence)."""
    win = rate * win_ms // 1000
    out = []
    for i in range(0, len(samples) - win + 1, win):
        s = 0
        for x in samples[i:i + win]:
            s += x * x
        ms = s / win
        out.append(10 * math.log10(ms / (32768.0 ** 2)) if ms > 0 else -120.0)
    return out


def segments(env, thr_db, win_ms=10, merge_ms=400, min_ms=60):
    """Speech segments (start_s, end_s) of an envelope: windows at or above thr_db, pauses
    shorter than merge_ms joined, segments shorter than min_ms dropped."""
    segs = []
    cur = None
    for i, v in enumerate(env):
        if v >= thr_db:
            t0, t1 = i * win_ms / 1000.0, (i + 1) * win_ms / 1000.0
            if cur and t0 - cur[1] <= merge_ms / 1000.0:
                cur[1] = t1
            else:
                if cur:
                    segs.append(tuple(cur))
                cur = [t0, t1]
    if cur:
        segs.append(tuple(cur))
    return [s for s in segs if s[1] - s[0] >= min_ms / 1000.0]


def pct(xs, p):
    """Percentile by linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(math.floor(k))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Baresip:
    """A headless baresip softphone that dials out, speaks a WAV and records both directions
    (sndfile: dump-*-enc.wav is what it sent, dump-*-dec.wav what it decoded).
    jbuf: baresip's jitter_buffer_delay in frames ("0-0" disables it, so a received packet is
    decoded, and recorded, the moment it arrives)."""

    def __init__(self, tmp, name, audio_wav, jbuf="0-0", rtp_ports=None):
        # baresip also binds SIP/TCP and SIP/TLS next to its port: a port found free may
        # still collide (with another helper's test), so try a few.
        for attempt in range(5):
            try:
                self._start(tmp, "%s%s" % (name, "-%d" % attempt if attempt else ""),
                            audio_wav, jbuf, rtp_ports)
                return
            except RuntimeError:
                if attempt == 4:
                    raise

    def _start(self, tmp, name, audio_wav, jbuf, rtp_ports):
        self.dir = os.path.join(tmp, name)
        self.dump = os.path.join(self.dir, "dump")
        os.makedirs(self.dump, exist_ok=True)
        # baresip listens on UDP and TCP at the port and on TCP (SIP/TLS) at port + 1.
        self.sip_port = test_sip_answer.free_port(pair=True)
        self.ctrl_port = harness.free_port()
        lo, hi = rtp_ports or (20000 + random.randrange(0, 20000, 2),) * 2
        hi = hi if rtp_ports else lo + 9
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("poll_method epoll\nsip_listen 127.0.0.1:%d\nnet_interface 127.0.0.1\n"
                    "audio_player aubridge,sink\naudio_source aufile,%s\n"
                    "audio_alert aubridge,alert\naudio_srate 8000\naudio_channels 1\n"
                    "jitter_buffer_delay %s\nmodule_path %s\n"
                    "module g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule sndfile.so\n"
                    "module account.so\nmodule menu.so\nmodule ctrl_tcp.so\n"
                    "snd_path %s\nctrl_tcp_listen 127.0.0.1:%d\nrtp_ports %d-%d\n"
                    % (self.sip_port, audio_wav, jbuf, BARESIP_MODULES, self.dump,
                       self.ctrl_port, lo, hi))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:caller@127.0.0.1:%d>;regint=0;answermode=auto;audio_codecs=PCMU\n"
                    % self.sip_port)
        open(os.path.join(self.dir, "contacts"), "w").close()
        self.log_path = os.path.join(self.dir, "baresip.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["baresip", "-f", self.dir], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while "baresip is ready" not in self.text():
            if time.time() > deadline or self.proc.poll() is not None:
                if self.proc.poll() is None:
                    self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise RuntimeError("baresip %s did not start:\n%s" % (name, self.text()))
            time.sleep(0.1)
        self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=10)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cmd(self, command, params=""):
        msg = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(b"%d:%s," % (len(msg), msg))

    def dumps(self):
        names = sorted(os.listdir(self.dump))
        enc = [os.path.join(self.dump, n) for n in names if n.endswith("-enc.wav")]
        dec = [os.path.join(self.dump, n) for n in names if n.endswith("-dec.wav")]
        return (enc[-1] if enc else None), (dec[-1] if dec else None)

    def stop(self):
        try:
            self.cmd("quit")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def daemon_config(workers, rtp_ports="30000-30999", log_level="warn"):
    return ("log:\n  level: %s\nrate_limit:\n  rps: 0\nsip:\n  ring_ms: 0\n  rtp_ports: %s\n"
            "speech:\n  workers: %d\n" % (log_level, rtp_ports, workers))


def setup_campaign(d, number, recording="always"):
    """Admin token and a campaign answering `number` with the bench flow."""
    tok = d.admin()
    with open(FLOW) as f:
        flow = json.load(f)
    st, fl, _ = d.request("POST", "/api/flows", {"name": "bench-loop", "definition": flow},
                          token=tok)
    if st != 201:
        raise RuntimeError("flow: %s %r" % (st, fl))
    body = {"name": "voice-bench-%s" % number, "status": "active", "flow_id": fl["id"],
            "inbound_numbers": number, "recording_policy": recording, "max_concurrent": 200}
    st, camp, _ = d.request("POST", "/api/campaigns", body, token=tok)
    if st != 201:
        raise RuntimeError("campaign: %s %r" % (st, camp))
    return tok, camp


def calls(d, tok):
    st, body, _ = d.request("GET", "/api/calls?limit=500", token=tok)
    return body.get("items", []) if st == 200 else []


def turns(d, tok, cid):
    st, body, _ = d.request("GET", "/api/calls/%d/turns?limit=500" % cid, token=tok)
    return body.get("items", []) if st == 200 else []


def cpu_s(pid):
    """utime+stime of a process, all threads, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def run_delay_s(pid):
    """Time the process's threads spent runnable but waiting for a CPU (schedstat), seconds:
    other work on the same core shows here."""
    total = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[1])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return total / 1e9


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "load": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def harness_rtp_range(n=200):
    """A block of n ports for the daemon's RTP, near a port that is free now."""
    base = harness.free_port()
    lo = max(20000, min(base, 60000)) & ~1
    return "%d-%d" % (lo, lo + n - 1)
