"""Outbound calls with real peers on loopback: `revovoice call` (issue 3) against sipp as the
callee (busy, digest challenge, ringing without an answer, the far end hanging up, early media,
RTP echo) and against a baresip softphone that answers, plays its own WAV and records what it
hears. Each test checks the call's JSON outcome, the peer's verdict and the audio on both sides.
"""
import json
import os
import shutil
import signal
import subprocess
import time

import test_sip_answer as sa

PCAP_DIR = sa.PCAP_DIR
BARESIP_MODULES = "/usr/lib/baresip/modules"


def caller_cmd():
    return [os.environ.get("RV_BIN", "build/revovoice"), "call"]


def speech_prompt(tmp, name, text):
    """espeak-ng speech as 8 kHz mono 16-bit (the telephone format)."""
    raw = os.path.join(tmp, name + "-raw.wav")
    out = os.path.join(tmp, name + ".wav")
    subprocess.run(["espeak-ng", "-w", raw, text], check=True, timeout=60)
    subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    out], check=True, timeout=60)
    return out


def read_mono(path):
    import array
    import wave
    with wave.open(path, "rb") as w:
        rate, ch = w.getframerate(), w.getnchannels()
        assert w.getsampwidth() == 2
        data = array.array("h", w.readframes(w.getnframes()))
    if ch > 1:
        data = data[0::ch]
    return rate, data


def envelope(samples, rate, win_s=0.02):
    """RMS per window of win_s seconds."""
    import math
    win = int(rate * win_s)
    out = []
    for i in range(0, len(samples) - win + 1, win):
        w = samples[i:i + win]
        out.append(math.sqrt(sum(x * x for x in w) / win))
    return out


def envelope_match(ref, got, rate_ref, rate_got):
    """Best correlation of the loudness envelope (20 ms windows) of ref within got over
    every lag; returns (correlation, lag in windows)."""
    a = envelope(ref, rate_ref)
    b = envelope(got, rate_got)
    if not a or len(b) < len(a):
        return 0.0, 0
    best = (-1.0, 0)
    ma = sum(a) / len(a)
    for lag in range(0, len(b) - len(a) + 1):
        seg = b[lag:lag + len(a)]
        mb = sum(seg) / len(seg)
        num = sum((x - ma) * (y - mb) for x, y in zip(a, seg))
        da = sum((x - ma) ** 2 for x in a) ** 0.5
        db = sum((y - mb) ** 2 for y in seg) ** 0.5
        c = num / (da * db) if da and db else 0.0
        if c > best[0]:
            best = (c, lag)
    return best


