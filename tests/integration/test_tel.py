"""The telephony service inside `revovoice serve` (issue 3), driven through the running daemon
with real SIP peers on loopback: sipp as caller, callee, trunk and registrar, baresip as a
softphone that sends DTMF and follows a REFER. Each test checks the call row (the API and the
SQLite file), what reached the peer on the wire, and the recording where there is one.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import test_sip_answer as sa
import test_sip_call as sc
from harness import Daemon, check, eq

PW = "tel-pass-123"


# ---- helpers ----------------------------------------------------------------------------

def config(tmp, extra="", prompt_s=2.0, trunks=""):
    prompt = os.path.join(tmp, "prompt.wav")
    if not os.path.exists(prompt):
        sa.make_prompt(prompt, prompt_s)
    text = ("rate_limit:\n  rps: 0\ncalls:\n  default_prompt: %s\nsip:\n  ring_ms: 200\n"
            "  rtp_ports: %s\n  no_answer_timeout: 20\n%s" % (prompt, sa.rtp_range(), extra))
    if trunks:
        text += "trunks:\n" + trunks
    return text


def trunk(name, port, priority=1, extra=""):
    return ("  - name: %s\n    host: 127.0.0.1\n    port: %d\n    transport: udp\n"
            "    priority: %d\n%s" % (name, port, priority, extra))


def sql(d, query):
    """Rows of a query on the daemon's SQLite file, as lists of strings."""
    r = subprocess.run(["sqlite3", "-separator", "\t", os.path.join(d.data_dir, "revovoice.db"),
                        query], capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("sqlite3: %s" % r.stderr.decode(errors="replace"))
    return [ln.split("\t") for ln in r.stdout.decode().splitlines()]


def get_call(d, tok, cid):
    st, body, _ = d.request("GET", "/api/calls/%d" % cid, token=tok)
    eq(st, 200, "GET /api/calls/%d: %r" % (cid, body))
    return body


def wait_for(what, fn, timeout=30, every=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def calls(d, tok):
    st, body, _ = d.request("GET", "/api/calls?limit=100", token=tok)
    eq(st, 200, "list calls")
    return body["items"]


def wait_call(d, tok, pred, what, timeout=30):
    def f():
        for c in calls(d, tok):
            if pred(c):
                return c
        return None
    return wait_for(what, f, timeout)


def wait_ended(d, tok, cid, timeout=40):
    return wait_for("call %d to end" % cid,
                    lambda: (lambda c: c if c["state"] == "ended" else None)(get_call(d, tok, cid)),
                    timeout)


def campaign(d, tok, **kw):
    body = {"name": "c-%d-%s" % (os.getpid(), time.time()), "status": "active"}
    body.update(kw)
    st, c, _ = d.request("POST", "/api/campaigns", body, token=tok)
    eq(st, 201, "create campaign: %r" % (c,))
    return c


class Caller:
    """sipp as the caller in the background (a call that needs the API mid-call)."""

    def __init__(self, tmp, xml, port, service="revovoice", timeout=60, name="caller"):
        self.tmp = tmp
        self.err = os.path.join(tmp, name + "_err.log")
        self.out_path = os.path.join(tmp, name + ".out")
        self.out = open(self.out_path, "wb")
        args = ["sipp", "127.0.0.1:%d" % port, "-sf", xml, "-s", service, "-i", "127.0.0.1",
                "-p", str(sa.free_port()), "-mp", str(sa.free_port(pair=True)), "-m", "1",
                "-l", "1", "-nostdin", "-trace_err", "-error_file", self.err, "-timeout",
                "%ds" % timeout, "-timeout_error"]
        self.proc = subprocess.Popen(args, cwd=tmp, stdout=self.out, stderr=subprocess.STDOUT)

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def text(self):
        t = ""
        if os.path.exists(self.err):
            with open(self.err, errors="replace") as f:
                t = f.read()[-3000:]
        with open(self.out_path, "rb") as f:
            return t + f.read().decode("utf-8", "replace")[-1500:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def wait_bye_xml(tmp, codecs="0 101", wait=30000, media=""):
    return sa.scenario(tmp, "uac_wait_bye.xml", codecs=codecs, wait=wait, media=media)


def admin(d):
    return d.admin()


# ---- inbound ----------------------------------------------------------------------------

def test_tel_inbound_routed_pcma_recorded():
    """A PCMA-only offer to a campaign's number (recording_policy always): the row names the
    campaign, PCMA, the times, who hung up and RTP counts; the recording is a stereo 16 kHz
    WAV with the caller's speech (g711a.pcap) on the left and our prompt on the right."""
    with sa.Tmp() as tmp, Daemon(config=config(tmp, prompt_s=2.0)) as d:
        tok = admin(d)
        c = campaign(d, tok, inbound_numbers="+1 415 555 0100, sales",
                     recording_policy="always", max_concurrent=3)
        eq(c["inbound_numbers"], "+14155550100,sales", "normalised inbound_numbers")
        media = sa.play(sa.G711A_PCAP, 8000)
        xml = sa.scenario(tmp, "uac_offer.xml", codecs="8 101", media=media, hold=500,
                          expect=r"m=audio [0-9]+ RTP/AVP 8 101\r?\n")
        caller = Caller(tmp, xml, d.sip_port, service="+14155550100")
        try:
            rc = caller.wait(60)
        finally:
            caller.stop()
        eq(rc, 0, "sipp: " + caller.text())
        row = wait_call(d, tok, lambda x: x["state"] == "ended", "the inbound row")
        eq(row["direction"], "inbound", "direction")
        eq(row["campaign_id"], c["id"], "campaign")
        eq(row["codec"], "PCMA", "codec")
        eq(row["hangup_by"], "remote", "hangup_by")
        eq(row["hangup_cause"], "remote_bye", "hangup_cause")
        eq(row["disposition"], "answered", "disposition")
        check(row["answered_at"] and row["ended_at"] and row["ringing_at"], row)
        check(row["sip_call_id"] and row["to_uri"].startswith("sip:+14155550100@"), row)
        check(8000 < row["duration_ms"] < 20000, row["duration_ms"])
        st = row["rtp_stats"]
        check(st["rx_packets"] > 200 and st["tx_packets"] > 300 and st["lost"] == 0, st)
        check("jitter_ms" in st, st)
        path = row["recording_path"]
        check(path and os.path.exists(path), "recording %r" % path)
        check(path.startswith(os.path.join(d.data_dir, "recordings")), path)
        check(os.path.basename(path) == "call-%d.wav" % row["id"], path)
        rate, left, right = sa.read_stereo(path)
        eq(rate, 16000, "recording rate")
        secs_l, f_l, l_l, rms_l = sa.activity(left, rate)
        check(secs_l > 4.0 and 5.5 < l_l - f_l < 8.5, ("caller side", secs_l, f_l, l_l))
        secs_r, f_r, l_r, rms_r = sa.activity(right, rate)
        check(abs((l_r - f_r) - 2.0) < 0.1 and f_r < 0.3, ("our prompt", f_r, l_r))
        # The SIP user name routes too (the same campaign).
        xml2 = sa.scenario(tmp, "uac_offer.xml", codecs="0 101", media="", hold=300,
                           expect=r"m=audio [0-9]+ RTP/AVP 0 101\r?\n")
        caller = Caller(tmp, xml2, d.sip_port, service="sales", name="sales")
        try:
            eq(caller.wait(60), 0, caller.text())
        finally:
            caller.stop()
        rows = sql(d, "SELECT campaign_id, codec FROM calls WHERE to_uri LIKE 'sip:sales@%'")
        eq(rows, [[str(c["id"]), "PCMU"]], "the sales call's row")
        # Metrics from the same events.
        st, text, _ = d.request("GET", "/metrics")
        check('rv_calls_total{direction="inbound",disposition="answered"}' in text, text[-2000:])
        check("rv_call_setup_seconds_count" in text and "rv_calls_live 0" in text, "metrics")


def test_tel_inbound_no_route_answered_without_campaign():
    """A number no campaign claims is answered anyway (documented choice): campaign_id null,
    recording per recording.default (never here, so no file)."""
    with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
        tok = admin(d)
        xml = sa.scenario(tmp, "uac_offer.xml", codecs="0 101", media="", hold=500,
                          expect=r"m=audio [0-9]+ RTP/AVP 0 101\r?\n")
        caller = Caller(tmp, xml, d.sip_port, service="+14155559999")
        try:
            eq(caller.wait(60), 0, caller.text())
        finally:
            caller.stop()
        row = wait_call(d, tok, lambda x: x["state"] == "ended", "the row")
        eq(row["campaign_id"], None, "campaign")
        eq(row["disposition"], "answered", "disposition")
        eq(row["recording_path"], None, "no recording")
        check(any(l.get("msg", "").startswith("inbound call with no route") for l in d.log_lines()),
              "no-route log line")


def test_tel_api_hangup_sends_bye():
    """The callee hangs up: POST /api/calls/{id}/hangup -> the caller (a sipp scenario that
    waits for BYE) gets our BYE; the row says hangup_by local. A second hangup is 409."""
    with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
        tok = admin(d)
        caller = Caller(tmp, wait_bye_xml(tmp), d.sip_port, service="+14155550111")
        try:
            row = wait_call(d, tok, lambda x: x["state"] == "answered", "an answered call")
            st, body, _ = d.request("POST", "/api/calls/%d/hangup" % row["id"], {}, token=tok)
            eq(st, 202, "hangup: %r" % body)
            eq(body, {"call_id": row["id"], "action": "hangup", "status": "queued"}, "body")
            eq(caller.wait(30), 0, "sipp did not get our BYE: " + caller.text())
        finally:
            caller.stop()
        row = wait_ended(d, tok, row["id"])
        eq(row["hangup_by"], "local", "hangup_by")
        eq(row["hangup_cause"], "api", "cause")
        eq(row["disposition"], "answered", "disposition")
        st, body, _ = d.request("POST", "/api/calls/%d/hangup" % row["id"], {}, token=tok)
        eq(st, 409, "hangup of an ended call: %r" % body)
        eq(body["error"]["code"], "conflict", "code")
        st, body, _ = d.request("POST", "/api/calls/999999/hangup", {}, token=tok)
        eq(st, 404, "hangup of no call")
        audit = sql(d, "SELECT action, resource, resource_id FROM audit_log WHERE action = 'hangup'")
        eq(audit, [["hangup", "calls", str(row["id"])]], "audit row")


def test_tel_inbound_cancel_before_answer():
    """The caller gives up while it rings (ring_ms 5 s): CANCEL, 487; the row is cancelled,
    never answered, hung up by the remote."""
    with sa.Tmp() as tmp, Daemon(config=config(tmp).replace("ring_ms: 200", "ring_ms: 5000")) as d:
        tok = admin(d)
        xml = sa.scenario(tmp, "uac_cancel.xml", codecs="0 101")
        caller = Caller(tmp, xml, d.sip_port, service="+14155550112")
        try:
            eq(caller.wait(30), 0, caller.text())
        finally:
            caller.stop()
        row = wait_call(d, tok, lambda x: x["state"] == "ended", "the cancelled row")
        eq(row["disposition"], "cancelled", "disposition")
        eq(row["hangup_by"], "remote", "hangup_by")
        eq(row["answered_at"], None, "never answered")
        check(row["ringing_at"] is not None and row["duration_ms"] is None, row)


def test_tel_campaign_max_concurrent_486_and_sip_max_calls_503():
    """A campaign at max_concurrent refuses the next caller with 486; the node at
    sip.max_calls refuses with 503."""
    with sa.Tmp() as tmp, Daemon(config=config(tmp, extra="  max_calls: 2\n")) as d:
        tok = admin(d)
        campaign(d, tok, inbound_numbers="+14155550120", max_concurrent=1)
        first = Caller(tmp, wait_bye_xml(tmp, wait=60000), d.sip_port, service="+14155550120",
                       name="first")
        second = None
        try:
            wait_call(d, tok, lambda x: x["state"] == "answered", "the first call")
            rej = sa.scenario(tmp, "uac_reject.xml", codecs="0 101", code=486)
            second = Caller(tmp, rej, d.sip_port, service="+14155550120", name="second")
            eq(second.wait(30), 0, "second caller wanted 486: " + second.text())
            # Another number (no campaign) still gets in: one call per campaign, two per node.
            other = Caller(tmp, wait_bye_xml(tmp, wait=60000), d.sip_port,
                           service="+14155550121", name="other")
            try:
                wait_for("two live calls",
                         lambda: len([x for x in calls(d, tok) if x["state"] == "answered"]) == 2)
                rej503 = sa.scenario(tmp, "uac_reject.xml", codecs="0 101", code=503)
                third = Caller(tmp, rej503, d.sip_port, service="+14155550122", name="third")
                eq(third.wait(30), 0, "third caller wanted 503: " + third.text())
                third.stop()
            finally:
                for x in calls(d, tok):
                    if x["state"] == "answered":
                        d.request("POST", "/api/calls/%d/hangup" % x["id"], {}, token=tok)
                eq(other.wait(30), 0, other.text())
                other.stop()
            eq(first.wait(30), 0, first.text())
        finally:
            first.stop()
            if second:
                second.stop()
        # Refused calls leave no row; the two that got in are answered and ended.
        rows = sql(d, "SELECT disposition, hangup_by FROM calls ORDER BY id")
        eq(rows, [["answered", "local"], ["answered", "local"]], "rows")
        st, text, _ = d.request("GET", "/metrics")
        check('rv_tel_inbound_refused_total{reason="campaign_busy"} 1' in text, text[-3000:])


def test_tel_sigterm_ends_live_call():
    """SIGTERM with a call up: the caller gets our BYE, the row is ended (system, shutdown)
    and the daemon exits 0. Then a crash (SIGKILL) with a live call: the next start closes
    the row as failed with cause restart."""
    with sa.Tmp() as tmp:
        d = Daemon(config=config(tmp))
        d.start()
        try:
            tok = admin(d)
            caller = Caller(tmp, wait_bye_xml(tmp), d.sip_port, service="+14155550130")
            try:
                row = wait_call(d, tok, lambda x: x["state"] == "answered", "an answered call")
                eq(d.stop(), 0, "exit code on SIGTERM")
                eq(caller.wait(30), 0, "sipp wanted our BYE: " + caller.text())
            finally:
                caller.stop()
            got = sql(d, "SELECT state, hangup_by, hangup_cause, disposition, ended_at IS NOT NULL "
                         "FROM calls WHERE id = %d" % row["id"])
            eq(got, [["ended", "system", "shutdown", "answered", "1"]], "row after SIGTERM")
            check(any(l.get("msg", "").startswith("telephony stopped (1 call") for l in d.log_lines()),
                  "stop log line")

            d.start()
            caller = Caller(tmp, wait_bye_xml(tmp, wait=15000), d.sip_port,
                            service="+14155550131", name="crash")
            try:
                row = wait_call(d, tok, lambda x: x["state"] == "answered", "the second call")
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait(10)
                d.log.close()
                d.proc = None
                d.start()
                got = sql(d, "SELECT state, disposition, hangup_cause, hangup_by FROM calls "
                             "WHERE id = %d" % row["id"])
                eq(got, [["ended", "failed", "restart", "system"]], "row after a crash")
            finally:
                caller.stop()
        finally:
            d.stop()
            shutil.rmtree(d.data_dir, ignore_errors=True)


# ---- outbound ---------------------------------------------------------------------------

def dial(d, tok, body, want=202):
    st, row, hdrs = d.request("POST", "/api/calls", body, token=tok)
    eq(st, want, "POST /api/calls %r: %r" % (body, row))
    return row


def test_tel_outbound_answered_then_api_hangup():
    """POST /api/calls with a number goes to the trunk as sip:<prefix><number>@<domain> via
    the trunk's address; the sipp callee answers; we hang up through the API."""
    with sa.Tmp() as tmp:
        s = sc.Sipp(tmp, sa.scenario(tmp, "tel_uas_answer.xml", ruri=r"INVITE sip:9[+]14155550140@carrier\.test",
                                     media="", wait=30000))
        try:
            cfg = config(tmp, trunks=trunk("main", s.port, extra="    prefix: \"9\"\n"
                                           "    domain: carrier.test\n    caller_id: \"+14155550001\"\n"))
            with Daemon(config=cfg) as d:
                tok = admin(d)
                row = dial(d, tok, {"to": "(415) 555-0140"})
                eq(row["state"], "queued", "row at 202")
                eq(row["direction"], "outbound", "direction")
                eq(row["to_uri"], "+14155550140", "to")
                eq(row["trunk"], "main", "trunk")
                cid = row["id"]
                wait_for("answered", lambda: get_call(d, tok, cid)["state"] == "answered")
                st, body, _ = d.request("POST", "/api/calls/%d/hangup" % cid, {}, token=tok)
                eq(st, 202, body)
                eq(s.wait(30), 0, "sipp: " + s.text())
                row = wait_ended(d, tok, cid)
                eq(row["disposition"], "answered", "disposition")
                eq(row["hangup_by"], "local", "hangup_by")
                eq(row["codec"], "PCMU", "codec")
                eq(row["from_uri"], "sip:+14155550001@carrier.test", "From")
                check(row["sip_call_id"] and row["ringing_at"] and row["answered_at"], row)
                check(row["rtp_stats"]["tx_packets"] > 0, row["rtp_stats"])
        finally:
            s.stop()


def test_tel_outbound_busy_and_no_answer():
    """486 -> busy (remote); ringing with no answer past sip.no_answer_timeout -> CANCEL,
    no_answer (local)."""
    with sa.Tmp() as tmp:
        s = sc.Sipp(tmp, sa.scenario(tmp, "uas_reject.xml", code=486, reason="Busy Here"))
        try:
            with Daemon(config=config(tmp, trunks=trunk("t", s.port))) as d:
                tok = admin(d)
                cid = dial(d, tok, {"to": "+14155550150"})["id"]
                row = wait_ended(d, tok, cid)
                eq(s.wait(30), 0, s.text())
                eq((row["disposition"], row["hangup_by"]), ("busy", "remote"), row)
        finally:
            s.stop()
    with sa.Tmp() as tmp:
        s = sc.Sipp(tmp, sa.scenario(tmp, "uas_noanswer.xml", wait=20000))
        try:
            cfg = config(tmp, trunks=trunk("t", s.port)).replace("no_answer_timeout: 20",
                                                                 "no_answer_timeout: 3")
            with Daemon(config=cfg) as d:
                tok = admin(d)
                t0 = time.time()
                cid = dial(d, tok, {"to": "+14155550151"})["id"]
                row = wait_ended(d, tok, cid)
                took = time.time() - t0
                eq(s.wait(30), 0, "sipp wanted our CANCEL: " + s.text())
                eq((row["disposition"], row["hangup_by"]), ("no_answer", "local"), row)
                check(2.5 < took < 15, took)
                check(row["ringing_at"] is not None and row["answered_at"] is None, row)
        finally:
            s.stop()


def test_tel_outbound_digest_with_trunk_credentials():
    """The trunk challenges with 401: we answer with the trunk's username/password (sipp's
    verifyauth checks the digest), the call is answered."""
    with sa.Tmp() as tmp:
        s = sc.Sipp(tmp, sa.scenario(tmp, "uas_auth.xml", user="acct7", password="tr-secret",
                                     realm="carrier.test", wait=30000))
        try:
            cfg = config(tmp, trunks=trunk("auth", s.port, extra="    username: acct7\n"
                                           "    password: tr-secret\n"))
            with Daemon(config=cfg) as d:
                tok = admin(d)
                cid = dial(d, tok, {"to": "+14155550160"})["id"]
                wait_for("answered", lambda: get_call(d, tok, cid)["state"] == "answered")
                d.request("POST", "/api/calls/%d/hangup" % cid, {}, token=tok)
                eq(s.wait(30), 0, "sipp: " + s.text())
                row = wait_ended(d, tok, cid)
                eq(row["disposition"], "answered", row)
        finally:
            s.stop()


def test_tel_outbound_failover_to_second_trunk():
    """First trunk (priority 1) answers 503: the call moves to the second trunk, which
    answers; the row names the second trunk."""
    with sa.Tmp() as tmp:
        bad_dir = os.path.join(tmp, "bad")
        os.makedirs(bad_dir)
        bad = sc.Sipp(bad_dir, sa.scenario(bad_dir, "uas_reject.xml", code=503,
                                           reason="Service Unavailable"))
        good = sc.Sipp(tmp, sa.scenario(tmp, "tel_uas_answer.xml", ruri=r"INVITE sip:[+]14155550170@",
                                        media="", wait=30000))
        try:
            cfg = config(tmp, trunks=trunk("backup", good.port, priority=2) +
                         trunk("primary", bad.port, priority=1))
            with Daemon(config=cfg) as d:
                tok = admin(d)
                row = dial(d, tok, {"to": "+14155550170"})
                eq(row["trunk"], "primary", "first choice")
                cid = row["id"]
                wait_for("answered", lambda: get_call(d, tok, cid)["state"] == "answered")
                eq(bad.wait(30), 0, "the first trunk's sipp: " + bad.text())
                d.request("POST", "/api/calls/%d/hangup" % cid, {}, token=tok)
                eq(good.wait(30), 0, "the second trunk's sipp: " + good.text())
                row = wait_ended(d, tok, cid)
                eq(row["trunk"], "backup", "trunk that carried the call")
                eq(row["disposition"], "answered", "disposition")
                st, text, _ = d.request("GET", "/metrics")
                check('rv_tel_trunk_failover_total{trunk="primary"} 1' in text, text[-3000:])
        finally:
            bad.stop()
            good.stop()


def test_tel_register_with_trunk():
    """A trunk with register: 1 REGISTERs at start with its credentials; the registrar
    (sipp) verifies the digest; /metrics shows the outcome."""
    with sa.Tmp() as tmp:
        s = sc.Sipp(tmp, sa.scenario(tmp, "tel_registrar.xml", user="reguser", password="reg-pw-1",
                                     realm="carrier.test", expires=300))
        try:
            cfg = config(tmp, trunks=trunk("reg", s.port, extra="    username: reguser\n"
                                           "    password: reg-pw-1\n    register: 1\n"
                                           "    expires: 300\n"))
            with Daemon(config=cfg) as d:
                eq(s.wait(30), 0, "registrar: " + s.text())

                def registered():
                    st, text, _ = d.request("GET", "/metrics")
                    return ('rv_tel_register_total{trunk="reg",outcome="ok"} 1' in text and
                            'rv_tel_registered{trunk="reg"} 1' in text)
                wait_for("the registration metric", registered, 15)
                check(any(l.get("msg") == "registered with the trunk" and l.get("trunk") == "reg"
                          for l in d.log_lines()), "log line")
        finally:
            s.stop()


def test_tel_api_validation():
    """Bad requests to the call API, SIP off, inbound_numbers rules."""
    with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
        tok = admin(d)
        for body, field in [({"to": "not a number"}, "to"), ({}, "to"),
                            ({"to": "+14155550180"}, "to"),  # no trunk configured
                            ({"to": "+14155550180", "trunk": "nope"}, "trunk"),
                            ({"to": "sip:bad uri@x"}, "to"),
                            ({"to": "sip:a@127.0.0.1", "extra": 1}, "extra")]:
            st, r, _ = d.request("POST", "/api/calls", body, token=tok)
            eq(st, 400, "%r -> %r" % (body, r))
            eq(r["error"]["details"]["field"], field, "field for %r" % body)
        st, r, _ = d.request("POST", "/api/calls", {"to": "sip:a@127.0.0.1", "campaign_id": 999},
                             token=tok)
        eq(st, 422, r)
        st, r, _ = d.request("POST", "/api/dnc", {"phone": "+14155550181"}, token=tok)
        eq(st, 201, r)
        st, r, _ = d.request("POST", "/api/calls", {"to": "+14155550181"}, token=tok)
        eq((st, r["error"]["details"]["reason"]), (409, "dnc"), r)
        for path, body in [("dtmf", {"digits": "12x"}), ("transfer", {"to": "sip:a@b", "mode": "x"}),
                           ("record", {"on": "yes"})]:
            st, r, _ = d.request("POST", "/api/calls/1/%s" % path, body, token=tok)
            eq(st, 400, "%s %r -> %r" % (path, body, r))
        c1 = campaign(d, tok, inbound_numbers="+14155550190")
        st, r, _ = d.request("POST", "/api/campaigns", {"name": "dup", "inbound_numbers":
                                                        "support,4155550190"}, token=tok)
        eq(st, 409, r)
        eq(r["error"]["details"], {"field": "inbound_numbers", "entry": "+14155550190",
                                   "campaign_id": c1["id"]}, "conflict details")
        st, r, _ = d.request("POST", "/api/campaigns", {"name": "bad", "inbound_numbers":
                                                        "sip:x@y"}, token=tok)
        eq(st, 400, r)
        # The same campaign may keep its own numbers on update.
        st, r, _ = d.request("PATCH", "/api/campaigns/%d" % c1["id"],
                             {"inbound_numbers": "+14155550190,+14155550191,+14155550191"},
                             token=tok)
        eq((st, r.get("inbound_numbers")), (200, "+14155550190,+14155550191"), r)
    with sa.Tmp() as tmp, Daemon(config=config(tmp), sip="off") as d:
        tok = admin(d)
        st, r, h = d.request("POST", "/api/calls", {"to": "sip:a@127.0.0.1"}, token=tok)
        eq((st, r["error"]["details"]["reason"]), (503, "sip_off"), r)
        eq(h.get("Retry-After"), "5", "Retry-After")


# ---- baresip: DTMF and blind transfer ---------------------------------------------------

class Baresip:
    """A baresip softphone on its own ports, driven through ctrl_tcp. Starting is retried
    with fresh ports (up to three times) when it exits or is not ready in 15 s: the ports
    are picked free but another process may take one before baresip binds it."""

    def __init__(self, tmp, name, audio_wav):
        failures = []
        for attempt in range(3):
            self.tmp = os.path.join(tmp, name if attempt == 0 else "%s-%d" % (name, attempt))
            os.makedirs(self.tmp)
            # baresip listens on UDP and TCP at the port and on TCP (SIP/TLS) at port + 1.
            self.sip_port = sa.free_port(pair=True)
            self.ctrl_port = sa.free_port()
            self.home = sc.baresip_config(self.tmp, self.sip_port, self.ctrl_port, audio_wav,
                                          os.path.join(self.tmp, "dump"))
            self.log_path = os.path.join(self.tmp, "baresip.log")
            self.log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(["baresip", "-f", self.home], stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=subprocess.STDOUT)
            deadline = time.time() + 15
            while ("baresip is ready" not in self.text() and self.proc.poll() is None
                   and time.time() < deadline):
                time.sleep(0.1)
            if "baresip is ready" in self.text():
                break
            if self.proc.poll() is None:
                self.proc.kill()
            failures.append("attempt %d (sip %d, ctrl %d) exit %s:\n%s" % (
                attempt + 1, self.sip_port, self.ctrl_port, self.proc.wait(),
                self.text()[-3000:]))
            self.log.close()
        else:
            raise AssertionError("baresip %s did not start:\n%s" % (name, "\n".join(failures)))
        for f in failures:
            print("baresip %s needed a retry: %s" % (name, f), file=sys.stderr)
        self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=10)
        self.uri = "sip:bob@127.0.0.1:%d" % self.sip_port

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cmd(self, command, params=""):
        msg = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(b"%d:%s," % (len(msg), msg))

    def stop(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def need_baresip():
    if not shutil.which("baresip"):
        raise AssertionError("baresip is not installed (Debian packages baresip, baresip-core)")


def test_tel_baresip_dtmf_in_call_row():
    """baresip calls RevoVoice and sends DTMF 4, 2, # (RFC 4733); the row shows the digits."""
    need_baresip()
    with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
        tok = admin(d)
        src = os.path.join(tmp, "a.wav")
        sa.make_prompt(src, 30.0)
        a = Baresip(tmp, "a", src)
        try:
            a.cmd("dial", "sip:+14155550200@127.0.0.1:%d" % d.sip_port)
            row = wait_call(d, tok, lambda x: x["state"] == "answered", "baresip's call")
            time.sleep(0.5)
            for digit in "42#":
                a.cmd("sndcode", digit)
                time.sleep(0.4)
            wait_for("the digits in the row",
                     lambda: get_call(d, tok, row["id"])["dtmf"] == "42#", 15)
            a.cmd("hangup")
            row = wait_ended(d, tok, row["id"])
        finally:
            a.stop()
        eq(row["dtmf"], "42#", "digits")
        eq(row["hangup_by"], "remote", "hangup_by")
        check(row["rtp_stats"]["dtmf_events"] >= 3, row["rtp_stats"])


def test_tel_blind_transfer_baresip():
    """baresip A calls RevoVoice; POST /transfer (blind) to baresip B: A gets our REFER and
    calls B (who auto-answers); our row ends 'transferred' with the target recorded."""
    need_baresip()
    with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
        tok = admin(d)
        src = os.path.join(tmp, "a.wav")
        sa.make_prompt(src, 30.0)
        a = Baresip(tmp, "a", src)
        b = Baresip(tmp, "b", src)
        try:
            a.cmd("dial", "sip:+14155550210@127.0.0.1:%d" % d.sip_port)
            row = wait_call(d, tok, lambda x: x["state"] == "answered", "A's call")
            st, body, _ = d.request("POST", "/api/calls/%d/transfer" % row["id"],
                                    {"to": b.uri, "mode": "blind"}, token=tok)
            eq(st, 202, body)
            row = wait_ended(d, tok, row["id"])
            eq(row["disposition"], "transferred", "disposition: %r" % row)
            eq(row["transfer_target"], b.uri, "target")
            eq(row["transfer_mode"], "blind", "mode")
            eq(row["hangup_cause"], "transferred", "cause")
            # B got a call from A (not from us).
            wait_for("B to be called by A",
                     lambda: "Call established" in b.text() or "call established" in b.text(),
                     20, 0.2)
        finally:
            a.stop()
            b.stop()
