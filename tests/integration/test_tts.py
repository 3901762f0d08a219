"""Text to speech from the outside (issue 4): `revovoice say` with the embedded engines and
with the ElevenLabs client against a local fake that speaks ElevenLabs' streaming protocol
(tests/fakes/fake_elevenlabs.py), and POST /api/voice-ai/synthesize-speech on the real daemon.
Every WAV that comes back is opened and measured: rate, channels, duration, loudness.
"""
import array
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import wave

import harness
from harness import Daemon, check, eq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
from fake_elevenlabs import FakeElevenLabs  # noqa: E402

SENTENCE = "Hello, this is Revo Voice calling to confirm your appointment for tomorrow morning."
ROUTE = "/api/voice-ai/synthesize-speech"


def bin_path():
    return os.environ.get("RV_BIN", harness.BIN)


def say(*args, env=None, input=None):
    e = dict(os.environ)
    # The client must not pick up a developer's real key or endpoint.
    for k in ("ELEVENLABS_API_KEY", "ELEVENLABS_BASE_URL", "ELEVENLABS_MODEL_ID"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([bin_path(), "say"] + list(args), capture_output=True, env=e,
                          input=input, timeout=120)


def wav_stats(data_or_path):
    """(rate, channels, sample width, seconds, RMS dBFS, samples) of a WAV."""
    f = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else open(data_or_path, "rb")
    with f, wave.open(f, "rb") as w:
        rate, ch, sw, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        frames = w.readframes(n)
    s = array.array("h", frames)
    rms = math.sqrt(sum(x * x for x in s) / max(1, len(s)))
    db = 20 * math.log10(max(rms, 1e-9) / 32768.0)
    return rate, ch, sw, n / float(rate), db, s


def summary(r):
    """The JSON line `say` prints on success."""
    lines = [l for l in r.stdout.decode().splitlines() if l.startswith("{")]
    check(len(lines) == 1, "expected one JSON line, got %r" % r.stdout)
    return json.loads(lines[0])


class Tmp:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="rv-tts-it-")
        return self.dir

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- revovoice say, embedded engines --------------------------------------------------------

def test_say_flite_writes_wav():
    with Tmp() as tmp:
        out = os.path.join(tmp, "hello.wav")
        r = say(SENTENCE, "--voice", "rms", "-o", out)
        eq(r.returncode, 0, "exit code (stderr %s)" % r.stderr.decode())
        s = summary(r)
        eq(s["engine"], "flite", "engine")
        eq(s["voice"], "rms", "voice")
        rate, ch, sw, secs, db, samples = wav_stats(out)
        eq((rate, ch, sw), (16000, 1, 2), "format")
        check(2.5 <= secs <= 8.0, "12 words in %.2f s" % secs)
        check(-35 < db < -6, "RMS %.1f dBFS" % db)
        eq(s["samples"], len(samples), "samples reported vs written")
        check(0 < s["first_audio_ms"] <= s["synth_ms"], "first audio %r" % s)


def test_say_espeak_hindi_and_rate():
    with Tmp() as tmp:
        normal, fast = os.path.join(tmp, "hi.wav"), os.path.join(tmp, "hi-fast.wav")
        text = "नमस्ते, मैं रेवो वॉइस से बात कर रहा हूँ। क्या अभी बात करने का सही समय है?"
        r = say(text, "--voice", "hi", "-o", normal)  # no --engine: flite lacks "hi"
        eq(r.returncode, 0, "exit code (stderr %s)" % r.stderr.decode())
        eq(summary(r)["engine"], "espeak", "engine chosen for hi")
        r2 = say(text, "--voice", "hi", "--engine", "espeak", "--rate", "350wpm", "-o", fast)
        eq(r2.returncode, 0, "exit code (stderr %s)" % r2.stderr.decode())
        rate, ch, _, secs, db, _ = wav_stats(normal)
        _, _, _, secs_fast, _, _ = wav_stats(fast)
        eq((rate, ch), (16000, 1), "format")
        check(2.0 <= secs <= 10.0, "hindi sentence %.2f s" % secs)
        check(-35 < db < -6, "RMS %.1f dBFS" % db)
        check(secs_fast < secs * 0.75, "350 wpm %.2f s vs %.2f s" % (secs_fast, secs))