class Sipp:
    """sipp as the callee, in the background, on free ports."""

    def __init__(self, tmp, xml=None, extra=(), timeout=60):
        self.tmp = tmp
        self.port = sa.free_port()
        self.mport = sa.free_port(pair=True)
        args = ["sipp", "-i", "127.0.0.1", "-p", str(self.port), "-mp", str(self.mport),
                "-m", "1", "-nostdin", "-trace_err", "-error_file",
                os.path.join(tmp, "sipp_err.log"), "-timeout", "%ds" % timeout,
                "-timeout_error"]
        args += ["-sf", xml] if xml else ["-sn", "uas"]
        args += list(extra)
        self.log_path = os.path.join(tmp, "sipp.out")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=tmp, stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(0.5)  # let it bind before we send

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def text(self):
        err = ""
        p = os.path.join(self.tmp, "sipp_err.log")
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                err = f.read()[-3000:]
        with open(self.log_path, "rb") as f:
            return err + f.read().decode("utf-8", "replace")[-1500:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def call(tmp, uri, prompt, extra=(), timeout=90):
    """Run `revovoice call`; returns (exit code, outcome dict, stderr text)."""
    rec = os.path.join(tmp, "call.wav")
    args = caller_cmd() + [uri, "--play", prompt, "--record", rec, "--rtp-ports", sa.rtp_range()]
    args += list(extra)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace").strip().splitlines()
    err = p.stderr.decode("utf-8", "replace")
    assert len(out) == 1, "expected one JSON line, got %r\n%s" % (out, err[-3000:])
    return p.returncode, json.loads(out[0]), err


def test_sip_call_echo_records_prompt_back():
    """sipp -sn uas -rtp_echo answers and echoes our RTP: the recording's left channel (what
    came back) holds our prompt, as long and as loud as we sent it; we hang up after it."""
    with sa.Tmp() as tmp:
        prompt = speech_prompt(tmp, "prompt", "Hello, this is RevoVoice calling about your "
                                              "appointment tomorrow at ten.")
        s = Sipp(tmp, extra=["-rtp_echo"])
        try:
            rc, res, err = call(tmp, "sip:echo@127.0.0.1:%d" % s.port, prompt)
            src = s.wait(30)
        finally:
            s.stop()
        assert rc == 0, (res, err[-3000:])
        assert src == 0, s.text()
        assert res["disposition"] == "answered" and res["sip_status"] == 200, res
        assert res["cause"] == "local" and res["hangup_by"] == "local", res
        assert res["codec"] == "PCMU", res
        rate_p, ref = read_mono(prompt)
        plen = len(ref) / rate_p
        assert abs(res["prompt_played_ms"] / 1000 - plen) < 0.05, res
        assert res["rtp"]["rx_packets"] > plen * 50 * 0.9, res
        assert res["rtp"]["lost"] == 0 and res["rtp"]["rx_bad_source"] == 0, res
        assert res["rtp"]["jitter_ms"] < 20, res
        rate, left, right = sa.read_stereo(res["recording"])
        secs_r, f_r, l_r, rms_r = sa.activity(right, rate)
        secs_l, f_l, l_l, rms_l = sa.activity(left, rate)
        _, _, _, rms_ref = sa.activity(ref, rate_p)
        # Our side: the prompt, whole, from the answer on.
        assert abs((l_r - f_r) - (sa.activity(ref, rate_p)[2] - sa.activity(ref, rate_p)[1])) \
            < 0.1, (f_r, l_r)
        # What came back: the same speech, a little later, same length and loudness.
        assert abs((l_l - f_l) - (l_r - f_r)) < 0.15, ((f_l, l_l), (f_r, l_r))
        assert 0.0 <= f_l - f_r < 0.3, (f_l, f_r)
        assert abs(secs_l - secs_r) < 0.25 * secs_r, (secs_l, secs_r)
        assert 0.8 < rms_l / rms_r < 1.2, (rms_l, rms_r)
        assert 0.8 < rms_r / rms_ref < 1.2, (rms_r, rms_ref)
        c, _ = envelope_match(ref, left, rate_p, rate)
        assert c > 0.9, c


def test_sip_call_busy():
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 1.0)
        xml = sa.scenario(tmp, "uas_reject.xml", code=486, reason="Busy Here")
        s = Sipp(tmp, xml)
        try:
            rc, res, err = call(tmp, "sip:busy@127.0.0.1:%d" % s.port, prompt)
            src = s.wait(30)
        finally:
            s.stop()
        assert rc == 1, (res, err[-2000:])
        assert src == 0, s.text()
        assert res["disposition"] == "busy" and res["sip_status"] == 486, res
        assert res["cause"] == "rejected" and res["hangup_by"] == "remote", res
        assert res["recording"] is None and res["talk_ms"] == 0, res


def test_sip_call_failure_codes_map_to_dispositions():
    """404 -> invalid_number, 503 -> failed, 480 -> no_answer, 600 -> busy (over TCP)."""
    cases = [(404, "Not Found", "invalid_number", ""), (503, "Service Unavailable", "failed", ""),
             (480, "Temporarily Unavailable", "no_answer", ""), (600, "Busy Everywhere", "busy",
                                                                 ";transport=tcp")]
    for code, reason, disp, params in cases:
        with sa.Tmp() as tmp:
            prompt = os.path.join(tmp, "p.wav")
            sa.make_prompt(prompt, 1.0)
            xml = sa.scenario(tmp, "uas_reject.xml", code=code, reason=reason)
            extra = ["-t", "t1"] if params else []
            s = Sipp(tmp, xml, extra)
            try:
                rc, res, err = call(tmp, "sip:x@127.0.0.1:%d%s" % (s.port, params), prompt)
                src = s.wait(30)
            finally:
                s.stop()
            assert rc == 1 and src == 0, (code, res, s.text(), err[-2000:])
            assert res["disposition"] == disp and res["sip_status"] == code, (code, res)


