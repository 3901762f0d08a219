"""SIP answering with a real peer (sipp) on loopback: the play-and-record flow of
`revovoice answer` (issue 3). Each test starts the answerer on free ports, drives it with a sipp
scenario from tests/sip/, and checks sipp's verdict, the answerer's event lines and the
recording's audio.

The answerer is `revovoice answer`.
"""
import array
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
SIP_DIR = os.path.join(os.path.dirname(HERE), "sip")
PCAP_DIR = "/usr/share/sip-tester"
G711A_PCAP = os.path.join(PCAP_DIR, "g711a.pcap")


def answerer_cmd():
    return [os.environ.get("RV_BIN", "build/revovoice"), "answer"]


def free_port(pair=False):
    """A port free on UDP and TCP (and, with pair, port+1 too) on 127.0.0.1."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port > 65000:
            continue
        try:
            socks = []
            for p in ([port, port + 1] if pair else [port]):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    t = socket.socket(socket.AF_INET, kind)
                    socks.append(t)
                    t.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port")


def rtp_range():
    """A block of 200 ports for our RTP, likely free (picked near a free port)."""
    base = free_port()
    lo = max(20000, min(base, 60000)) & ~1
    return "%d-%d" % (lo, lo + 199)


def make_prompt(path, seconds):
    """A prompt we know exactly: a 440 Hz tone at -12 dBFS, 8 kHz mono 16-bit."""
    rate = 8000
    n = int(seconds * rate)
    amp = int(32767 * 0.25)
    data = array.array("h", (int(amp * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


class Answerer:
    def __init__(self, tmp, prompt, extra=()):
        self.tmp = tmp
        self.port = free_port()
        self.rec_dir = os.path.join(tmp, "rec")
        os.makedirs(self.rec_dir, exist_ok=True)
        self.out_path = os.path.join(tmp, "answer.out")
        self.err_path = os.path.join(tmp, "answer.err")
        args = answerer_cmd() + ["--sip", "127.0.0.1:%d" % self.port, "--play", prompt,
                                 "--record-dir", self.rec_dir, "--rtp-ports", rtp_range()]
        args += list(extra)
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("answerer exited %s: %s" % (self.proc.returncode, self.log()))
            if "listening" in self.text():
                return
            time.sleep(0.05)
        raise RuntimeError("answerer did not start: " + self.log())

    def text(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log(self):
        with open(self.err_path, "rb") as f:
            return self.text() + f.read().decode("utf-8", "replace")[-3000:]

    def lines(self, kind):
        """Event lines of one kind, parsed into dicts of key=value."""
        out = []
        for line in self.text().splitlines():
            parts = line.split()
            if parts and parts[0] == kind:
                out.append(dict(p.split("=", 1) for p in parts[1:] if "=" in p))
        return out

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("answerer still running:\n" + self.log())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()


def scenario(tmp, name, **subst):
    with open(os.path.join(SIP_DIR, name)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace("@%s@" % k.upper(), str(v))
    left = re.findall(r"@[A-Z]+@", text.split("-->", 1)[1])
    assert not left, "scenario %s: unfilled %s" % (name, left)
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def play(pcap, pause_ms=0):
    xml = '  <nop>\n    <action>\n      <exec play_pcap_audio="%s"/>\n    </action>\n  </nop>\n' % pcap
    if pause_ms:
        xml += '  <pause milliseconds="%d"/>\n' % pause_ms
    return xml


def sipp(tmp, xml, port, timeout=60):
    """Run one sipp call against 127.0.0.1:port; returns (exit code, error log text)."""
    sport = free_port()
    mport = free_port(pair=True)
    args = ["sipp", "127.0.0.1:%d" % port, "-sf", xml, "-i", "127.0.0.1", "-p", str(sport),
            "-mp", str(mport), "-m", "1", "-l", "1", "-nostdin", "-trace_err",
            "-error_file", os.path.join(tmp, "sipp_err.log"), "-timeout", "%ds" % timeout,
            "-timeout_error"]
    p = subprocess.run(args, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout + 15)
    err = ""
    path = os.path.join(tmp, "sipp_err.log")
    if os.path.exists(path):
        with open(path) as f:
            err = f.read()
    return p.returncode, err + p.stdout.decode("utf-8", "replace")[-2000:]


def read_stereo(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 2, w.getnchannels()
        assert w.getsampwidth() == 2
        rate = w.getframerate()
        data = array.array("h", w.readframes(w.getnframes()))
    return rate, data[0::2], data[1::2]


def activity(samples, rate, thresh=300):
    """(active seconds, first active s, last active s, rms of the active part) on 20 ms
    windows whose RMS exceeds thresh."""
    win = rate // 50
    active = []
    total = 0.0
    for i in range(0, len(samples) - win + 1, win):
        w = samples[i:i + win]
        rms = math.sqrt(sum(x * x for x in w) / win)
        if rms > thresh:
            active.append(i / rate)
            total += rms * rms
    if not active:
        return 0.0, None, None, 0.0
    return (len(active) * 0.02, active[0], active[-1] + 0.02, math.sqrt(total / len(active)))


class Tmp:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="rv-sip-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def test_sip_pcma_call_played_and_recorded():
    """sipp offers PCMA, streams g711a.pcap (7 s) and a DTMF '1', then hangs up. The call is
    answered with PCMA; the recording holds the caller's 7 s on the left and our prompt on
    the right."""
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 3.0)
        a = Answerer(tmp, prompt, ["--keep-open", "--ring-ms", "200"])
        try:
            media = play(G711A_PCAP, 8000) + play(os.path.join(PCAP_DIR, "dtmf_2833_1.pcap"))
            xml = scenario(tmp, "uac_offer.xml", codecs="8 101", media=media, hold=1500,
                           expect=r"m=audio [0-9]+ RTP/AVP 8 101\r?\n")
            rc, err = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        answered = a.lines("answered")
        assert len(answered) == 1 and answered[0]["codec"] == "PCMA", a.text()
        hang = a.lines("hangup")
        assert len(hang) == 1 and hang[0]["cause"] == "remote_bye", a.text()
        assert hang[0]["digits"] == "1", a.text()
        assert int(hang[0]["rx_bad_source"]) == 0 and int(hang[0]["rx_malformed"]) == 0
        done = a.lines("prompt-done")
        assert len(done) == 1 and done[0]["how"] == "done", a.text()
        assert done[0]["played_ms"] == "3000", done

        rate, left, right = read_stereo(hang[0]["recording"])
        assert rate == 16000
        # The call lasted the pcap (~7 s) + 1 s + DTMF + 1.5 s hold.
        assert 8.5 < len(left) / rate < 14, len(left) / rate
        secs, first, last, rms = activity(left, rate)
        assert 5.5 < last - first < 8.5, (first, last)   # the pcap's 7 s of speech
        assert secs > 4.0 and rms > 1000, (secs, rms)
        secs, first, last, rms = activity(right, rate)
        assert abs((last - first) - 3.0) < 0.1, (first, last)  # our 3 s prompt, whole
        assert first < 0.2, first                              # from the answer on
        assert 5300 < rms < 6300, rms  # a sine of amplitude 8191 has RMS 5792


def test_sip_pcmu_only_offer():
    """An offer with only PCMU (and telephone-event) is answered with exactly PCMU."""
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.0)
        a = Answerer(tmp, prompt, ["--keep-open", "--ring-ms", "100"])
        try:
            xml = scenario(tmp, "uac_offer.xml", codecs="0 101", media="", hold=2000,
                           expect=r"m=audio [0-9]+ RTP/AVP 0 101\r?\n")
            rc, err = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        assert [l["codec"] for l in a.lines("answered")] == ["PCMU"], a.text()
        hang = a.lines("hangup")
        assert hang[0]["cause"] == "remote_bye"
        # We sent RTP the whole call (comfort silence after the 1 s prompt): ~2 s of frames.
        assert int(hang[0]["tx_packets"]) >= 80, hang


def test_sip_g729_only_offer_gets_488():
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.0)
        a = Answerer(tmp, prompt, ["--calls", "0"])
        try:
            xml = scenario(tmp, "uac_reject.xml", codecs="18", code=488)
            rc, err = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
            time.sleep(0.3)
            assert a.proc.poll() is None, "answerer died: " + a.log()
        finally:
            a.stop()
        assert a.lines("incoming") == [], a.text()
        assert "no usable media in the offer" in a.log()


def test_sip_cancel_before_answer():
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.0)
        a = Answerer(tmp, prompt, ["--ring-ms", "10000"])
        try:
            xml = scenario(tmp, "uac_cancel.xml", codecs="8 0")
            rc, err = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
            assert a.wait_exit(15) == 0, a.log()
        finally:
            a.stop()
        assert a.lines("answered") == [], a.text()
        hang = a.lines("hangup")
        assert len(hang) == 1 and hang[0]["cause"] == "cancelled", a.text()
        assert hang[0]["recording"] == "-"


def test_sip_callee_hangs_up_after_prompt():
    """Without --keep-open we hang up once the prompt has played; sipp waits for our BYE."""
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 2.0)
        a = Answerer(tmp, prompt, ["--ring-ms", "100"])
        try:
            xml = scenario(tmp, "uac_wait_bye.xml", codecs="8", media=play(G711A_PCAP),
                           wait=15000)
            t0 = time.time()
            rc, err = sipp(tmp, xml, a.port)
            took = time.time() - t0
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        hang = a.lines("hangup")
        assert len(hang) == 1 and hang[0]["cause"] == "local", a.text()
        assert 1.9 < took < 6, took
        rate, left, right = read_stereo(hang[0]["recording"])
        secs, first, last, rms = activity(right, rate)
        assert abs((last - first) - 2.0) < 0.1, (first, last)
        # The caller's audio until our BYE (g711a.pcap's speech starts after ~0.6 s).
        assert int(hang[0]["frames_received"]) > 60, hang
        assert activity(left, rate)[0] > 0.3


def test_sip_dtmf_rfc4733_digits():
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.0)
        a = Answerer(tmp, prompt, ["--keep-open", "--ring-ms", "100"])
        try:
            media = "".join(play(os.path.join(PCAP_DIR, "dtmf_2833_%s.pcap" % d), 700)
                            for d in ("4", "2", "pound", "star"))
            xml = scenario(tmp, "uac_offer.xml", codecs="0 101", media=media, hold=500,
                           expect=r"a=rtpmap:101 telephone-event/8000")
            rc, err = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        assert [l["digit"] for l in a.lines("dtmf")] == ["4", "2", "#", "*"], a.text()
        assert a.lines("hangup")[0]["digits"] == "42#*"


def test_sip_options_answered():
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.0)
        a = Answerer(tmp, prompt, ["--calls", "0"])
        try:
            rc, err = sipp(tmp, os.path.join(SIP_DIR, "options.xml"), a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, err, a.log())
        finally:
            a.stop()
