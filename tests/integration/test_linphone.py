"""Interop with linphonec (Debian package linphone-cli), a second SIP/RTP implementation
independent of libre/baresip (belle-sip and mediastreamer2). Its habits differ from baresip's:
it offers opus and speex before G.711 and telephone-event at two rates, sends RTCP to the
separate RTCP port and STUN binding requests to both media ports, and it advertises the host's
network address in its SDP while it talks to us over loopback, so we must latch onto where its
RTP really comes from (symmetric RTP, as behind a NAT).

linphonec is driven on stdin: "ports sip N", "soundcard use files", "play"/"record" (files used
as microphone and speaker), "call URI", digits, "pause", "resume", "terminate". -a
auto-answers."""
import array
import os
import shutil
import socket
import subprocess
import time
import wave

import test_agent as ta
import test_sip_answer as sa
import test_tel as tt
from harness import Daemon, check, eq


def host_address():
    """The address linphonec puts in its SDP: the one of the interface with the default route
    (found as it finds it, by routing a UDP socket; nothing is sent), or None without one."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()


def need_linphonec():
    if not shutil.which("linphonec"):
        raise AssertionError("linphonec is not installed (Debian package linphone-cli)")


class Linphonec:
    """One linphonec process with its own HOME, SIP port and media files."""

    def __init__(self, tmp, name, play_wav, auto_answer=False):
        self.dir = os.path.join(tmp, name)
        # Its call log database lives here; without it the core never reaches its "on"
        # state and turns incoming calls away with 503.
        os.makedirs(os.path.join(self.dir, ".local", "share", "linphone"))
        self.sip_port = sa.free_port(pair=True)
        self.rtp_port = sa.free_port(pair=True)
        self.heard = os.path.join(self.dir, "heard.wav")
        rc = os.path.join(self.dir, "linphonerc")
        with open(rc, "w") as f:
            f.write("[sip]\nipv6_migration_done=1\nuse_ipv6=0\nsip_tcp_port=0\nsip_tls_port=0\n"
                    "[rtp]\naudio_rtp_port=%d\n[sound]\nechocancellation=0\n"
                    "[video]\nenabled=0\ndisplay=0\ncapture=0\n" % self.rtp_port)
        self.out_path = os.path.join(self.dir, "linphonec.out")
        self.out = open(self.out_path, "wb")
        args = ["linphonec", "-c", rc, "-d", "4", "-l", os.path.join(self.dir, "linphone.log")]
        self.proc = subprocess.Popen(args + (["-a"] if auto_answer else []),
                                     stdin=subprocess.PIPE, stdout=self.out,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=dict(os.environ, HOME=self.dir))
        # The port from the rc file is not applied by this build; the command is.
        self.cmd("ports sip %d" % self.sip_port)
        tt.wait_for("linphonec %s to take its SIP port" % name,
                    lambda: "Setting sip port to %d" % self.sip_port in self.text(), 20, 0.1)
        self.cmd("soundcard use files")
        self.cmd("play %s" % play_wav)
        self.cmd("record %s" % self.heard)
        tt.wait_for("linphonec %s to take its media files" % name,
                    lambda: "linphonec> record" in self.text(), 10, 0.1)
        self.uri = "sip:carol@127.0.0.1:%d" % self.sip_port

    def cmd(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def text(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.cmd("terminate")
                self.cmd("quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def read_heard(path):
    """linphonec's recording (8 kHz mono 16-bit) as samples; its header is written at the end."""
    with wave.open(path) as w:
        eq((w.getnchannels(), w.getsampwidth()), (1, 2), "linphonec recording format")
        return w.getframerate(), array.array("h", w.readframes(w.getnframes()))