def test_sip_call_digest_auth():
    """401 challenge: we retry with an Authorization for our username that sipp verifies
    against the password (verifyauth), then the call is answered and we hang up."""
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 1.0)
        xml = sa.scenario(tmp, "uas_auth.xml", user="alice", password="s3cret-pw", realm="rv.test",
                          wait=20000)
        s = Sipp(tmp, xml)
        try:
            rc, res, err = call(tmp, "sip:bob@127.0.0.1:%d" % s.port, prompt,
                                ["--user", "alice", "--password", "s3cret-pw"])
            src = s.wait(30)
        finally:
            s.stop()
        assert rc == 0, (res, err[-3000:], s.text())
        assert src == 0, s.text()
        assert res["disposition"] == "answered" and res["hangup_by"] == "local", res
        assert "digest challenge" in err and "rv.test" in err, err[-2000:]


def test_sip_call_digest_wrong_password_fails():
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 1.0)
        xml = sa.scenario(tmp, "uas_auth.xml", user="alice", password="s3cret-pw", realm="rv.test",
                          wait=20000)
        s = Sipp(tmp, xml)
        try:
            rc, res, err = call(tmp, "sip:bob@127.0.0.1:%d" % s.port, prompt,
                                ["--user", "alice", "--password", "wrong"])
            src = s.wait(30)
        finally:
            s.stop()
        assert rc == 1, res
        assert res["disposition"] == "failed" and res["sip_status"] == 403, res
        assert src != 0, "sipp should count the bad digest as a failed call"


def test_sip_call_no_answer_timeout_sends_cancel():
    """180 then nothing: after --timeout 3 we send CANCEL (sipp waits for it), the outcome is
    no_answer."""
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 1.0)
        xml = sa.scenario(tmp, "uas_noanswer.xml", wait=15000)
        s = Sipp(tmp, xml)
        try:
            t0 = time.time()
            rc, res, err = call(tmp, "sip:nobody@127.0.0.1:%d" % s.port, prompt,
                                ["--timeout", "3"])
            took = time.time() - t0
            src = s.wait(30)
        finally:
            s.stop()
        assert rc == 1, res
        assert src == 0, s.text()
        assert res["disposition"] == "no_answer" and res["cause"] == "no_answer", res
        assert res["last_provisional"] == 180 and res["hangup_by"] == "local", res
        assert 2.9 < res["duration_ms"] / 1000 < 4.5 and took < 15, (res, took)


def test_sip_call_far_end_hangs_up():
    """The callee answers with PCMA and sends BYE after 1.5 s, in the middle of our 4 s prompt:
    the outcome says the remote hung up and the prompt did not finish."""
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 4.0)
        xml = sa.scenario(tmp, "uas_remote_bye.xml", codec=8, codec_name="PCMA", pause=1500,
                          early_media="")
        s = Sipp(tmp, xml, ["-rtp_echo"])
        try:
            rc, res, err = call(tmp, "sip:hangup@127.0.0.1:%d" % s.port, prompt)
            src = s.wait(30)
        finally:
            s.stop()
        assert rc == 0, (res, err[-3000:])
        assert src == 0, s.text()
        assert res["disposition"] == "answered" and res["codec"] == "PCMA", res
        assert res["cause"] == "remote_bye" and res["hangup_by"] == "remote", res
        assert 1.3 < res["talk_ms"] / 1000 < 3.0, res
        assert res["prompt_played_ms"] < 3500, res
        rate, left, right = sa.read_stereo(res["recording"])
        assert 1.3 < len(right) / rate < 3.0
        assert sa.activity(left, rate)[0] > 1.0  # the echo of our tone


