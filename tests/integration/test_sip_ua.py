"""The SIP UA through `revovoice answer` with sipp on loopback: late offer, hold and unhold
(re-INVITE and UPDATE), and offers with no usable media. The UA's other paths (routing hook,
REFER, REGISTER, DNS and outbound proxy, 503 at capacity, silent trunk) are driven directly on
a media loop by tests/unit/media/test_sip_ua.c.
"""
import os
import subprocess
import time

from test_sip_answer import (Answerer, SIP_DIR, Tmp, free_port, make_prompt, read_stereo,
                             activity, scenario)


def sipp(tmp, xml, port, extra=(), timeout=30):
    sport = free_port()
    mport = free_port(pair=True)
    args = ["sipp", "127.0.0.1:%d" % port, "-sf", xml, "-i", "127.0.0.1", "-p", str(sport),
            "-mp", str(mport), "-m", "1", "-l", "1", "-nostdin", "-timeout", "%ds" % timeout,
            "-timeout_error"] + list(extra)
    p = subprocess.run(args, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout + 15)
    return p.returncode, p.stdout.decode("utf-8", "replace")[-2500:]


def test_sip_ua_late_offer_media_both_ways():
    """INVITE without SDP: our 200 carries the offer, the ACK the answer (PCMA only); sipp
    echoes our RTP, so what we send comes back and is recorded on the caller's channel."""
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.5)
        a = Answerer(tmp, prompt, ["--keep-open", "--ring-ms", "100"])
        try:
            xml = scenario(tmp, "uac_late_offer.xml", hold=3000)
            rc, out = sipp(tmp, xml, a.port, ["-rtp_echo"])
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, out, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        assert [l["codec"] for l in a.lines("answered")] == ["PCMA"], a.text()
        hang = a.lines("hangup")
        assert len(hang) == 1 and hang[0]["cause"] == "remote_bye", a.text()
        assert int(hang[0]["tx_packets"]) >= 100, hang
        assert int(hang[0]["rx_packets"]) >= 80, hang
        assert int(hang[0]["rx_bad_source"]) == 0, hang
        # Our prompt went out and came back: it is on the caller's (left) channel too.
        rate, left, right = read_stereo(hang[0]["recording"])
        secs_r = activity(right, rate)[0]
        secs_l = activity(left, rate)[0]
        assert 1.3 < secs_r < 1.7, secs_r
        assert 1.0 < secs_l < 1.8, secs_l


def test_sip_ua_hold_and_unhold_events():
    """re-INVITE sendonly, re-INVITE sendrecv, UPDATE inactive, re-INVITE c=0.0.0.0: sipp checks
    each answer's direction; the answerer reports hold, unhold, hold and the call goes on."""
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 1.0)
        a = Answerer(tmp, prompt, ["--keep-open", "--ring-ms", "100"])
        try:
            xml = scenario(tmp, "uac_hold.xml", newport=free_port(pair=True))
            rc, out = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, out, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        kinds = [l.split()[0] for l in a.text().splitlines()
                 if l.split() and l.split()[0] in ("hold", "unhold", "hangup")]
        assert kinds == ["hold", "unhold", "hold", "hangup"], a.text()
        assert a.lines("hangup")[0]["cause"] == "remote_bye"
        assert '"msg":"call held by the far end"' in a.log()


BAD_BODIES = {
    "no_audio": "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
                "m=video 5000 RTP/AVP 96\na=rtpmap:96 H264/90000\n",
    "port0": "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
             "m=audio 0 RTP/AVP 0\n",
    "codec": "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
             "m=audio 5000 RTP/AVP 96\na=rtpmap:96 opus/48000/2\n",
    "malformed": "this is not SDP at all\nm=audio\n",
}


def test_sip_ua_unusable_sdp_gets_488():
    """Each unusable offer is refused with 488, logged with its reason, and the answerer keeps
    serving: a good call after them is answered."""
    with Tmp() as tmp:
        prompt = os.path.join(tmp, "prompt.wav")
        make_prompt(prompt, 0.5)
        a = Answerer(tmp, prompt, ["--ring-ms", "50"])
        try:
            for reason, body in BAD_BODIES.items():
                xml = scenario(tmp, "uac_bad_sdp.xml", body=body)
                rc, out = sipp(tmp, xml, a.port, timeout=10)
                assert rc == 0, "%s: sipp failed (%d): %s\n%s" % (reason, rc, out, a.log())
            time.sleep(0.2)
            assert a.proc.poll() is None, "answerer died: " + a.log()
            xml = scenario(tmp, "uac_offer.xml", codecs="0", media="", hold=500,
                           expect=r"m=audio [0-9]+ RTP/AVP 0\r?\n")
            rc, out = sipp(tmp, xml, a.port)
            assert rc == 0, "sipp failed (%d): %s\n%s" % (rc, out, a.log())
            assert a.wait_exit() == 0, a.log()
        finally:
            a.stop()
        log = a.log()
        for reason in BAD_BODIES:
            assert '"reason":"%s"' % reason in log, (reason, log)
        assert len(a.lines("answered")) == 1, a.text()