def test_say_text_from_stdin():
    with Tmp() as tmp:
        out = os.path.join(tmp, "stdin.wav")
        r = say("-", "--voice", "slt", "-o", out, input=b"Thanks for your time. Goodbye!")
        eq(r.returncode, 0, "exit code (stderr %s)" % r.stderr.decode())
        _, _, _, secs, _, _ = wav_stats(out)
        check(1.0 < secs < 5.0, "%.2f s" % secs)


def test_say_errors():
    with Tmp() as tmp:
        out = os.path.join(tmp, "x.wav")
        r = say("hello", "--voice", "zz-nobody", "-o", out)
        eq(r.returncode, 1, "unknown voice exit code")
        check(b'unknown voice "zz-nobody"' in r.stderr and b"rms, slt" in r.stderr, r.stderr)
        r = say("hello", "--voice", "awb", "--engine", "flite", "-o", out)
        eq(r.returncode, 1, "unknown flite voice exit code")
        check(b'flite has no voice "awb"' in r.stderr, r.stderr)
        r = say("hello", "--rate", "fast", "-o", out)
        eq(r.returncode, 2, "bad rate exit code")
        check(b"--rate" in r.stderr, r.stderr)
        r = say("hello", "--engine", "festival", "-o", out)
        eq(r.returncode, 2, "unknown engine exit code")
        check(b"festival" in r.stderr, r.stderr)
        r = say("   ", "-o", out)
        eq(r.returncode, 1, "blank text exit code")
        check(b"empty" in r.stderr, r.stderr)
        r = say("hello", "--engine", "elevenlabs", "-o", out)
        eq(r.returncode, 2, "elevenlabs without key exit code")
        check(b"API key" in r.stderr, r.stderr)
        r = say("hello", "-o", os.path.join(tmp, "no", "such", "dir", "x.wav"))
        eq(r.returncode, 1, "unwritable output exit code")
        eq(sorted(os.listdir(tmp)), [], "files left behind by failures")


def test_say_cache_dir_survives_process():
    with Tmp() as tmp:
        cache = os.path.join(tmp, "cache")
        a, b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
        r1 = say("Press one to talk to an agent.", "--voice", "slt", "--cache-dir", cache, "-o", a)
        eq(r1.returncode, 0, "first run (stderr %s)" % r1.stderr.decode())
        eq(summary(r1)["source"], "synth", "first run source")
        files = [f for f in os.listdir(cache) if f.endswith(".wav")]
        eq(len(files), 1, "cache files")
        check(len(files[0]) == 64 + 4, "BLAKE2b-256 hex name: %s" % files[0])
        r2 = say("Press one to talk to an agent.", "--voice", "slt", "--cache-dir", cache, "-o", b)
        eq(r2.returncode, 0, "second run")
        eq(summary(r2)["source"], "disk", "second process reads the disk cache")
        eq(wav_stats(a)[5], wav_stats(b)[5], "same samples from the cache")


# ---- revovoice say, ElevenLabs against the fake -----------------------------------------------

def test_say_elevenlabs_streams_from_fake():
    with FakeElevenLabs(key="el-secret") as fake, Tmp() as tmp:
        out = os.path.join(tmp, "el.wav")
        text = "Hello from the ElevenLabs stand-in."
        r = say(text, "--engine", "elevenlabs", "--voice", "testvoice01", "--rate", "1.1",
                "--model", "eleven_turbo_v2_5", "-o", out,
                env={"ELEVENLABS_API_KEY": "el-secret", "ELEVENLABS_BASE_URL": fake.url})
        eq(r.returncode, 0, "exit code (stderr %s)" % r.stderr.decode())
        rate, ch, _, secs, db, samples = wav_stats(out)
        eq((rate, ch), (16000, 1), "format")
        # The fake speaks 65 ms per character, divided by the speed.
        expect = int(16000 * 0.065 * len(text) / 1.1)
        eq(len(samples), expect, "samples streamed")
        check(db > -20, "RMS %.1f dBFS" % db)
        reqs = fake.requests
        eq(len(reqs), 1, "requests")
        q = reqs[0]
        eq(q["path"], "/v1/text-to-speech/testvoice01/stream", "path")
        eq(q["query"], {"output_format": ["pcm_16000"]}, "query")
        eq(q["headers"]["xi-api-key"], "el-secret", "key header")
        eq(q["body"]["text"], text, "text")
        eq(q["body"]["model_id"], "eleven_turbo_v2_5", "model")
        check(abs(q["body"]["voice_settings"]["speed"] - 1.1) < 1e-6, "speed %r" % q["body"])