def test_sip_call_early_media_from_183():
    """183 with SDP and 2.5 s of audio before the 200: the early audio reaches the frame source
    (the recording starts with it), then the answer plays our prompt."""
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 1.0)
        early = """  <send>
    <![CDATA[
      SIP/2.0 183 Session Progress
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000

    ]]>
  </send>
  <nop>
    <action>
      <exec play_pcap_audio="%s"/>
    </action>
  </nop>
  <pause milliseconds="3000"/>
""" % sa.G711A_PCAP
        xml = sa.scenario(tmp, "uas_remote_bye.xml", codec=8, codec_name="PCMA", pause=6000,
                          early_media=early)
        s = Sipp(tmp, xml)
        try:
            rc, res, err = call(tmp, "sip:early@127.0.0.1:%d" % s.port, prompt)
            src = s.wait(10)
        finally:
            s.stop()
        assert rc == 0, (res, err[-3000:])
        assert res["early_media"] is True and res["last_provisional"] == 183, res
        assert res["disposition"] == "answered" and res["codec"] == "PCMA", res
        assert res["hangup_by"] == "local", res  # we hang up after the prompt, before its BYE
        assert 2.8 < res["setup_ms"] / 1000 < 4.5, res
        rate, left, right = sa.read_stereo(res["recording"])
        # The pcap's speech (from ~0.6 s) is heard during the 3 s before the answer.
        secs, first, last, _ = sa.activity(left, rate)
        assert first is not None and first < 2.0 and secs > 1.0, (secs, first, last)
        secs, first, last, _ = sa.activity(right, rate)
        assert first > 2.5 and abs((last - first) - 1.0) < 0.1, (first, last)


def baresip_config(tmp, sip_port, ctrl_port, audio_wav, dump_dir):
    home = os.path.join(tmp, "baresip")
    os.makedirs(home, exist_ok=True)
    os.makedirs(dump_dir, exist_ok=True)
    with open(os.path.join(home, "config"), "w") as f:
        f.write("""poll_method epoll
sip_listen 127.0.0.1:%d
net_interface 127.0.0.1
audio_player aubridge,sink
audio_source aufile,%s
audio_alert aubridge,alert
audio_srate 8000
audio_channels 1
module_path %s
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module account.so
module menu.so
module ctrl_tcp.so
snd_path %s
ctrl_tcp_listen 127.0.0.1:%d
rtp_ports %d-%d
""" % ((sip_port, audio_wav, BARESIP_MODULES, dump_dir, ctrl_port) +
       tuple(int(p) for p in sa.rtp_range().split("-"))))
    with open(os.path.join(home, "accounts"), "w") as f:
        f.write("<sip:bob@127.0.0.1:%d>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n"
                % sip_port)
    with open(os.path.join(home, "contacts"), "w") as f:
        f.write("")
    return home