def test_linphonec_calls_the_agent_and_books_a_callback():
    """linphonec calls RevoVoice (appointment flow) and asks to be called back tomorrow at 3 pm:
    the callback row is at 15:00 local time, the call's RTP latched onto linphonec's real
    source address (its SDP names the host's network address), and linphonec's recording holds
    the agent's greeting."""
    need_linphonec()
    with sa.Tmp() as tmp, Daemon(config=ta.agent_config(tmp), agent=True) as d:
        tok = tt.admin(d)
        ta.appointment_campaign(d, tok, inbound_numbers="+14155550330",
                                timezone="America/New_York")
        ask = ta.flite_wav(tmp, "ask", "Please call me back tomorrow at three p m.", voice="slt")
        lp = Linphonec(tmp, "caller", ta.script_wav(tmp, "caller", [6.5, ask, 25.0]))
        try:
            lp.cmd("call sip:+14155550330@127.0.0.1:%d" % d.sip_port)
            row = tt.wait_call(d, tok, lambda x: x["state"] == "answered", "the call")
            row = tt.wait_ended(d, tok, row["id"], timeout=60)
            tt.wait_for("linphonec to see the call end",
                        lambda: "ended" in lp.text() or "terminated" in lp.text(), 15, 0.2)
        finally:
            lp.stop()
        st, turns, _ = d.request("GET", "/api/calls/%d/turns" % row["id"], token=tok)
        said = [(t["speaker"], t["text"]) for t in turns["items"]]
        eq(row["disposition"], "callback", "disposition: %r / turns %r" % (row, said))
        eq(row["hangup_by"], "local", "the agent ends the call after booking")
        cb = tt.sql(d, "SELECT local_time FROM callbacks WHERE call_id = %d" % row["id"])
        check(len(cb) == 1 and cb[0][0][-15:] in ("T15:00:00-05:00", "T15:00:00-04:00"),
              "one callback at 3 pm local time: %r / turns %r" % (cb, said))
        check(row["codec"] in ("PCMU", "PCMA"), "a G.711 codec from linphone's longer offer: %r"
              % row.get("codec"))
        sdp_addr = host_address()
        if sdp_addr and not sdp_addr.startswith("127."):
            # Its SDP named the host's network address; its RTP came from 127.0.0.1.
            latch = "RTP peer 127.0.0.1:%d latched (SDP said %s:" % (lp.rtp_port, sdp_addr)
            latched = [l["msg"] for l in d.log_lines() if "latched" in l.get("msg", "")]
            check(any(m.startswith(latch) for m in latched),
                  "RTP latched onto linphonec's real source, not its SDP address: %r" % latched)
        rate, heard = read_heard(lp.heard)
        secs, first, last, rms = sa.activity(heard, rate)
        # The greeting is about 4 s of speech, followed by the confirmation.
        check(secs > 3.0 and first < 2.0, "linphonec heard the agent: active %.1f s from %.2f s"
              % (secs, first))


def test_linphonec_answers_our_call_prompt_digits_hold_and_bye():
    """RevoVoice calls linphonec (auto-answer): linphonec's recording holds our prompt for its
    whole length, its RFC 4733 digits reach the call row, its hold and resume keep the call up,
    its BYE ends the call, and its STUN pinhole packets are counted as STUN, not as broken RTP
    or RTCP."""
    need_linphonec()
    with sa.Tmp() as tmp, Daemon(config=tt.config(tmp, prompt_s=6.0)) as d:
        tok = tt.admin(d)
        quiet = ta.script_wav(tmp, "quiet", [30.0])
        lp = Linphonec(tmp, "callee", quiet, auto_answer=True)
        try:
            st, body, _ = d.request("POST", "/api/calls", {"to": lp.uri}, token=tok)
            eq(st, 202, body)
            cid = body["id"]
            try:
                tt.wait_for("the call to be answered",
                            lambda: tt.get_call(d, tok, cid)["state"] == "answered", 20)
            except AssertionError as e:
                raise AssertionError("%s; row %r; linphonec said:\n%s" % (
                    e, tt.get_call(d, tok, cid), lp.text()[-3000:]))
            time.sleep(7.0)  # the 6 s prompt plays out
            for digit in "73":
                lp.cmd(digit)
                time.sleep(0.5)
            tt.wait_for("the digits in the row",
                        lambda: tt.get_call(d, tok, cid)["dtmf"] == "73", 10)
            # Hold and resume from linphonec's side (re-INVITEs with a=sendonly, then
            # a=sendrecv): the call stays up through both.
            lp.cmd("pause")
            tt.wait_for("linphonec to hold the call", lambda: "is now paused" in lp.text(), 10)
            tt.wait_for("the hold in the daemon's log", lambda: any(
                l.get("msg") == "call held by the far end" for l in d.log_lines()), 10)
            lp.cmd("resume")
            tt.wait_for("the resume in the daemon's log", lambda: any(
                l.get("msg") == "call resumed" for l in d.log_lines()), 10)
            eq(tt.get_call(d, tok, cid)["state"], "answered", "the call is still up")
            lp.cmd("terminate")
            row = tt.wait_ended(d, tok, cid)
        finally:
            lp.stop()
        eq(row["hangup_by"], "remote", "linphonec hung up: %r" % row)
        eq(row["disposition"], "answered", "disposition")
        check(row["rtp_stats"]["rx_packets"] > 300 and row["rtp_stats"]["dtmf_events"] >= 2,
              "RTP and digits from linphonec: %r" % row["rtp_stats"])
        rate, heard = read_heard(lp.heard)
        secs, first, last, rms = sa.activity(heard, rate)
        check(5.0 < secs < 7.0 and first < 1.5,
              "linphonec heard the 6 s prompt: active %.2f s from %.2f s" % (secs, first))
        drops = [l["msg"] for l in d.log_lines() if "dropped" in l.get("msg", "")]
        check(not any("rtcp_malformed" in m or "version" in m for m in drops),
              "linphonec's packets are not taken for broken RTP or RTCP: %r" % drops)
        st, metrics, _ = d.request("GET", "/metrics")
        stun = [ln for ln in metrics.splitlines()
                if ln.startswith('rv_media_rtp_dropped_total{reason="stun"}')]
        check(stun and float(stun[0].split()[-1]) >= 1, "its STUN packets counted: %r" % stun)