def test_say_elevenlabs_wrong_key():
    with FakeElevenLabs(key="el-secret") as fake, Tmp() as tmp:
        out = os.path.join(tmp, "el.wav")
        r = say("Hello there.", "--engine", "elevenlabs", "-o", out,
                env={"ELEVENLABS_API_KEY": "not-the-key", "ELEVENLABS_BASE_URL": fake.url})
        eq(r.returncode, 1, "exit code")
        err = r.stderr.decode()
        check("HTTP 401" in err and "Invalid API key" in err and "invalid_api_key" in err, err)
        check("not-the-key" not in err, "the key must not be logged: %s" % err)
        check(not os.path.exists(out), "no file on failure")
        # The log line (JSON) carries the same reason.
        logs = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        check(any(l["component"] == "tts" and "401" in l["msg"] for l in logs), err)


def test_say_elevenlabs_unknown_voice_and_validation():
    with FakeElevenLabs(key="k") as fake, Tmp() as tmp:
        env = {"ELEVENLABS_API_KEY": "k", "ELEVENLABS_BASE_URL": fake.url}
        out = os.path.join(tmp, "el.wav")
        r = say("Hi.", "--engine", "elevenlabs", "--voice", "nosuchvoice", "-o", out, env=env)
        eq(r.returncode, 1, "exit code")
        check(b"HTTP 404" in r.stderr and b"voice_not_found" in r.stderr, r.stderr)
        r = say("Hi.", "--engine", "elevenlabs", "--pitch", "1.3", "-o", out, env=env)
        eq(r.returncode, 1, "pitch exit code")
        check(b"no pitch control" in r.stderr, r.stderr)
        r = say("Hi.", "--engine", "elevenlabs", "--rate", "2", "-o", out, env=env)
        eq(r.returncode, 1, "rate exit code")
        check(b"0.7..1.2" in r.stderr, r.stderr)
        eq(len([q for q in fake.requests if "nosuchvoice" not in q["path"]]), 0,
           "invalid options must not reach the provider")


def test_say_elevenlabs_cut_mid_stream():
    with FakeElevenLabs(key="k") as fake, Tmp() as tmp:
        env = {"ELEVENLABS_API_KEY": "k", "ELEVENLABS_BASE_URL": fake.url}
        out = os.path.join(tmp, "el.wav")
        fake.set_mode("cut", after=16000)  # half a second of audio, then the socket closes
        r = say("A long sentence that the server will never finish sending to us.",
                "--engine", "elevenlabs", "-o", out, env=env)
        eq(r.returncode, 1, "exit code")
        check(b"cut after 16000 audio bytes" in r.stderr, r.stderr)
        check(not os.path.exists(out), "no partial file")
        fake.set_mode("error500")
        r = say("Hello.", "--engine", "elevenlabs", "-o", out, env=env)
        eq(r.returncode, 1, "exit code on 500")
        check(b"HTTP 500" in r.stderr and b"fake internal error" in r.stderr, r.stderr)
        fake.set_mode("normal")
        r = say("Hello.", "--engine", "elevenlabs", "-o", out, env=env)
        eq(r.returncode, 0, "recovers when the server does (stderr %s)" % r.stderr.decode())