def test_sip_call_baresip_both_sides_hear_each_other():
    """revovoice calls a baresip softphone that auto-answers and speaks its own WAV. baresip's
    recording of what it received holds our prompt (length and loudness envelope), and our
    recording's left channel holds baresip's speech."""
    if not shutil.which("baresip"):
        raise AssertionError("baresip is not installed (Debian packages baresip, baresip-core)")
    with sa.Tmp() as tmp:
        prompt = speech_prompt(tmp, "prompt", "Good morning. This is an automated reminder "
                                              "from RevoVoice about your visit on Friday.")
        theirs = speech_prompt(tmp, "theirs", "Yes hello, I can hear you clearly, thank you "
                                              "for calling me today, goodbye for now.")
        sip_port = sa.free_port(pair=True)  # SIP on UDP+TCP, SIP/TLS on TCP port + 1
        ctrl_port = sa.free_port()
        dump = os.path.join(tmp, "dump")
        # baresip may end the call when its source file runs out; three seconds of trailing
        # silence keep its side going until our prompt is done and we hang up.
        theirs_src = os.path.join(tmp, "theirs-padded.wav")
        subprocess.run(["sox", theirs, theirs_src, "pad", "0", "3"], check=True, timeout=60)
        home = baresip_config(tmp, sip_port, ctrl_port, theirs_src, dump)
        blog = open(os.path.join(tmp, "baresip.log"), "wb")
        b = subprocess.Popen(["baresip", "-f", home], stdin=subprocess.DEVNULL, stdout=blog,
                             stderr=subprocess.STDOUT)
        try:
            # Ready when it says so (SIP and media bound), not merely when it runs.
            deadline = time.time() + 20
            while time.time() < deadline:
                with open(os.path.join(tmp, "baresip.log"), errors="replace") as f:
                    if "baresip is ready" in f.read():
                        break
                assert b.poll() is None, "baresip exited %s" % b.returncode
                time.sleep(0.2)
            time.sleep(0.3)
            rc, res, err = call(tmp, "sip:bob@127.0.0.1:%d" % sip_port, prompt)
            time.sleep(1.0)  # baresip closes its dump files after the BYE
        finally:
            if b.poll() is None:
                b.send_signal(signal.SIGTERM)
                try:
                    b.wait(10)
                except subprocess.TimeoutExpired:
                    b.kill()
                    b.wait()
            blog.close()
        with open(os.path.join(tmp, "baresip.log"), errors="replace") as f:
            blog_text = f.read()[-6000:]
        assert rc == 0, (res, err[-3000:], blog_text)
        assert res["disposition"] == "answered" and res["hangup_by"] == "local", res
        assert res["rtp"]["lost"] == 0 and res["rtp"]["rx_packets"] > 100, res

        # What baresip heard: our prompt.
        decs = [f for f in os.listdir(dump) if f.endswith("-dec.wav")]
        assert len(decs) == 1, (os.listdir(dump), blog_text)
        rate_b, heard = read_mono(os.path.join(dump, decs[0]))
        rate_p, ref = read_mono(prompt)
        secs_h, f_h, l_h, rms_h = sa.activity(heard, rate_b)
        secs_p, f_p, l_p, rms_p = sa.activity(ref, rate_p)
        assert abs((l_h - f_h) - (l_p - f_p)) < 0.2, ((f_h, l_h), (f_p, l_p))
        assert abs(secs_h - secs_p) < 0.25 * secs_p, (secs_h, secs_p)
        assert 0.75 < rms_h / rms_p < 1.25, (rms_h, rms_p)
        c, _ = envelope_match(ref, heard, rate_p, rate_b)
        assert c > 0.85, c

        # What we heard: baresip's speech, from the start of its file, for as long as the call.
        rate, left, right = sa.read_stereo(res["recording"])
        rate_t, tref = read_mono(theirs)
        secs_l, f_l, l_l, rms_l = sa.activity(left, rate)
        assert secs_l > 1.0 and f_l < 1.0, (secs_l, f_l, l_l)
        _, _, _, rms_t = sa.activity(tref, rate_t)
        assert 0.6 < rms_l / rms_t < 1.4, (rms_l, rms_t)
        # The call is shorter than their file: compare its envelope with the part that fit.
        n = min(len(tref), int((len(left) / rate - 0.3) * rate_t))
        c, _ = envelope_match(tref[:n], left, rate_t, rate)
        assert c > 0.8, c


def test_sip_call_bad_usage():
    p = subprocess.run(caller_cmd() + ["sip:x@127.0.0.1:5"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2 and b"--play" in p.stderr, p.stderr
    with sa.Tmp() as tmp:
        prompt = os.path.join(tmp, "p.wav")
        sa.make_prompt(prompt, 0.5)
        rc, res, err = call(tmp, "sip:x@not-an-ip.invalid", prompt)
        assert rc == 1 and res["disposition"] == "failed" and "error" in res, res