def test_say_elevenlabs_unreachable():
    port = harness.free_port()
    with Tmp() as tmp:
        r = say("Hello.", "--engine", "elevenlabs", "-o", os.path.join(tmp, "x.wav"),
                env={"ELEVENLABS_API_KEY": "k",
                     "ELEVENLABS_BASE_URL": "http://127.0.0.1:%d" % port})
        eq(r.returncode, 1, "exit code")
        check(b"cannot reach ElevenLabs" in r.stderr, r.stderr)


# ---- POST /api/voice-ai/synthesize-speech -----------------------------------------------------

def post_audio(d, body, token):
    """POST to the synthesis route; returns (status, raw bytes, headers)."""
    req = urllib.request.Request(d.url(ROUTE), data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def error_of(raw):
    return json.loads(raw)["error"]


def supervisor(d):
    d.user_add("sup@example.com", "sup-pass-123456", "supervisor")
    return d.login("sup@example.com", "sup-pass-123456")


def test_api_synthesize_wav_and_cache():
    with Daemon() as d:
        tok = supervisor(d)
        st, raw, h = post_audio(d, {"text": SENTENCE, "voice": "rms"}, tok)
        eq(st, 200, "status (%r)" % raw[:300])
        eq(h["Content-Type"], "audio/wav", "content type")
        rate, ch, sw, secs, db, samples = wav_stats(raw)
        eq((rate, ch, sw), (16000, 1, 2), "format")
        check(2.5 <= secs <= 8.0, "%.2f s" % secs)
        check(-35 < db < -6, "RMS %.1f dBFS" % db)
        eq(h["X-TTS-Engine"], "flite", "engine header")
        eq(h["X-TTS-Cache"], "synth", "first request synthesizes")
        eq(int(h["X-Audio-Duration-Ms"]), len(samples) * 1000 // 16000, "duration header")
        # Same request again: from the memory cache, byte for byte.
        st2, raw2, h2 = post_audio(d, {"text": SENTENCE, "voice": "rms"}, tok)
        eq(st2, 200, "second status")
        eq(h2["X-TTS-Cache"], "memory", "second request")
        eq(raw2, raw, "cached audio")
        files = os.listdir(os.path.join(d.data_dir, "tts-cache"))
        eq(len([f for f in files if f.endswith(".wav")]), 1, "disk cache under DATA/tts-cache")
        # Raw PCM: the same samples without the header.
        st3, raw3, h3 = post_audio(d, {"text": SENTENCE, "voice": "rms", "format": "pcm"}, tok)
        eq(st3, 200, "pcm status")
        check(h3["Content-Type"].startswith("audio/pcm"), h3["Content-Type"])
        eq(raw3, array.array("h", samples).tobytes(), "pcm body")
        # Hindi through espeak-ng, chosen from the voice.
        st4, raw4, h4 = post_audio(d, {"text": "नमस्ते, आप कैसे हैं?", "voice": "hi",
                                       "rate": 1.2, "pitch": 1.1}, tok)
        eq(st4, 200, "hindi status (%r)" % raw4[:300])
        eq(h4["X-TTS-Engine"], "espeak", "engine for hi")
        check(wav_stats(raw4)[3] > 0.5, "hindi duration")
        # The metrics show the cache at work.
        st, text, _ = d.request("GET", "/metrics")
        check('rv_tts_cache_hits_total{tier="memory"}' in text, "hit counter")
        check("rv_tts_cache_misses_total" in text and "rv_tts_synth_seconds_bucket" in text,
              "miss counter and synth histogram")
        # A restarted daemon finds the prompt on disk.
        d.restart()
        tok = d.login("sup@example.com", "sup-pass-123456")
        st5, raw5, h5 = post_audio(d, {"text": SENTENCE, "voice": "rms"}, tok)
        eq((st5, h5["X-TTS-Cache"]), (200, "disk"), "after restart")
        eq(raw5, raw, "disk audio")


def test_api_synthesize_validation_and_roles():
    with Daemon() as d:
        tok = supervisor(d)
        d.user_add("view@example.com", "view-pass-123456", "viewer")
        vtok = d.login("view@example.com", "view-pass-123456")
        st, raw, _ = post_audio(d, {"text": "hello", "voice": "rms"}, vtok)
        eq(st, 403, "viewer")
        st, raw, _ = post_audio(d, {"text": "x" * 2001, "voice": "rms"}, tok)
        eq(st, 400, "too long")
        e = error_of(raw)
        eq((e["code"], e["details"]["field"], e["details"]["max_chars"]),
           ("invalid_field", "text", 2000), "too-long error")
        # 2000 characters of Devanagari is 6000 bytes, and allowed: the cap is in characters.
        st, raw, _ = post_audio(d, {"text": "नमस्ते " * 285, "voice": "hi", "format": "pcm"},
                                tok)
        eq(st, 200, "2000 characters (%r)" % raw[:200])
        st, raw, _ = post_audio(d, {"text": "hello", "voice": "zz-nobody"}, tok)
        eq(st, 422, "unknown voice")
        e = error_of(raw)
        eq(e["code"], "unknown_voice", "code")
        check("zz-nobody" in e["message"], e["message"])
        st, raw, _ = post_audio(d, {"text": "hello", "voice": "awb", "engine": "flite"}, tok)
        eq((st, error_of(raw)["code"]), (422, "unknown_voice"), "flite voice")
        check("rms, slt, kal" in error_of(raw)["message"], raw)
        for body, field in (({"voice": "rms"}, "text"), ({"text": "hi"}, "voice"),
                            ({"text": "hi", "voice": "rms", "engine": "festival"}, "engine"),
                            ({"text": "hi", "voice": "rms", "rate": 9}, "rate"),
                            ({"text": "hi", "voice": "rms", "pitch": "high"}, "pitch"),
                            ({"text": "hi", "voice": "rms", "format": "mp3"}, "format"),
                            ({"text": "hi", "voice": "rms", "speed": 1}, "speed")):
            st, raw, _ = post_audio(d, body, tok)
            eq(st, 400, "status for %r" % body)
            eq(error_of(raw)["details"]["field"], field, "field for %r" % body)
        st, raw, _ = post_audio(d, {"text": "hi", "voice": "rms", "rate": "200wpm"}, tok)
        eq(st, 200, "rate in words per minute")
        st, raw, _ = post_audio(d, {"text": "hi", "voice": "x", "engine": "elevenlabs"}, tok)
        eq((st, error_of(raw)["code"]), (503, "unavailable"), "elevenlabs without a key")
        check("ELEVENLABS_API_KEY" in error_of(raw)["message"], raw)


def test_api_synthesize_elevenlabs():
    with FakeElevenLabs(key="el-secret") as fake:
        env = {"ELEVENLABS_API_KEY": "el-secret", "ELEVENLABS_BASE_URL": fake.url}
        with Daemon(env=env) as d:
            tok = supervisor(d)
            st, raw, h = post_audio(d, {"text": "Hi from the cloud.", "voice": "testvoice01",
                                        "engine": "elevenlabs"}, tok)
            eq(st, 200, "status (%r)" % raw[:300])
            eq(wav_stats(raw)[5].__len__(), int(16000 * 0.065 * len("Hi from the cloud.")),
               "samples")
            eq(h["X-TTS-Engine"], "elevenlabs", "engine")
            fake.set_mode("cut", after=3200)
            st, raw, _ = post_audio(d, {"text": "This one is cut short by the server.",
                                        "voice": "testvoice01", "engine": "elevenlabs"}, tok)
            eq((st, error_of(raw)["code"]), (502, "upstream_error"), "cut stream")
            check("cut after 3200 audio bytes" in error_of(raw)["message"], raw)
        env["ELEVENLABS_API_KEY"] = "wrong-key-zz9"
        fake.set_mode("normal")
        with Daemon(env=env) as d:
            tok = supervisor(d)
            st, raw, _ = post_audio(d, {"text": "Hi.", "voice": "testvoice01",
                                        "engine": "elevenlabs"}, tok)
            eq((st, error_of(raw)["code"]), (502, "upstream_error"), "wrong key")
            check("Invalid API key" in error_of(raw)["message"], raw)
            check("wrong-key-zz9" not in d.read_log(), "the key must not reach the log")
